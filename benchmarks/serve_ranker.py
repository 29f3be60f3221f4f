"""In-process latency of recommendations ranked by the served model (``fuserec run``'s choice).

Loads an artifact folder, then for random users measures:

* the first ``recommend`` of each user (the served model scores every item for them);
* ``recommend`` right after a feedback event (the user is folded in again: score_history);

and the same two for the content model alone (the baseline: what serving did before a model
was selected), in the same run. Prints p50 / p99 and the ratios.

    .venv/bin/python benchmarks/serve_ranker.py --artifacts /tmp/ml1m_auto/artifacts
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fuserec.artifacts import load_artifacts
from fuserec.serve.state import ServingState


def _measure(state: ServingState, users: list[str], k: int) -> dict[str, float]:
    first, after = [], []
    items = state.item_ids
    rng = np.random.default_rng(1)
    for user in users:
        t0 = time.perf_counter()
        state.recommend(user, k)
        first.append(time.perf_counter() - t0)
        state.add_feedback(user, items[int(rng.integers(len(items)))])
        t0 = time.perf_counter()
        state.recommend(user, k)
        after.append(time.perf_counter() - t0)
    ms = 1000.0
    return {"first_p50": np.percentile(first, 50) * ms, "first_p99": np.percentile(first, 99) * ms,
            "feedback_p50": np.percentile(after, 50) * ms,
            "feedback_p99": np.percentile(after, 99) * ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    art = load_artifacts(args.artifacts)
    rng = np.random.default_rng(0)
    ids = art.users["id"].astype(str).tolist()
    users = [ids[i] for i in rng.choice(len(ids), min(args.users, len(ids)), replace=False)]
    served = ServingState(art, index_kind="faiss")
    name = served.ranker.name if served.ranker is not None else "content-cosine"
    art.served = None  # the baseline: the content model ranks (the index)
    content = ServingState(art, index_kind="faiss")
    with_model = _measure(served, users, args.k)
    baseline = _measure(content, users, args.k)
    print(f"{len(art.items)} items, {len(ids)} users, {len(users)} measured, k={args.k}")
    for label, key in (("first recommend", "first"), ("after feedback", "feedback")):
        print(f"{label:16s} {name}: p50 {with_model[key + '_p50']:.2f} ms, "
              f"p99 {with_model[key + '_p99']:.2f} ms | content-cosine: p50 "
              f"{baseline[key + '_p50']:.2f} ms, p99 {baseline[key + '_p99']:.2f} ms | "
              f"p99 ratio {with_model[key + '_p99'] / baseline[key + '_p99']:.2f}x")


if __name__ == "__main__":
    main()
