"""Text fusion on a catalog (ML-1M by default): warm and cold items, beside its baselines.

Builds the dataset as ``fuserec run`` does (validated catalog, given split, encoded views, the
items' texts with their poster words from the describe stage), then in one run:

* warm: trains the candidates (``--model``, default vbpr, fusion, ease, mmease, item-knn and
  textfusion) and reports validation and test Recall/NDCG@10; then the blend of the three
  strongest without textfusion (today's ``fuserec run`` blend) and the same blend with
  textfusion as a fourth member, weights chosen on validation (cross-fitted score);
* cold: 10% of the items held out of training entirely, textfusion and VBPR retrained without
  them and ranking only them (``fuserec.evaluate.selection.cold_items``).

``--no-description`` drops the catalog's ``description`` column first (ML-1M: the shipped
big-LLM text), so the texts are title + genres + poster words only.

    .venv/bin/python benchmarks/textfusion_ml1m.py --catalog /tmp/ml1m_catalog \\
        --cache /tmp/tf_cache --out /tmp/tf_ml1m.json [--no-description] [--seconds 600]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fuserec.data.adapters.base import Dataset
from fuserec.data.loaders import load_catalog
from fuserec.data.matrix import interaction_matrix
from fuserec.data.splits import SPLIT, published_split
from fuserec.describe import TextCache, describe_catalog, get_describer
from fuserec.encode import EmbeddingCache, encode_catalog, get_encoder
from fuserec.evaluate.experiment import run_model
from fuserec.evaluate.selection import (
    BLEND_SIZE,
    Candidate,
    Selection,
    cold_items,
    select_models,
)
from fuserec.fuse.base import View
from fuserec.io import write_json
from fuserec.models.blend import Blend
from fuserec.pipeline.describe import unified_item_texts

DEFAULT_MODELS = ("item-knn", "ease", "mmease", "vbpr", "fusion", "textfusion")


def build_dataset(catalog_dir: Path, cache_dir: Path, description: bool) -> Dataset:
    """The catalog's train / validation / test matrices, encoded views and item texts."""
    catalog, _ = load_catalog(catalog_dir, progress=False)
    if not description and "description" in catalog.items:
        catalog.items = catalog.items.drop(columns=["description"])
    encoders = {"text": get_encoder("minilm"), "image": get_encoder("efficientnet-lite0")}
    cache = EmbeddingCache(cache_dir)
    encoded = encode_catalog(catalog, encoders, cache, progress=False)
    views = {m: View(v.vectors, v.present) for m, v in encoded["items"].items()
             if v.present.any()}
    image_words = get_describer("imagenet-labels", encoder=encoders["image"],
                                embedding_cache=cache)
    described = describe_catalog(catalog, image_words, None, None,
                                 TextCache(cache_dir / "describe"))
    texts = unified_item_texts(described)
    split = published_split(catalog.interactions)
    users, items = catalog.user_ids, catalog.item_ids
    train, validation, test = (interaction_matrix(split[split[SPLIT] == s], users, items)
                               for s in ("train", "validation", "test"))
    return Dataset("catalog", train, validation, test, item_features=views,
                   user_ids=np.asarray(users), item_ids=np.asarray(items), item_texts=texts)


def blend_on_validation(selection: Selection, dataset: Dataset, names: list[str],
                        k: int) -> dict:
    """A blend of the named fitted candidates, weights chosen on validation; its cross-fitted
    validation and its test scores."""
    fitted = [selection.get(n) for n in names]
    blend = Blend.of_fitted([c.model for c in fitted], [c.params for c in fitted], select_k=k)
    result = run_model(dataset, "blend", (k, 20), {}, model=blend)
    return {"members": names, "weights": blend.member_weights(),
            "validation_cross_fitted": blend.cross_fitted,
            "validation_in_sample": result.get("validation"), "test": result["metrics"]}


def cold_start(data: Dataset, params: dict[str, dict], k: int) -> dict:
    """Each model retrained without 10% of the items and ranking only those (the protocol of
    ``fuserec run``'s ``cold_items``), with popularity and content-cosine beside it."""
    cold: dict = {}
    for name, options in params.items():
        t1 = time.perf_counter()
        result = cold_items(data, Candidate(name, params=options), (k, 20))
        cold[name] = {"metrics": result[name], "popularity": result["popularity"],
                      "content-cosine": result.get("content-cosine"),
                      "seconds": round(time.perf_counter() - t1, 1)}
        print(f"cold {name}: R@{k} {result[name][f'recall@{k}']:.4f}", flush=True)
    if "textfusion" in cold and "vbpr" in cold:
        cold["textfusion_vs_vbpr_recall@10"] = round(
            cold["textfusion"]["metrics"]["recall@10"] / cold["vbpr"]["metrics"]["recall@10"], 3)
    return cold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/ml1m_catalog"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tf_cache"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/tf_ml1m.json"))
    parser.add_argument("--no-description", action="store_true")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="training budget of each learned model")
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--cold-only", action="store_true",
                        help="skip the warm candidates: only textfusion and VBPR on cold items")
    args = parser.parse_args()
    k = 10
    t0 = time.perf_counter()
    data = build_dataset(args.catalog, args.cache, not args.no_description)
    out: dict = {"catalog": str(args.catalog), "description": not args.no_description,
                 "seconds_budget": args.seconds, "dataset": data.summary(),
                 "text_example": data.item_texts[0], "prepare_seconds": 0.0}
    out["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"dataset ready in {out['prepare_seconds']} s; e.g. {data.item_texts[0]!r}")
    params = {"textfusion": {"cache_dir": str(args.cache / "textfusion"), "val_k": k},
              "vbpr": {"val_k": k}, "fusion": {"val_k": k}}
    if args.cold_only:
        out["cold"] = cold_start(data, {n: {**params[n], "max_seconds": args.seconds}
                                        for n in ("textfusion", "vbpr")}, k)
        out["total_seconds"] = round(time.perf_counter() - t0, 1)
        write_json(args.out, out)
        print(json.dumps(out["cold"], indent=1))
        return
    selection = select_models(data, args.model or DEFAULT_MODELS, (k, 20), params=params,
                              model_seconds=args.seconds)
    out["warm"] = selection.to_json()
    tf = selection.get("textfusion")
    if tf is not None and tf.model is not None:
        m = tf.model
        out["textfusion_training"] = {"cache_seconds": round(m.cache_seconds, 1),
                                      "epochs": len(m.history), "best_epoch": m.best_epoch,
                                      "seconds_per_epoch": round(m.seconds_per_epoch, 2),
                                      "train_seconds": tf.train_seconds}
    ranked = [c.name for c in sorted(selection.ran, key=lambda c: -c.validation[f"ndcg@{k}"])
              if c.name not in ("popularity", "textfusion")]
    if len(ranked) >= 2:
        out["blend"] = blend_on_validation(selection, data, ranked[:BLEND_SIZE], k)
        if tf is not None and tf.model is not None:
            out["blend_with_textfusion"] = blend_on_validation(
                selection, data, ranked[:BLEND_SIZE] + ["textfusion"], k)
            out["blend_textfusion_fusion"] = blend_on_validation(
                selection, data, ["textfusion", "fusion"], k) if selection.get("fusion") else None
    write_json(args.out, out)
    if not args.no_cold:
        out["cold"] = cold_start(data, {n: selection.get(n).params for n in ("textfusion", "vbpr")
                                        if selection.get(n) and not selection.get(n).skipped}, k)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(args.out, out)
    print(json.dumps({key: out[key] for key in out if key not in ("dataset",)}, indent=1,
                     default=str)[:6000])


if __name__ == "__main__":
    main()
