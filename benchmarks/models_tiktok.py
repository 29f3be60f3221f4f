"""TikTok (DiffMM release): every model against the published table and LightGCN of this run.

    nice .venv/bin/python benchmarks/models_tiktok.py --data-dir ../shared/data/diffmm_tiktok

Trains each model on ``trnMat`` with early stopping on ``valMat`` (hyperparameters chosen on
``valMat`` only, see ``fuserec.evaluate.experiment.TUNED``) and scores ``tstMat`` over all
items, train and validation items excluded. Prints Recall@20 / NDCG@20, seconds per epoch, and
ratios against LightGCN measured in the same run and against DiffMM's published numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fuserec.data.adapters import TIKTOK_PUBLISHED, load_dataset
from fuserec.evaluate.experiment import run_model
from fuserec.io import write_json
from fuserec.models import MODELS

DEFAULT_MODELS = ["popularity", "item-knn", "ease", "bpr-mf", "vbpr", "content-cosine", "lightgcn",
          "fusion", "fusegraph", "multdae", "mmease", "blend"]
TARGET = {"recall@20": 0.120, "ndcg@20": 0.048}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/diffmm_tiktok")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/benchmarks/models_tiktok.json")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    console = Console()
    data = load_dataset("tiktok", args.data_dir)
    console.print(data.summary())
    results = []
    for name in args.models:
        params = {"seed": args.seed} if "seed" in MODELS.get(name).options() else {}
        r = run_model(data, name, (10, 20), params, progress=args.progress)
        r.pop("_model")
        results.append(r)
        console.print(f"{name}: R@20 {r['metrics']['recall@20']:.4f} "
                      f"N@20 {r['metrics']['ndcg@20']:.4f} ({r['train_seconds']:.0f} s)")
    ref = next((r for r in results if r["model"] == "lightgcn"), None)
    diffmm_r, diffmm_n = TIKTOK_PUBLISHED["DiffMM"]
    table = Table(title="TikTok, full ranking (R@20 / N@20)")
    for col in ("model", "R@20", "N@20", "x LightGCN (R/N)", "x DiffMM (R/N)", "train s",
                "s/epoch"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        rr, nn = r["metrics"]["recall@20"], r["metrics"]["ndcg@20"]
        vs_ref = (f"{rr / ref['metrics']['recall@20']:.2f} / {nn / ref['metrics']['ndcg@20']:.2f}"
                  if ref else "-")
        table.add_row(r["model"], f"{rr:.4f}", f"{nn:.4f}", vs_ref,
                      f"{rr / diffmm_r:.2f} / {nn / diffmm_n:.2f}", f"{r['train_seconds']:.0f}",
                      str(r.get("seconds_per_epoch", "-")))
    console.print(table)
    best = max(results, key=lambda r: r["metrics"]["recall@20"])
    reached = all(best["metrics"][m] >= v for m, v in TARGET.items())
    console.print(f"best: {best['model']} R@20 {best['metrics']['recall@20']:.4f} "
                  f"N@20 {best['metrics']['ndcg@20']:.4f}; target {TARGET} "
                  f"{'reached' if reached else 'NOT reached'}")
    write_json(Path(args.out), {"published": TIKTOK_PUBLISHED, "results": results})
    console.print(f"wrote {args.out}")
    print(json.dumps([{k: r[k] for k in ("model", "metrics", "train_seconds")}
                      for r in results]))


if __name__ == "__main__":
    main()
