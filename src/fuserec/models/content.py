"""Content cosine: the seed's formula, no training.

Item vector ``v_j = Σ_m normalize_m(e_jm)`` and user vector ``u_i = Σ_m u_im`` in the direct-sum
space of :class:`fuserec.fuse.SumFusion`; items are ranked by ``cos(u_i, v_j)``.

A user's block for modality ``m`` comes from their own content where present (a bio, an avatar,
a favourite clip, encoded by the same encoder as items) and from their history (the
interaction-weighted mean of the normalised item blocks they interacted with). With both, the
two unit vectors are mixed by ``own_weight``; with one, that one is used. Users with neither get
a zero vector and fall back to popularity order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.fuse.normalize import l2_normalize
from fuserec.fuse.sum import SumFusion
from fuserec.models.base import MODELS, NewItems, Recommender

# Added to scores so that ties (users with no signal) break by popularity, never by item order.
_TIE_BREAK = 1e-6


@MODELS.register("content-cosine")
class ContentCosine(Recommender):
    """Rank items by cosine between fused user and item content vectors."""

    name = "content-cosine"
    needs_content = True

    def __init__(self, modalities: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None, own_weight: float = 0.5) -> None:
        if not 0.0 <= own_weight <= 1.0:
            raise ValueError("own_weight must lie in [0, 1]")
        self.modalities = list(modalities) if modalities else None
        self.weights = dict(weights or {})
        self.own_weight = own_weight
        self.fuser: SumFusion | None = None
        self._items: np.ndarray | None = None
        self._users: np.ndarray | None = None
        self._pop: np.ndarray | None = None

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> ContentCosine:
        if not item_features:
            raise ValueError("content-cosine needs item_features (per-modality views)")
        modalities = self.modalities or [
            m for m in ("text", "image", "audio") if m in item_features]
        self.fuser = SumFusion(modalities, self.weights).fit(item_features)
        self.interactions = interactions.tocsr().astype(np.float32)
        item_blocks = {m: self.fuser.normalize(m, item_features[m]) for m in modalities}
        self._items = self.fuser.combine(item_blocks)
        self._users = self.user_vectors(self.interactions, item_blocks, user_features)
        counts = np.asarray(self.interactions.sum(0)).ravel()
        self._pop = (counts / max(counts.max(), 1.0)).astype(np.float32)
        return self

    def user_vectors(self, history: sp.csr_matrix, item_blocks: Mapping[str, np.ndarray],
                     user_features: Mapping[str, View] | None = None) -> np.ndarray:
        """Fused user vectors from history rows and optional own content views."""
        assert self.fuser is not None
        row_sums = np.asarray(history.sum(1)).ravel()
        weights = sp.diags(1.0 / np.maximum(row_sums, 1e-12)) @ history
        blocks = {}
        for m, items in item_blocks.items():
            hist = l2_normalize(np.asarray(weights @ items))
            own_view = (user_features or {}).get(m)
            if own_view is None or not np.any(own_view.present):
                blocks[m] = hist
                continue
            own = self.fuser.normalize(m, own_view)
            has_own = np.asarray(own_view.present, bool)[:, None]
            has_hist = (row_sums > 0)[:, None]
            mixed = l2_normalize(self.own_weight * own + (1 - self.own_weight) * hist)
            blocks[m] = np.where(has_own & has_hist, mixed, np.where(has_own, own, hist))
        return self.fuser.combine(blocks)

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return self.score_vectors(self._users[user_ids])

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self.score_vectors(self.fold_in(history))

    def score_new_items(self, history: sp.csr_matrix, items: NewItems) -> np.ndarray | None:
        """Cosine of the folded-in user with each new item's fused content vector."""
        assert self.fuser is not None
        blocks = {m: self.fuser.normalize(m, v) for m, v in items.views.items()
                  if m in self.fuser.modalities}
        if not blocks or len(items) == 0:
            return None
        return self.fold_in(history) @ self.fuser.combine(blocks).T

    def score_vectors(self, user_vectors: np.ndarray) -> np.ndarray:
        """Scores of every item for arbitrary fused user vectors (e.g. from :meth:`fold_in`)."""
        return np.atleast_2d(user_vectors) @ self._items.T + _TIE_BREAK * self._pop

    def item_blocks(self) -> dict[str, np.ndarray]:
        """Each modality's normalised item block, recovered from the fused item vectors."""
        total = sum(self.fuser.weights.values())
        out = {}
        for m, sl in self.fuser.block_slices().items():
            scale = np.sqrt(self.fuser.weights[m] / total)
            out[m] = self._items[:, sl] / scale if scale > 0 else self._items[:, sl] * 0
        return out

    def fold_in(self, history: sp.csr_matrix,
                user_features: Mapping[str, View] | None = None) -> np.ndarray:
        """Fused vectors for users given as history rows (1 x n_items each) and own content.

        This is how a new user, or a user with fresh feedback, is scored without retraining.
        """
        return self.user_vectors(sp.csr_matrix(history, dtype=np.float32), self.item_blocks(),
                                 user_features)

    def explain(self, user_vector: np.ndarray, item_idx: int) -> dict[str, float]:
        """Each modality's additive contribution to ``score(user, item)``."""
        item = self._items[item_idx]
        return {m: float(np.dot(user_vector[sl], item[sl]))
                for m, sl in self.fuser.block_slices().items()}

    def item_vectors(self) -> np.ndarray:
        return self._items

    def item_popularity(self) -> np.ndarray:
        """Training interactions per item scaled to [0, 1] (the tie-breaker of ``score``)."""
        return self._pop

    def add_items(self, vectors: np.ndarray) -> None:
        """Append fused vectors of new items (e.g. added while serving); they start at zero
        popularity, and :meth:`fold_in` and :meth:`score` cover them from then on."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self._items.shape[1]:
            raise ValueError(f"new item vectors have {vectors.shape[1]} dimensions, the model "
                             f"{self._items.shape[1]}")
        self._items = np.concatenate([self._items, vectors], 0)
        self._pop = np.concatenate([self._pop, np.zeros(len(vectors), np.float32)])

    def user_vector_matrix(self) -> np.ndarray:
        return self._users

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        fuser_arrays, fuser_config = self.fuser.state()
        arrays = {f"fuser.{k}": v for k, v in fuser_arrays.items()}
        arrays.update({"items": self._items, "users": self._users, "popularity": self._pop})
        config = {"modalities": self.fuser.modalities, "weights": self.fuser.weights,
                  "own_weight": self.own_weight, "fuser": fuser_config}
        return arrays, config

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   config: Mapping[str, Any]) -> ContentCosine:
        model = cls(config["modalities"], config["weights"], config["own_weight"])
        fuser_arrays = {k[len("fuser."):]: v for k, v in arrays.items() if k.startswith("fuser.")}
        model.fuser = SumFusion.from_state(fuser_arrays, config["fuser"])
        model._items = np.asarray(arrays["items"])
        model._users = np.asarray(arrays["users"])
        model._pop = np.asarray(arrays["popularity"])
        return model
