"""The fuser extension point: many per-modality views in, one vector per record out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from fuserec.data.views import View
from fuserec.registry import Registry

__all__ = ["FUSERS", "Fuser", "View"]


class Fuser(ABC):
    """Fits on the item catalog's views and turns views into fused vectors.

    ``normalize`` maps one modality into its block of the fused space; ``combine`` adds the
    blocks up. Keeping them apart lets a model build a user's block from several sources
    (own content, history) before combining.
    """

    name: str
    modalities: list[str]

    @abstractmethod
    def fit(self, item_views: Mapping[str, View]) -> Fuser: ...

    @abstractmethod
    def normalize(self, modality: str, view: View) -> np.ndarray: ...

    @abstractmethod
    def combine(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def transform(self, views: Mapping[str, View]) -> np.ndarray:
        """Fused vectors for ``views`` (missing modalities count as absent)."""
        return self.combine({m: self.normalize(m, views[m]) for m in self.modalities if m in views})

    @abstractmethod
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for safetensors) and a JSON config that :meth:`from_state` restores."""

    @classmethod
    @abstractmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> Fuser: ...


FUSERS: Registry[Fuser] = Registry("fuser")
