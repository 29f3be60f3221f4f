"""Check a demo run's results.json: every view scored, fusion ahead, the candidate models
trained and the best on validation served, validation and router seen.

Usage: python scripts/check_demo.py RUN_FOLDER   (exits non-zero, naming the failed check)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    run = Path(folder)
    results = json.loads((run / "results.json").read_text())
    views = results["views"]
    problems = []
    for view in ("text", "image", "audio", "fused"):
        if view not in views:
            problems.append(f"view {view!r} missing")
    fused = views.get("fused", {}).get("ndcg@10", 0.0)
    for view, metrics in views.items():
        if view != "fused" and not fused > metrics["ndcg@10"]:
            problems.append(f"fused NDCG@10 {fused:.4f} does not beat {view} "
                            f"{metrics['ndcg@10']:.4f}")
    popularity = results["baselines"]["popularity"]["ndcg@10"]
    if not fused > popularity:
        problems.append(f"fused NDCG@10 {fused:.4f} does not beat popularity {popularity:.4f}")
    if results["validation"]["rejected"] < 1:
        problems.append("the demo's broken records were not rejected")
    models = results.get("models", {})
    ran = {n: m for n, m in models.items() if "skipped" not in m}
    served = results.get("served", {}).get("name")
    if len(ran) < 5:
        problems.append(f"only {len(ran)} candidate models ran: {sorted(ran)}")
    elif served != max(ran, key=lambda n: ran[n]["validation"]["ndcg@10"]):
        problems.append(f"served {served!r} is not the best candidate on validation")
    elif "content-cosine" in ran and not (ran[served]["test"]["ndcg@10"]
                                          >= ran["content-cosine"]["test"]["ndcg@10"]):
        problems.append(f"served {served} test NDCG@10 {ran[served]['test']['ndcg@10']:.4f} "
                        f"is below content-cosine {ran['content-cosine']['test']['ndcg@10']:.4f}")
    if not {"text", "feature"} <= set(results.get("router", {})):
        problems.append("results.json has no router split")
    for name in ("report.md", "report.png", "artifacts/manifest.json"):
        if not (run / name).is_file():
            problems.append(f"{name} was not written")
    for p in problems:
        print(f"demo check failed: {p}", file=sys.stderr)
    if not problems:
        print(f"demo check passed: fused NDCG@10 {fused:.4f}, popularity {popularity:.4f}, "
              f"served {served} test NDCG@10 {ran[served]['test']['ndcg@10']:.4f}, "
              f"router {results['router']}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
