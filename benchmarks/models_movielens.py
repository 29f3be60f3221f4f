"""MovieLens-1M (ViLLA 10-core split): fuserec's models against implicit's ALS, same run.

    nice .venv/bin/python benchmarks/models_movielens.py --data-dir ../shared/data/movielens_posters

1. Warm start. A validation split (10% of each user's train pairs, seed 0) is carved out of the
   ViLLA train split; every model, ALS included, trains on the rest, is tuned / early-stopped
   on that validation split, and is scored on the ViLLA test split over all items with train
   and validation items excluded. ALS's hyperparameters come from a small grid scored on the
   same validation split. Prints Recall@10 / NDCG@10 and ratios against ALS.
2. Cold start. 10% of items are held out of training entirely; content-aware models rank only
   those items for every user who interacted with them, against popularity (which cannot tell
   cold items apart) and ALS (which has no vectors for them either).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table

from fuserec.data.adapters import Dataset, cold_start_split, load_dataset
from fuserec.data.adapters.movielens import DEFAULT_VIEWS
from fuserec.encode import get_encoder
from fuserec.evaluate.experiment import run_model
from fuserec.evaluate.ranking import evaluate_ranking
from fuserec.io import write_json
from fuserec.models.torch_base import EmbeddingRecommender, ranking_metrics

MODELS = ["popularity", "item-knn", "ease", "bpr-mf", "lightgcn", "vbpr", "content-cosine",
          "fusion", "fusegraph", "multdae", "mmease", "blend"]
COLD_MODELS = ["popularity", "content-cosine", "vbpr", "fusion", "fusegraph", "mmease", "blend"]
ALS_GRID = {"factors": [32, 64], "regularization": [0.1], "alpha": [4.0, 16.0]}


class ALSReference(EmbeddingRecommender):
    """implicit's AlternatingLeastSquares behind fuserec's scoring, for the reference only."""

    name = "implicit-als"

    def __init__(self, factors: int = 64, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, seed: int = 0) -> None:
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed = iterations, seed

    def fit(self, interactions: sp.csr_matrix, item_features=None, user_features=None):
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.interactions = sp.csr_matrix(interactions, dtype=np.float32)
        model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                        alpha=self.alpha, iterations=self.iterations,
                                        random_state=self.seed, num_threads=1)
        with threadpool_limits(1, "blas"):
            model.fit(self.interactions, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, np.float32)
        self.item_factors = np.asarray(model.item_factors, np.float32)
        return self


def tune_als(data: Dataset, console: Console) -> tuple[dict[str, Any], float]:
    """Pick ALS's hyperparameters by validation Recall@10."""
    best, best_params = -1.0, {}
    for values in itertools.product(*ALS_GRID.values()):
        params = dict(zip(ALS_GRID, values, strict=True))
        m = ALSReference(**params).fit(data.train)
        val = ranking_metrics(m.user_factors, m.item_factors, data.train, data.validation, 10)
        console.print(f"  ALS {params}: val R@10 {val['recall@10']:.4f}")
        if val["recall@10"] > best:
            best, best_params = val["recall@10"], params
    return best_params, best


def run_als(data: Dataset, params: dict[str, Any], ks=(10, 20),
            candidates: np.ndarray | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = ALSReference(**params).fit(data.train)
    seconds = time.perf_counter() - t0
    metrics = evaluate_ranking(model, data.test, ks, exclude=data.seen(), candidates=candidates)
    metrics.pop("users")
    return {"dataset": data.name, "model": "implicit-als", "metrics": metrics,
            "train_seconds": round(seconds, 2), "params": params}


def table(title: str, results: list[dict], ref: dict, k: int, console: Console) -> None:
    t = Table(title=title)
    for col in ("model", f"R@{k}", f"N@{k}", "x ALS R", "x ALS N", "train s", "s/epoch"):
        t.add_column(col, justify="left" if col == "model" else "right")
    rr0, nn0 = ref["metrics"][f"recall@{k}"], ref["metrics"][f"ndcg@{k}"]
    for r in results:
        rr, nn = r["metrics"][f"recall@{k}"], r["metrics"][f"ndcg@{k}"]
        t.add_row(r["model"], f"{rr:.4f}", f"{nn:.4f}", f"{rr / rr0:.2f}" if rr0 else "-",
                  f"{nn / nn0:.2f}" if nn0 else "-", f"{r['train_seconds']:.0f}",
                  str(r.get("seconds_per_epoch", "-")))
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/movielens_posters")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--views", nargs="+", default=list(DEFAULT_VIEWS),
                        help="item views to load; models that read no text or poster features "
                             "run without encoding them (e.g. --views genres)")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--cold-models", nargs="+", default=COLD_MODELS)
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-warm", action="store_true")
    parser.add_argument("--out", default="runs/benchmarks/models_movielens.json")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    console = Console()
    data = load_dataset("movielens", args.data_dir, views=args.views, cache_dir=args.cache_dir,
                        progress=args.progress, encoder_factory=get_encoder,
                        ).with_validation(0.1, seed=0)
    console.print(data.summary())

    console.rule("warm start")
    als_params, _ = tune_als(data, console)
    results = [run_als(data, als_params)]
    for name in [] if args.skip_warm else args.models:
        r = run_model(data, name, (10, 20), progress=args.progress)
        r.pop("_model")
        results.append(r)
        console.print(f"{name}: R@10 {r['metrics']['recall@10']:.4f} "
                      f"N@10 {r['metrics']['ndcg@10']:.4f} ({r['train_seconds']:.0f} s)")
    table("ML-1M ViLLA split, full ranking @10", results, results[0], 10, console)
    if len(results) > 1:
        best = max(results[1:], key=lambda r: r["metrics"]["recall@10"])
        ratios = {m: best["metrics"][f"{m}@10"] / results[0]["metrics"][f"{m}@10"]
                  for m in ("recall", "ndcg")}
        console.print(f"best: {best['model']}, x ALS: R@10 {ratios['recall']:.3f}, "
                      f"N@10 {ratios['ndcg']:.3f} (target 1.15)")

    cold_results: list[dict] = []
    if not args.skip_cold:
        console.rule("cold start: 10% of items never seen in training")
        cold, cold_items = cold_start_split(data, 0.1, seed=0)
        cold_results.append(run_als(cold, als_params, (10,), cold_items))
        for name in args.cold_models:
            r = run_model(cold, name, (10,), progress=args.progress, candidates=cold_items)
            r.pop("_model")
            cold_results.append(r)
            console.print(f"{name}: cold R@10 {r['metrics']['recall@10']:.4f}")
        pop = next(r for r in cold_results if r["model"] == "popularity")
        table(f"cold items ({len(cold_items)}), ranked among themselves, @10", cold_results,
              pop, 10, console)
        console.print("(ratio columns are against popularity in this table)")
    write_json(Path(args.out), {"warm": results, "cold": cold_results, "als_params": als_params})
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
