"""A full evaluation study: does multimodal fusion raise accuracy and diversity?

:func:`run_study` takes a :class:`StudyData` (train / validation / test matrices, item content
views, optional user content views, a data fingerprint) and measures, with full ranking and the
user's seen items excluded:

* every model's accuracy (Recall, NDCG, Precision, MRR, HitRate) and beyond-accuracy metrics
  (coverage, intra-list diversity over content embeddings, novelty, popularity, exposure Gini)
  at every k,
* accuracy per user activity group (cold / medium / heavy users, by training history length),
* accuracy on cold items (a share of items held out of training entirely, ranked among
  themselves, the protocol where only content can help),
* a modality ablation of the content model (each view alone, each pair, all),
* an accuracy-diversity trade-off curve: MMR re-ranking over content embeddings at several λ.

Hyperparameters in :data:`TUNING_GRIDS` are chosen on the validation split (carved out of
train when the data has none); the test split is used for reporting only.
:func:`data_from_artifacts` and :func:`data_from_dataset` build the input; the result is a
JSON-able dict that :func:`fuserec.evaluate.report.render_study` turns into a report.
"""

from __future__ import annotations

import hashlib
import itertools
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fuserec.data.adapters.base import Dataset, binarize, carve_validation
from fuserec.data.matrix import interaction_matrix
from fuserec.data.schema import ID, ITEM_ID, TIMESTAMP, USER_ID, WEIGHT
from fuserec.data.splits import SPLIT, published_split, split_interactions
from fuserec.evaluate.metrics import ACCURACY, all_metrics, relevant_sets
from fuserec.fuse.base import View
from fuserec.fuse.sum import SumFusion
from fuserec.models.base import MODELS, Recommender, content_models, fit_with

MODALITY_ORDER = ("text", "image", "audio")
DEFAULT_MODELS = ("popularity", "item-knn", "bpr-mf", "content-cosine")
DEFAULT_LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)

TUNING_GRIDS: dict[str, dict[str, list[Any]]] = {
    "item-knn": {"neighbors": [20, 50, 100, 200]},
    "content-cosine": {"own_weight": [0.25, 0.5, 0.75]},
}
"""Hyperparameter grids searched on the validation split (models not listed use defaults)."""

GROUPS = ("cold", "medium", "heavy")


@dataclass
class StudyConfig:
    """Knobs of one study (all of it is written into the report for reproduction)."""

    ks: tuple[int, ...] = (10, 20)
    models: tuple[str, ...] = DEFAULT_MODELS
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    tune: bool = True
    validation_fraction: float = 0.1
    cold_item_fraction: float = 0.15
    ablation: bool = True
    seed: int = 0
    batch_size: int = 1024

    @property
    def main_k(self) -> int:
        """The cut-off the plots and headlines use (the first of ``ks``)."""
        return self.ks[0]


@dataclass
class StudyData:
    """What a study evaluates: a dataset (user content views included) and provenance."""

    dataset: Dataset
    fingerprint: dict[str, str] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    validation_carved: bool = False


# -- fingerprints ------------------------------------------------------------------------------


