"""The batch jobs the CLI runs on an engine: encode a catalog folder, score every user.

Outputs use safe formats only:

* encode: ``embeddings.safetensors`` (``"<table>.<modality>"`` (n, d) float32 and
  ``"<table>.<modality>.present"`` (n,) uint8, the names the artifact folder uses),
  ``<table>_ids.parquet`` (row order of each table) and ``encode.json`` (engine, encoders with
  their versions, counts, errors, seconds);
* recommend: ``recommendations.parquet`` with ``user``, ``rank``, ``item`` and ``score``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fuserec.data.schema import Catalog
from fuserec.encode import EmbeddingCache, EncodedView
from fuserec.engines.base import EncoderSpec, Engine
from fuserec.io import write_json, write_with

if TYPE_CHECKING:
    from fuserec.models.base import Recommender


def encode_job(engine: Engine, catalog: Catalog, specs: Mapping[str, EncoderSpec],
               cache: EmbeddingCache, out: Path | None = None, progress: bool = True
               ) -> dict[str, Any]:
    """Encode ``catalog`` on ``engine`` into ``cache`` (and ``out`` when given); a summary."""
    t0 = time.perf_counter()
    encoded = engine.encode_catalog(catalog, specs, cache, progress=progress)
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "engine": repr(engine),
        "seconds": round(seconds, 3),
        "encoders": {m: {"name": s.name, "options": s.options} for m, s in specs.items()},
        "counts": {table: {m: {"records": len(v.ids), "present": v.n_present,
                               "errors": len(v.errors)} for m, v in views.items()}
                   for table, views in encoded.items()},
        "errors": [{"table": table, "modality": m, "record": rid, "reason": why}
                   for table, views in encoded.items() for m, v in views.items()
                   for rid, why in v.errors],
    }
    if out is not None:
        write_encoded(Path(out), encoded, summary)
    return summary


def write_encoded(out: Path, encoded: Mapping[str, Mapping[str, EncodedView]],
                  summary: Mapping[str, Any]) -> Path:
    """Write encode outputs (see the module docstring) into ``out``."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for table, views in encoded.items():
        for modality, view in views.items():
            arrays[f"{table}.{modality}"] = np.ascontiguousarray(view.vectors, np.float32)
            arrays[f"{table}.{modality}.present"] = np.asarray(view.present, np.uint8)
        if views:
            ids = pd.DataFrame({"id": next(iter(views.values())).ids})
            write_with(out / f"{table}_ids.parquet",
                       lambda tmp, f=ids: f.to_parquet(tmp, index=False))
    write_with(out / "embeddings.safetensors", lambda tmp: save_file(arrays, str(tmp)))
    write_json(out / "encode.json", dict(summary))
    return out


def recommend_job(engine: Engine, model: Recommender, user_ids: Sequence[str],
                  item_ids: Sequence[str], k: int, out: Path, exclude_seen: bool = True,
                  batch_size: int = 1024) -> dict[str, Any]:
    """Top-``k`` for every user on ``engine``; writes ``out`` (Parquet) and returns a summary."""
    t0 = time.perf_counter()
    ids, scores = engine.recommend_all(model, k, exclude_seen=exclude_seen,
                                       batch_size=batch_size)
    seconds = time.perf_counter() - t0
    users = np.repeat(np.asarray(user_ids, dtype=object), k)
    flat_ids, flat_scores = ids.ravel(), scores.ravel()
    keep = flat_ids >= 0
    items = np.asarray(item_ids, dtype=object)[np.maximum(flat_ids, 0)]
    frame = pd.DataFrame({"user": users[keep], "rank": np.tile(np.arange(1, k + 1),
                                                                len(user_ids))[keep],
                          "item": items[keep], "score": flat_scores[keep]})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_with(out, lambda tmp: frame.to_parquet(tmp, index=False))
    return {"engine": repr(engine), "users": len(user_ids), "k": k, "rows": len(frame),
            "seconds": round(seconds, 3), "out": str(out)}
