"""What the server holds in memory: the artifacts, the model, the index, feedback and new items.

:class:`ServingState` answers every question the HTTP layer asks, with no HTTP in it, so it can
be used (and benchmarked) in-process. Reads take no lock; writes (feedback, new items) take one
lock and publish new arrays by swapping references, so a read never sees a half-written item.

* Recommendations: the user's fused vector (from the model, or folded in from fresh feedback
  with :meth:`ContentCosine.fold_in`, also for brand-new user ids) is searched in the index with
  the user's seen items excluded and optional attribute filters; ``diversity`` > 0 re-ranks a
  larger candidate set with MMR over item content vectors.
* Search: a text, image or audio query is encoded by the same encoder the artifacts used,
  normalised by the model's fuser into that modality's block of the fused space, and searched.
* New items are validated with the catalog's media checks, encoded, fused and indexed.
* With a ``journal`` file, every write is appended to it before it takes effect and the file is
  replayed on start, so feedback and new items survive a restart
  (:mod:`fuserec.serve.journal`).
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fuserec.artifacts import Artifacts, load_artifacts
from fuserec.data.media import MediaError, check_audio, check_image, resolve_media
from fuserec.data.schema import (
    ATTR_PREFIX,
    AUDIO,
    AUDIO_EXTENSIONS,
    ID,
    IMAGE_EXTENSIONS,
    IMAGES,
    ITEM_ID,
    USER_ID,
    WEIGHT,
    media_paths,
    record_text,
    text_columns,
)
from fuserec.data.validate import ValidationLimits
from fuserec.fuse.base import View
from fuserec.fuse.normalize import l2_normalize
from fuserec.index import DEFAULT_INDEX, VectorIndex, build_index
from fuserec.index.filters import AttributeFilter, filter_mask
from fuserec.models.rerank import mmr  # the one MMR implementation (also used by evaluate)
from fuserec.ranking import top_k
from fuserec.serve.journal import Journal, JournalError

MODALITY_OF_MEDIA = {IMAGES: "image", AUDIO: "audio"}
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
#: feedback of one user is journaled and applied under one of these locks (by a hash of the id)
_USER_LOCK_STRIPES = 64


class ServeError(Exception):
    """A request the state cannot answer; ``status`` is the HTTP status to report."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServeLimits:
    """Bounds on what one request may ask for."""

    max_k: int = 100
    max_request_bytes: int = 25 * 2**20
    max_upload_bytes: int = 10 * 2**20
    max_files_per_item: int = 8
    max_text_chars: int = 2_000
    max_audio_seconds: float = 120.0
    max_image_pixels: int = 40_000_000
    max_feedback_weight: float = 100.0
    #: candidates re-ranked by MMR: max(mmr_pool_factor * k, mmr_pool_min)
    mmr_pool_factor: int = 5
    mmr_pool_min: int = 50

    def media_limits(self) -> ValidationLimits:
        """The catalog validation limits applied to uploads."""
        return ValidationLimits(max_file_bytes=self.max_upload_bytes,
                                max_image_pixels=self.max_image_pixels,
                                max_audio_seconds=self.max_audio_seconds)


