"""Recommendations, similar items and search: the read side of :class:`ServingState`.

With a model chosen on validation (``artifacts/served``) recommendations are that model's
exact scores, feedback folded in through ``Recommender.score_history``; otherwise the content
model's fused user vector is searched in the index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.fuse.normalize import l2_normalize
from fuserec.index.filters import AttributeFilter, filter_mask
from fuserec.models.base import NewItems
from fuserec.models.rerank import mmr  # the one MMR implementation (also used by evaluate)
from fuserec.ranking import top_k
from fuserec.serve.limits import ServeError


class Scoring:
    """Mixin of :class:`~fuserec.serve.state.ServingState`: everything that ranks."""

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
            history = self._history_row(user_id, row, n_model)
            new = ranker.score_new_items(history, self.new_items(n_model))
            if new is not None:
                content = np.asarray(new[0], np.float32)
            else:  # no content side: the content model's scores on this model's scale
                vec = self.user_vector(user_id) if user_vec is None else user_vec
                cosines = self.model.score_vectors(vec[None, :])[0]
                content = cosines[n_model:self.n_items]
                mu, sd = float(scores.mean()), float(scores.std()) or 1.0
                # several new items: their own spread; one: the catalog's cosines the scale
                ref = content if self.n_items - n_model > 1 else cosines[:n_model]
                content = mu + sd * (content - ref.mean()) / (float(ref.std()) or 1.0)
            scores = np.concatenate([scores, content.astype(np.float32)])
        self._user_scores[user_id] = scores
        return scores

    def new_items(self, n_model: int) -> NewItems:
        """The items added while serving (positions ``n_model`` on), as the served model's
        content side reads them: raw views per modality (absent rows zero) and texts."""
        views_per_item = self.new_item_views[-(self.n_items - n_model):] \
            if self.n_items > n_model else []
        n = len(views_per_item)
        dims = {m: len(v) for views in views_per_item for m, v in views.items()}
        views = {}
        for m, d in dims.items():
            vectors = np.zeros((n, d), np.float32)
            present = np.zeros(n, bool)
            for i, item in enumerate(views_per_item):
                if m in item and len(item[m]) == d:
                    vectors[i], present[i] = item[m], True
            views[m] = View(vectors, present)
        return NewItems(views, list(self.item_texts[n_model:self.n_items]))

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
                # every pick of one answer reads the same shares: score the members once
                shares = self._member_shares.get(user_id)
                if shares is None:
                    row = self.user_row.get(user_id)
                    shares = members(user_ids=np.array([row])) if row is not None \
                        and user_id not in self.feedback else \
                        members(history=self._history_row(user_id, row, n_model))
                    self._member_shares[user_id] = shares
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
        trained = self.text_model() if text and text.strip() and not files else None
        if trained is not None:
            return self._text_search(trained, text, k, allow)
        query = self.query_vector(text, files)
        p, s = self.index.search(query, k, allow=allow)
        return [{"pos": int(a), "score": float(b)} for a, b in zip(p[0], s[0], strict=True)
                if a >= 0]

    # -- text search through a trained text encoder ------------------------------------------
    def text_model(self) -> Any | None:
        """The served model, or a member of a served blend, whose encoder was trained on the
        interactions and embeds text in its own item space (``encode_texts``), or None."""
        if self.ranker is None:
            return None
        for model in (self.ranker, *getattr(self.ranker, "members", ())):
            if callable(getattr(model, "encode_texts", None)):
                return model
        return None

    def _text_search(self, model: Any, text: str, k: int,
                     allow: np.ndarray | None) -> list[dict[str, Any]]:
        """A text query ranked by the trained encoder: the query's item-space vector against
        the model's item vectors, and against items added while serving (their texts)."""
        if len(text) > self.limits.max_text_chars:
            raise ServeError(f"the query text is {len(text)} characters long; the limit is "
                             f"{self.limits.max_text_chars}", 422)
        query = model.encode_texts([text.strip()])[0]
        items = np.asarray(model.item_vectors(), np.float32)
        scores = items @ query
        if self.n_items > len(items):
            new = model.encode_texts(list(self.new_items(len(items)).texts))
            scores = np.concatenate([scores, new @ query])
        scores = scores[None, :self.n_items].astype(np.float32)
        if allow is not None:
            scores[0, ~np.asarray(allow, bool)[:scores.shape[1]]] = -np.inf
        p, s = top_k(scores, k)
        return [{"pos": int(a), "score": float(b)} for a, b in zip(p[0], s[0], strict=True)
                if a >= 0 and np.isfinite(b)]
