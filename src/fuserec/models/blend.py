"""A blend of recommenders: per-user standardised scores, mixed with validation-chosen weights.

Models that learn from different evidence make different mistakes: a graph model trained on
interactions and a closed-form model that also reads content agree on the obvious items and
each adds items the other misses. Scores live on unrelated scales, so each member's scores are
standardised per user (z-scores over the catalog) before the weighted sum. With a validation
split and no fixed ``weights`` the weights are chosen on it (Recall@``select_k`` over a grid on
the simplex); without one the members count equally.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fuserec.fuse.base import View
from fuserec.fuse.normalize import l2_normalize
from fuserec.models.base import MODELS, NewItems, Recommender, fit_with
from fuserec.ranking import user_metrics

DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"model": "lightgcn"}, {"model": "fusegraph"}, {"model": "mmease"})


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores (rows with no spread become zero)."""
    scores = np.asarray(scores, np.float32)
    centred = scores - scores.mean(1, keepdims=True)
    return centred / np.maximum(scores.std(1, keepdims=True), 1e-12)


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """Weight vectors of ``n`` members on a grid of ``step`` that sum to one."""
    ticks = int(round(1 / step))
    return [tuple(c / ticks for c in combo)
            for combo in itertools.product(range(ticks + 1), repeat=n) if sum(combo) == ticks]


