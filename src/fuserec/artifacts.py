"""The artifact folder a pipeline run leaves behind, and its loader.

Layout (all safe formats, each file written atomically)::

    manifest.json          format version, catalog root, encoders (name, version, dim), counts
    items.parquet          the validated items, in model column order
    users.parquet          the validated users, in model row order
    interactions.parquet   interactions with their ``split`` (train / test)
    embeddings.safetensors per table and modality: "<table>.<modality>" (n, d) float32 and
                           "<table>.<modality>.present" (n,) uint8
    model/                 the fused content model (model.safetensors + model.json): the
                           index, search, explanations and items added while serving
    served/                the model chosen on validation, when it is not the content model
                           itself (any registered model, a blend included)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from fuserec.data.schema import Catalog
from fuserec.encode import Encoder
from fuserec.fuse.base import View
from fuserec.io import staged_folder, write_json, write_with
from fuserec.models.base import Recommender

FORMAT_VERSION = 1


def write_artifacts(folder: Path, catalog: Catalog, interactions: pd.DataFrame,
                    encoded: dict[str, dict[str, Any]], encoders: dict[str, Encoder],
                    model: Recommender, results: dict[str, Any] | None = None,
                    served: Recommender | None = None,
                    describe_dir: Path | None = None) -> Path:
    """Write everything ``load_artifacts`` needs into ``folder`` and return it.

    ``model`` is the fused content model; ``served`` the model that ranks for users, when it
    is another one (``None``: the content model ranks too); ``describe_dir`` a folder the
    describe stage wrote, moved in as ``describe/``. The folder is built beside ``folder``
    and swapped in whole (:func:`fuserec.io.staged_folder`): a reader or a crash sees the
    previous run's folder or this one, never a mix."""
    target = Path(folder)
    with staged_folder(target) as staging:
        _write_into(staging, catalog, interactions, encoded, encoders, model, results, served)
        if describe_dir is not None and Path(describe_dir).is_dir():
            os.replace(describe_dir, staging / "describe")
    return target


def _write_into(folder: Path, catalog: Catalog, interactions: pd.DataFrame,
                encoded: dict[str, dict[str, Any]], encoders: dict[str, Encoder],
                model: Recommender, results: dict[str, Any] | None,
                served: Recommender | None) -> None:
    for name, frame in (("items", catalog.items), ("users", catalog.users),
                        ("interactions", interactions)):
        write_with(folder / f"{name}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    arrays: dict[str, np.ndarray] = {}
    for table, views in encoded.items():
        for modality, view in views.items():
            arrays[f"{table}.{modality}"] = np.ascontiguousarray(view.vectors, dtype=np.float32)
            arrays[f"{table}.{modality}.present"] = np.asarray(view.present, dtype=np.uint8)
    write_with(folder / "embeddings.safetensors", lambda tmp: save_file(arrays, str(tmp)))
    model.save(folder / "model")
    if served is not None:
        served.save(folder / "served")
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_unix": int(time.time()),
        "catalog_root": str(Path(catalog.root).resolve()),
        "encoders": {m: {"name": e.name, "version": e.version, "dim": e.dim}
                     for m, e in encoders.items()},
        "model": model.name,
        "served": served.name if served is not None else model.name,
        "counts": {"items": len(catalog.items), "users": len(catalog.users),
                   "interactions": len(interactions)},
        "results": {k: results[k] for k in ("views", "validation", "models", "served")
                    if results and k in results},
    }
    write_json(folder / "manifest.json", manifest)


@dataclass
class Artifacts:
    """A loaded artifact folder."""

    folder: Path
    manifest: dict[str, Any]
    items: pd.DataFrame
    users: pd.DataFrame
    interactions: pd.DataFrame
    embeddings: dict[str, dict[str, View]]
    model: Recommender
    #: the model that ranks for users, when it is not ``model`` (see the layout above)
    served: Recommender | None = None

    @property
    def ranker(self) -> Recommender:
        """The model that ranks items for users: ``served``, else the content model."""
        return self.served if self.served is not None else self.model

    @property
    def catalog_root(self) -> Path:
        return Path(self.manifest["catalog_root"])

    def item_index(self, item_id: str) -> int:
        """Column of ``item_id`` in the model; raises KeyError naming the id."""
        matches = np.flatnonzero(self.items["id"].to_numpy() == item_id)
        if len(matches) == 0:
            raise KeyError(f"unknown item id {item_id!r}")
        return int(matches[0])

    def user_index(self, user_id: str) -> int:
        matches = np.flatnonzero(self.users["id"].to_numpy() == user_id)
        if len(matches) == 0:
            raise KeyError(f"unknown user id {user_id!r}")
        return int(matches[0])


def load_artifacts(folder: Path) -> Artifacts:
    """Load an artifact folder written by :func:`write_artifacts` (no pickle involved)."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{folder} is not an artifact folder: manifest.json is missing")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder}: artifact format {manifest.get('format_version')} is not "
                         f"supported (expected {FORMAT_VERSION})")
    raw = load_file(str(folder / "embeddings.safetensors"))
    embeddings: dict[str, dict[str, View]] = {}
    for key, value in raw.items():
        if key.endswith(".present"):
            continue
        table, modality = key.split(".", 1)
        embeddings.setdefault(table, {})[modality] = View(value, raw[f"{key}.present"].astype(bool))
    art = Artifacts(
        folder=folder, manifest=manifest,
        items=pd.read_parquet(folder / "items.parquet"),
        users=pd.read_parquet(folder / "users.parquet"),
        interactions=pd.read_parquet(folder / "interactions.parquet"),
        embeddings=embeddings, model=Recommender.load(folder / "model"),
        served=Recommender.load(folder / "served") if (folder / "served").is_dir() else None,
    )
    _check_consistent(art)
    return art


def _check_consistent(art: Artifacts) -> None:
    """Refuse a folder whose parts come from different runs (tables, vectors, models)."""
    n_items, n_users = len(art.items), len(art.users)
    problems = []
    counts = art.manifest.get("counts", {})
    if counts and (counts.get("items"), counts.get("users")) != (n_items, n_users):
        problems.append(f"the manifest counts {counts.get('items')} items and "
                        f"{counts.get('users')} users, the tables {n_items} and {n_users}")
    for table, n in (("items", n_items), ("users", n_users)):
        for modality, view in art.embeddings.get(table, {}).items():
            if len(view.vectors) != n:
                problems.append(f"{table}.{modality} has {len(view.vectors)} rows for {n} {table}")
    if len(art.model.item_vectors()) != n_items:
        problems.append(f"the content model has {len(art.model.item_vectors())} item vectors "
                        f"for {n_items} items")
    served = art.served
    if served is not None and served.interactions is not None and \
            served.interactions.shape != (n_users, n_items):
        problems.append(f"the served model was trained on {served.interactions.shape[0]} users "
                        f"x {served.interactions.shape[1]} items, the tables hold {n_users} x "
                        f"{n_items}")
    if art.manifest.get("served", art.model.name) != (served or art.model).name:
        problems.append(f"the manifest serves {art.manifest.get('served')!r}, the folder holds "
                        f"{(served or art.model).name!r}")
    if problems:
        raise ValueError(f"{art.folder} is not a consistent artifact folder (its parts come from "
                         f"different runs?): " + "; ".join(problems))
