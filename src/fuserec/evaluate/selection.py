"""Model selection: train every candidate on train, choose on validation, report on test.

One path for a catalog run (``fuserec run``) and a benchmark (``fuserec evaluate``): each
candidate goes through :func:`fuserec.evaluate.experiment.run_model`, which trains on
``dataset.train`` (validation for early stopping where the model takes it) and scores both
the validation split (train excluded) and the test split (train + validation excluded).
Hyperparameters come from a small grid searched on validation (:data:`SEARCH`), never from
the test split; the chosen model is the best on validation by one metric.

A candidate that cannot run on the dataset is skipped with its reason, never silently.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuserec.data.adapters.base import Dataset
from fuserec.evaluate.experiment import run_model, test_metrics
from fuserec.models.base import MODELS, Recommender, content_models
from fuserec.models.blend import Blend

#: what ``--model auto`` trains, in report order: the seed's formula, the collaborative
#: baselines, the learned content-aware models, and the blend of the strongest families
AUTO_CANDIDATES: tuple[str, ...] = (
    "content-cosine", "popularity", "item-knn", "ease", "mmease", "als", "bpr-mf",
    "lightgcn", "vbpr", "fusion", "fusegraph", "textfusion", "blend")

#: small grids searched on validation for models whose best setting depends on the data
#: (regularisation grows with the catalog; neighbourhood size with its density)
SEARCH: dict[str, dict[str, Sequence[Any]]] = {
    "ease": {"l2": (10.0, 100.0, 500.0, 2000.0)},
    "mmease": {"l2": (10.0, 100.0, 500.0, 2000.0)},
    "item-knn": {"neighbors": (20, 100, 400)},
    "als": {"factors": (32, 64), "regularization": (1.0, 10.0, 100.0)},
}
#: a learned model is not started with fewer seconds than this left of the training budget
MIN_TRAIN_SECONDS = 5.0
#: how many of the strongest candidates ``fuserec run``'s blend combines
BLEND_SIZE = 3
#: the blend's weight grid: steps of 0.2 over three members are 21 mixes to rank
BLEND_GRID_STEP = 0.2
#: models that learn from interactions need at least this many training interactions
MIN_TRAIN_INTERACTIONS = 20


@dataclass
class Candidate:
    """One candidate's outcome: its validation and test metrics, or why it was skipped."""

    name: str
    validation: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    skipped: str | None = None
    #: the blend's member weights, chosen on validation
    weights: dict[str, float] | None = None
    #: every grid point tried: ``{"l2=100.0": validation metric}``
    searched: dict[str, float] = field(default_factory=dict)
    model: Recommender | None = field(default=None, repr=False)
    #: everything :func:`run_model` returned for the chosen setting (epochs, checkpoint, ...)
    result: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"validation": self.validation, "test": self.test,
                               "params": self.params, "train_seconds": self.train_seconds}
        if self.skipped:
            out = {"skipped": self.skipped}
        if self.weights:
            out["weights"] = self.weights
        if self.searched:
            out["searched"] = self.searched
        if self.result.get("stopped_by_budget"):
            out["stopped_by_budget"] = True
        if "validation_in_sample" in self.result:
            out["validation_in_sample"] = self.result["validation_in_sample"]
        return out


