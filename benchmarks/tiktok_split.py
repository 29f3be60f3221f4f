"""TikTok (DiffMM release): how the held-out interactions differ from the training ones.

    nice .venv/bin/python benchmarks/tiktok_split.py --data-dir ../shared/data/diffmm_tiktok

Reads the three matrices only (no model is trained). Prints the item-popularity correlations
between ``trnMat``, ``valMat`` and ``tstMat``, who holds the held-out items, and two
popularity rankers scored on ``tstMat`` (train items excluded, like every model here): item
popularity in ``trnMat`` (a legitimate baseline) and item popularity in ``valMat`` (NOT a
protocol entry: DiffMM's protocol never reads ``valMat``; it measures how much of the test set a
ranker that sees other users' held-out items would get), and where each split's items sit in
the item numbering (which appears to follow first appearance). Writes a plot of
the share of test interactions covered by the top-N items under each ordering.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from fuserec.data.adapters import TIKTOK_PUBLISHED, load_dataset  # noqa: E402
from fuserec.io import write_json, write_with  # noqa: E402
from fuserec.models.validation import scored_metrics  # noqa: E402


def popularity(matrix) -> np.ndarray:
    return np.asarray(matrix.sum(0), np.float64).ravel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/diffmm_tiktok")
    parser.add_argument("--out", default="runs/benchmarks/tiktok_split")
    args = parser.parse_args()
    console = Console()
    data = load_dataset("tiktok", args.data_dir)
    train, val, test = data.train, data.validation.tocsr(), data.test.tocsr()
    pop = {"train": popularity(train), "validation": popularity(val), "test": popularity(test)}
    corr = {f"{a}~{b}": float(np.corrcoef(pop[a], pop[b])[0, 1])
            for a, b in (("train", "test"), ("validation", "test"), ("train", "validation"))}
    val_users = set(np.flatnonzero(np.diff(val.indptr)).tolist())
    test_users = set(np.flatnonzero(np.diff(test.indptr)).tolist())
    held = {"validation users": len(val_users), "test users": len(test_users),
            "in both": len(val_users & test_users),
            "max held-out items per user": int(max(np.diff(val.indptr).max(),
                                                   np.diff(test.indptr).max()))}

    # the release appears to number items in order of first appearance (train interactions thin
    # out towards high indices), so each split's mean item index hints at its period
    order = {name: {"mean item index": round(float(m.tocoo().col.mean())),
                    "share on the newest half of items": round(float(
                        (m.tocoo().col >= train.shape[1] // 2).mean()), 3)}
             for name, m in (("train", train), ("validation", val), ("test", test))}

    rankers = {"train popularity": pop["train"],
               "validation popularity (reads valMat)": pop["validation"] + 1e-3 * pop["train"]}
    diffmm_r, diffmm_n = TIKTOK_PUBLISHED["DiffMM"]
    table = Table(title="popularity rankers on tstMat (train items excluded)")
    for col in ("ranker", "R@20", "N@20", "x DiffMM (R/N)"):
        table.add_column(col, justify="left" if col == "ranker" else "right")
    scores = {}
    for name, p in rankers.items():
        m = scored_metrics(lambda b, p=p: np.broadcast_to(p, (len(b), len(p))), train, test, 20)
        scores[name] = m
        table.add_row(name, f"{m['recall@20']:.4f}", f"{m['ndcg@20']:.4f}",
                      f"{m['recall@20'] / diffmm_r:.2f} / {m['ndcg@20'] / diffmm_n:.2f}")
    console.print({"popularity correlation (Pearson, per item)": corr, "held-out": held,
                   "item order": order})
    console.print(table)

    out = Path(args.out)
    top_n = np.arange(1, 501)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, p in rankers.items():
        order = np.argsort(-p, kind="stable")
        covered = np.cumsum(pop["test"][order])[top_n - 1] / pop["test"].sum()
        ax.plot(top_n, covered, label=f"items ordered by {name}")
    ax.set_xlabel("top-N items")
    ax.set_ylabel("share of test interactions on them")
    ax.set_title("TikTok: held-out interactions favour other items than train")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_with(out.with_suffix(".png"), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    write_json(out.with_suffix(".json"), {"correlation": corr, "held_out": held, "order": order,
                                          "rankers": scores})
    console.print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
