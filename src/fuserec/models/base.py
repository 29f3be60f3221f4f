"""The recommender extension point, shaped like implicit's: fit / recommend / similar_items.

Users and items are addressed by row and column index of the interaction matrix
(users x items, scipy.sparse CSR); mapping external ids to indices is the caller's job.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from fuserec.fuse.base import View
from fuserec.io import write_json, write_with
from fuserec.ranking import apply_filters, top_k
from fuserec.registry import Registry


@dataclass(frozen=True)
class NewItems:
    """Items added after fit, known only by content: per-modality views (one row per item,
    in the order of ``texts``) and each item's unified text (may be empty)."""

    views: Mapping[str, View]
    texts: Sequence[str] = ()

    def __len__(self) -> int:
        if self.texts:
            return len(self.texts)
        return next((len(v.vectors) for v in self.views.values()), 0)


class Recommender(ABC):
    """Base class of every model. Subclasses implement ``fit``, ``score`` and state I/O."""

    name: str
    interactions: sp.csr_matrix | None = None
    #: True for models that cannot fit without item content views
    needs_content: bool = False
    #: True for models that cannot fit without the items' texts (``fit(..., item_texts=)``)
    needs_text: bool = False

    @classmethod
    def options(cls) -> set[str]:
        """Names of the keyword options the constructor accepts."""
        return set(constructor_arguments(cls))

    @abstractmethod
    def fit(self, interactions: sp.csr_matrix,
            item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None) -> Recommender:
        """Learn from a users x items matrix and optional per-modality content views."""

    @abstractmethod
    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """Scores (len(user_ids), n_items), higher is better."""

    @abstractmethod
    def item_vectors(self) -> np.ndarray:
        """One vector per item, for ``similar_items`` and indexing."""

    @abstractmethod
    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores (n, n_items) for users given only by history rows (n x n_items).

        This is how serving scores a user with fresh feedback, or a brand-new user, without
        retraining: history-reading models (EASE, item-kNN) score from the rows directly,
        embedding models fold the user in from the vectors of the items in the row.
        """

    def score_new_items(self, history: sp.csr_matrix, items: NewItems) -> np.ndarray | None:
        """Scores (n, len(items)) of items added after fit, from their content through the
        model's own content side, for users given by history rows (n x the fitted items).

        On the same scale as :meth:`score_history`, so new items compete with trained ones.
        None (the default) for models without a content side; serving then places the
        content model's scores on this model's scale.
        """
        return None

    def recommend(self, user_ids: Sequence[int] | np.ndarray, k: int = 10,
                  exclude: sp.csr_matrix | None = None, candidates: np.ndarray | None = None,
                  diversity: float = 0.0, diversity_vectors: np.ndarray | None = None,
                  exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user, best first.

        Filters are arguments, never state on the model:

        * ``exclude``: a users x items matrix (rows indexed by user id, like the training
          matrix) of items never to return, e.g. train + validation when scoring a test split.
          It is only excluded, never read as history. Default: the training interactions;
          ``exclude_seen=False`` excludes nothing.
        * ``candidates``: item indices (or a boolean mask over items) to rank among; the rest
          are never returned.

        Rows are padded with -1 / -inf when fewer than ``k`` items remain. ``diversity`` > 0
        re-ranks a larger relevance-ranked pool with maximal marginal relevance (λ in [0, 1],
        see :mod:`fuserec.models.rerank`) over ``diversity_vectors`` (default: the model's
        :meth:`item_vectors`; pass content embeddings for models whose vectors are latent).
        """
        users = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        scores = self.score(users).astype(np.float32, copy=True)
        mask = exclude if exclude is not None else self.interactions
        apply_filters(scores, users, mask if exclude_seen else None, candidates)
        if diversity <= 0.0:
            return top_k(scores, k)
        from fuserec.models.rerank import mmr_batch, pool_size

        vectors = self.item_vectors() if diversity_vectors is None else diversity_vectors
        pool_ids, pool_scores = top_k(scores, pool_size(k, scores.shape[1]))
        return mmr_batch(pool_ids, pool_scores, vectors, k, diversity)

    def similar_items(self, item_ids: Sequence[int] | np.ndarray,
                      k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar (cosine of item vectors) to each item, itself excluded."""
        items = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        vecs = self.item_vectors()
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        unit = vecs / np.maximum(norms, 1e-12)
        scores = unit[items] @ unit.T
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    @abstractmethod
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays for safetensors and a JSON-able config."""

    @classmethod
    @abstractmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> Recommender:
        """Rebuild a fitted model from :meth:`state`'s output."""

    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` and ``model.json`` into ``folder`` (atomically)."""
        folder = Path(folder)
        arrays, config = self.state()
        if self.interactions is not None:
            m = self.interactions.tocsr()
            arrays = {**arrays, "_seen.indptr": m.indptr.astype(np.int64),
                      "_seen.indices": m.indices.astype(np.int64),
                      "_seen.data": m.data.astype(np.float32)}
            config = {**config, "_seen_shape": list(m.shape)}
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        write_with(folder / "model.safetensors", lambda tmp: save_file(arrays, str(tmp)))
        write_json(folder / "model.json", {"model": self.name, **config})
        return folder

    @staticmethod
    def load(folder: str | Path) -> Recommender:
        """Load any saved model (the class is looked up by name in the registry)."""
        folder = Path(folder)
        config = json.loads((folder / "model.json").read_text())
        arrays = load_file(str(folder / "model.safetensors"))
        cls = MODELS.get(config["model"])
        model = cls.from_state(arrays, config)
        if "_seen_shape" in config:
            model.interactions = sp.csr_matrix(
                (arrays["_seen.data"], arrays["_seen.indices"], arrays["_seen.indptr"]),
                shape=tuple(config["_seen_shape"]))
        return model


def constructor_arguments(cls: type) -> list[str]:
    """The named parameters of ``cls.__init__`` (no ``self``, ``*args`` or ``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self"
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def fit_with(model: Recommender, interactions: sp.csr_matrix,
             item_features: Mapping[str, View] | None = None,
             user_features: Mapping[str, View] | None = None,
             validation: sp.csr_matrix | None = None,
             item_texts: Sequence[str] | None = None,
             user_texts: Sequence[str] | None = None) -> Recommender:
    """``model.fit``, handing ``validation`` (early stopping, tuning) and the items' and users'
    texts to models that take them."""
    kwargs: dict[str, Any] = {}
    if item_features:
        kwargs["item_features"] = item_features
    if user_features:
        kwargs["user_features"] = user_features
    accepted = inspect.signature(model.fit).parameters
    for name, value in (("validation", validation), ("item_texts", item_texts),
                        ("user_texts", user_texts)):
        if value is not None and name in accepted:
            kwargs[name] = value
    return model.fit(interactions, **kwargs)


def content_models() -> frozenset[str]:
    """Names of the registered models that read item content views."""
    return frozenset(n for n in MODELS.names() if MODELS.get(n).needs_content)


class _ModelRegistry(Registry[Recommender]):
    def get(self, name: str) -> type[Recommender]:
        if name not in self:
            raise KeyError(f"unknown model {name!r}; known: {', '.join(self.names())}")
        return self._factories[name]  # type: ignore[return-value]


MODELS = _ModelRegistry("model")
