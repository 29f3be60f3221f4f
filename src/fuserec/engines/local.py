"""The in-process engine (the default): batch functions run here, one batch after another."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fuserec.describe import Describer
from fuserec.encode import Encoder
from fuserec.engines.base import ENGINES, BatchFnSpec, Columns, EncoderSpec, Engine
from fuserec.engines.describing import DescriberSpec


@ENGINES.register("local")
class LocalEngine(Engine):
    """Runs everything in the calling process; encoders are the real ones.

    ``encode_catalog`` is exactly :func:`fuserec.encode.encode_catalog` with the encoders the
    specs name; ``recommend_all`` calls ``model.recommend`` on blocks of users.
    """

    name = "local"

    def map_batches(self, columns: Mapping[str, np.ndarray | Sequence[Any]], fn: BatchFnSpec,
                    batch_size: int) -> Iterator[Columns]:
        cols = {k: np.asarray(v) for k, v in columns.items()}
        n = _n_rows(cols)
        if n == 0:
            return
        func = fn.build()
        for start in range(0, n, max(1, batch_size)):
            yield func({k: v[start:start + batch_size] for k, v in cols.items()})

    def encoder(self, spec: EncoderSpec) -> Encoder:
        return spec.build()

    def describer(self, spec: DescriberSpec, batch_size: int = 16) -> Describer:
        return spec.build()


def _n_rows(cols: Mapping[str, np.ndarray]) -> int:
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0
