"""Render a study (:func:`fuserec.evaluate.study.run_study`) as Markdown and one HTML page.

``render_study(study, out)`` writes into ``out``:

* ``report.md``: tables plus the plots as PNG files next to it,
* ``report.html``: a self-contained page (CSS inline, plots inlined as base64 PNG) to open in a
  browser or attach to an e-mail,
* ``study.json``: every number, the exact configuration and the data fingerprint,
* ``plots/*.png``: model comparison, accuracy vs diversity, per-group accuracy, modality
  ablation and cold items.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fuserec.io import write_bytes, write_json, write_text  # noqa: E402

LABELS = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "mrr": "MRR",
          "hit_rate": "HitRate", "coverage": "Coverage", "diversity": "Diversity (ILD)",
          "novelty": "Novelty (bits)", "popularity": "Avg popularity",
          "exposure_gini": "Exposure Gini"}
ACCURACY = ("recall", "ndcg", "precision", "mrr", "hit_rate")
BEYOND = ("coverage", "diversity", "novelty", "popularity", "exposure_gini")
LOWER_IS_BETTER = frozenset({"popularity", "exposure_gini"})

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
PALETTE = ["#3d5a80", "#ee6c4d", "#2a9d8f", "#e9c46a", "#8d6cab", "#98c1d9", "#6c757d",
           "#f4a261"]
MODALITY_COLORS = {1: "#98c1d9", 2: "#3d5a80", 3: "#ee6c4d"}


def _style(ax: plt.Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color(MUTED)
    ax.tick_params(colors=INK, labelsize=9)
    ax.yaxis.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def _top_legend(fig: Figure, ax: plt.Axes) -> None:
    """One legend row above all panels (never over the bars), then a tight layout."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=min(6, len(labels)), frameon=False,
               fontsize=9, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.92))


def _colors(names: Sequence[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _label(metric: str) -> str:
    name, _, k = metric.partition("@")
    return f"{LABELS.get(name, name)}@{k}" if k else LABELS.get(name, name)


# -- plots -------------------------------------------------------------------------------------


def plot_models(study: dict[str, Any]) -> Figure | None:
    """Grouped bars: accuracy metrics (left) and beyond-accuracy metrics (right) per model."""
    models = study["models"]
    if not models:
        return None
    k = study["config"]["ks"][0]
    names = list(models)
    colors = _colors(names)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), dpi=120,
                             gridspec_kw={"width_ratios": [5, 4]})
    for ax, metrics, title in ((axes[0], ACCURACY, f"Accuracy @{k} (higher is better)"),
                               (axes[1], ("coverage", "diversity", "popularity", "exposure_gini"),
                                f"Beyond accuracy @{k}")):
        metrics = [m for m in metrics if f"{m}@{k}" in models[names[0]]["metrics"]]
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [models[name]["metrics"][f"{m}@{k}"] for m in metrics]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))]
            ax.bar(xs, values, width * 0.92, color=colors[name], label=name)
        ax.set_xticks(range(len(metrics)),
                      [LABELS[m].replace(" (", "\n(").replace("Avg ", "Avg\n")
                       + (" ↓" if m in LOWER_IS_BETTER else " ↑") for m in metrics])
        ax.set_title(title, loc="left", fontsize=11, color=INK)
        _style(ax)
    _top_legend(fig, axes[0])
    return fig


