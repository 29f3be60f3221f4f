"""What the server holds in memory: the artifacts, the model, the index, feedback and new items.

:class:`ServingState` answers every question the HTTP layer asks, with no HTTP in it, so it can
be used (and benchmarked) in-process. Reads take no lock; writes (feedback, new items) take one
lock and publish new arrays by swapping references, so a read never sees a half-written item.

The state is one class over four modules: loading and lookups here, ranking and search in
:mod:`fuserec.serve.scoring`, feedback and new items in :mod:`fuserec.serve.writes`, records
for the API in :mod:`fuserec.serve.presentation` (bounds and errors in
:mod:`fuserec.serve.limits`).

* Recommendations: the served model's exact scores (the model ``fuserec run`` chose on
  validation; feedback folded in with ``Recommender.score_history``), or without one the
  user's fused content vector searched in the index; seen items excluded, optional attribute
  filters; ``diversity`` > 0 re-ranks a larger candidate set with MMR over content vectors.
* Search: a text, image or audio query is encoded by the same encoder the artifacts used,
  normalised by the model's fuser into that modality's block of the fused space, and searched.
* New items are validated with the catalog's media checks, encoded, fused and indexed.
* With a ``journal`` file, every write is appended to it before it takes effect and the file is
  replayed on start, so feedback and new items survive a restart
  (:mod:`fuserec.serve.journal`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuserec.artifacts import Artifacts, load_artifacts
from fuserec.data.schema import (
    ATTR_PREFIX,
    AUDIO,
    ID,
    IMAGES,
    ITEM_ID,
    USER_ID,
    WEIGHT,
    media_paths,
    record_text,
    text_columns,
)
from fuserec.fuse.base import View
from fuserec.index import DEFAULT_INDEX, VectorIndex, build_index
from fuserec.models.rerank import mmr  # noqa: F401  (one MMR implementation, shared)
from fuserec.serve.journal import Journal
from fuserec.serve.limits import (  # noqa: F401  (the serving API imports them from here)
    MODALITY_OF_MEDIA,
    ServeError,
    ServeLimits,
    check_item_id,
    check_upload,
    modality_of_file,
)
from fuserec.serve.presentation import Presentation
from fuserec.serve.scoring import Scoring
from fuserec.serve.writes import Writes


class ServingState(Scoring, Writes, Presentation):
    """In-memory serving state over a loaded artifact folder (see the module docstring)."""

    def __init__(self, artifacts: Artifacts, index_kind: str = DEFAULT_INDEX,
                 index_config: Mapping[str, Any] | None = None,
                 encoders: Mapping[str, Any] | None = None,
                 limits: ServeLimits | None = None,
                 journal: str | Path | None = None) -> None:
        model = artifacts.model
        for attr in ("fold_in", "explain", "fuser", "item_vectors", "item_popularity",
                     "add_items"):
            if not hasattr(model, attr):
                held = getattr(model, "name", type(model).__name__)
                raise TypeError(f"serving needs a content model with {attr}() "
                                f"(content-cosine); the artifacts hold {held}")
        self.artifacts = artifacts
        self.model = model
        #: the model chosen on validation, when it is not the content model: it ranks for
        #: users, and the content model keeps the index, search and explanations
        self.ranker = artifacts.served
        self._user_scores: dict[str, np.ndarray] = {}
        #: a blend's per-member shares of each user's scores (explanations), until feedback
        self._member_shares: dict[str, dict[str, np.ndarray]] = {}
        #: raw per-modality vectors of the items added while serving (the served model's
        #: content side scores them), in position order after the catalog's items
        self.new_item_views: list[dict[str, np.ndarray]] = []
        self.limits = limits or ServeLimits()
        self.catalog_root = artifacts.catalog_root
        # held only to change memory: writes are applied under it by the journal's committer,
        # in journal order, after their fsync (fuserec.serve.writes), never across the fsync
        self._lock = threading.RLock()
        self._pending_items: set[str] = set()  # ids reserved by adds in progress
        self._encoders: dict[str, Any] = dict(encoders or {})
        self._encoder_lock = threading.Lock()

        items = artifacts.items.reset_index(drop=True).copy()
        items[ID] = items[ID].astype(str)
        self.items = items
        self.text_columns = text_columns(items)
        self.attribute_columns = [c for c in items.columns if str(c).startswith(ATTR_PREFIX)]
        self.item_ids: list[str] = items[ID].tolist()
        self.item_pos: dict[str, int] = {i: p for p, i in enumerate(self.item_ids)}
        self.item_texts: list[str] = [record_text(row, self.text_columns)
                                      for _, row in items.iterrows()]
        self.item_media: list[dict[str, list[str]]] = [
            {col: media_paths(row.get(col)) for col in (IMAGES, AUDIO)}
            for _, row in items.iterrows()]

        users = artifacts.users.reset_index(drop=True).copy()
        users[ID] = users[ID].astype(str)
        self.users = users
        self.user_row: dict[str, int] = {u: r for r, u in enumerate(users[ID].tolist())}
        self.user_texts = [record_text(row, text_columns(users)) for _, row in users.iterrows()]
        self.user_media = [{col: media_paths(row.get(col)) for col in (IMAGES, AUDIO)}
                           for _, row in users.iterrows()]

        vectors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)
        if len(vectors) != len(items):
            raise ValueError(f"the model has {len(vectors)} item vectors for {len(items)} items")
        self.vectors = vectors
        self.popularity = np.asarray(model.item_popularity(), np.float32)
        self.index: VectorIndex = build_index(vectors, index_kind, **dict(index_config or {}))
        if hasattr(self.index, "set_threads") and "threads" not in (index_config or {}):
            self.index.set_threads(1)  # built with every core; served one query at a time

        # everything a user has interacted with (train and held-out) is "seen" when serving
        seen: dict[str, dict[int, float]] = {}
        inter = artifacts.interactions
        if len(inter):
            weights = inter[WEIGHT] if WEIGHT in inter else pd.Series(1.0, index=inter.index)
            for u, i, w in zip(inter[USER_ID].astype(str), inter[ITEM_ID].astype(str),
                               weights.astype(float), strict=True):
                if i in self.item_pos:
                    d = seen.setdefault(u, {})
                    d[self.item_pos[i]] = d.get(self.item_pos[i], 0.0) + w
        self._seen = seen
        self._seen_arrays: dict[str, np.ndarray] = {}
        self.feedback: dict[str, dict[int, float]] = {}
        self._user_vectors: dict[str, np.ndarray] = {}

        self.media_paths: set[str] = {p for m in self.item_media + self.user_media
                                      for paths in m.values() for p in paths}
        manifest_encoders = artifacts.manifest.get("encoders", {})
        self.modalities: list[str] = [m for m in model.fuser.modalities if m in manifest_encoders
                                      or m in self._encoders]
        # writes survive restarts when a journal is given: replay it, then append to it
        self.journal = Journal(journal) if journal is not None else None
        self.replayed = self._replay() if self.journal is not None else {"feedback": 0,
                                                                          "items": 0}

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> ServingState:
        """Load ``folder`` (an artifact folder) and build the state."""
        return cls(load_artifacts(Path(folder)), **kwargs)

    # -- lookups ---------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def position(self, item_id: str) -> int:
        """Position of ``item_id``; ServeError 404 if unknown."""
        pos = self.item_pos.get(item_id)
        if pos is None:
            raise ServeError(f"there is no item with id {item_id!r}", 404)
        return pos

    def has_user(self, user_id: str) -> bool:
        return user_id in self.user_row or user_id in self.feedback

    def scores_cached(self, user_id: str) -> bool:
        """Whether the served model's scores of every item for ``user_id`` are cached and
        current: ranking them is then a copy, masks and a top-k, no model call."""
        cached = self._user_scores.get(user_id)
        return self.ranker is not None and cached is not None and len(cached) == self.n_items

    def seen_positions(self, user_id: str) -> np.ndarray:
        """Items the user has interacted with (catalog interactions and feedback)."""
        cached = self._seen_arrays.get(user_id)
        if cached is None:
            both = set(self._seen.get(user_id, {})) | set(self.feedback.get(user_id, {}))
            cached = np.fromiter(sorted(both), dtype=np.int64, count=len(both))
            self._seen_arrays[user_id] = cached
        return cached

    def user_vector(self, user_id: str) -> np.ndarray:
        """The user's fused vector: trained, or folded in after feedback (no retraining)."""
        vec = self._user_vectors.get(user_id)
        if vec is not None:
            return vec
        row = self.user_row.get(user_id)
        if row is None and user_id not in self.feedback:
            raise ServeError(f"there is no user with id {user_id!r} (send feedback to "
                             f"create one)", 404)
        if user_id not in self.feedback and row is not None:
            vec = np.asarray(self.model.user_vector_matrix()[row], np.float32)
        else:
            vec = self._fold_in(user_id, row)
        self._user_vectors[user_id] = vec
        return vec

    def _fold_in(self, user_id: str, row: int | None) -> np.ndarray:
        matrix = self._history_row(user_id, row, self.n_items, self.model)
        user_views = None
        if row is not None:
            table = self.artifacts.embeddings.get("users", {})
            user_views = {m: View(v.vectors[row: row + 1], v.present[row: row + 1])
                          for m, v in table.items() if m in self.model.fuser.modalities}
        return np.asarray(self.model.fold_in(matrix, user_views)[0], np.float32)