def _hash_frame(frame: pd.DataFrame) -> str:
    """A content hash of a table (column names, order of rows and values; lists as text)."""
    h = hashlib.sha256()
    h.update(repr(list(map(str, frame.columns))).encode())
    if len(frame):
        plain = frame.copy()
        for col in plain.columns:
            if plain[col].dtype == object:
                plain[col] = plain[col].map(
                    lambda v: "|".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray)
                    else str(v))
        h.update(pd.util.hash_pandas_object(plain, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _hash_arrays(arrays: Mapping[str, np.ndarray | sp.spmatrix]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        h.update(name.encode())
        if sp.issparse(value):
            m = sp.csr_matrix(value)
            m.sort_indices()
            parts = [np.asarray(m.shape, np.int64), m.indptr.astype(np.int64),
                     m.indices.astype(np.int64), m.data.astype(np.float32)]
        else:
            arr = np.ascontiguousarray(value)
            parts = [np.asarray(arr.shape, np.int64), arr]
        for p in parts:
            h.update(np.ascontiguousarray(p).tobytes())
    return h.hexdigest()


def fingerprint_catalog(interactions: pd.DataFrame, items: pd.DataFrame,
                        users: pd.DataFrame | None = None,
                        embeddings: Mapping[str, Mapping[str, View]] | None = None
                        ) -> dict[str, str]:
    """SHA-256 hashes of the interaction data (without and with its split) and the catalog.

    ``combined`` covers everything and is the one to quote next to a result.
    """
    cols = [c for c in (USER_ID, ITEM_ID, WEIGHT, TIMESTAMP) if c in interactions]
    out = {"interactions": _hash_frame(interactions[cols].reset_index(drop=True)),
           "items": _hash_frame(items.reset_index(drop=True))}
    if SPLIT in interactions:
        out["split"] = _hash_frame(interactions[[*cols, SPLIT]].reset_index(drop=True))
    if users is not None:
        out["users"] = _hash_frame(users.reset_index(drop=True))
    if embeddings:
        out["embeddings"] = _hash_arrays({f"{t}.{m}": v.vectors for t, views in embeddings.items()
                                          for m, v in views.items()})
    out["combined"] = hashlib.sha256("".join(out[k] for k in sorted(out)).encode()).hexdigest()
    return out


def fingerprint_dataset(dataset: Dataset) -> dict[str, str]:
    """SHA-256 hashes of a benchmark dataset's split matrices and item feature arrays."""
    mats: dict[str, Any] = {"train": dataset.train, "test": dataset.test}
    if dataset.validation is not None:
        mats["validation"] = dataset.validation
    out = {"interactions": _hash_arrays(mats),
           "items": _hash_arrays({m: v.vectors for m, v in dataset.item_features.items()})}
    out["combined"] = hashlib.sha256((out["interactions"] + out["items"]).encode()).hexdigest()
    return out


# -- inputs ------------------------------------------------------------------------------------


def data_from_artifacts(folder: str | Path, split: str = "given",
                        split_options: Mapping[str, Any] | None = None) -> StudyData:
    """A study's input from a pipeline's artifact folder (``runs/demo/artifacts``).

    ``split="given"`` uses the ``split`` column saved with the interactions as is; any other
    name of :data:`fuserec.data.splits.SPLITTERS` re-splits them (``random``,
    ``leave-last-out``, ``time``) with ``split_options``.
    """
    from fuserec.artifacts import load_artifacts

    art = load_artifacts(Path(folder))
    inter = art.interactions
    options = dict(split_options or {})
    if split == "given":
        inter = published_split(inter)
    else:
        inter = split_interactions(inter.drop(columns=[SPLIT], errors="ignore"), split, **options)
    user_ids = art.users[ID].astype(str).tolist()
    item_ids = art.items[ID].astype(str).tolist()

    def matrix(label: str) -> sp.csr_matrix:
        return binarize(interaction_matrix(inter[inter[SPLIT] == label], user_ids, item_ids))

    validation = matrix("validation")
    dataset = Dataset(name=Path(folder).resolve().parent.name or "artifacts",
                      train=matrix("train"),
                      validation=validation if validation.nnz else None, test=matrix("test"),
                      item_features=dict(art.embeddings.get("items", {})),
                      user_features=dict(art.embeddings.get("users", {})),
                      user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids))
    return StudyData(
        dataset=dataset,
        fingerprint=fingerprint_catalog(inter, art.items, art.users, art.embeddings),
        split={"method": split, **options, "counts": inter[SPLIT].value_counts().to_dict()},
        source=str(Path(folder).resolve()))


def data_from_dataset(dataset: Dataset, source: str = "") -> StudyData:
    """A study's input from a benchmark :class:`Dataset` (the ``fuserec evaluate`` path)."""
    return StudyData(dataset=dataset, fingerprint=fingerprint_dataset(dataset),
                     split={"method": "given", "counts": {
                         "train": int(dataset.train.nnz), "test": int(dataset.test.nnz),
                         "validation": int(dataset.validation.nnz)
                         if dataset.validation is not None else 0}},
                     source=source)


# -- ranking -----------------------------------------------------------------------------------


def content_vectors(item_features: Mapping[str, View]) -> np.ndarray | None:
    """The fused content vector of every item (the seed's sum of normalised views): what
    intra-list diversity and MMR measure similarity with, the same for every model."""
    modalities = [m for m in MODALITY_ORDER if m in item_features] + \
        sorted(m for m in item_features if m not in MODALITY_ORDER)
    if not modalities:
        return None
    return SumFusion(modalities).fit(item_features).transform(item_features)


def rank(model: Recommender, users: np.ndarray, k: int, seen: sp.csr_matrix | None,
         allowed: np.ndarray | None = None, diversity: float = 0.0,
         vectors: np.ndarray | None = None, batch_size: int = 1024) -> np.ndarray:
    """Top-``k`` item indices for ``users`` (full ranking), ``seen`` items excluded: the
    model's own ``recommend`` in blocks of users, filters as its arguments.

    ``allowed`` (bool per item) restricts the candidates; ``diversity`` > 0 re-ranks a
    relevance pool with MMR over ``vectors``.
    """
    out = np.full((len(users), k), -1, np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        out[start:start + len(batch)] = model.recommend(
            batch, k, exclude=seen, candidates=allowed, exclude_seen=seen is not None,
            diversity=diversity if vectors is not None else 0.0,
            diversity_vectors=vectors)[0]
    return out


def _fit(name: str, params: Mapping[str, Any], train: sp.csr_matrix,
         validation: sp.csr_matrix | None, item_features: Mapping[str, View],
         user_features: Mapping[str, View], seed: int) -> tuple[Recommender, float]:
    """Create ``name`` (seeded, quiet) and fit it through the one dispatcher, ``fit_with``."""
    init = MODELS.get(name).options()
    options = dict(params)
    if "seed" in init:
        options.setdefault("seed", seed)
    if "progress" in init:
        options.setdefault("progress", False)
    model = MODELS.create(name, **options)
    t0 = time.perf_counter()
    fit_with(model, train, item_features, user_features, validation)
    return model, time.perf_counter() - t0


def _users_with(test: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(test.tocsr().indptr) > 0)


def _accuracy(ranked: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int]
              ) -> dict[str, float]:
    return {f"{n}@{k}": fn(ranked, relevant, k) for k in ks for n, fn in ACCURACY.items()}


def _union(a: sp.csr_matrix, b: sp.csr_matrix | None) -> sp.csr_matrix:
    return a if b is None else binarize(a + b)


def _model_ok(name: str, item_features: Mapping[str, View]) -> bool:
    return name not in content_models() or bool(item_features)


# -- the study ---------------------------------------------------------------------------------


def tune(name: str, data: StudyData, config: StudyConfig, train: sp.csr_matrix,
         validation: sp.csr_matrix) -> dict[str, Any]:
    """Grid-search ``name``'s :data:`TUNING_GRIDS` on the validation split by NDCG@main k."""
    grid = TUNING_GRIDS.get(name, {})
    base = dict(config.model_params.get(name, {}))
    grid = {p: values for p, values in grid.items() if p not in base}
    if not grid:
        return {"params": base, "trials": []}
    users = _users_with(validation)
    relevant = [relevant_sets(validation)[u] for u in users]
    k = config.main_k
    trials = []
    for combo in itertools.product(*grid.values()):
        params = {**base, **dict(zip(grid, combo, strict=True))}
        model, _ = _fit(name, params, train, None, data.dataset.item_features,
                        data.dataset.user_features, config.seed)
        ranked = rank(model, users, k, train, batch_size=config.batch_size)
        score = ACCURACY["ndcg"](ranked, relevant, k)
        trials.append({"params": params, f"ndcg@{k}": score})
    best = max(trials, key=lambda t: t[f"ndcg@{k}"])
    return {"params": best["params"], "trials": trials, "metric": f"ndcg@{k}"}


def activity_groups(train: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Label each user cold / medium / heavy by training history length (terciles of the
    evaluated users); returns labels and the two cut points."""
    counts = np.diff(train.tocsr().indptr)[users]
    if len(counts) == 0:
        return np.array([], dtype=object), [0.0, 0.0]
    lo, hi = np.quantile(counts, [1 / 3, 2 / 3])
    labels = np.where(counts <= lo, "cold", np.where(counts <= hi, "medium", "heavy"))
    return labels.astype(object), [float(lo), float(hi)]


def cold_item_split(train: sp.csr_matrix, validation: sp.csr_matrix | None,
                    test: sp.csr_matrix, fraction: float, seed: int
                    ) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Hold ``fraction`` of the items that have test interactions out of training entirely.

    Returns the training matrix without them, a test matrix of every interaction (from all
    splits) with them, and the cold item indices.
    """
    rng = np.random.default_rng(seed)
    everything = _union(_union(train, validation), test)
    candidates = np.flatnonzero(np.asarray(test.sum(0)).ravel() > 0)
    n_cold = max(1, round(len(candidates) * fraction)) if len(candidates) else 0
    cold = np.sort(rng.choice(candidates, n_cold, replace=False)) if n_cold else np.array([], int)
    is_cold = np.zeros(train.shape[1], bool)
    is_cold[cold] = True
    warm_train = binarize(train @ sp.diags((~is_cold).astype(np.float32)))
    cold_test = binarize(everything @ sp.diags(is_cold.astype(np.float32)))
    return warm_train, cold_test, cold


def ablation_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modalities``: singles, then pairs, ..., then all."""
    return [c for r in range(1, len(modalities) + 1)
            for c in itertools.combinations(modalities, r)]


def run_study(data: StudyData, config: StudyConfig | None = None,
              fitted: Mapping[str, Recommender] | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every measurement of the module docstring; returns a JSON-able dict.

    ``fitted`` are models already trained on ``data.dataset.train`` (e.g. by ``fuserec
    evaluate``); they are evaluated as they are instead of being tuned and refitted.
    """
    config = config or StudyConfig()
    say = log or (lambda _msg: None)
    ds = data.dataset
    t_start = time.perf_counter()
    fitted = dict(fitted or {})
    items, users_f = ds.item_features, data.dataset.user_features
    vectors = content_vectors(items)
    names = [n for n in (list(fitted) or list(config.models)) if _model_ok(n, items)]
    skipped = [n for n in config.models if not _model_ok(n, items)] if not fitted else []

    validation, train, carved = ds.validation, ds.train, False
    if validation is None and config.tune and not fitted:
        tune_train, validation = carve_validation(ds.train, config.validation_fraction,
                                                  config.seed)
        carved = True
    else:
        tune_train = ds.train
    seen = ds.seen()
    test = ds.test
    users = _users_with(test)
    relevant_all = relevant_sets(test)
    relevant = [relevant_all[u] for u in users]
    max_k = max(config.ks)

    # 1. tuning on validation, 2. final fit on train, 3. test metrics
    tuning: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    rankings: dict[str, np.ndarray] = {}
    instances: dict[str, Recommender] = {}
    for name in names:
        params = dict(config.model_params.get(name, {}))
        if name in fitted:
            model, seconds = fitted[name], float("nan")
        else:
            if config.tune and validation is not None and name in TUNING_GRIDS:
                say(f"tuning {name} on the validation split")
                tuning[name] = tune(name, data, config, tune_train, validation)
                params = tuning[name]["params"]
            say(f"fitting {name}")
            model, seconds = _fit(name, params, train, None if carved else validation, items,
                                  users_f, config.seed)
        ranked = rank(model, users, max_k, seen, batch_size=config.batch_size)
        metrics = all_metrics(ranked, relevant, config.ks, n_items=ds.n_items, train=train,
                              vectors=vectors)
        models[name] = {"params": params, "metrics": metrics,
                        "train_seconds": None if np.isnan(seconds) else round(seconds, 3)}
        rankings[name] = ranked
        instances[name] = model

    # per user activity group
    labels, cuts = activity_groups(train, users)
    groups: dict[str, Any] = {"cuts": cuts, "basis": "training interactions per user",
                              "sizes": {g: int((labels == g).sum()) for g in GROUPS},
                              "ranges": _group_ranges(train, users, labels), "rows": {}}
    for name, ranked in rankings.items():
        groups["rows"][name] = {
            g: _accuracy(ranked[labels == g], [r for r, lab in zip(relevant, labels, strict=True)
                                               if lab == g], config.ks)
            for g in GROUPS if (labels == g).any()}

    # cold items
    cold: dict[str, Any] = {}
    if config.cold_item_fraction > 0 and not fitted:
        warm_train, cold_test, cold_items = cold_item_split(
            train, None if carved else validation, test, config.cold_item_fraction, config.seed)
        allowed = np.zeros(ds.n_items, bool)
        allowed[cold_items] = True
        c_users = _users_with(cold_test)
        c_rel = [relevant_sets(cold_test)[u] for u in c_users]
        cold = {"items": int(len(cold_items)), "users": int(len(c_users)),
                "interactions": int(cold_test.nnz), "fraction": config.cold_item_fraction,
                "rows": {}}
        for name in names:
            say(f"cold items: fitting {name} without {len(cold_items)} held-out items")
            model, _ = _fit(name, models[name]["params"], warm_train, None, items, users_f,
                            config.seed)
            ranked = rank(model, c_users, max_k, None, allowed=allowed,
                          batch_size=config.batch_size)
            cold["rows"][name] = _accuracy(ranked, c_rel, config.ks)

    # modality ablation of the content model
    ablation: dict[str, Any] = {}
    present = [m for m in MODALITY_ORDER if m in items and np.any(items[m].present)]
    if config.ablation and "content-cosine" in names and len(present) > 1:
        params = {k: v for k, v in models["content-cosine"]["params"].items()
                  if k != "modalities"}
        for subset in ablation_subsets(present):
            say(f"ablation: content-cosine on {' + '.join(subset)}")
            model, _ = _fit("content-cosine", {**params, "modalities": list(subset)}, train,
                            None, items, users_f, config.seed)
            ranked = rank(model, users, max_k, seen, batch_size=config.batch_size)
            ablation[" + ".join(subset)] = all_metrics(ranked, relevant, config.ks,
                                                       n_items=ds.n_items, train=train,
                                                       vectors=vectors)

    # accuracy-diversity trade-off with MMR
    tradeoff: dict[str, list[dict[str, float]]] = {}
    if vectors is not None and config.lambdas:
        k = config.main_k
        for name, model in instances.items():
            say(f"MMR trade-off curve for {name}")
            curve = []
            for lam in config.lambdas:
                ranked = rank(model, users, k, seen, diversity=lam, vectors=vectors,
                              batch_size=config.batch_size)
                m = all_metrics(ranked, relevant, [k], n_items=ds.n_items, train=train,
                                vectors=vectors)
                curve.append({"lambda": float(lam), **m})
            tradeoff[name] = curve

    return {
        "kind": "fuserec-study",
        "dataset": ds.name,
        "source": data.source,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": round(time.perf_counter() - t_start, 2),
        "environment": {"fuserec": _version(), "python": platform.python_version(),
                        "numpy": np.__version__},
        "config": {**asdict(config), "ks": list(config.ks), "models": names,
                   "lambdas": list(config.lambdas), "skipped_models": skipped},
        "fingerprint": data.fingerprint,
        "split": {**data.split, "validation": "carved from train for tuning "
                  f"({config.validation_fraction:.0%} per user, seed {config.seed})"
                  if carved else ("given" if ds.validation is not None else "none")},
        "counts": {"users": ds.n_users, "items": ds.n_items, "train": int(train.nnz),
                   "validation": int(validation.nnz) if validation is not None else 0,
                   "test": int(test.nnz), "test_users": int(len(users))},
        "modalities": present,
        "models": models,
        "tuning": tuning,
        "groups": groups,
        "cold_items": cold,
        "ablation": ablation,
        "tradeoff": tradeoff,
    }


def _group_ranges(train: sp.csr_matrix, users: np.ndarray,
                  labels: np.ndarray) -> dict[str, list[int]]:
    counts = np.diff(train.tocsr().indptr)[users]
    return {g: [int(counts[labels == g].min()), int(counts[labels == g].max())]
            for g in GROUPS if (labels == g).any()}


def _version() -> str:
    try:
        from fuserec import __version__
    except ImportError:  # pragma: no cover
        return "unknown"
    return __version__


__all__ = ["DEFAULT_MODELS", "StudyConfig", "StudyData", "TUNING_GRIDS", "ablation_subsets",
           "activity_groups", "cold_item_split", "content_vectors", "data_from_artifacts",
           "data_from_dataset", "fingerprint_catalog", "fingerprint_dataset", "rank", "run_study",
           "tune"]