def plot_tradeoff(study: dict[str, Any]) -> Figure | None:
    """NDCG@k against intra-list diversity@k as MMR's λ grows, one line per model."""
    curves = study.get("tradeoff") or {}
    if not curves:
        return None
    k = study["config"]["ks"][0]
    colors = _colors(list(study["models"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), dpi=120)
    for name, curve in curves.items():
        div = [p[f"diversity@{k}"] for p in curve]
        acc = [p[f"ndcg@{k}"] for p in curve]
        cov = [p[f"coverage@{k}"] for p in curve]
        lams = [p["lambda"] for p in curve]
        c = colors.get(name, MUTED)
        axes[0].plot(div, acc, "-o", color=c, label=name, markersize=4, linewidth=1.8)
        for x, y, lam in zip(div, acc, lams, strict=True):
            if lam in (0.0, 0.5, 0.9) or lam == lams[-1]:
                axes[0].annotate(f"λ={lam:g}", (x, y), textcoords="offset points",
                                 xytext=(4, 4), fontsize=7, color=c)
        axes[1].plot(lams, cov, "-o", color=c, label=name, markersize=4, linewidth=1.8)
    axes[0].set_xlabel(f"intra-list diversity@{k} (1 − mean cosine of content vectors)")
    axes[0].set_ylabel(f"NDCG@{k}")
    axes[0].set_title("Accuracy vs diversity under MMR re-ranking", loc="left", fontsize=11)
    axes[1].set_xlabel("MMR λ (0 = pure relevance)")
    axes[1].set_ylabel(f"catalog coverage@{k}")
    axes[1].set_title("Coverage as λ grows", loc="left", fontsize=11)
    for ax in axes:
        _style(ax)
        ax.xaxis.grid(True, color=GRID, linewidth=0.8)
    axes[0].legend(frameon=False, fontsize=8.5)
    fig.tight_layout()
    return fig


def plot_groups(study: dict[str, Any]) -> Figure | None:
    """NDCG@k and Recall@k per user activity group, bars per model."""
    rows = study.get("groups", {}).get("rows") or {}
    if not rows:
        return None
    k = study["config"]["ks"][0]
    names = list(rows)
    colors = _colors(list(study["models"]))
    groups = [g for g in ("cold", "medium", "heavy") if any(g in rows[n] for n in names)]
    ranges = study["groups"].get("ranges", {})
    sizes = study["groups"].get("sizes", {})
    ticks = [f"{g}\n{ranges[g][0]}–{ranges[g][1]} items, {sizes.get(g, 0)} users"
             if g in ranges else g for g in groups]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=120, sharey=False)
    width = 0.8 / len(names)
    for ax, metric in zip(axes, ("ndcg", "recall"), strict=True):
        for i, name in enumerate(names):
            values = [rows[name].get(g, {}).get(f"{metric}@{k}", 0.0) for g in groups]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(groups))]
            ax.bar(xs, values, width * 0.92, color=colors.get(name, MUTED), label=name)
        ax.set_xticks(range(len(groups)), ticks, fontsize=8.5)
        ax.set_title(f"{LABELS[metric]}@{k} by user activity", loc="left", fontsize=11)
        _style(ax)
    _top_legend(fig, axes[0])
    return fig


def plot_ablation(study: dict[str, Any]) -> Figure | None:
    """Horizontal bars of NDCG@k and Recall@k for every modality subset of the content model."""
    ablation = study.get("ablation") or {}
    if not ablation:
        return None
    k = study["config"]["ks"][0]
    names = sorted(ablation, key=lambda n: ablation[n][f"ndcg@{k}"])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.3), dpi=120)
    ys = range(len(names))
    ndcg = [ablation[n][f"ndcg@{k}"] for n in names]
    recall = [ablation[n][f"recall@{k}"] for n in names]
    colors = [MODALITY_COLORS.get(n.count("+") + 1, PALETTE[0]) for n in names]
    ax.barh([y + 0.2 for y in ys], ndcg, 0.38, color=colors, label=f"NDCG@{k}")
    ax.barh([y - 0.2 for y in ys], recall, 0.38, color=colors, alpha=0.45, label=f"Recall@{k}")
    for y, v in zip(ys, ndcg, strict=True):
        ax.text(v, y + 0.2, f" {v:.3f}", va="center", fontsize=8, color=INK)
    ax.set_yticks(list(ys), names, fontsize=9)
    ax.set_title("Modality ablation of the content model (dark: NDCG, light: Recall)",
                 loc="left", fontsize=11)
    _style(ax)
    ax.yaxis.grid(False)
    ax.xaxis.grid(True, color=GRID, linewidth=0.8)
    fig.tight_layout()
    return fig


def plot_cold(study: dict[str, Any]) -> Figure | None:
    """NDCG@k and Recall@k on held-out cold items, per model."""
    rows = (study.get("cold_items") or {}).get("rows") or {}
    if not rows:
        return None
    k = study["config"]["ks"][0]
    names = list(rows)
    colors = _colors(list(study["models"]))
    fig, ax = plt.subplots(figsize=(9, 2.9), dpi=120)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [rows[n][f"ndcg@{k}"] for n in names], 0.38,
           color=[colors.get(n, MUTED) for n in names], label=f"NDCG@{k}")
    ax.bar([x + 0.2 for x in xs], [rows[n][f"recall@{k}"] for n in names], 0.38,
           color=[colors.get(n, MUTED) for n in names], alpha=0.45, label=f"Recall@{k}")
    ax.set_xticks(list(xs), names, fontsize=9)
    ax.set_title(f"Cold items: ranking {study['cold_items']['items']} items never seen in "
                 "training (dark: NDCG, light: Recall)", loc="left", fontsize=10)
    _style(ax)
    fig.tight_layout()
    return fig