@dataclass
class Selection:
    """Every candidate, and the one chosen on validation by ``metric``."""

    candidates: list[Candidate]
    metric: str

    @property
    def ran(self) -> list[Candidate]:
        return [c for c in self.candidates if c.skipped is None]

    @property
    def chosen(self) -> Candidate:
        ran = self.ran
        if not ran:
            raise ValueError("no candidate model could run on this dataset")
        if not any(c.validation for c in ran):
            raise ValueError("no validation interactions to select a model on")
        return max(ran, key=lambda c: c.validation.get(self.metric, float("-inf")))

    def get(self, name: str) -> Candidate | None:
        return next((c for c in self.candidates if c.name == name), None)

    def served_json(self) -> dict[str, Any]:
        """What ``results.json`` records under ``served``: name, params, members, weights."""
        best = self.chosen
        out: dict[str, Any] = {"name": best.name, "params": best.params,
                               "selected_by": f"validation {self.metric}",
                               "validation": best.validation, "test": best.test}
        if best.weights:
            out["members"] = list(best.weights)
            out["weights"] = best.weights
        return out

    def to_json(self) -> dict[str, Any]:
        return {c.name: c.to_json() for c in self.candidates}

    def table(self, k: int):
        """A Rich table: every candidate's validation and test scores, the chosen one bold."""
        from rich.table import Table

        table = Table(title=f"Models: chosen on validation {self.metric}, reported on test")
        for col in ("model", f"val NDCG@{k}", f"test Recall@{k}", f"test NDCG@{k}", "train s"):
            table.add_column(col, justify="left" if col == "model" else "right")
        chosen = self.chosen.name if self.ran else None
        for c in self.candidates:
            if c.skipped:
                table.add_row(c.name, "-", "-", "-", "-", style="dim")
                continue
            table.add_row(c.name + (" (served)" if c.name == chosen else ""),
                          f"{c.validation.get(f'ndcg@{k}', float('nan')):.4f}",
                          f"{c.test[f'recall@{k}']:.4f}",
                          f"{c.test[f'ndcg@{k}']:.4f}", f"{c.train_seconds:.1f}",
                          style="bold green" if c.name == chosen else None)
        return table

    def report_section(self, k: int) -> str:
        """The Markdown section of ``report.md``."""
        lines = ["", "## Models", "",
                 f"Every candidate trained on the train split, chosen on validation "
                 f"{self.metric}, scored on test (train and validation items excluded).", "",
                 f"| model | validation NDCG@{k} | test Recall@{k} | test NDCG@{k} | train s |",
                 "|---|---:|---:|---:|---:|"]
        chosen = self.chosen.name if self.ran else None
        for c in self.candidates:
            if c.skipped:
                lines.append(f"| {c.name} | skipped: {c.skipped} | | | |")
                continue
            name = f"**{c.name}** (served)" if c.name == chosen else c.name
            lines.append(f"| {name} | {c.validation.get(f'ndcg@{k}', float('nan')):.4f} | "
                         f"{c.test[f'recall@{k}']:.4f} | {c.test[f'ndcg@{k}']:.4f} | "
                         f"{c.train_seconds:.1f} |")
        if chosen and self.chosen.weights:
            weights = ", ".join(f"{m} {w:.2f}" for m, w in self.chosen.weights.items())
            lines += ["", f"The blend's weights, chosen on validation: {weights}."]
        return "\n".join(lines) + "\n"


def skip_reason(name: str, dataset: Dataset) -> str | None:
    """Why ``name`` cannot run on ``dataset`` (None when it can)."""
    if name not in MODELS:
        return f"unknown model; known: {', '.join(MODELS.names())}"
    # the blend combines whichever candidates ran (content-aware or not)
    if name != "blend" and name in content_models() and not dataset.item_features:
        return "needs item content (text, image or audio views); this dataset has none"
    if MODELS.get(name).needs_text and not any(
            isinstance(t, str) and t.strip() for t in dataset.item_texts or ()):
        return "needs item texts; this dataset has none"
    if name not in ("popularity", "content-cosine") and \
            dataset.train.nnz < MIN_TRAIN_INTERACTIONS:
        return (f"only {dataset.train.nnz} training interactions "
                f"(learning needs at least {MIN_TRAIN_INTERACTIONS})")
    return None


def _grid(name: str) -> list[dict[str, Any]]:
    grid = SEARCH.get(name)
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in
            itertools.product(*(grid[k] for k in keys))]


