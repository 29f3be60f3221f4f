"""Most-popular items for everyone: the baseline every model must beat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.models.base import MODELS, Recommender


@MODELS.register("popularity")
class Popularity(Recommender):
    """Scores every item by its number of training interactions (sum of weights)."""

    name = "popularity"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> Popularity:
        self.interactions = interactions.tocsr()
        self.counts = np.asarray(self.interactions.sum(0)).ravel().astype(np.float32)
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return np.tile(self.counts, (len(user_ids), 1))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.counts, (history.shape[0], 1))

    def item_vectors(self) -> np.ndarray:
        # popularity has no notion of item similarity beyond co-occurrence
        return self.interactions.T.tocsr().toarray().astype(np.float32)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"counts": self.counts}, {}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> Popularity:
        model = cls()
        model.counts = np.asarray(arrays["counts"])
        return model