PLOTS: dict[str, tuple[str, Callable[[dict[str, Any]], Figure | None]]] = {
    "models": ("Model comparison", plot_models),
    "tradeoff": ("Accuracy vs diversity", plot_tradeoff),
    "groups": ("Accuracy by user activity", plot_groups),
    "ablation": ("Modality ablation", plot_ablation),
    "cold": ("Cold items", plot_cold),
}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    plt.close(fig)
    return buf.getvalue()


# -- tables ------------------------------------------------------------------------------------


def _best(rows: dict[str, dict[str, float]], metric: str) -> float | None:
    values = [r[metric] for r in rows.values() if metric in r and r[metric] is not None]
    if not values:
        return None
    return min(values) if metric.partition("@")[0] in LOWER_IS_BETTER else max(values)


def metric_table(rows: dict[str, dict[str, float]], metrics: Sequence[str],
                 first: str = "model", extra: dict[str, dict[str, str]] | None = None
                 ) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, formatted cells and a 'best in column' flag per cell."""
    extra = extra or {}
    extra_cols = list(next(iter(extra.values()), {}).keys())
    header = [first, *[_label(m) + (" ↓" if m.partition("@")[0] in LOWER_IS_BETTER else "")
                       for m in metrics], *extra_cols]
    best = {m: _best(rows, m) for m in metrics}
    cells, flags = [], []
    for name, r in rows.items():
        row, flag = [name], [False]
        for m in metrics:
            v = r.get(m)
            row.append("–" if v is None else f"{v:.4f}")
            flag.append(v is not None and len(rows) > 1 and best[m] is not None
                        and abs(v - best[m]) < 1e-12)
        for c in extra_cols:
            row.append(extra.get(name, {}).get(c, ""))
            flag.append(False)
        cells.append(row)
        flags.append(flag)
    return header, cells, flags


def _md_table(header: list[str], cells: list[list[str]], flags: list[list[bool]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row, flag in zip(cells, flags, strict=True):
        lines.append("| " + " | ".join(f"**{c}**" if f else c
                                       for c, f in zip(row, flag, strict=True)) + " |")
    return lines


def _html_table(header: list[str], cells: list[list[str]], flags: list[list[bool]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"best" if f else ""}">{html.escape(c)}</td>'
                         for c, f in zip(row, flag, strict=True)) + "</tr>"
        for row, flag in zip(cells, flags, strict=True))
    return (f'<div class="tw"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


# -- headlines ---------------------------------------------------------------------------------


def headlines(study: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(title, big number, explanation) cards summarising the study."""
    k = study["config"]["ks"][0]
    out: list[tuple[str, str, str]] = []
    models = study["models"]
    if models:
        best = max(models, key=lambda n: models[n]["metrics"][f"ndcg@{k}"])
        m = models[best]["metrics"]
        runner = sorted((n for n in models if n != best),
                        key=lambda n: -models[n]["metrics"][f"ndcg@{k}"])
        note = ""
        if runner:
            r = models[runner[0]]["metrics"][f"ndcg@{k}"]
            note = f"; next: {runner[0]} {r:.4f} ({_pct(m[f'ndcg@{k}'], r)})"
        out.append(("Best model", best, f"NDCG@{k} {m[f'ndcg@{k}']:.4f}, "
                    f"Recall@{k} {m[f'recall@{k}']:.4f}{note}"))
    ablation = study.get("ablation") or {}
    if ablation:
        singles = {n: v for n, v in ablation.items() if "+" not in n}
        full = max(ablation, key=lambda n: n.count("+"))
        best_single = max(singles, key=lambda n: singles[n][f"ndcg@{k}"])
        f, s = ablation[full][f"ndcg@{k}"], singles[best_single][f"ndcg@{k}"]
        fd, sd = ablation[full].get(f"diversity@{k}"), singles[best_single].get(f"diversity@{k}")
        div = f"; diversity {_pct(fd, sd)}" if fd is not None and sd else ""
        out.append(("Fusion vs best single view", _pct(f, s),
                    f"NDCG@{k} of all views fused ({f:.4f}) vs {best_single} alone ({s:.4f})"
                    + div))
    curves = study.get("tradeoff") or {}
    if curves and models:
        best = max(models, key=lambda n: models[n]["metrics"][f"ndcg@{k}"])
        curve = curves.get(best) or next(iter(curves.values()))
        base = curve[0]
        # the most diverse point that keeps at least 95% of the base NDCG
        ok = [p for p in curve if p[f"ndcg@{k}"] >= 0.95 * base[f"ndcg@{k}"]]
        pick = max(ok, key=lambda p: p[f"diversity@{k}"]) if ok else base
        out.append((f"MMR on {best}", f"λ = {pick['lambda']:g}",
                    f"diversity {_pct(pick[f'diversity@{k}'], base[f'diversity@{k}'])}, "
                    f"coverage {_pct(pick[f'coverage@{k}'], base[f'coverage@{k}'])} for "
                    f"NDCG {_pct(pick[f'ndcg@{k}'], base[f'ndcg@{k}'])} (most diverse point "
                    "within 5% of the best NDCG)"))
    cold = (study.get("cold_items") or {}).get("rows") or {}
    if cold:
        best = max(cold, key=lambda n: cold[n][f"ndcg@{k}"])
        out.append(("Cold items", best, f"NDCG@{k} {cold[best][f'ndcg@{k}']:.4f} on "
                    f"{study['cold_items']['items']} items held out of training"))
    return out