def select_models(dataset: Dataset, names: Sequence[str] = AUTO_CANDIDATES,
                  ks: Sequence[int] = (10, 20), metric: str | None = None,
                  params: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
                  progress: bool = False, log: Callable[[str], None] = print,
                  search: bool = True, save_dir: str | Path | None = None,
                  model_seconds: float | None = None,
                  train_budget: float | None = None) -> Selection:
    """Train each candidate (a small grid on validation where :data:`SEARCH` has one), score
    validation and test, and return the :class:`Selection` (best on validation ``metric``,
    default NDCG at the first cut-off).

    ``search=False`` trains each model once with its recorded settings (``fuserec evaluate``
    on a benchmark whose validation search is recorded in ``TUNED``); the blend then keeps
    its recorded members instead of the candidates chosen here. ``save_dir`` saves each
    chosen model under ``save_dir/<name>``. ``model_seconds`` bounds each learned model's
    training time (it keeps its best epoch on validation so far; reported as ``budget``).
    ``train_budget`` bounds the learned (gradient-trained) models' time together: each gets
    an equal share of what is left when it starts, the closed-form models none of it."""
    import time

    metric = metric or f"ndcg@{ks[0]}"
    candidates: list[Candidate] = []
    learned = [n for n in names if n in MODELS and "max_seconds" in MODELS.get(n).options()]
    budget_left = train_budget
    for name in names:
        reason = skip_reason(name, dataset)
        seconds = model_seconds
        if reason is None and name in learned and budget_left is not None:
            share = budget_left / (len(learned) - learned.index(name))
            seconds = share if seconds is None else min(seconds, share)
            if share < MIN_TRAIN_SECONDS:
                reason = (f"the run's training budget ({train_budget:g} s for the learned "
                          f"models) is spent; raise --train-budget to train it")
        if reason:
            log(f"{name}: skipped ({reason})")
            candidates.append(Candidate(name, skipped=reason))
            continue
        best: dict[str, Any] | None = None
        searched: dict[str, float] = {}
        prebuilt: Recommender | None = None
        if search and name == "blend" and "blend" not in (params or {}):
            # the strongest candidates on validation so far, as they were fitted and with the
            # settings chosen for them there (a fixed member list would carry weak members on
            # some catalogs); the blend only chooses its weights
            ranked = sorted((c for c in candidates if not c.skipped and c.validation
                             and c.model is not None and c.name not in ("popularity", "blend")),
                            key=lambda c: -c.validation[metric])[:BLEND_SIZE]
            if len(ranked) < 2:
                reason = "fewer than two of its members could run"
                log(f"{name}: skipped ({reason})")
                candidates.append(Candidate(name, skipped=reason))
                continue
            select_k = int(metric.split("@")[1])
            prebuilt = Blend.of_fitted([c.model for c in ranked], [c.params for c in ranked],
                                       select_k=select_k, seed=seed, grid_step=BLEND_GRID_STEP)
            blend_params: dict[str, Any] = {
                "members": [{"model": c.name, "params": c.params} for c in ranked],
                "select_k": select_k, "grid_step": BLEND_GRID_STEP}
            side, cold_scores = choose_cold_side(dataset, candidates, ks, seed)
            if side is not None:
                prebuilt.use_cold_model(side.model, side.params)
                blend_params["cold_side"] = {"model": side.name, "params": side.params,
                                             "validation_cold_recall": cold_scores}
                log(f"blend: items without interactions ranked by {side.name} (validation "
                    f"cold items: " + ", ".join(f"{n} {v:.4f}" for n, v in cold_scores.items())
                    + f" Recall@{ks[0]})")
            params = {**(params or {}), "blend": blend_params}
        points = _grid(name) if search else [{}]
        for point in points:
            overrides = {**point, **dict((params or {}).get(name, {}))}
            options = MODELS.get(name).options()
            if "seed" in options:
                overrides.setdefault("seed", seed)
            if "max_seconds" in options and seconds is not None:
                overrides.setdefault("max_seconds", seconds)
            started = time.perf_counter()
            result = None
            try:
                result = run_model(dataset, name, ks, overrides, progress=progress,
                                   model=prebuilt, score_test=len(points) == 1)
                if dataset.validation is None or "validation" not in result:
                    result["validation"] = {}
            except (ValueError, RuntimeError, MemoryError) as exc:
                reason = f"failed: {type(exc).__name__}: {exc}"
                log(f"{name}: {reason}")
                best = None
                break
            finally:
                if name in learned and budget_left is not None:
                    # training time (early-stopping checks included), not the test scoring
                    spent = result["train_seconds"] if result else \
                        time.perf_counter() - started
                    budget_left = max(0.0, budget_left - spent)
            if point:
                label = ",".join(f"{k}={v}" for k, v in point.items())
                searched[label] = round(result["validation"][metric], 5)
            if best is None or result["validation"].get(metric, 0.0) > \
                    best["validation"].get(metric, 0.0):
                best = result
        if best is None:
            candidates.append(Candidate(name, skipped=reason or "failed"))
            continue
        model = best.pop("_model")
        if len(points) > 1:  # only the setting chosen on validation meets the test split
            scored = test_metrics(model, dataset, ks, progress)
            best["users"] = scored.pop("users")
            best["metrics"] = scored
        if getattr(model, "stopped_by_budget", False):
            log(f"{name}: training stopped at its {seconds:.0f} s budget "
                f"(best epoch {getattr(model, 'best_epoch', '?')})")
            best["stopped_by_budget"] = True
        honest = getattr(model, "cross_fitted", None)
        if honest and metric in honest:
            # a blend's weights were chosen on validation: compare it by its cross-fitted
            # score, and keep the in-sample one on record
            best["validation_in_sample"] = dict(best["validation"])
            best["validation"] = {**best["validation"], **honest}
        if save_dir is not None:
            best["checkpoint"] = str(model.save(Path(save_dir) / name))
        cand = Candidate(name, validation=best["validation"], test=best["metrics"],
                         params={k: v for k, v in best["params"].items() if k != "progress"},
                         train_seconds=best["train_seconds"], weights=best.get("weights"),
                         searched=searched, model=model, result=best)
        log(f"{name}: validation {metric} {cand.validation[metric]:.4f}, test "
            f"{cand.test[metric]:.4f} ({cand.train_seconds:.1f} s)")
        candidates.append(cand)
    return Selection(candidates, metric)


