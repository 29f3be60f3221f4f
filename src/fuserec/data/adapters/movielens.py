"""MovieLens-1M with posters, LLM-written descriptions and trailer-audio descriptors.

Interactions are the ViLLA-MMBench 10-core split (``ml-1m_pairs/villa_10core_seed42_*.csv``:
6,040 users, 3,260 items, 798,832 train / 199,707 test pairs, implicit feedback). It ships no
validation split; :meth:`Dataset.with_validation` carves one out of train when a model needs it.

Item views (rows in item order, ``present`` marks items that have the modality):

``genres``  multi-hot over the 18 ML-1M genres (always available, no encoder needed)
``audio``   MMTF-14K trailer-audio i-vectors (40-d), for the ~1,100 movies that have them
``text``    the project's text encoder over "title. genres. LLM description"
``image``   the project's image encoder over the poster JPEGs

Text and image vectors are computed once and cached as ``.npy`` under ``cache_dir`` (keyed by
encoder version and item list); a view whose encoder cannot be loaded is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fuserec.data.adapters.base import ADAPTERS, Dataset, binarize
from fuserec.data.views import View
from fuserec.io import read_npy, write_npy

PAIRS = "ml-1m_pairs"
SPLIT_FILES = ("villa_10core_seed42_train.csv", "villa_10core_seed42_test.csv")
ITEMS = "items_ml1m.csv"
AUDIO_FILE = "mmtf14k_trailer_feats/fused_llm_mmtf_audio_IVec_splitItem_fold_1_gmm_128_tvDim_40.csv"
DEFAULT_VIEWS = ("text", "image", "audio", "genres")
ENCODERS = {"text": "minilm", "image": "efficientnet-lite0"}


# builds an encoder by registry name; anything with ``.encode(list) -> (n, d)`` and ``.version``
EncoderFactory = Callable[[str], Any]


def _matrix(frame: pd.DataFrame, users: pd.Index, items: pd.Index) -> sp.csr_matrix:
    rows = users.get_indexer(frame["user_id"])
    cols = items.get_indexer(frame["item_id"])
    return binarize(sp.csr_matrix((np.ones(len(frame), np.float32), (rows, cols)),
                                  shape=(len(users), len(items))))


def genre_view(catalog: pd.DataFrame) -> View:
    """Multi-hot genres (columns sorted by name)."""
    lists = catalog["genres"].fillna("").str.split("|")
    names = sorted({g for gs in lists for g in gs if g})
    x = np.zeros((len(catalog), len(names)), np.float32)
    col = {g: j for j, g in enumerate(names)}
    for i, gs in enumerate(lists):
        for g in gs:
            if g in col:
                x[i, col[g]] = 1.0
    return View(x, x.sum(1) > 0)


def audio_view(path: Path, movie_ids: Sequence[int]) -> View:
    """MMTF trailer-audio i-vectors for the movies that have one (zeros elsewhere)."""
    table = pd.read_csv(path, usecols=["itemId", "embedding"]).drop_duplicates("itemId")
    vectors = np.stack([np.asarray(s.split(","), dtype=np.float32) for s in table["embedding"]])
    index = pd.Index(table["itemId"].astype(int)).get_indexer(np.asarray(movie_ids))
    out = np.zeros((len(movie_ids), vectors.shape[1]), np.float32)
    present = index >= 0
    out[present] = vectors[index[present]]
    finite = np.isfinite(out).all(1)
    out[~finite] = 0.0
    return View(out, present & finite)


def item_texts(catalog: pd.DataFrame) -> list[str]:
    """What the text encoder reads per movie: title, genres and the LLM description."""
    parts = []
    for row in catalog.itertuples(index=False):
        desc = row.llm_description if isinstance(row.llm_description, str) else ""
        genres = str(row.genres).replace("|", ", ") if isinstance(row.genres, str) else ""
        parts.append(". ".join(p for p in (str(row.title), genres, desc) if p))
    return parts


def _encoded_view(modality: str, inputs: list, present: np.ndarray, cache_dir: Path | None,
                  key: str, progress: bool, encoder_factory: EncoderFactory | None) -> View | None:
    if encoder_factory is None:
        warnings.warn(f"skipping the {modality} view: no encoder_factory given", stacklevel=3)
        return None
    try:
        encoder = encoder_factory(ENCODERS[modality])
    except Exception as exc:  # the encoder package or its weights are not available
        warnings.warn(f"skipping the {modality} view: no encoder ({exc})", stacklevel=3)
        return None
    version = getattr(encoder, "version", ENCODERS[modality])
    digest = hashlib.sha1(f"{version}|{key}".encode()).hexdigest()[:16]
    path = cache_dir / f"ml1m_{modality}_{digest}.npy" if cache_dir else None
    if path is not None and path.exists():
        return View(read_npy(path).astype(np.float32), present)
    rows = np.flatnonzero(present)
    vectors = None
    for start in range(0, len(rows), 256):
        chunk = rows[start:start + 256]
        out = np.asarray(encoder.encode([inputs[i] for i in chunk]), np.float32)
        if vectors is None:
            vectors = np.zeros((len(inputs), out.shape[1]), np.float32)
        vectors[chunk] = out
        if progress:
            print(f"  {modality}: {min(start + 256, len(rows))}/{len(rows)}", flush=True)
    assert vectors is not None
    if path is not None:
        write_npy(path, vectors)
    return View(vectors, present)


@ADAPTERS.register("movielens")
def load_movielens(data_dir: str | os.PathLike[str], views: Sequence[str] = DEFAULT_VIEWS,
                   cache_dir: str | os.PathLike[str] | None = None,
                   progress: bool = False,
                   encoder_factory: EncoderFactory | None = None) -> Dataset:
    """Load the ViLLA 10-core split of ML-1M from ``data_dir`` (the ``movielens_posters`` folder).

    ``cache_dir`` defaults to ``~/.cache/fuserec/movielens``. The ``text`` and ``image`` views
    need ``encoder_factory`` (e.g. ``fuserec.encode.get_encoder``): the data layer builds no
    models itself, so without it those views are skipped with a warning.
    """
    root = Path(data_dir)
    train_df, test_df = (pd.read_csv(root / PAIRS / f) for f in SPLIT_FILES)
    users = pd.Index(np.unique(np.concatenate([train_df["user_id"], test_df["user_id"]])))
    items = pd.Index(np.unique(np.concatenate([train_df["item_id"], test_df["item_id"]])))
    train, test = _matrix(train_df, users, items), _matrix(test_df, users, items)

    catalog = pd.read_csv(root / ITEMS).set_index("movie_id").reindex(items)
    catalog = catalog.reset_index().rename(columns={"index": "movie_id"})
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "fuserec" / "movielens"
    key = ",".join(map(str, items.tolist()))
    out: dict[str, View] = {}
    for name in views:
        if name == "genres":
            out[name] = genre_view(catalog)
        elif name == "audio":
            out[name] = audio_view(root / AUDIO_FILE, items.tolist())
        elif name == "text":
            texts = item_texts(catalog)
            present = np.array([bool(t.strip()) for t in texts])
            view = _encoded_view("text", texts, present, cache, key, progress,
                                 encoder_factory)
            if view is not None:
                out[name] = view
        elif name == "image":
            files = catalog["poster_file"]
            paths = [str(root / f) if isinstance(f, str) else "" for f in files]
            present = np.array([bool(p) and Path(p).exists() for p in paths])
            view = _encoded_view("image", paths, present, cache, key, progress,
                                 encoder_factory)
            if view is not None:
                out[name] = view
        else:
            raise ValueError(f"unknown MovieLens view {name!r}; known: {DEFAULT_VIEWS}")
    return Dataset("movielens", train, None, test, out, users.to_numpy(), items.to_numpy())
