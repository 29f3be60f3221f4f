"""Render a pipeline's results as Markdown plus a bar chart people can glance at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fuserec.io import write_text, write_with  # noqa: E402


def render_report(results: dict[str, Any], out: Path) -> Path:
    """Write ``report.md`` and ``report.png`` into ``out``; return the Markdown path."""
    out = Path(out)
    k = results["config"]["ks"][0]
    rows = {**results["views"], "popularity (baseline)": results["baselines"]["popularity"]}
    _plot(rows, k, out / "report.png")
    fused = results["views"]["fused"]

    lines = ["# fuserec report", "",
             f"Catalog: `{results['catalog']}`  ",
             f"{results['counts']['items']} items, {results['counts']['users']} users, "
             f"{results['counts']['train']} training and {results['counts']['test']} held-out "
             "interactions (random per-user split).", "",
             "![accuracy per view](report.png)", "",
             "## Accuracy per view (full ranking over all items, training items excluded)", "",
             f"| view | Recall@{k} | NDCG@{k} | fused / view (Recall) | fused / view (NDCG) |",
             "|---|---:|---:|---:|---:|"]
    for name, m in rows.items():
        if name == "fused":
            lines.append(f"| **fused** | **{m[f'recall@{k}']:.4f}** | **{m[f'ndcg@{k}']:.4f}** "
                         "| | |")
            continue
        r = fused[f"recall@{k}"] / max(m[f"recall@{k}"], 1e-12)
        n = fused[f"ndcg@{k}"] / max(m[f"ndcg@{k}"], 1e-12)
        lines.append(f"| {name} | {m[f'recall@{k}']:.4f} | {m[f'ndcg@{k}']:.4f} "
                     f"| {r:.2f}x | {n:.2f}x |")
    best = results.get("best_single_view")
    if best:
        b = results["views"][best]
        gain = 100 * (fused[f"ndcg@{k}"] / max(b[f"ndcg@{k}"], 1e-12) - 1)
        verdict = "beats" if results["fused_beats_every_view"] else "does not beat"
        lines += ["", f"The fused view {verdict} every single view. Against the best single "
                  f"view ({best}) it changes NDCG@{k} by {gain:+.1f}% and Recall@{k} by "
                  f"{100 * (fused[f'recall@{k}'] / max(b[f'recall@{k}'], 1e-12) - 1):+.1f}%."]
    v = results["validation"]
    lines += ["", "## Validation", "",
              f"{v['ok']} records accepted, {v['rejected']} rejected, "
              f"{v['dropped_media']} media files dropped; details in `validation.json`."]
    if results.get("encode_errors"):
        lines.append(f"{len(results['encode_errors'])} media files could not be encoded "
                     "(listed in `results.json`).")
    lines += ["", "## Encoders", "", "| modality | encoder | dim | version |", "|---|---|---:|---|"]
    for m, e in results["encoders"].items():
        lines.append(f"| {m} | {e['name']} | {e['dim']} | `{e['version']}` |")
    lines += ["", "## Time", ""]
    lines += [f"- {step}: {sec:.1f} s" for step, sec in results["timings_seconds"].items()]
    lines += ["", f"Configuration: `{results['config']}`", ""]
    return write_text(out / "report.md", "\n".join(lines))


def _plot(rows: dict[str, dict[str, float]], k: int, path: Path) -> None:
    names = list(rows)
    recall = [rows[n][f"recall@{k}"] for n in names]
    ndcg = [rows[n][f"ndcg@{k}"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    x = range(len(names))
    colors = ["#2a9d8f" if n == "fused" else "#8d99ae" for n in names]
    ax.bar([i - 0.2 for i in x], recall, 0.4, label=f"Recall@{k}", color=colors)
    ax.bar([i + 0.2 for i in x], ndcg, 0.4, label=f"NDCG@{k}", color=colors, alpha=0.6,
           hatch="//")
    ax.set_xticks(list(x), names, rotation=15)
    ax.set_ylabel("score on held-out interactions")
    ax.set_title("Accuracy per view: fused vs single modalities")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