def _media_columns(media: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """An item's media as stored: a list of paths for each media column."""
    return {c: list(media.get(c, [])) for c in (IMAGES, AUDIO)}


def modality_of_file(filename: str) -> str | None:
    """``"image"`` or ``"audio"`` from a file name's extension, None if neither."""
    ext = Path(filename or "").suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def check_item_id(item_id: str) -> None:
    """ServeError 422 unless ``item_id`` is a valid item id (1-128 safe characters)."""
    if not _ID_PATTERN.fullmatch(item_id or ""):
        raise ServeError("item ids are 1-128 characters: letters, digits and . _ : @ -", 422)


def check_upload(path: Path, modality: str, limits: ServeLimits) -> None:
    """Run the catalog's image or audio checks on an uploaded file; raise ServeError (422)."""
    checker = check_image if modality == "image" else check_audio
    try:
        checker(path, limits.media_limits())
    except MediaError as exc:
        raise ServeError(f"the uploaded {modality} was rejected: {exc}", 422) from None


class ServingState:
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
        self.limits = limits or ServeLimits()
        self.catalog_root = artifacts.catalog_root
        self._lock = threading.RLock()
        # feedback of one user goes through one stripe (journal order == memory order for that
        # user) while other users' writes share the journal's group commit instead of queueing
        # behind the global lock for every fsync
        self._user_locks = [threading.Lock() for _ in range(_USER_LOCK_STRIPES)]
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

    # -- recommendations -------------------------------------------------------------------
    def check_k(self, k: int) -> int:
        if not 1 <= k <= self.limits.max_k:
            raise ServeError(f"k must lie between 1 and {self.limits.max_k}, got {k}", 422)
        return k

    def allow_mask(self, filters: Sequence[AttributeFilter]) -> np.ndarray | None:
        """Rows passing every attribute filter (None without filters); ServeError if invalid."""
        if not filters:
            return None
        try:
            return filter_mask(self.items, filters)
        except ValueError as exc:
            raise ServeError(str(exc), 422) from None

    def recommend(self, user_id: str, k: int = 10, diversity: float = 0.0,
                  filters: Sequence[AttributeFilter] = (), explain: bool = False,
                  exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-``k`` items for ``user_id``; each result is ``{"pos", "score"[, "explanation"]}``.

        ``diversity`` is MMR's trade-off in [0, 1]: 0 is pure relevance, 1 pure novelty
        relative to the items already picked.
        """
        self.check_k(k)
        if not 0.0 <= diversity <= 1.0:
            raise ServeError(f"diversity must lie between 0 and 1, got {diversity}", 422)
        ranked = self.ranker is not None and (user_id in self.user_row
                                              or user_id in self.feedback)
        # the served model needs no content vector; explanations and new items do (lazily)
        vec = None if ranked else self.user_vector(user_id)
        allow = self.allow_mask(filters)
        exclude = self.seen_positions(user_id) if exclude_seen else None
        if ranked:
            pos, scores = self._rank_with_model(user_id, None, k, diversity, exclude, allow)
        elif not np.any(vec):  # no signal at all: most popular items
            pos, scores = self._popular(k, exclude, allow)
        elif diversity > 0:
            pool = min(self.n_items, max(k * self.limits.mmr_pool_factor, self.limits.mmr_pool_min))
            cand, rel = self.index.search(vec, pool, exclude=exclude, allow=allow)
            pos, scores = mmr(cand[0], rel[0], self.vectors, k, diversity)
        else:
            p, s = self.index.search(vec, k, exclude=exclude, allow=allow)
            pos, scores = p[0], s[0]
        if explain and vec is None:
            vec = self.user_vector(user_id)
        out = []
        for p, s in zip(pos.tolist(), scores.tolist(), strict=True):
            if p < 0:
                continue
            rec: dict[str, Any] = {"pos": p, "score": float(s)}
            if explain:
                rec["explanation"] = self.explain(user_id, vec, p)
            out.append(rec)
        return out

    def user_scores(self, user_id: str, user_vec: np.ndarray | None = None) -> np.ndarray:
        """The served model's score of every item for ``user_id`` (cached until feedback).

        A catalog user without feedback gets the trained scores; feedback (or a new user)
        is folded in by :meth:`Recommender.score_history` from the training history plus the
        feedback. Items added while serving are unknown to the model: they are scored from
        content, the content model's scores placed on the model's scale per user (same
        mean and spread), so a good content match competes with the model's picks.
        """
        cached = self._user_scores.get(user_id)
        if cached is not None and len(cached) == self.n_items:
            return cached
        ranker = self.ranker
        assert ranker is not None
        n_model = int(ranker.interactions.shape[1]) if ranker.interactions is not None \
            else len(ranker.item_vectors())
        row = self.user_row.get(user_id)
        if row is not None and user_id not in self.feedback:
            scores = np.asarray(ranker.score(np.array([row]))[0], np.float32)
        else:
            history = self._history_row(user_id, row, n_model)
            scores = np.asarray(ranker.score_history(history)[0], np.float32)
        if self.n_items > n_model:
            vec = self.user_vector(user_id) if user_vec is None else user_vec
            content = self.model.score_vectors(vec[None, :])[0][n_model:self.n_items]
            mu, sd = float(scores.mean()), float(scores.std()) or 1.0
            c_mu, c_sd = float(content.mean()), float(content.std()) or 1.0
            if self.n_items - n_model > 1:
                content = mu + sd * (content - c_mu) / c_sd
            else:  # one new item: its cosine, on the model's scale from the catalog's cosines
                full = self.model.score_vectors(vec[None, :])[0][:n_model]
                content = mu + sd * (content - full.mean()) / (full.std() or 1.0)
            scores = np.concatenate([scores, content.astype(np.float32)])
        self._user_scores[user_id] = scores
        return scores

    def _history_row(self, user_id: str, row: int | None, n_items: int,
                     model: Any = None) -> sp.csr_matrix:
        """The training history ``model`` (default: the served model) holds for the user, plus
        their feedback, over the first ``n_items`` items, as one row."""
        history: dict[int, float] = {}
        trained = getattr(self.ranker if model is None else model, "interactions", None)
        if row is not None and trained is not None and row < trained.shape[0]:
            r = trained[row]
            history.update(zip(r.indices.tolist(), r.data.tolist(), strict=True))
        for pos, w in self.feedback.get(user_id, {}).items():
            if pos < n_items:
                history[pos] = history.get(pos, 0.0) + w
        cols = np.fromiter(history, dtype=np.int64, count=len(history))
        data = np.fromiter(history.values(), dtype=np.float32, count=len(history))
        return sp.csr_matrix((data, (np.zeros(len(cols), np.int64), cols)), shape=(1, n_items))

    def _rank_with_model(self, user_id: str, vec: np.ndarray | None, k: int, diversity: float,
                         exclude: np.ndarray | None, allow: np.ndarray | None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of the served model's scores, exclusions and filters applied; MMR over
        the content vectors when ``diversity`` > 0."""
        scores = self.user_scores(user_id, vec).copy()
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        if allow is not None:
            scores[~allow[: len(scores)]] = -np.inf
        if diversity > 0:
            pool = min(self.n_items, max(k * self.limits.mmr_pool_factor, self.limits.mmr_pool_min))
            cand, rel = top_k(scores[None, :], pool)
            keep = cand[0] >= 0
            return mmr(cand[0][keep], rel[0][keep], self.vectors, k, diversity)
        pos, val = top_k(scores[None, :], k)
        return pos[0], val[0]

    def _popular(self, k: int, exclude: np.ndarray | None, allow: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.popularity[: self.n_items].astype(np.float32, copy=True)
        if len(scores) < self.n_items:
            scores = np.pad(scores, (0, self.n_items - len(scores)))
        if allow is not None:
            scores[~allow] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        order = order[np.isfinite(scores[order])]
        return order, np.zeros(len(order), np.float32)

    def explain(self, user_id: str, user_vec: np.ndarray, pos: int,
                n_liked: int = 3) -> dict[str, Any]:
        """Why ``pos`` was recommended: each modality's share of the score, the user's liked
        items nearest to it, and its text."""
        contributions = self.model.explain(user_vec, pos)
        extra: dict[str, Any] = {}
        if self.ranker is not None:
            extra["model"] = self.ranker.name
            members = getattr(self.ranker, "member_scores", None)
            n_model = self.ranker.interactions.shape[1] if self.ranker.interactions is not None \
                else self.n_items
            if members is not None and pos < n_model:
                row = self.user_row.get(user_id)
                shares = members(user_ids=np.array([row])) if row is not None \
                    and user_id not in self.feedback else \
                    members(history=self._history_row(user_id, row, n_model))
                extra["members"] = {name: round(float(s[0, pos]), 5)
                                    for name, s in shares.items()}
        liked = self.seen_positions(user_id)
        nearest: list[dict[str, Any]] = []
        if len(liked):
            item = self.vectors[pos]
            sims = l2_normalize(self.vectors[liked]) @ l2_normalize(item[None, :])[0]
            for j in np.argsort(-sims)[:n_liked]:
                lp = int(liked[j])
                nearest.append({"id": self.item_ids[lp], "title": self.title(lp),
                                "similarity": round(float(sims[j]), 4)})
        return {"modalities": {m: round(v, 5) for m, v in contributions.items()},
                "because_you_liked": nearest, "text": self.item_texts[pos], **extra}

    def similar(self, item_id: str, k: int = 10,
                filters: Sequence[AttributeFilter] = ()) -> list[dict[str, Any]]:
        """Items nearest to ``item_id`` in the fused space (itself excluded)."""
        self.check_k(k)
        pos = self.position(item_id)
        allow = self.allow_mask(filters)
        p, s = self.index.search(self.vectors[pos], k, exclude=np.array([pos]), allow=allow)
        return [{"pos": int(a), "score": float(b)} for a, b in zip(p[0], s[0], strict=True)
                if a >= 0]

    # -- search ----------------------------------------------------------------------------
    def encoder(self, modality: str) -> Any:
        """The encoder the artifacts used for ``modality`` (loaded once, on first use)."""
        enc = self._encoders.get(modality)
        if enc is not None:
            return enc
        spec = self.artifacts.manifest.get("encoders", {}).get(modality)
        if spec is None or modality not in self.model.fuser.modalities:
            raise ServeError(f"this catalog has no {modality} view, so {modality} queries "
                             f"cannot be answered", 400)
        with self._encoder_lock:
            if modality not in self._encoders:
                from fuserec.encode import get_encoder

                self._encoders[modality] = get_encoder(spec["name"])
        return self._encoders[modality]

    def query_vector(self, text: str | None = None,
                     files: Sequence[tuple[Path, str]] = ()) -> np.ndarray:
        """A fused query vector: each input lands in its modality's block of the fused space."""
        raw: dict[str, list[np.ndarray]] = {}
        if text is not None and text.strip():
            if len(text) > self.limits.max_text_chars:
                raise ServeError(f"the query text is {len(text)} characters long; the limit is "
                                 f"{self.limits.max_text_chars}", 422)
            raw.setdefault("text", []).append(self._encode("text", [text.strip()]))
        for path, modality in files:
            raw.setdefault(modality, []).append(self._encode(modality, [str(path)]))
        if not raw:
            raise ServeError("give a text query, an image or an audio clip to search with", 422)
        fuser = self.model.fuser
        blocks = {}
        for m, vecs in raw.items():
            mean = np.mean(np.concatenate(vecs, 0), axis=0, keepdims=True)
            blocks[m] = fuser.normalize(m, View(mean.astype(np.float32), np.ones(1, bool)))
        return fuser.combine(blocks)[0]

    def _encode(self, modality: str, inputs: list[str]) -> np.ndarray:
        enc = self.encoder(modality)
        try:
            vec = np.asarray(enc.encode(inputs), dtype=np.float32)
        except Exception as exc:  # encoders raise EncodeError, decoders their own errors
            raise ServeError(f"the {modality} query could not be encoded: {exc}", 422) from None
        expected = self.model.fuser.dims.get(modality)
        if vec.shape != (len(inputs), expected):
            raise ServeError(f"the {modality} encoder returned {vec.shape}, but the artifacts "
                             f"expect dimension {expected}", 500)
        return vec

    def search(self, text: str | None = None, files: Sequence[tuple[Path, str]] = (),
               k: int = 10, filters: Sequence[AttributeFilter] = ()) -> list[dict[str, Any]]:
        """Items nearest to a text / image / audio query."""
        self.check_k(k)
        allow = self.allow_mask(filters)
        query = self.query_vector(text, files)
        p, s = self.index.search(query, k, allow=allow)
        return [{"pos": int(a), "score": float(b)} for a, b in zip(p[0], s[0], strict=True)
                if a >= 0]

    # -- writes ----------------------------------------------------------------------------
    def add_feedback(self, user_id: str, item_id: str, weight: float = 1.0) -> int:
        """Record an interaction; the user's vector is folded in again on next use.

        Works for users unknown to the catalog: they are created from their feedback alone.
        Returns the number of feedback interactions the user now has.
        """
        if not _ID_PATTERN.fullmatch(user_id or ""):
            raise ServeError("user ids are 1-128 characters: letters, digits and . _ : @ -", 422)
        if not (0 < weight <= self.limits.max_feedback_weight):
            raise ServeError(f"weight must lie in (0, {self.limits.max_feedback_weight:g}]", 422)
        pos = self.position(item_id)
        stripe = self._user_locks[zlib.crc32(user_id.encode()) % _USER_LOCK_STRIPES]
        with stripe:  # this user's writes in order; others' are journaled meanwhile (group commit)
            self._record({"event": "feedback", "user": user_id, "item": item_id,
                          "weight": float(weight)})
            with self._lock:  # memory changes only once the journal holds the write
                return self._apply_feedback(user_id, pos, float(weight))

    def _apply_feedback(self, user_id: str, pos: int, weight: float) -> int:
        fb = dict(self.feedback.get(user_id, {}))
        fb[pos] = fb.get(pos, 0.0) + weight
        self.feedback[user_id] = fb
        self._seen_arrays.pop(user_id, None)
        self._user_vectors.pop(user_id, None)
        self._user_scores.pop(user_id, None)
        return len(fb)

    def _record(self, event: Mapping[str, Any]) -> None:
        """Append a write to the journal (if any) before it changes memory."""
        if self.journal is None:
            return
        try:
            self.journal.append(event)
        except OSError as exc:
            raise ServeError(f"the write could not be recorded in the journal: {exc}",
                             503) from None

    def _replay(self) -> dict[str, int]:
        """Apply the journal's writes in order; a bad event stops with its line number.

        New items are inserted in batches (each insert copies the item matrix), flushed before
        any feedback that follows them, so positions come out as they did when served.
        """
        assert self.journal is not None
        counts = {"feedback": 0, "items": 0}
        pending: list[tuple[str, dict[str, Any], dict[str, list[str]], np.ndarray]] = []

        def flush() -> None:
            if pending:
                self._insert_items(*map(list, zip(*pending, strict=True)))
                counts["items"] += len(pending)
                pending.clear()

        for line, event in self.journal.events():
            where = f"{self.journal.path}: line {line}"
            try:
                if event["event"] == "feedback":
                    flush()
                    pos = self.position(str(event["item"]))
                    self._apply_feedback(str(event["user"]), pos, float(event["weight"]))
                    counts["feedback"] += 1
                elif event["event"] == "item":
                    item_id = str(event["id"])
                    if item_id in self.item_pos or any(item_id == p[0] for p in pending):
                        raise JournalError(f"{where}: item {item_id!r} already exists")
                    vector = np.asarray(event["vector"], np.float32)
                    if vector.shape != (self.vectors.shape[1],):
                        raise JournalError(f"{where}: item {item_id!r} has a vector of shape "
                                           f"{vector.shape}, this model's are "
                                           f"{self.vectors.shape[1]}-d (other artifacts?)")
                    pending.append((item_id, dict(event["row"]), _media_columns(event["media"]),
                                    vector))
                else:
                    raise JournalError(f"{where}: unknown event {event['event']!r}")
            except JournalError:
                raise
            except ServeError as exc:
                raise JournalError(f"{where}: {exc}") from None
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise JournalError(f"{where}: malformed {event.get('event')!r} event "
                                   f"({type(exc).__name__}: {exc})") from None
        flush()
        return counts

    @contextmanager
    def reserve_item(self, item_id: str) -> Iterator[None]:
        """Hold ``item_id`` for one add, before anything (e.g. an upload) is written for it.

        ServeError 422 for an invalid id, 409 when an item with that id exists or another add
        holds it. The reservation ends with the block (by then the item exists if it was added).
        """
        check_item_id(item_id)
        with self._lock:
            if item_id in self.item_pos:
                raise ServeError(f"an item with id {item_id!r} already exists", 409)
            if item_id in self._pending_items:
                raise ServeError(f"an item with id {item_id!r} is being added by another "
                                 f"request", 409)
            self._pending_items.add(item_id)
        try:
            yield
        finally:
            with self._lock:
                self._pending_items.discard(item_id)

    def add_item(self, item_id: str, fields: Mapping[str, Any],
                 media: Mapping[str, Sequence[str]], *, reserved: bool = False) -> int:
        """Encode, fuse and index a new item whose media files already lie under the catalog
        root (``media``: column -> relative paths, already checked). Returns its position.

        ``reserved``: the caller holds :meth:`reserve_item` for ``item_id`` (e.g. while it
        stored the uploads); otherwise the id is reserved here for the duration of the add.

        The describe stage (media -> text) does not exist yet; once it does, new items should
        also get their generated description here before encoding.
        """
        if not reserved:
            with self.reserve_item(item_id):
                return self.add_item(item_id, fields, media, reserved=True)
        check_item_id(item_id)
        row = self._new_row(item_id, fields, media)
        vector = self._encode_item(pd.DataFrame([row]))
        media = _media_columns(media)
        with self._lock:
            if item_id in self.item_pos:
                raise ServeError(f"an item with id {item_id!r} already exists", 409)
            self._record({"event": "item", "id": item_id, "row": row, "media": media,
                          "vector": [float(x) for x in vector]})
            return self._insert_items([item_id], [row], [media], [vector])

    def _insert_items(self, item_ids: list[str], rows: list[dict[str, Any]],
                      media: list[dict[str, list[str]]], vectors: list[np.ndarray]) -> int:
        """Append items to the model, index and tables at once; returns the first position."""
        first = self.n_items
        block = np.stack(vectors).astype(np.float32)
        # the model scores and folds in over its own item matrix: it gets the new items too
        self.model.add_items(block)
        self.vectors = np.ascontiguousarray(self.model.item_vectors(), dtype=np.float32)
        self.popularity = np.asarray(self.model.item_popularity(), np.float32)
        self.items = pd.concat([self.items, pd.DataFrame(rows)], ignore_index=True)
        self.item_texts = [*self.item_texts, *(record_text(pd.Series(r), self.text_columns)
                                               for r in rows)]
        self.item_media = [*self.item_media, *media]
        self.media_paths |= {p for m in media for paths in m.values() for p in paths}
        self.index.add(block)
        self.item_ids = [*self.item_ids, *item_ids]
        self.item_pos = {**self.item_pos,
                         **{i: first + n for n, i in enumerate(item_ids)}}
        self._user_vectors = {u: v for u, v in self._user_vectors.items()
                              if u not in self.feedback}
        self._user_scores = {}  # every user's scores gain the new items
        return first

    def _new_row(self, item_id: str, fields: Mapping[str, Any],
                 media: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        allowed = set(self.text_columns) | set(self.attribute_columns)
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ServeError(f"unknown fields {unknown}; this catalog's items have text fields "
                             f"{self.text_columns} and attributes {self.attribute_columns}", 422)
        row: dict[str, Any] = {ID: item_id}
        for col in self.items.columns:
            if col in (ID, IMAGES, AUDIO):
                continue
            value = fields.get(col)
            if col in self.text_columns:
                value = "" if value is None else str(value)
                if len(value) > self.limits.max_text_chars * 10:
                    raise ServeError(f"field {col!r} is too long", 422)
            elif value is not None and pd.api.types.is_numeric_dtype(self.items[col]):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ServeError(f"attribute {col!r} must be a number, got {value!r}",
                                     422) from None
            elif value is not None:
                value = str(value)  # keep the column's type (the catalog stores strings)
                if len(value) > self.limits.max_text_chars:
                    raise ServeError(f"attribute {col!r} is too long", 422)
            row[col] = value
        row[IMAGES] = list(media.get(IMAGES, []))
        row[AUDIO] = list(media.get(AUDIO, []))
        if not any(row.get(c) for c in self.text_columns) and not row[IMAGES] and not row[AUDIO]:
            raise ServeError("a new item needs at least some text, an image or an audio clip",
                             422)
        return row

    def _encode_item(self, frame: pd.DataFrame) -> np.ndarray:
        from fuserec.encode import encode_records

        fuser = self.model.fuser
        blocks = {}
        for m in fuser.modalities:
            if m not in self.modalities:  # a precomputed view (no encoder): a zero block
                continue
            view = encode_records(frame, self.catalog_root, m, self.encoder(m), None,
                                  progress=False, text_columns=self.text_columns)
            if view.errors:
                raise ServeError(f"the new item's {m} could not be encoded: {view.errors[0][1]}",
                                 422)
            blocks[m] = fuser.normalize(m, View(view.vectors, view.present))
        return fuser.combine(blocks)[0]

    # -- media -----------------------------------------------------------------------------
    def media_file(self, relative: str) -> Path:
        """The file behind a media path that belongs to an item or user; ServeError 404 else."""
        if relative not in self.media_paths:
            raise ServeError("no item or user in this catalog has that media file", 404)
        try:
            return resolve_media(self.catalog_root, relative)
        except MediaError as exc:
            raise ServeError(f"media file unavailable: {exc}", 404) from None

    # -- presentation ----------------------------------------------------------------------
    def title(self, pos: int) -> str:
        row = self.items.iloc[pos]
        for col in ("title", "name", *self.text_columns):
            value = row.get(col) if col in self.items.columns else None
            if isinstance(value, str) and value.strip():
                return value.strip()
        return self.item_ids[pos]

    def item_record(self, pos: int) -> dict[str, Any]:
        """An item as plain data: id, title, text, fields, attributes and media paths."""
        row = self.items.iloc[pos]
        media = self.item_media[pos]
        return {
            "id": self.item_ids[pos], "title": self.title(pos), "text": self.item_texts[pos],
            "fields": {c: _plain(row.get(c)) for c in self.text_columns},
            "attributes": {c[len(ATTR_PREFIX):]: _plain(row.get(c))
                           for c in self.attribute_columns},
            "images": media[IMAGES], "audio": media[AUDIO],
        }

    def user_record(self, user_id: str) -> dict[str, Any]:
        row = self.user_row.get(user_id)
        media = self.user_media[row] if row is not None else {IMAGES: [], AUDIO: []}
        seen = self.seen_positions(user_id) if self.has_user(user_id) else np.empty(0, np.int64)
        return {"id": user_id, "text": self.user_texts[row] if row is not None else "",
                "images": media[IMAGES], "audio": media[AUDIO],
                "n_interactions": int(len(seen)),
                "n_feedback": len(self.feedback.get(user_id, {})),
                "in_catalog": row is not None}


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value