#: closed-form content models tried as the blend's cold side (cheap to refit without items)
COLD_SIDE_CANDIDATES = ("content-cosine", "mmease")


def choose_cold_side(dataset: Dataset, candidates: Sequence[Candidate],
                     ks: Sequence[int] = (10, 20), seed: int = 0,
                     fraction: float = 0.1) -> tuple[Candidate | None, dict[str, float]]:
    """Which fitted content model should rank items without interactions, measured on
    validation only: a ``fraction`` of the items is held out of training entirely, each
    candidate refitted without them (same settings) ranks them among themselves for the
    users whose train or validation rows hold them. Returns the winner (its full-data fit)
    and every candidate's Recall@k; no winner without content or validation."""
    from fuserec.data.adapters.base import cold_start_split

    pool = [c for c in candidates if c.name in COLD_SIDE_CANDIDATES and c.model is not None
            and not c.skipped]
    if not pool or not dataset.item_features or dataset.validation is None \
            or not dataset.validation.nnz:
        return None, {}
    from dataclasses import replace

    as_test = replace(dataset, test=dataset.validation, validation=None)
    held, cold = cold_start_split(as_test, fraction, seed + 1)
    if held.test.nnz == 0:
        return None, {}
    k = ks[0]
    scores = {c.name: run_model(held, c.name, (k,), c.params, candidates=cold)["metrics"][
        f"recall@{k}"] for c in pool}
    best = max(pool, key=lambda c: scores[c.name])
    return best, {n: round(v, 5) for n, v in scores.items()}


def cold_items(dataset: Dataset, served: Candidate, ks: Sequence[int] = (10, 20),
               fraction: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """The cold-start protocol for the served model: hold out ``fraction`` of the items
    entirely, retrain it (same settings) and the baselines without them, and rank only the
    held-out items for the users who interacted with them. Returns each model's metrics and
    the served model's ratio to popularity (which cannot tell cold items apart)."""
    from fuserec.data.adapters.base import cold_start_split

    cold_data, cold = cold_start_split(dataset, fraction, seed)
    out: dict[str, Any] = {"items": int(len(cold)), "fraction": fraction,
                           "test_interactions": int(cold_data.test.nnz)}
    if cold_data.test.nnz == 0:
        return {**out, "skipped": "the held-out items have no interactions"}
    names = [served.name] + [n for n in ("popularity", "content-cosine")
                             if n != served.name and skip_reason(n, cold_data) is None]
    for name in names:
        params = served.params if name == served.name else {}
        result = run_model(cold_data, name, ks, params, candidates=cold)
        out[name] = result["metrics"]
    k = ks[0]
    pop = out["popularity"][f"recall@{k}"]
    out["served"] = served.name
    out[f"recall@{k}_vs_popularity"] = round(out[served.name][f"recall@{k}"] / pop, 3) \
        if pop > 0 else None
    return out
