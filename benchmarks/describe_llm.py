"""The describe stage's language model: engines and models side by side on the same prompts.

    nice .venv/bin/python benchmarks/describe_llm.py --items 300 --users 200 \
        --json runs/benchmarks/describe_llm.json

Builds the demo catalog (``--items`` / ``--users``, seed 7), describes its pictures and clips
with the real describers (cached under ``--work``), turns every item and user into its fact
prompt (:mod:`fuserec.describe.prompts`), then generates with:

1. ``transformers``: today's path (SmolLM2-135M de-quantised into transformers, one prompt at
   a time), on the first ``--baseline-n`` prompts only (it takes ~10 s a text);
2. ``smollm2`` on CTranslate2 (int8, batches of ``--batch-size``): the same first prompts
   (the side-by-side ratio), then every prompt;
3. ``gemma3-270m`` on CTranslate2, every prompt (``--no-gemma`` skips it).

Per run: texts/s, output tokens/s, the checker's verdicts (share kept, unsupported sentences
before filtering), coverage of the facts and the share of kept item texts that mention every
fact of their main modality. Model loading and the one-off conversion are timed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fuserec.data.loaders import load_catalog  # noqa: E402
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog  # noqa: E402
from fuserec.describe import TextCache, describe_catalog, get_describer, get_llm  # noqa: E402
from fuserec.describe.generate import GeneratedText, Request, judge  # noqa: E402
from fuserec.describe.prompts import (  # noqa: E402
    item_prompt,
    item_template,
    user_prompt,
    user_template,
)


def build_requests(work: Path, items: int, users: int) -> list[tuple[str, Request]]:
    """``(kind, request)`` for every item, then every user, of the demo catalog."""
    root = work / "catalog"
    if not (root / "items.csv").exists():
        generate_demo_catalog(root, DemoCatalogSpec(n_items=items, n_users=users, seed=7,
                                                    inject_errors=False), progress=False)
    catalog, _ = load_catalog(root, progress=False)
    history: dict[str, list[str]] = {}
    for u, i in zip(catalog.interactions["user_id"], catalog.interactions["item_id"],
                    strict=True):
        history.setdefault(str(u), []).append(str(i))
    d = describe_catalog(catalog, get_describer("imagenet-labels"),
                         get_describer("whisper-or-acoustic"), None,
                         TextCache(work / "cache"), history)
    out = [("item", Request(item_prompt(f), item_template(t, im, au), f))
           for f, t, im, au in zip(d.item_facts, d.own, d.image, d.audio, strict=True)]
    out += [("user", Request(user_prompt(f), user_template(own, []), f))
            for f, own in zip(d.user_facts, d.user_own, strict=True)]
    return out


def run(name: str, llm: Any, requests: list[tuple[str, Request]], tokenizer: Any,
        batched: bool) -> dict[str, Any]:
    """Generate every request, time it, judge every answer."""
    t0 = time.perf_counter()
    prompts = [r.messages for _, r in requests]
    answers = llm.chat_batch(prompts) if batched else [llm.chat(m) for m in prompts]
    seconds = time.perf_counter() - t0
    tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    judged = [judge(a, r, name) for a, (_, r) in zip(answers, requests, strict=True)]
    return {"engine": name, "texts": len(answers), "seconds": round(seconds, 1),
            "texts_per_s": round(len(answers) / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1), **quality(judged, requests),
            "examples": [{"kind": k, "raw": a, "kept": g.text if g.source == "llm" else None,
                          "reason": g.fallback_reason}
                         for a, g, (k, _) in list(zip(answers, judged, requests,
                                                      strict=True))[:6]],
            "_answers": answers}


def quality(judged: list[GeneratedText], requests: list[tuple[str, Request]]) -> dict:
    """Share kept, raw unsupported-sentence rate, coverage, main-modality completeness."""
    kept = [g for g in judged if g.source == "llm"]
    sentences = sum(g.sentences for g in judged)
    rejected = sum(g.rejected for g in judged)
    item_kept = [g for g, (k, _) in zip(judged, requests, strict=True)
                 if k == "item" and g.source == "llm" and g.main_complete is not None]
    covs = [g.coverage for g in kept if g.coverage is not None]
    return {"kept_share": round(len(kept) / max(len(judged), 1), 3),
            "unsupported_sentences_raw": round(rejected / max(sentences, 1), 3),
            "coverage_mean": round(sum(covs) / max(len(covs), 1), 3),
            "items_main_complete": round(sum(g.main_complete for g in item_kept)
                                         / max(len(item_kept), 1), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("runs/benchmarks/describe_llm"))
    ap.add_argument("--baseline-n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-gemma", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    requests = build_requests(args.work, args.items, args.users)
    print(f"{len(requests)} prompts ({args.items} items, {args.users} users) "
          f"in {time.perf_counter() - t0:.0f} s")
    first = requests[:args.baseline_n]
    results: dict[str, Any] = {"prompts": len(requests), "baseline_n": len(first)}

    t0 = time.perf_counter()
    ct2 = get_llm("smollm2", batch_size=args.batch_size).load()
    results["smollm2_ct2_load_s"] = round(time.perf_counter() - t0, 1)
    tok = ct2._tokenizer
    t0 = time.perf_counter()
    # the same decoding settings, so both engines answer the same prompts the same way
    base = get_llm("transformers", max_tokens=ct2.max_tokens,
                   repetition_penalty=ct2.repetition_penalty).load()
    results["transformers_load_s"] = round(time.perf_counter() - t0, 1)
    results["transformers"] = run("transformers", base, first, tok, batched=False)
    base.close()
    results["smollm2_ct2_same"] = run("smollm2", ct2, first, tok, batched=True)
    same = sum(a == b for a, b in zip(results["transformers"]["_answers"],
                                      results["smollm2_ct2_same"]["_answers"], strict=True))
    results["same_answer_share"] = round(same / len(first), 3)
    ratio = (results["smollm2_ct2_same"]["tokens_per_s"]
             / results["transformers"]["tokens_per_s"])
    text_ratio = (results["smollm2_ct2_same"]["texts_per_s"]
                  / results["transformers"]["texts_per_s"])
    results["speedup_tokens"], results["speedup_texts"] = round(ratio, 1), round(text_ratio, 1)
    print(f"same {len(first)} prompts: CT2 int8 batched {ratio:.1f}x the tokens/s and "
          f"{text_ratio:.1f}x the texts/s of transformers")
    results["smollm2_ct2_all"] = run("smollm2", ct2, requests, tok, batched=True)
    ct2.close()
    if not args.no_gemma:
        t0 = time.perf_counter()
        gemma = get_llm("gemma3-270m", batch_size=args.batch_size).load()
        results["gemma_ct2_load_s"] = round(time.perf_counter() - t0, 1)
        results["gemma_ct2_all"] = run("gemma3-270m", gemma, requests, gemma._tokenizer,
                                       batched=True)
        gemma.close()
    for key, r in results.items():
        if isinstance(r, dict):
            r.pop("_answers", None)
            print(f"{key:18s} {r['texts']:4d} texts {r['seconds']:7.1f} s "
                  f"{r['texts_per_s']:6.2f} texts/s {r['tokens_per_s']:7.1f} tok/s "
                  f"kept {r['kept_share']:.2f} unsupported(raw) "
                  f"{r['unsupported_sentences_raw']:.2f} coverage {r['coverage_mean']:.2f} "
                  f"main-complete {r['items_main_complete']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
