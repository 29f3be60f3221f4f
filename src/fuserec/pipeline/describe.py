"""The describe stage inside a pipeline run: describe, embed, route, evaluate, write.

Called by :func:`fuserec.pipeline.run_pipeline` after the split (user taste profiles may only
see training interactions). Steps:

1. describe every item's pictures and clips as words, write a unified description per item and
   a taste profile per user: the LLM restates each record's facts, in batches, within a time
   budget (``llm_budget_s``); the template text where the budget ran out or the checker
   rejected the answer;
2. embed the descriptions, profiles and media words with the pipeline's text encoder;
3. score each item's agreement (cosines of its generated views, the LLM text among them, to
   its own text and to each other; never a template, which embeds the own text verbatim) and
   choose the router's threshold on a validation split carved out of training (or take the
   configured one); items at or above it take text fusion, the rest feature fusion;
4. evaluate on the test split: text fusion for every item, the routed model, and both the
   routed and the feature-fused model on the test items of each path;
5. write ``artifacts/describe/`` and return the results and a Markdown section for the report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from rich.console import Console

from fuserec.data.matrix import interaction_matrix
from fuserec.data.schema import Catalog
from fuserec.data.splits import SPLIT, random_split_per_user
from fuserec.describe import (
    TextCache,
    describe_catalog,
    get_describer,
    get_llm,
    save_described,
)
from fuserec.describe.catalog import MAX_ITEM_CHARS, MAX_PROFILE_ITEMS, DescribedCatalog
from fuserec.describe.generate import GeneratedText
from fuserec.encode import EmbeddingCache, Encoder, encode_texts
from fuserec.evaluate.ranking import evaluate_ranking
from fuserec.fuse.base import View
from fuserec.fuse.router import DESCRIBE, FEATURE, TEXT, ConsistencyRouter, agreement
from fuserec.models.content import ContentCosine

#: the demo's default generation budget: its 500 texts take ~3 min on two free cores
DEFAULT_LLM_BUDGET_S = 240.0


@dataclass
class DescribeConfig:
    """Knobs of the describe stage.

    ``llm``: backend name (``smollm2``, ``gemma3-270m``, ``transformers``, ``llama-cpp``,
    ``openai``) or None for templates only.
    ``llm_items`` / ``llm_users``: how many items / users (first in catalog order) get
    LLM-written text, or None for all (the default).
    ``llm_budget_s``: seconds of generation; what it does not reach gets the template text.
    ``threshold``: the router's threshold; None chooses it on validation data.
    """

    enabled: bool = True
    llm: str | None = "smollm2"
    llm_options: dict[str, Any] = field(default_factory=dict)
    llm_items: int | None = None
    llm_users: int | None = None
    llm_budget_s: float | None = DEFAULT_LLM_BUDGET_S
    whisper_model: str = "tiny.en"
    threshold: float | None = None
    validation_fraction: float = 0.2
    show_items: int = 3


def _history(split: pd.DataFrame, label: str = "train") -> dict[str, list[str]]:
    part = split[split[SPLIT] == label]
    return {str(u): [str(i) for i in g] for u, g in part.groupby("user_id")["item_id"]}


def _embed(texts: Sequence[str], encoder: Encoder, cache: EmbeddingCache, desc: str) -> View:
    present = np.array([bool(t and t.strip()) for t in texts])
    vectors = np.zeros((len(texts), encoder.dim), np.float32)
    if present.any():
        vectors[present] = encode_texts([t for t in texts if t and t.strip()], encoder, cache,
                                        progress=False, desc=desc)
    return View(vectors, present)


def _llm_view(unified: View, described: DescribedCatalog) -> View:
    """The LLM-written descriptions only: neither templates nor a text that copies the own
    text whole (either would measure the own text's agreement with itself)."""
    def generated(g: GeneratedText, own: str) -> bool:
        norm = " ".join(own.lower().split())
        return g.source == "llm" and not (len(norm) > 20 and norm in " ".join(
            g.text.lower().split()))

    keep = np.array([generated(g, o) for g, o in zip(described.unified, described.own,
                                                     strict=True)], bool)
    return View(unified.vectors, np.asarray(unified.present, bool) & keep)


def _restrict(test: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    mask = sp.diags(columns.astype(np.float32))
    out = (test @ mask).tocsr()
    out.eliminate_zeros()
    return out


def _routed_users(views: Mapping[str, View], user_views: Mapping[str, View],
                  profiles: View | None) -> dict[str, View]:
    """The user views that go with routed item views: own content per kept view, profiles."""
    users = {m: v for m, v in user_views.items() if m in views}
    if profiles is not None:
        users[DESCRIBE] = profiles
    return users


def _routed_model(train: sp.csr_matrix, item_views: Mapping[str, View], described: View,
                  user_views: Mapping[str, View], profiles: View | None, routes: np.ndarray,
                  modalities: Sequence[str]) -> ContentCosine:
    views, weights = ConsistencyRouter.routed_views(item_views, described, routes, modalities)
    return ContentCosine(modalities=list(views), weights=weights).fit(
        train, views, _routed_users(views, user_views, profiles))


def _metrics(m: Mapping[str, float], k: int) -> dict[str, float]:
    return {f"recall@{k}": round(float(m[f"recall@{k}"]), 4),
            f"ndcg@{k}": round(float(m[f"ndcg@{k}"]), 4), "users": int(m.get("users", 0))}


def run_describe_stage(catalog: Catalog, split: pd.DataFrame, train: sp.csr_matrix,
                       test: sp.csr_matrix, item_views: Mapping[str, View],
                       user_views: Mapping[str, View], text_encoder: Encoder,
                       encoders: Mapping[str, Encoder], cache: EmbeddingCache,
                       artifacts: Path, config: DescribeConfig, ks: Sequence[int] = (10,),
                       seed: int = 0, fused_model: ContentCosine | None = None,
                       console: Console | None = None) -> dict[str, Any]:
    """Run the describe stage (see the module docstring); returns its results."""
    console = console or Console()
    k = ks[0]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    root = cache.root if cache.root is not None else artifacts.parent / "cache"
    text_cache = TextCache(Path(root) / "describe")
    def build(what: str, factory, *args, **kwargs):
        try:
            return factory(*args, **kwargs)
        except (ImportError, FileNotFoundError, ValueError, OSError) as exc:
            console.print(f"[yellow]describe: no {what} ({exc}); continuing without it")
            return None

    image_d = build("image describer", get_describer, "imagenet-labels",
                    encoder=encoders.get("image"), embedding_cache=cache) \
        if "image" in encoders else None
    audio_d = build("audio describer", get_describer, "whisper-or-acoustic",
                    model=config.whisper_model, audio_encoder=encoders.get("audio"),
                    embedding_cache=cache)
    llm = build(f"LLM backend {config.llm!r}", get_llm, config.llm, **config.llm_options) \
        if config.llm else None
    item_ids = [str(i) for i in catalog.item_ids]
    user_ids = [str(u) for u in catalog.user_ids]
    llm_items = None if config.llm_items is None else item_ids[:config.llm_items]
    llm_users = None if config.llm_users is None else user_ids[:config.llm_users]
    if llm is not None:
        budget = "no time limit" if config.llm_budget_s is None \
            else f"a budget of {config.llm_budget_s:g} s (--llm-budget)"
        console.print(f"describe: the LLM ({config.llm}) writes "
                      f"{'every' if llm_items is None else len(llm_items)} item description(s) "
                      f"and {'every' if llm_users is None else len(llm_users)} user profile(s) "
                      f"within {budget}")
    described = describe_catalog(catalog, image_d, audio_d, llm, text_cache, _history(split),
                                 llm_items, llm_users, config.llm_budget_s)
    for modality, rid, why in described.errors:
        console.print(f"[yellow]could not describe[/] {rid} ({modality}): {why}")
    if llm is not None:
        llm.close()
    timings["describe"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    own = item_views.get("text") or _embed(described.own, text_encoder, cache, "own text")
    unified = _embed(described.unified_texts, text_encoder, cache, "descriptions")
    image_words = _embed(described.image, text_encoder, cache, "image words")
    audio_words = _embed(described.audio, text_encoder, cache, "audio words")
    profiles = _embed(described.profile_texts, text_encoder, cache, "profiles")
    scores = agreement(own, {"image": image_words, "audio": audio_words,
                             "llm": _llm_view(unified, described)})
    described.agreement = scores
    timings["embed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    modalities = [m for m in ("text", "image", "audio")
                  if m in item_views and item_views[m].present.any()]
    score = scores["mean"]
    validation: dict[str, Any] = {}
    if config.threshold is None:
        inner = random_split_per_user(split[split[SPLIT] == "train"].drop(columns=[SPLIT]),
                                      config.validation_fraction, seed=seed + 1)
        sub_train = interaction_matrix(inner[inner[SPLIT] == "train"], user_ids, item_ids)
        val = interaction_matrix(inner[inner[SPLIT] == "test"], user_ids, item_ids)
        # validation profiles see only the inner training items (template text, no LLM)
        inner_history = _history(inner)
        from fuserec.describe.prompts import user_template

        pos = {iid: j for j, iid in enumerate(item_ids)}
        val_profiles = _embed(
            [user_template(mine, [described.own[pos[i]][:MAX_ITEM_CHARS]
                                  for i in inner_history.get(u, []) if i in pos]
                           [:MAX_PROFILE_ITEMS])
             for u, mine in zip(user_ids, described.user_own or [""] * len(user_ids),
                                strict=True)],
            text_encoder, cache, "validation profiles")
        best: tuple[float, float] | None = None
        for threshold in ConsistencyRouter.candidates(score):
            routes = ConsistencyRouter(threshold).route(score)
            model = _routed_model(sub_train, item_views, unified, user_views, val_profiles,
                                  routes, modalities)
            ndcg = evaluate_ranking(model, val, (k,))[f"ndcg@{k}"]
            validation[f"{threshold:.4f}"] = round(float(ndcg), 4)
            if best is None or ndcg > best[1] + 1e-9:
                best = (threshold, ndcg)
        assert best is not None
        threshold = best[0]
    else:
        threshold = float(config.threshold)
    router = ConsistencyRouter(threshold)
    routes = router.route(score)
    described.routes = routes.tolist()
    described.threshold = threshold
    text_path = routes == TEXT

    routed_views, routed_weights = ConsistencyRouter.routed_views(item_views, unified, routes,
                                                                  modalities)
    user_routed = _routed_users(routed_views, user_views, profiles)
    routed = ContentCosine(modalities=list(routed_views), weights=routed_weights).fit(
        train, routed_views, user_routed)
    text_only = ContentCosine(modalities=[DESCRIBE]).fit(
        train, {DESCRIBE: unified}, {DESCRIBE: profiles})
    views = {
        "described (text fusion, all items)": _metrics(evaluate_ranking(text_only, test, ks), k),
        "routed": _metrics(evaluate_ranking(routed, test, ks), k)}
    per_path: dict[str, dict[str, Any]] = {}
    for path, mask in ((TEXT, text_path), (FEATURE, ~text_path)):
        sub = _restrict(test, mask)
        entry: dict[str, Any] = {"items": int(mask.sum()), "test_interactions": int(sub.nnz)}
        if sub.nnz:
            entry["routed"] = _metrics(evaluate_ranking(routed, sub, ks), k)
            if fused_model is not None:
                entry["feature fusion"] = _metrics(evaluate_ranking(fused_model, sub, ks), k)
            entry["text fusion"] = _metrics(evaluate_ranking(text_only, sub, ks), k)
        per_path[path] = entry
    timings["route_evaluate"] = time.perf_counter() - t0

    counts = {TEXT: int(text_path.sum()), FEATURE: int((~text_path).sum())}
    show = item_ids[:config.show_items]
    summary = {"router": counts, "threshold": threshold, "validation_ndcg": validation,
               "views": views, "per_path": per_path, "llm_backend": config.llm,
               "llm_items": llm_items, "llm_users": llm_users,
               "llm_budget_s": config.llm_budget_s,
               "faithfulness": described.faithfulness()}
    embeddings = {"items.unified": unified.vectors,
                  "items.unified.present": unified.present.astype(np.uint8),
                  "users.profile": profiles.vectors,
                  "users.profile.present": profiles.present.astype(np.uint8)}
    save_described(artifacts / "describe", described, embeddings, summary)
    results = {**summary, "llm": described.llm_counts(), "llm_seconds": described.llm_seconds,
               "shown_items": [described.item(i) for i in show],
               "shown_users": [{"id": u, "profile": g.to_json()} for u, g in
                               zip(described.user_ids[:1], described.profiles[:1], strict=False)],
               "describe_errors": len(described.errors),
               "timings_seconds": {k_: round(v, 2) for k_, v in timings.items()}}
    _print(results, console, k)
    # what the models train on: each item's route decides its representation (not JSON)
    results["_routed"] = {"item_features": routed_views, "weights": routed_weights,
                          "user_features": user_routed, "item_texts": unified_item_texts(described)}
    return results


def unified_item_texts(described: DescribedCatalog) -> list[str]:
    """What text models read per item: its own text with its picture and sound words (the
    template), followed by the LLM's description where the LLM wrote one."""
    from fuserec.describe.prompts import item_template

    out = []
    for own, image, audio, gen in zip(described.own, described.image, described.audio,
                                      described.unified, strict=True):
        text = item_template(own, image, audio)
        out.append(f"{text} {gen.text}".strip() if gen.source == "llm" else text)
    return out


def _print(results: Mapping[str, Any], console: Console, k: int) -> None:
    counts, llm = results["router"], results["llm"]
    if results.get("llm_backend"):
        budget = sum(f.get("budget_fallbacks", 0)
                     for f in (results.get("faithfulness") or {}).values())
        console.print(f"LLM wrote {llm['item_llm']} item descriptions and {llm['user_llm']} "
                      f"user profiles in {results['llm_seconds']:.0f} s"
                      f"{_budget_words(results.get('llm_budget_s'))}; "
                      f"{llm['item_fallback'] + llm['user_fallback']} fell back to templates "
                      f"({budget} because the budget ran out)")
    console.print(f"router (threshold {_threshold_words(results['threshold'])}): "
                  f"{counts[TEXT]} items took "
                  f"text fusion, {counts[FEATURE]} feature fusion")
    for path, entry in results["per_path"].items():
        if "routed" in entry:
            console.print(f"  {path} path: routed NDCG@{k} {entry['routed'][f'ndcg@{k}']:.4f}, "
                          f"Recall@{k} {entry['routed'][f'recall@{k}']:.4f} "
                          f"({entry['test_interactions']} test interactions)")
    for item in results["shown_items"]:
        console.print(f"[bold]{item['id']}[/] ({item['route']}, "
                      f"{item['unified']['source']}): {item['unified']['text']}")


def _budget_words(budget: float | None) -> str:
    return "" if budget is None else f" of a {budget:g} s budget (`--llm-budget`)"


def _faithfulness_lines(faith: Mapping[str, Any]) -> list[str]:
    """The report's table of the checker's verdicts per kind of text."""
    rows = [(kind, f) for kind, f in faith.items() if f.get("answered")]
    if not rows:
        return []
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    lines = ["Every LLM answer restates facts it was given (own text, picture labels and "
             "colours, transcript or sound words, attributes; a user's own words and chosen "
             "items); the checker drops each sentence with a content word or number the facts "
             "do not support, and an answer with nothing left falls back to the template.", "",
             "| texts | answered | kept | unsupported sentences (before the checker) | "
             "coverage of facts | main modality complete | budget ran out |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, f in rows:
        lines.append(f"| {kind} | {f['answered']} | {f['kept']} ({pct(f['kept_share'])}) | "
                     f"{pct(f['unsupported_rate_raw'])} | {pct(f['coverage_mean'])} | "
                     f"{pct(f['main_modality_complete_share'])} | {f['budget_fallbacks']} |")
    return [*lines, ""]


def _threshold_words(threshold: float) -> str:
    if threshold == float("inf"):
        return "above every item (feature fusion for all)"
    if threshold == float("-inf"):
        return "below every item (text fusion for all)"
    return f"{threshold:.3f}"


def _why(results: Mapping[str, Any], k: int) -> str:
    counts, views = results["router"], results["views"]
    if counts[TEXT] and counts[FEATURE]:
        return ""
    text_all = views["described (text fusion, all items)"][f"ndcg@{k}"]
    routed = views["routed"][f"ndcg@{k}"]
    return (f" On validation no split of the items beat a single path (text fusion for every "
            f"item: NDCG@{k} {text_all:.4f} on test, the chosen path: {routed:.4f}). Where the "
            "generated words never tell the same story as the text (abstract pictures, music "
            "without words), feature fusion wins everywhere.")


def report_section(results: Mapping[str, Any], k: int) -> str:
    """The report's Markdown section on describe and the router."""
    counts, llm = results["router"], results["llm"]
    lines = ["", "## Describe: every modality as text, and the consistency router", "",
             f"Images became ImageNet labels and colour words, clips a transcript or acoustic "
             f"words. Unified descriptions: {llm['item_llm']} written by the LLM "
             f"(`{results['llm_backend']}`), "
             f"{llm['item_template'] + llm['item_fallback']} by the template "
             f"({llm['item_fallback']} of them after an LLM answer failed the checks or the "
             f"time budget ran out); user profiles: {llm['user_llm']} by the LLM, "
             f"{llm['user_template'] + llm['user_fallback']} by the template. "
             f"LLM time {results['llm_seconds']:.0f} s"
             f"{_budget_words(results.get('llm_budget_s'))}.", "",
             *_faithfulness_lines(results.get("faithfulness") or {}),
             f"Router threshold **{_threshold_words(results['threshold'])}** "
             f"({'chosen on validation' if results['validation_ndcg'] else 'configured'}): "
             f"**{counts['text']}** items took text fusion, **{counts['feature']}** feature "
             "fusion." + _why(results, k), "",
             f"| model | Recall@{k} | NDCG@{k} |", "|---|---:|---:|"]
    for name, m in results["views"].items():
        lines.append(f"| {name} | {m[f'recall@{k}']:.4f} | {m[f'ndcg@{k}']:.4f} |")
    lines += ["", f"Accuracy on each path's test items (NDCG@{k}):", "",
              "| path | items | test interactions | routed | text fusion | feature fusion |",
              "|---|---:|---:|---:|---:|---:|"]
    for path, e in results["per_path"].items():
        def cell(name: str, e: Mapping[str, Any] = e) -> str:
            return f"{e[name][f'ndcg@{k}']:.4f}" if name in e else "-"
        lines.append(f"| {path} | {e['items']} | {e['test_interactions']} | {cell('routed')} "
                     f"| {cell('text fusion')} | {cell('feature fusion')} |")
    lines += ["", "Text views of a few items (`fuserec describe --item ID --artifacts ...` shows "
              "any item):", ""]
    for item in results["shown_items"]:
        ag = item["agreement"]
        lines += [f"**{item['id']}**: route **{item['route']}** (agreement "
                  f"{ag.get('mean', float('nan')):.3f})", "",
                  f"- own text: {item['own']}", f"- image: {item['image']}",
                  f"- audio: {item['audio']}",
                  f"- unified ({item['unified']['source']}): {item['unified']['text']}", ""]
    for user in results["shown_users"]:
        lines += [f"**{user['id']}** taste profile ({user['profile']['source']}): "
                  f"{user['profile']['text']}", ""]
    return "\n".join(lines) + "\n"


def show_described(artifacts: Path, item_ids: Sequence[str], user_ids: Sequence[str],
                   console: Console | None = None) -> bool:
    """Print every text view of the given items / users of an artifact folder.

    Returns False (after saying why) when an id is unknown or the run had no describe stage.
    """
    import json

    from rich.panel import Panel
    from rich.table import Table

    from fuserec.describe import load_described

    console = console or Console()
    try:
        items, users, summary = load_described(Path(artifacts) / "describe")
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/] (run the pipeline with describe enabled)")
        return False
    ok = True
    if not item_ids and not user_ids:
        item_ids = items["id"].head(3).tolist()
    def lookup(frame: pd.DataFrame, rid: str, kind: str) -> pd.Series | None:
        rows = frame[frame["id"] == rid]
        if rows.empty:
            console.print(f"[red]unknown {kind} id {rid!r}[/]")
            return None
        return rows.iloc[0]

    for iid in item_ids:
        row = lookup(items, iid, "item")
        if row is None:
            ok = False
            continue
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row("own text", row["own"] or "-")
        table.add_row("image", row["image"] or "-")
        table.add_row("audio", row["audio"] or "-")
        source = row["unified_source"] + (f", fallback: {row['fallback_reason']}"
                                          if row["fallback_reason"] else "")
        table.add_row(f"unified ({source})", row["unified"])
        scores = {c[len("agreement_"):]: row[c] for c in items.columns
                  if c.startswith("agreement_")}
        table.add_row("agreement", ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        threshold = summary.get("threshold")
        path = row["route"] or "-"
        how = "text fusion (views agree)" if path == TEXT else "feature fusion (views disagree)"
        table.add_row("router", f"[bold]{path}[/] -> {how}"
                      + (f"; threshold {_threshold_words(threshold)}"
                         if threshold is not None else ""))
        for col in ("image_facts", "audio_facts"):
            if row[col]:
                table.add_row(col.replace("_", " "), json.dumps(json.loads(row[col])))
        console.print(Panel(table, title=f"item {iid}", expand=False))
    for uid in user_ids:
        row = lookup(users, uid, "user")
        if row is None:
            ok = False
            continue
        why = f", LLM answer rejected: {row['fallback_reason']}" if row["fallback_reason"] else ""
        console.print(Panel(f"[bold]own text[/] {row['own'] or '-'}\n[bold]taste profile "
                            f"({row['profile_source']}{why})[/] {row['profile']}",
                            title=f"user {uid}", expand=False))
    return ok


__all__ = ["DescribeConfig", "report_section", "run_describe_stage", "show_described"]
