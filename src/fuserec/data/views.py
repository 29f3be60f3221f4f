"""Per-modality feature views, the currency between data, encoders, fusion and models."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class View(NamedTuple):
    """One modality's embeddings for a table: ``vectors`` (n, d) and a ``present`` mask (n,)."""

    vectors: np.ndarray
    present: np.ndarray