def _pct(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{100 * (a / b - 1):+.1f}%"


# -- the page ----------------------------------------------------------------------------------

CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--accent:#3d5a80;--bg:#f7f8fa}
*{box-sizing:border-box}body{margin:0;font:15px/1.55 -apple-system,BlinkMacSystemFont,"Segoe UI",
Roboto,Helvetica,Arial,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:32px 28px 64px}
header h1{font-size:28px;margin:0 0 4px}header p{color:var(--muted);margin:0}
.fp{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#eef1f5;
padding:2px 6px;border-radius:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:14px;
margin:24px 0 8px}.card{background:#fff;border:1px solid var(--line);border-radius:10px;
padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.03)}.card h3{margin:0;font-size:12px;
text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}.card .big{font-size:24px;
font-weight:650;margin:4px 0;color:var(--accent)}.card p{margin:0;font-size:13px;color:var(--muted)}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;
margin:18px 0}section h2{margin:0 0 6px;font-size:20px}section>p.lead{color:var(--muted);
margin:0 0 12px}img{max-width:100%;display:block;margin:8px auto 14px}
.tw{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:13px;
font-variant-numeric:tabular-nums}th,td{padding:6px 10px;border-bottom:1px solid var(--line);
text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}
th{background:#f3f5f8;font-weight:600}td.best{font-weight:700;color:#1b7f5b}
tbody tr:hover{background:#fafbfc}pre{background:#0f172a;color:#e2e8f0;padding:14px;
border-radius:8px;overflow-x:auto;font-size:12px}nav{margin:18px 0 0;font-size:13px}
nav a{color:var(--accent);margin-right:14px;text-decoration:none}
details{margin-top:10px}summary{cursor:pointer;color:var(--accent);font-size:13px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;background:#eef1f5;
padding:1px 4px;border-radius:4px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:28px}
"""


def render_study(study: dict[str, Any], out: str | Path, title: str | None = None) -> Path:
    """Write ``report.md``, ``report.html``, ``study.json`` and ``plots/`` into ``out``.

    Returns the path of the HTML page.
    """
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    write_json(out / "study.json", study)
    images: dict[str, bytes] = {}
    for key, (_, fn) in PLOTS.items():
        fig = fn(study)
        if fig is not None:
            images[key] = _png(fig)
            write_bytes(out / "plots" / f"{key}.png", images[key])
    title = title or f"fuserec evaluation — {study['dataset']}"
    sections = _sections(study)
    write_text(out / "report.md", _markdown(study, title, sections, images))
    return write_text(out / "report.html", _html(study, title, sections, images))


def _sections(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Each report section: id, title, lead text, plot key, tables (header, cells, flags)."""
    ks = study["config"]["ks"]
    k = ks[0]
    models = study["models"]
    sections: list[dict[str, Any]] = []
    rows = {n: m["metrics"] for n, m in models.items()}
    acc = [f"{m}@{kk}" for kk in ks for m in ACCURACY]
    beyond = [f"{m}@{kk}" for kk in ks for m in BEYOND if f"{m}@{kk}" in next(
        iter(rows.values()), {})]
    extra = {n: {"train s": f"{m['train_seconds']:.2f}"} for n, m in models.items()
             if m.get("train_seconds") is not None}
    extra = extra if len(extra) == len(models) else {}
    c = study["counts"]
    sections.append({
        "id": "models", "title": "Model comparison", "plot": "models",
        "lead": f"Full ranking over all {c['items']} items for {c['test_users']} test users, "
                "each user's training (and validation) items excluded. Best value per column in "
                "bold; ↓ marks metrics where lower means less popularity bias. Diversity is "
                "1 − mean pairwise cosine of the items' fused content vectors (centred per "
                "modality, so unrelated items sit near 1).",
        "tables": [metric_table(rows, acc, extra=extra), metric_table(rows, beyond)]})
    curves = study.get("tradeoff") or {}
    if curves:
        tables = []
        order = sorted(curves, key=lambda n: -models.get(n, {}).get("metrics", {}).get(
            f"ndcg@{k}", 0.0))
        for name in order:
            curve = curves[name]
            r = {f"{name}, λ={p['lambda']:g}": p for p in curve}
            tables.append(metric_table(r, [f"{m}@{k}" for m in ("ndcg", "recall", "diversity",
                                                              "coverage", "novelty",
                                                              "popularity")], first="model, λ"))
        sections.append({
            "id": "tradeoff", "title": "Accuracy vs diversity (MMR re-ranking)", "plot": "tradeoff",
            "lead": "Maximal marginal relevance re-ranks each user's top candidates: each pick "
                    "maximises (1 − λ)·relevance − λ·(max cosine to the items already picked), "
                    "with cosine over the fused content embeddings. λ = 0 is the model's own "
                    "order. The same re-ranker backs `recommend(..., diversity=λ)` and the API's "
                    "`diversity` parameter.",
            "tables": tables, "show": 1})
    groups = study.get("groups") or {}
    if groups.get("rows"):
        g_rows = {f"{n} / {g}": v for n, per in groups["rows"].items() for g, v in per.items()}
        ranges = groups.get("ranges", {})
        desc = ", ".join(f"{g}: {r[0]}–{r[1]} training items ({groups['sizes'][g]} users)"
                         for g, r in ranges.items())
        sections.append({
            "id": "groups", "title": "Accuracy by user activity", "plot": "groups",
            "lead": f"Test users split into terciles of their training history length — {desc}.",
            "tables": [metric_table(g_rows, [f"{m}@{k}" for m in ACCURACY],
                                    first="model / group")]})
    cold = study.get("cold_items") or {}
    if cold.get("rows"):
        sections.append({
            "id": "cold", "title": "Cold items", "plot": "cold",
            "lead": f"{cold['items']} items ({cold['fraction']:.0%} of the items with test "
                    "interactions) are removed from training entirely; every model is refitted "
                    f"and ranks only these items for the {cold['users']} users who interacted "
                    f"with them ({cold['interactions']} interactions). Models without content "
                    "cannot tell unseen items apart (their order is arbitrary); content models "
                    "can.",
            "tables": [metric_table(cold["rows"], [f"{m}@{kk}" for kk in ks for m in ACCURACY])]})
    ablation = study.get("ablation") or {}
    if ablation:
        sections.append({
            "id": "ablation", "title": "Modality ablation", "plot": "ablation",
            "lead": "The content model (the seed's cosine over summed, normalised modality "
                    "vectors) on each view alone, each pair and all views, same split and "
                    "same hyperparameters.",
            "tables": [metric_table(ablation, [f"{m}@{k}" for m in (*ACCURACY, *BEYOND)],
                                    first="views")]})
    tuning = study.get("tuning") or {}
    if tuning:
        t_rows: dict[str, dict[str, float]] = {}
        chosen: dict[str, dict[str, str]] = {}
        metric = f"ndcg@{k}"
        for name, t in tuning.items():
            for trial in t["trials"]:
                label = f"{name} " + ", ".join(f"{p}={v}" for p, v in trial["params"].items())
                t_rows[label] = {metric: trial[t.get("metric", metric)]}
                chosen[label] = {"chosen": "✓" if trial["params"] == t["params"] else ""}
        header, cells, _ = metric_table(t_rows, [metric], first="model, parameters",
                                        extra=chosen)
        flags = [[False, False, row[-1] == "✓"] for row in cells]
        sections.append({
            "id": "tuning", "title": "Tuning on the validation split", "plot": None,
            "lead": f"Grid search on the validation split by NDCG@{k} "
                    f"({study['split'].get('validation')}); the test split was used only for "
                    "the numbers above.",
            "tables": [(header, cells, flags)]})
    return sections


def _repro(study: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": study["dataset"], "source": study.get("source"),
            "split": study.get("split"), "counts": study.get("counts"),
            "config": study["config"], "fingerprint": study.get("fingerprint"),
            "environment": study.get("environment"), "created": study.get("created")}


def _markdown(study: dict[str, Any], title: str, sections: list[dict[str, Any]],
              images: dict[str, bytes]) -> str:
    fp = study.get("fingerprint", {})
    lines = [f"# {title}", "",
             f"Data fingerprint `{fp.get('combined', '?')[:16]}` · split "
             f"`{study['split'].get('method')}` · created {study.get('created')}", ""]
    for head, big, note in headlines(study):
        lines.append(f"- **{head}: {big}** — {note}")
    for s in sections:
        lines += ["", f"## {s['title']}", "", s["lead"], ""]
        if s.get("plot") in images:
            lines += [f"![{s['title']}](plots/{s['plot']}.png)", ""]
        for table in s["tables"]:
            lines += [*_md_table(*table), ""]
    lines += ["## Reproduce", "",
              "Every number above was computed from data with this fingerprint (SHA-256) and "
              "this configuration:", "", "```json", json.dumps(_repro(study), indent=2,
                                                               default=str), "```", ""]
    return "\n".join(lines)


def _html(study: dict[str, Any], title: str, sections: list[dict[str, Any]],
          images: dict[str, bytes]) -> str:
    fp = study.get("fingerprint", {})
    c = study["counts"]
    esc = html.escape
    cards = "".join(f'<div class="card"><h3>{esc(h)}</h3><div class="big">{esc(b)}</div>'
                    f"<p>{esc(n)}</p></div>" for h, b, n in headlines(study))
    nav = "".join(f'<a href="#{s["id"]}">{esc(s["title"])}</a>' for s in sections)
    nav += '<a href="#reproduce">Reproduce</a>'
    body = []
    for s in sections:
        img = ""
        if s.get("plot") in images:
            data = base64.b64encode(images[s["plot"]]).decode()
            img = f'<img alt="{esc(s["title"])}" src="data:image/png;base64,{data}">'
        shown, hidden = s["tables"][:s.get("show", len(s["tables"]))], \
            s["tables"][s.get("show", len(s["tables"])):]
        tables = "".join(_html_table(*t) for t in shown)
        if hidden:
            tables += (f"<details><summary>{len(hidden)} more table(s)</summary>"
                       + "".join(_html_table(*t) for t in hidden) + "</details>")
        lead = _code(esc(s["lead"]))
        body.append(f'<section id="{s["id"]}"><h2>{esc(s["title"])}</h2>'
                    f'<p class="lead">{lead}</p>{img}{tables}</section>')
    repro = esc(json.dumps(_repro(study), indent=2, default=str))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body><main>
<header><h1>{esc(title)}</h1>
<p>{c['users']} users · {c['items']} items · {c['train']} train / {c['validation']} validation /
{c['test']} test interactions · split <b>{esc(str(study['split'].get('method')))}</b> ·
modalities {esc(', '.join(study.get('modalities') or []) or 'none')}</p>
<p>data fingerprint <span class="fp">{esc(fp.get('combined', '?')[:16])}</span> ·
created {esc(str(study.get('created')))} · {study.get('seconds', 0):.1f} s</p>
<nav>{nav}</nav></header>
<div class="cards">{cards}</div>
{''.join(body)}
<section id="reproduce"><h2>Reproduce</h2><p class="lead">The exact configuration, the split and
SHA-256 fingerprints of the interaction data and the catalog this report was computed from.
Run <code>fuserec report --artifacts {esc(str(study.get('source') or 'DIR'))}</code> with the
same options to recompute it.</p><pre>{repro}</pre></section>
<footer>generated by fuserec {esc(str(study.get('environment', {}).get('fuserec', '')))}</footer>
</main></body></html>
"""


def _code(text: str) -> str:
    """Markdown-style `code` spans to <code> in already-escaped text."""
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


__all__ = ["PLOTS", "headlines", "metric_table", "render_study"]
