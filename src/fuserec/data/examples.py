"""Public datasets written out as ordinary catalog folders (``fuserec example NAME``).

:func:`write_movielens_catalog` turns the MovieLens-1M files of the shared data folder
(``movielens_posters/``: posters, LLM-written descriptions, the ViLLA-MMBench split and the
MMTF-14K trailer-audio descriptors) into a catalog that ``fuserec validate`` / ``fuserec run``
read like any other::

    items.csv                  id, title, genres, attr_year, attr_genre (the genres, several
                               values separated by ``|``: the page's genre facet),
                               description, images
    posters/<id>.jpg           the poster JPEGs (copied: the loader refuses symlinks that
                               leave the catalog)
    interactions.csv           user_id, item_id, split (train / validation / test)
    features/trailer_audio.npy MMTF-14K trailer-audio i-vectors, one row per items.csv row,
                               zeros (not present) for movies without a trailer

The ViLLA split has train and test only, and the pipeline takes a given split as it is (it
carves no validation set out of it), so a deterministic share of each user's train rows is
labelled ``validation`` (``validation_fraction``, seeded); the test rows are never touched.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuserec.data.splits import SPLIT, random_split_per_user
from fuserec.io import write_npy, write_with

MOVIELENS_ITEMS = "items_ml1m.csv"
MOVIELENS_SPLIT = ("ml-1m_pairs/villa_10core_seed42_train.csv",
                   "ml-1m_pairs/villa_10core_seed42_test.csv")
#: trailer-audio i-vectors, preferred first (40-d, then 20-d)
MOVIELENS_AUDIO = (
    "mmtf14k_trailer_feats/fused_llm_mmtf_audio_IVec_splitItem_fold_1_gmm_128_tvDim_40.csv",
    "mmtf14k_trailer_feats/fused_llm_mmtf_audio_IVec_splitItem_fold_1_gmm_128_tvDim_20.csv",
)
AUDIO_FEATURE = "trailer_audio"
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"MovieLens file not found: {path} (is --data-dir the "
                                f"movielens_posters folder?)")
    return path


def _year(title: str) -> str:
    match = _YEAR.search(title or "")
    return match.group(1) if match else ""


def _trailer_audio(data_dir: Path, movie_ids: list[str]) -> tuple[np.ndarray | None, str | None,
                                                                   int]:
    """i-vectors aligned with ``movie_ids`` (zeros where missing), the file used and how many
    movies had a vector with NaN/inf (written as zeros)."""
    path = next((data_dir / p for p in MOVIELENS_AUDIO if (data_dir / p).is_file()), None)
    if path is None:
        return None, None, 0
    table = pd.read_csv(path, usecols=["itemId", "embedding"], dtype={"itemId": str})
    table = table.drop_duplicates("itemId")
    vectors = np.stack([np.asarray(str(s).split(","), dtype=np.float64)
                        for s in table["embedding"]]).astype(np.float32)
    index = pd.Index(table["itemId"].str.strip()).get_indexer(movie_ids)
    out = np.zeros((len(movie_ids), vectors.shape[1]), np.float32)
    have = index >= 0
    out[have] = vectors[index[have]]
    bad = ~np.isfinite(out).all(axis=1)
    out[bad] = 0.0
    return out, path.name, int(bad.sum())


def write_movielens_catalog(data_dir: Path, out: Path, validation_fraction: float = 0.1,
                            seed: int = 42, progress: bool = True) -> dict[str, Any]:
    """Write MovieLens-1M (the items of the ViLLA split) as a catalog folder under ``out``.

    Returns the counts: items, users, interactions (and per split), posters copied, posters
    missing, items with trailer audio, and the audio file used.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError("validation_fraction must lie in [0, 1)")
    data_dir, out = Path(data_dir), Path(out)
    items = pd.read_csv(_require(data_dir / MOVIELENS_ITEMS), dtype=str, keep_default_na=False)
    parts = []
    for rel, label in zip(MOVIELENS_SPLIT, ("train", "test"), strict=True):
        frame = pd.read_csv(_require(data_dir / rel), dtype=str)[["user_id", "item_id"]]
        parts.append(frame.assign(**{SPLIT: label}))
    train, test = (p.apply(lambda c: c.str.strip()) for p in parts)
    if validation_fraction > 0:
        carved = random_split_per_user(train.drop(columns=SPLIT), test_fraction=0.0,
                                       validation_fraction=validation_fraction, seed=seed)
        train = train.assign(**{SPLIT: carved[SPLIT].to_numpy()})
    interactions = pd.concat([train, test], ignore_index=True)

    items["movie_id"] = items["movie_id"].str.strip()
    used = set(interactions["item_id"])
    items = items[items["movie_id"].isin(used)].drop_duplicates("movie_id").reset_index(drop=True)
    # pairs of movies the items file does not describe (none in ML-1M) would only be rejected
    known = interactions["item_id"].isin(set(items["movie_id"]))
    interactions = interactions[known].reset_index(drop=True)
    movie_ids = items["movie_id"].tolist()

    out.mkdir(parents=True, exist_ok=True)
    (out / "posters").mkdir(exist_ok=True)
    images: list[str] = []
    copied = 0
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress,
                  transient=True) as bar:
        task = bar.add_task("copying posters", total=len(items))
        for mid, poster in zip(movie_ids, items.get("poster_file", [""] * len(items)),
                               strict=True):
            source = data_dir / poster if poster else data_dir / "posters_ml1m_ids" / f"{mid}.jpg"
            if source.is_file():
                target = f"posters/{mid}{source.suffix.lower() or '.jpg'}"
                shutil.copyfile(source, out / target)
                images.append(target)
                copied += 1
            else:
                images.append("")
            bar.advance(task)

    catalog_items = pd.DataFrame({
        "id": movie_ids,
        "title": items["title"],
        "genres": items["genres"].str.replace("|", ", ", regex=False),
        "attr_year": items["title"].map(_year),
        "attr_genre": items["genres"],  # "Action|Comedy": a filter genre==Comedy matches it
        "description": items.get("llm_description", ""),
        "images": images,
    })
    write_with(out / "items.csv", lambda tmp: catalog_items.to_csv(tmp, index=False))
    write_with(out / "interactions.csv", lambda tmp: interactions.to_csv(tmp, index=False))

    audio, audio_file, audio_bad = _trailer_audio(data_dir, movie_ids)
    n_audio = 0
    if audio is not None:
        write_npy(out / "features" / f"{AUDIO_FEATURE}.npy", audio)
        n_audio = int(np.any(audio != 0, axis=1).sum())
    counts = interactions[SPLIT].value_counts()
    summary = {
        "out": str(out),
        "items": len(catalog_items),
        "users": int(interactions["user_id"].nunique()),
        "interactions": len(interactions),
        "train": int(counts.get("train", 0)),
        "validation": int(counts.get("validation", 0)),
        "test": int(counts.get("test", 0)),
        "posters_copied": copied,
        "posters_missing": len(catalog_items) - copied,
        "items_with_trailer_audio": n_audio,
        "trailer_audio_file": audio_file,
        "trailer_audio_dim": int(audio.shape[1]) if audio is not None else 0,
        "trailer_audio_not_finite": audio_bad,
        "interactions_without_item": int((~known).sum()),
    }
    return summary


__all__ = ["AUDIO_FEATURE", "write_movielens_catalog"]
