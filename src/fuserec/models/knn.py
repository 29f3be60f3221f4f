"""Item-kNN: items scored by their similarity to what the user has interacted with.

Similarity is the cosine of item columns of the (binary) interaction matrix,
``s_ij = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|) + shrink)``, keeping the ``neighbors`` largest
per item (the classic item-based collaborative filter of Sarwar et al. / Deshpande & Karypis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.models.base import MODELS, Recommender, top_k


def _keep_top(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row."""
    sim = sim.tocsr()
    rows, cols, vals = [], [], []
    for r in range(sim.shape[0]):
        lo, hi = sim.indptr[r], sim.indptr[r + 1]
        if hi == lo:
            continue
        v = sim.data[lo:hi]
        c = sim.indices[lo:hi]
        if len(v) > k:
            keep = np.argpartition(-v, k - 1)[:k]
            v, c = v[keep], c[keep]
        rows.append(np.full(len(v), r))
        cols.append(c)
        vals.append(v)
    if not rows:
        return sp.csr_matrix(sim.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=sim.shape, dtype=np.float32)


@MODELS.register("item-knn")
class ItemKNN(Recommender):
    """Item-based kNN over cosine similarity of interaction columns."""

    name = "item-knn"

    def __init__(self, neighbors: int = 100, shrink: float = 10.0) -> None:
        self.neighbors = neighbors
        self.shrink = shrink
        self.similarity: sp.csr_matrix | None = None
        self._pop: np.ndarray | None = None

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> ItemKNN:
        x = sp.csr_matrix(interactions, dtype=np.float32)
        x.data[:] = 1.0
        self.interactions = x
        xt = x.T.tocsr()
        counts = np.asarray(x.sum(0)).ravel()
        co = (xt @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        co = co.tocoo()
        denom = np.sqrt(counts[co.row] * counts[co.col]) + self.shrink
        sim = sp.csr_matrix((co.data / denom, (co.row, co.col)), shape=co.shape, dtype=np.float32)
        self.similarity = _keep_top(sim, self.neighbors)
        self._pop = (counts / max(counts.max(), 1.0)).astype(np.float32)
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return self.score_history(self.interactions[user_ids])

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        # score_uj = Σ_i x_ui s_ij; a tiny popularity term breaks ties for users with no overlap
        x = sp.csr_matrix(history, dtype=np.float32)
        x.data[:] = 1.0
        s = np.asarray((x @ self.similarity).todense(), np.float32)
        return s + 1e-6 * self._pop

    def item_vectors(self) -> np.ndarray:
        return self.similarity.toarray()

    def similar_items(self, item_ids: Sequence[int] | np.ndarray,
                      k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours by the learned similarity itself (not a cosine of its rows)."""
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        s = np.asarray(self.similarity[items].todense(), np.float32) + 1e-6 * self._pop
        s[np.arange(len(items)), items] = -np.inf
        return top_k(s, k)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        s = self.similarity
        arrays = {"sim.indptr": s.indptr.astype(np.int64),
                  "sim.indices": s.indices.astype(np.int64),
                  "sim.data": s.data.astype(np.float32), "popularity": self._pop}
        return arrays, {"neighbors": self.neighbors, "shrink": self.shrink,
                        "shape": list(s.shape)}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> ItemKNN:
        model = cls(config["neighbors"], config["shrink"])
        model.similarity = sp.csr_matrix(
            (arrays["sim.data"], arrays["sim.indices"], arrays["sim.indptr"]),
            shape=tuple(config["shape"]))
        model._pop = np.asarray(arrays["popularity"])
        return model