@MODELS.register("blend")
class Blend(Recommender):
    """Weighted sum of standardised member scores; members given as ``{"model", "params"}``."""

    name = "blend"
    needs_content = True  # the default members include mmease

    def __init__(self, members: Sequence[Mapping[str, Any]] = DEFAULT_MEMBERS,
                 weights: Sequence[float] | None = None, select_k: int = 20,
                 grid_step: float = 0.1, seed: int | None = None,
                 cold_side: Mapping[str, Any] | None = None) -> None:
        if not members:
            raise ValueError("a blend needs at least one member")
        if weights is not None and (len(weights) != len(members) or min(weights) < 0
                                    or sum(weights) <= 0):
            raise ValueError(f"weights must be {len(members)} non-negative numbers, not all "
                             f"zero: {weights}")
        self.specs = [{"model": m["model"], "params": dict(m.get("params", {}))}
                      for m in members]
        for spec in self.specs:
            MODELS.get(spec["model"])  # unknown names fail here, before any training
        # this blend needs content only if one of its members does
        self.needs_content = any(MODELS.get(s["model"]).needs_content for s in self.specs)
        self.weights = list(weights) if weights is not None else None
        self.select_k, self.grid_step, self.seed = select_k, grid_step, seed
        self.members: list[Recommender] = []
        self.validation_recall: dict[str, float] = {}
        self._interactions: sp.csr_matrix | None = None
        #: the model that ranks items without training interactions (cold items, items added
        #: after fit) for every member; None: the content-aware members' mean
        self.cold_side = ({"model": cold_side["model"],
                           "params": dict(cold_side.get("params", {}))} if cold_side else None)
        self.cold_model: Recommender | None = None

    @property
    def interactions(self) -> sp.csr_matrix | None:  # type: ignore[override]
        return self._interactions

    @interactions.setter
    def interactions(self, matrix: sp.csr_matrix | None) -> None:
        # members read their history from it (EASE-style models score x_u B), so it travels
        self._interactions = matrix
        for member in [*self.members, *([self.cold_model] if self.cold_model else [])]:
            member.interactions = matrix

    def _create(self, spec: Mapping[str, Any]) -> Recommender:
        cls = MODELS.get(spec["model"])
        params = dict(spec["params"])
        if self.seed is not None and "seed" in cls.options():
            params.setdefault("seed", self.seed)
        return cls(**params)

    @classmethod
    def of_fitted(cls, members: Sequence[Recommender], params: Sequence[Mapping[str, Any]],
                  **options: Any) -> Blend:
        """A blend of models already fitted on the same training split: :meth:`fit` then only
        chooses the weights on validation (no member is trained twice)."""
        blend = cls([{"model": m.name, "params": dict(p)} for m, p in
                     zip(members, params, strict=True)], **options)
        blend.members = list(members)
        blend._prefitted = True
        return blend

    def use_cold_model(self, model: Recommender, params: Mapping[str, Any]) -> None:
        """Rank items without training interactions by ``model`` (already fitted on the same
        training split), e.g. the content model that did best on validation cold items."""
        self.cold_side = {"model": model.name, "params": dict(params)}
        self.cold_model = model

    _prefitted = False

    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None,
            validation: sp.csr_matrix | None = None, item_texts: Sequence[str] | None = None,
            user_texts: Sequence[str] | None = None) -> Blend:
        interactions = interactions.tocsr()
        if not self._prefitted:
            self.members = []
            for spec in self.specs:
                self.members.append(fit_with(self._create(spec), interactions, item_features,
                                             user_features, validation, item_texts,
                                             user_texts))
        if self.cold_side is not None and self.cold_model is None:
            self.cold_model = fit_with(self._create(self.cold_side), interactions,
                                       item_features, user_features, validation, item_texts,
                                       user_texts)
        self.interactions = interactions.astype(np.float32)
        if self.weights is None:
            self.weights = (self._choose_weights(validation) if validation is not None
                            and validation.nnz and len(self.members) > 1
                            else [1.0 / len(self.members)] * len(self.members))
        return self

    def _choose_weights(self, validation: sp.csr_matrix) -> list[float]:
        validation = validation.tocsr()
        users = np.flatnonzero(np.diff(validation.indptr) > 0)
        parts = [standardise(m.score(users)) for m in self.members]
        grid = simplex_grid(len(parts), self.grid_step)
        k = self.select_k
        # every grid point ranks every validation user once; halves and the full set then
        # average the same per-user values
        per_point = []
        for w in grid:
            mixed = sum(wi * p for wi, p in zip(w, parts, strict=True))
            per_point.append(user_metrics(lambda b, m=mixed: m[np.searchsorted(users, b)],
                                          validation, (k,), self.interactions))

        def best_on(rows: np.ndarray, record: bool = False) -> int:
            recalls = [float(p[f"recall@{k}"][rows].mean()) for p in per_point]
            if record:
                self.validation_recall = {",".join(f"{x:.2f}" for x in w): round(r, 5)
                                          for w, r in zip(grid, recalls, strict=True)}
            best = 0
            for i, r in enumerate(recalls):  # the first of equals: ties keep the simpler mix
                if r > recalls[best] + 1e-9:
                    best = i
            return best

        # weights chosen on validation make the blend look better there than it is; so the
        # score it reports for model selection is cross-fitted: weights chosen on one half of
        # the validation users, measured on the other half, and the other way round
        halves = [np.arange(i, len(users), 2) for i in (0, 1)]
        if all(len(h) for h in halves):
            sums: dict[str, float] = {}
            for fit_half, eval_half in ((0, 1), (1, 0)):
                chosen = per_point[best_on(halves[fit_half])]
                for key in (f"recall@{k}", f"ndcg@{k}"):
                    sums[key] = sums.get(key, 0.0) + float(chosen[key][halves[eval_half]].sum())
            self.cross_fitted = {key: round(v / len(users), 6) for key, v in sums.items()}
        return list(grid[best_on(np.arange(len(users)), record=True)])

    #: validation Recall/NDCG at ``select_k`` with weights chosen on the other half of the
    #: validation users (an honest score to compare the blend with single models)
    cross_fitted: dict[str, float] | None = None

    def member_weights(self) -> dict[str, float]:
        """Each member's weight by name (``name#2`` and on for repeated models)."""
        names = [spec["model"] for spec in self.specs]
        seen: dict[str, int] = {}
        keys = []
        for name in names:
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
        return dict(zip(keys, self.weights or [], strict=False))

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        return self._mix([m.score(users) if w else None
                          for w, m in zip(self.weights, self.members, strict=True)],
                         lambda m: m.score(users))

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._mix([m.score_history(history) if w else None
                          for w, m in zip(self.weights, self.members, strict=True)],
                         lambda m: m.score_history(history))

    def score_new_items(self, history: sp.csr_matrix, items: NewItems) -> np.ndarray | None:
        """New items through each member's content side, on the blend's scale: every member's
        new-item scores are z-scored with the per-user mean and spread of its scores on the
        fitted items; members without a content side take the mean of the others' z-scores
        (as on cold items). None when no member has a content side."""
        if self.cold_model is not None:
            z = _new_item_z(self.cold_model, history, items)
            return None if z is None else np.float32(sum(self.weights)) * z
        zs: list[np.ndarray | None] = []
        for w, m in zip(self.weights, self.members, strict=True):
            zs.append(_new_item_z(m, history, items) if w else None)
        known = [z for z in zs if z is not None]
        if not known:
            return None
        fill = np.mean(known, axis=0)
        return sum(np.float32(w) * (fill if z is None else z)
                   for w, z in zip(self.weights, zs, strict=True) if w)

    def member_scores(self, user_ids: np.ndarray | None = None,
                      history: sp.csr_matrix | None = None) -> dict[str, np.ndarray]:
        """Each member's weighted, standardised share of the blend's scores, by name: of
        :meth:`score` for ``user_ids``, else of :meth:`score_history` for ``history``. The
        shares add up to the blend's score."""
        def one(m: Recommender) -> np.ndarray:
            return m.score(np.atleast_1d(user_ids)) if user_ids is not None \
                else m.score_history(history)

        parts = self._standardised([one(m) for m in self.members], one)
        return {name: np.float32(w) * part for (name, w), part in
                zip(self.member_weights().items(), parts, strict=True)}

    def _mix(self, parts: list[np.ndarray | None],
             score: Callable[[Recommender], np.ndarray]) -> np.ndarray:
        total: np.ndarray | None = None
        for w, part in zip(self.weights, self._standardised(parts, score), strict=True):
            if w and part is not None:
                part = np.float32(w) * part
                total = part if total is None else total + part
        assert total is not None  # weights are non-negative and not all zero
        return total

    def _standardised(self, parts: list[np.ndarray | None],
                      score: Callable[[Recommender], np.ndarray]
                      ) -> list[np.ndarray | None]:
        """Members' per-user z-scores. On items without training interactions (cold items),
        members that cannot see content have nothing to say: there every member takes the
        cold model's z-scores (:attr:`cold_model`, scored by ``score``), or without one the
        content-aware members keep theirs and the others take their mean, so cold items are
        ranked by the blend's content side instead of being pulled to the middle."""
        std = [standardise(p) if p is not None else None for p in parts]
        cold = self._cold_items()
        if self.cold_model is not None and cold is not None and cold.any():
            fill = standardise(score(self.cold_model))[:, cold]
            for s in std:
                if s is not None:
                    s[:, cold] = fill
            return std
        content = [s for s, m in zip(std, self.members, strict=True)
                   if s is not None and _reads_content(m)]
        if cold is None or not cold.any() or not content or len(content) == len(
                [s for s in std if s is not None]):
            return std
        fill = np.mean([s[:, cold] for s in content], axis=0)
        for s, m in zip(std, self.members, strict=True):
            if s is not None and not _reads_content(m):
                s[:, cold] = fill
        return std

    def _cold_items(self) -> np.ndarray | None:
        matrix = self.interactions
        if matrix is None:
            return None
        if getattr(self, "_cold_for", None) is not matrix:
            self._cold = np.asarray(matrix.sum(0)).ravel() == 0
            self._cold_for = matrix
        return self._cold

    def item_vectors(self) -> np.ndarray:
        """Members' unit item vectors side by side, each scaled by the root of its weight."""
        return np.concatenate([np.sqrt(w) * l2_normalize(np.asarray(m.item_vectors(), np.float32))
                               for w, m in zip(self.weights, self.members, strict=True)], axis=1)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        members = []
        for i, member in enumerate(self.members):
            member_arrays, member_config = member.state()
            arrays.update({f"{i}.{key}": value for key, value in member_arrays.items()})
            members.append({"model": member.name, "config": member_config})
        config = {"specs": self.specs, "weights": self.weights, "members": members,
                  "select_k": self.select_k, "grid_step": self.grid_step,
                  "seed": self.seed, "validation_recall": self.validation_recall}
        if self.cold_model is not None:
            cold_arrays, cold_config = self.cold_model.state()
            arrays.update({f"cold.{key}": value for key, value in cold_arrays.items()})
            config["cold_side"] = self.cold_side
            config["cold_model"] = {"model": self.cold_model.name, "config": cold_config}
        return arrays, config

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> Blend:
        model = cls(config["specs"], config["weights"], config["select_k"], config["grid_step"],
                    config["seed"], config.get("cold_side"))
        model.validation_recall = dict(config.get("validation_recall", {}))
        for i, member in enumerate(config["members"]):
            prefix = f"{i}."
            sub = {key[len(prefix):]: value for key, value in arrays.items()
                   if key.startswith(prefix)}
            model.members.append(MODELS.get(member["model"]).from_state(sub, member["config"]))
        if "cold_model" in config:
            sub = {key[len("cold."):]: value for key, value in arrays.items()
                   if key.startswith("cold.")}
            model.cold_model = MODELS.get(config["cold_model"]["model"]).from_state(
                sub, config["cold_model"]["config"])
        return model


def _reads_content(model: Recommender) -> bool:
    """Whether a member scores items from their content (views or texts): those have
    something to say about items without training interactions."""
    return model.needs_content or model.needs_text


def _new_item_z(model: Recommender, history: sp.csr_matrix, items: NewItems
                ) -> np.ndarray | None:
    """``model``'s new-item scores as z-scores against its per-user scores on fitted items."""
    new = model.score_new_items(history, items)
    if new is None:
        return None
    warm = np.asarray(model.score_history(history), np.float64)
    mu, sd = warm.mean(1, keepdims=True), warm.std(1, keepdims=True)
    return ((new - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
