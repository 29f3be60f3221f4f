"""The whole pipeline on one catalog: validate, encode, fuse, recommend, evaluate, report.

``run_pipeline`` works on any catalog folder; ``run_demo`` first generates the demo catalog.
Outputs under ``out``:

* ``validation.json``: every rejected record or dropped media file, with the reason.
* ``results.json``: accuracy per view (text, image, audio, fused) and the popularity baseline.
* ``report.md`` and ``report.png``: the same, for people.
* ``artifacts/``: what ``fuserec serve`` and ``fuserec describe`` read
  (see :mod:`fuserec.artifacts`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from fuserec.artifacts import write_artifacts
from fuserec.data.adapters.base import Dataset
from fuserec.data.loaders import load_catalog
from fuserec.data.matrix import interaction_matrix
from fuserec.data.splits import SPLIT, published_split, random_split_per_user
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog
from fuserec.encode import DEFAULT_ENCODERS, EmbeddingCache, encode_catalog, get_encoder
from fuserec.encode.text import default_model_path
from fuserec.evaluate.ranking import evaluate_ranking
from fuserec.evaluate.report import render_report
from fuserec.evaluate.selection import AUTO_CANDIDATES, cold_items, select_models
from fuserec.fuse.base import View
from fuserec.io import write_json
from fuserec.models.content import ContentCosine
from fuserec.models.popularity import Popularity

MODALITIES = ("text", "image", "audio")


@dataclass
class PipelineConfig:
    """Knobs of one pipeline run."""

    ks: tuple[int, ...] = (10, 20)
    test_fraction: float = 0.2
    #: share of each user's interactions held out for early stopping and model selection
    validation_fraction: float = 0.1
    #: candidate models (``fuserec run --model``); the best on validation is served
    models: tuple[str, ...] = AUTO_CANDIDATES
    #: share of items held out of training entirely to measure the served model on cold items
    cold_item_fraction: float = 0.1
    #: wall-clock cap of each learned model's training (it keeps its best epoch so far)
    model_seconds: float | None = 300.0
    #: seconds for all gradient-trained candidates together, shared as they start (the
    #: closed-form ones are not counted); None: no shared budget
    train_budget: float | None = 150.0
    seed: int = 0
    encoders: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENCODERS))
    encoder_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: Path | None = None
    progress: bool = True
    #: the describe stage and consistency router (None: skipped); see fuserec.pipeline.describe
    describe: Any = None


def run_pipeline(catalog_root: Path, out: Path, config: PipelineConfig | None = None,
                 console: Console | None = None) -> dict[str, Any]:
    """Run every stage on the catalog at ``catalog_root`` and write results under ``out``."""
    config = config or PipelineConfig()
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    console.rule("[bold]validate")
    catalog, report = load_catalog(Path(catalog_root), progress=config.progress)
    report.write_json(out / "validation.json")
    report.print(console)
    timings["validate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    console.rule("[bold]encode")
    encoders = {m: get_encoder(name, **config.encoder_options.get(m, {}))
                for m, name in config.encoders.items()}
    cache = EmbeddingCache(config.cache_dir or out / "cache")
    encoded = encode_catalog(catalog, encoders, cache, progress=config.progress)
    timings["encode"] = time.perf_counter() - t0
    item_views = {m: View(v.vectors, v.present) for m, v in encoded["items"].items()}
    user_views = {m: View(v.vectors, v.present) for m, v in encoded.get("users", {}).items()}
    encode_errors = [{"table": table, "modality": m, "record": rid, "reason": why}
                     for table, views in encoded.items() for m, v in views.items()
                     for rid, why in v.errors]
    for err in encode_errors:
        console.print(f"[yellow]could not encode[/] {err['table']} {err['record']} "
                      f"({err['modality']}): {err['reason']}")

    t0 = time.perf_counter()
    console.rule("[bold]fuse, recommend, evaluate")
    if SPLIT in catalog.interactions:  # the catalog gives its own split: use it as given
        split = published_split(catalog.interactions)
        console.print("split: given by the interactions' split column")
        if not (split[SPLIT] == "validation").any():
            # selection needs validation: carve it from the given train rows, test untouched
            is_train = split[SPLIT] == "train"
            carved = random_split_per_user(split[is_train].drop(columns=[SPLIT]), 0.0,
                                           config.validation_fraction, seed=config.seed)
            split.loc[is_train, SPLIT] = carved[SPLIT].to_numpy()
            console.print(f"split: no validation rows given; {config.validation_fraction:.0%} "
                          f"of each user's train rows carved out for validation")
    else:
        split = random_split_per_user(catalog.interactions, config.test_fraction,
                                      config.validation_fraction, seed=config.seed)
    item_ids, user_ids = catalog.item_ids, catalog.user_ids
    train = interaction_matrix(split[split[SPLIT] == "train"], user_ids, item_ids)
    validation = interaction_matrix(split[split[SPLIT] == "validation"], user_ids, item_ids)
    test = interaction_matrix(split[split[SPLIT] == "test"], user_ids, item_ids)
    seen = train + validation

    views: dict[str, dict[str, float]] = {}
    models: dict[str, ContentCosine] = {}
    # the encoded views first, then the catalog's precomputed ones (features/<name>.npy) by name
    present_modalities = [m for m in [*MODALITIES, *sorted(set(item_views) - set(MODALITIES))]
                          if m in item_views and item_views[m].present.any()]
    for view in [*present_modalities, "fused"]:
        mods = present_modalities if view == "fused" else [view]
        model = ContentCosine(modalities=mods).fit(train, item_views, user_views)
        views[view] = evaluate_ranking(model, test, config.ks, exclude=seen)
        models[view] = model
    baseline = evaluate_ranking(Popularity().fit(train), test, config.ks, exclude=seen)
    timings["fit_evaluate"] = time.perf_counter() - t0

    describe_results: dict[str, Any] | None = None
    # describe writes beside the artifacts; its folder moves in when they are swapped in
    describe_root = out / ".describe-staging"
    if config.describe is not None and config.describe.enabled:
        from fuserec.pipeline.describe import run_describe_stage

        console.rule("[bold]describe and route")
        t0 = time.perf_counter()
        describe_results = run_describe_stage(
            catalog, split, train, test, item_views, user_views, encoders["text"], encoders,
            cache, describe_root, config.describe, config.ks, config.seed, models["fused"],
            console)
        timings["describe"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    console.rule("[bold]train and select models")
    item_features = {m: item_views[m] for m in present_modalities}
    user_features = {m: v for m, v in user_views.items() if m in present_modalities}
    # content-cosine reads text/image/audio by default; precomputed views join it explicitly
    content_params: dict[str, Any] = {"modalities": present_modalities}
    item_texts = catalog.item_texts()
    if describe_results is not None:
        # the router feeds the models: text-path items are represented by their embedded
        # description, feature-path items by their modality features
        routed = describe_results.pop("_routed")
        item_features, user_features = routed["item_features"], routed["user_features"]
        item_texts = routed["item_texts"]
        content_params = {"modalities": list(item_features), "weights": routed["weights"]}
    dataset = Dataset("catalog", train, validation, test, item_features=item_features,
                      user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids),
                      user_features=user_features, item_texts=item_texts,
                      user_texts=catalog.user_texts() if len(user_ids) else None)
    # text models fine-tune the pipeline's own text encoder where it is a model folder, and
    # cache its frozen layers' states beside the embedding cache
    text_params: dict[str, Any] = {"cache_dir": str(Path(cache.root) / "textfusion")} \
        if cache.root else {}
    text_path = getattr(encoders.get("text"), "model_path", None)
    if text_path is not None and Path(text_path) != _packaged_text_model():
        text_params["model_path"] = str(text_path)  # the packaged MiniLM needs no path
    selection = select_models(dataset, config.models, config.ks, seed=config.seed,
                              progress=config.progress, model_seconds=config.model_seconds,
                              train_budget=config.train_budget,
                              log=lambda msg: console.print(f"[dim]{msg}"),
                              params={"content-cosine": content_params,
                                      "textfusion": text_params})
    console.print(selection.table(config.ks[0]))
    served = selection.chosen
    console.print(f"serving [bold]{served.name}[/] (best validation {selection.metric})")
    timings["train_select"] = time.perf_counter() - t0
    cold: dict[str, Any] = {}
    if config.cold_item_fraction > 0:
        t0 = time.perf_counter()
        cold = cold_items(dataset, served, config.ks, config.cold_item_fraction, config.seed)
        timings["cold_items"] = time.perf_counter() - t0
        k0 = config.ks[0]
        if served.name in cold:
            console.print(f"cold items ({cold['items']} held out of training entirely): "
                          f"{served.name} Recall@{k0} {cold[served.name][f'recall@{k0}']:.4f}, "
                          f"popularity {cold['popularity'][f'recall@{k0}']:.4f}")

    k = config.ks[0]
    fused = views["fused"]
    single = {v: m for v, m in views.items() if v != "fused"}
    best_single = max(single, key=lambda v: single[v][f"ndcg@{k}"]) if single else None
    results: dict[str, Any] = {
        "catalog": str(Path(catalog_root).resolve()),
        "views": views,
        "baselines": {"popularity": baseline},
        "fusion_gain": {
            v: {metric: _ratio(fused[metric], m[metric]) for metric in m if "@" in metric}
            for v, m in single.items()
        },
        "best_single_view": best_single,
        "fused_beats_every_view": all(
            fused[f"{metric}@{k}"] > m[f"{metric}@{k}"]
            for m in single.values() for metric in ("recall", "ndcg")),
        "validation": {"ok": report.n_ok, "rejected": report.n_rejected,
                       "dropped_media": report.n_dropped_media},
        "encode_errors": encode_errors,
        "models": selection.to_json(),
        "served": selection.served_json(),
        "cold_items": cold,
        "counts": {"items": len(item_ids), "users": len(user_ids), "train": int(train.nnz),
                   "validation": int(validation.nnz), "test": int(test.nnz)},
        "encoders": {m: {"name": e.name, "version": e.version, "dim": e.dim}
                     for m, e in encoders.items()},
        "config": {"ks": list(config.ks), "test_fraction": config.test_fraction,
                   "validation_fraction": config.validation_fraction,
                   "models": list(config.models), "seed": config.seed},
        "timings_seconds": {k_: round(v, 2) for k_, v in timings.items()},
    }

    artifacts = write_artifacts(out / "artifacts", catalog, split, encoded, encoders,
                                models["fused"], results,
                                served=served.model if served.name != "content-cosine" else None,
                                describe_dir=describe_root / "describe")
    shutil.rmtree(describe_root, ignore_errors=True)
    results["artifacts"] = str(artifacts)
    if describe_results is not None:
        results["describe"] = describe_results
        results["router"] = describe_results["router"]
    write_json(out / "results.json", results)
    render_report(results, out)
    _append_section(out / "report.md", selection.report_section(config.ks[0]))
    if "describe" in results:
        from fuserec.pipeline.describe import report_section

        _append_section(out / "report.md", report_section(results["describe"], k))
    _print_summary(results, console, k)
    where = out.resolve()
    console.print(f"\nwrote [bold]{where / 'report.md'}[/], {where / 'results.json'}, "
                  f"{where / 'report.png'} and artifacts in {Path(artifacts).resolve()}")
    console.print(f"full evaluation report (models, diversity, cold start, ablation): "
                  f"[bold]fuserec report --artifacts {artifacts}[/]")
    return results


def run_demo(out: Path, spec: DemoCatalogSpec | None = None, config: PipelineConfig | None = None,
             console: Console | None = None) -> dict[str, Any]:
    """Generate the demo catalog under ``out/catalog`` and run the pipeline on it."""
    console = console or Console()
    out = Path(out)
    catalog_dir = out / "catalog"
    spec = spec or DemoCatalogSpec()
    console.rule("[bold]generate demo catalog")
    generate_demo_catalog(catalog_dir, spec, progress=config.progress if config else True)
    console.print(f"{spec.n_items} items, {spec.n_users} users in {catalog_dir}")
    return run_pipeline(catalog_dir, out, config, console)


def _packaged_text_model() -> Path | None:
    try:
        return default_model_path()
    except ImportError:  # no packaged MiniLM: any text model folder is named explicitly
        return None


def _append_section(report: Path, section: str) -> None:
    from fuserec.io import write_text

    write_text(report, report.read_text() + section)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b > 0 else None


def _print_summary(results: dict[str, Any], console: Console, k: int) -> None:
    from rich.table import Table

    table = Table(title=f"Held-out accuracy (full ranking, k={k})")
    table.add_column("view")
    table.add_column(f"Recall@{k}", justify="right")
    table.add_column(f"NDCG@{k}", justify="right")
    table.add_column("fused / view (NDCG)", justify="right")
    fused = results["views"]["fused"]
    rows = {**results["views"], "popularity (baseline)": results["baselines"]["popularity"]}
    for name, m in rows.items():
        gain = "" if name == "fused" else f"{fused[f'ndcg@{k}'] / max(m[f'ndcg@{k}'], 1e-12):.2f}x"
        style = "bold green" if name == "fused" else None
        table.add_row(name, f"{m[f'recall@{k}']:.4f}", f"{m[f'ndcg@{k}']:.4f}", gain, style=style)
    console.print(table)
    verdict = "beats" if results["fused_beats_every_view"] else "does NOT beat"
    console.print(f"fused view {verdict} every single view on Recall@{k} and NDCG@{k}")


__all__ = ["PipelineConfig", "run_demo", "run_pipeline"]
