"""ML-1M (ViLLA 10-core split): what describe's text views add to a text-only content model.

    nice .venv/bin/python benchmarks/describe_movielens.py \
        --data-dir ../shared/data/movielens_posters

Content cosine (the seed's formula, no training) on one text view per movie, embedded by the
project's text encoder (MiniLM), scored on the ViLLA test split over all items with train items
excluded (Recall@10, NDCG@10):

1. ``title + genres``: the movie's own metadata alone;
2. ``+ shipped LLM description``: the dataset's LLM-written ~1 KB description appended;
3. ``+ describe's poster words``: the words describe's image path writes for the poster
   (EfficientNet-Lite0's top ImageNet labels, dominant colours, brightness) appended to 2;
4. ``poster words alone``: how much the poster words carry by themselves;
5. ``routed``: the consistency router on 3 (agreement of the poster words with the movie's own
   text chooses text fusion or feature fusion of text 2 + poster features), threshold chosen
   on a validation split carved from train.

Poster features, words and text embeddings are cached under ``--cache`` (content hash keyed).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fuserec.data.adapters import load_dataset  # noqa: E402
from fuserec.describe import Description, TextCache, describe_files, get_describer  # noqa: E402
from fuserec.encode import EmbeddingCache, encode_texts, get_encoder  # noqa: E402
from fuserec.evaluate.ranking import evaluate_ranking  # noqa: E402
from fuserec.fuse.base import View  # noqa: E402
from fuserec.fuse.router import ConsistencyRouter, agreement  # noqa: E402
from fuserec.models.content import ContentCosine  # noqa: E402


def _carve(train: sp.csr_matrix, fraction: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each user's train items: ``fraction`` to validation, the rest stays."""
    rng = np.random.default_rng(seed)
    coo = train.tocoo()
    val = rng.random(coo.nnz) < fraction
    shape = train.shape
    keep = sp.csr_matrix((coo.data[~val], (coo.row[~val], coo.col[~val])), shape=shape)
    held = sp.csr_matrix((coo.data[val], (coo.row[val], coo.col[val])), shape=shape)
    return keep, held


def _score(train, test, views, weights=None) -> dict[str, float]:
    model = ContentCosine(modalities=list(views), weights=weights).fit(train, views)
    m = evaluate_ranking(model, test, (10,))
    return {"recall@10": round(m["recall@10"], 4), "ndcg@10": round(m["ndcg@10"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/movielens_posters"))
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "fuserec" / "describe_bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    data = load_dataset("movielens", args.data_dir, views=("genres",))
    items = pd.read_csv(args.data_dir / "items_ml1m.csv").set_index("movie_id").reindex(
        data.item_ids)
    n = len(items)
    base = [f"{t}. {str(g).replace('|', ', ')}" for t, g in zip(items["title"], items["genres"],
                                                                  strict=True)]
    llm = [f"{b}. {d}" if isinstance(d, str) else b
           for b, d in zip(base, items["llm_description"], strict=True)]

    emb_cache = EmbeddingCache(args.cache / "embeddings")
    img_enc = get_encoder("efficientnet-lite0")
    labeler = get_describer("imagenet-labels", encoder=img_enc, embedding_cache=emb_cache)
    posters = [args.data_dir / f if isinstance(f, str) else None for f in items["poster_file"]]
    paths = [p for p in posters if p is not None and p.exists()]
    t1 = time.perf_counter()
    described = describe_files(labeler, paths, TextCache(args.cache / "texts"))
    words = [described[p].text if p in described and isinstance(described[p], Description)
             else "" for p in posters]
    poster_seconds = time.perf_counter() - t1
    with_words = [f"{t} Poster: {w}" if w else t for t, w in zip(llm, words, strict=True)]
    has_poster = np.array([bool(w) for w in words])

    text_enc = get_encoder("minilm")
    vec = {name: encode_texts(texts, text_enc, emb_cache, desc=name)
           for name, texts in (("title+genres", base), ("llm", llm), ("llm+poster", with_words),
                               ("poster", [w or "" for w in words]))}
    ones = np.ones(n, bool)
    image_feats = np.zeros((n, img_enc.dim), np.float32)
    from fuserec.encode.hashing import file_hash
    found = emb_cache.get_many(img_enc, [file_hash(p) for p in paths])
    for i, p in enumerate(posters):
        if p is not None and p.exists():
            image_feats[i] = found[file_hash(p)]

    results: dict[str, dict[str, float]] = {}
    tr, te = data.train, data.test
    results["title + genres"] = _score(tr, te, {"text": View(vec["title+genres"], ones)})
    results["+ shipped LLM description"] = _score(tr, te, {"text": View(vec["llm"], ones)})
    results["+ describe's poster words"] = _score(data.train, data.test,
                                                  {"text": View(vec["llm+poster"], ones)})
    results["poster words alone"] = _score(data.train, data.test,
                                           {"text": View(vec["poster"], has_poster)})
    feature_views = {"text": View(vec["llm"], ones), "image": View(image_feats, has_poster)}
    results["feature fusion: text + poster features"] = _score(data.train, data.test,
                                                               feature_views)
    # the router: agreement of the poster words (and the combined text) with the own text
    own = View(vec["title+genres"], ones)
    score = agreement(own, {"image": View(vec["poster"], has_poster),
                            "unified": View(vec["llm+poster"], ones)})["mean"]
    sub_train, val = _carve(data.train, 0.1, 0)
    best = None
    for threshold in ConsistencyRouter.candidates(score):
        routes = ConsistencyRouter(threshold).route(score)
        views, weights = ConsistencyRouter.routed_views(
            feature_views, View(vec["llm+poster"], ones), routes)
        m = _score(sub_train, val, views, weights)
        if best is None or m["ndcg@10"] > best[1]["ndcg@10"]:
            best = (threshold, m)
    assert best is not None
    routes = ConsistencyRouter(best[0]).route(score)
    views, weights = ConsistencyRouter.routed_views(feature_views, View(vec["llm+poster"], ones),
                                                    routes)
    results["routed (threshold from validation)"] = _score(data.train, data.test, views, weights)
    counts = {"text": int((routes == "text").sum()), "feature": int((routes == "feature").sum())}

    base_m = results["title + genres"]
    print(f"{'text view':45s} Recall@10  NDCG@10  x title+genres (NDCG)")
    for name, m in results.items():
        print(f"{name:45s} {m['recall@10']:.4f}    {m['ndcg@10']:.4f}   "
              f"{m['ndcg@10'] / base_m['ndcg@10']:.2f}x")
    print(f"router: threshold {best[0]:.4f} (validation NDCG@10 {best[1]['ndcg@10']:.4f}), "
          f"{counts}")
    print(f"posters described: {int(has_poster.sum())}/{n} in {poster_seconds:.0f} s; "
          f"example: {words[0]!r}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "router": counts,
                                         "threshold": best[0]}, indent=2))


if __name__ == "__main__":
    main()
