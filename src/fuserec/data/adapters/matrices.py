"""Any folder of pickled interaction matrices plus per-modality feature arrays.

The layout of DiffMM / MMSSL / LATTICE releases: ``trnMat.pkl``, ``tstMat.pkl`` and optional
``valMat.pkl`` (pickled scipy.sparse users x items matrices, read with the restricted
:class:`~fuserec.data.adapters.safe_pickle.SparseUnpickler`) and ``<modality>_feat.npy``
arrays with one row per item (``image_feat.npy`` becomes the ``image`` view).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fuserec.data.adapters.base import ADAPTERS, Dataset, binarize
from fuserec.data.adapters.safe_pickle import load_sparse_pickle
from fuserec.data.views import View

TRAIN, VALIDATION, TEST = "trnMat.pkl", "valMat.pkl", "tstMat.pkl"


def load_feature_views(folder: Path, n_items: int) -> dict[str, View]:
    """Every ``*_feat.npy`` in ``folder`` as a float32 view (rows with no finite value or all
    zeros are marked absent; non-finite entries become 0)."""
    views = {}
    for path in sorted(folder.glob("*_feat.npy")):
        name = path.name[: -len("_feat.npy")]
        x = np.load(path, allow_pickle=False).astype(np.float32)
        if x.ndim != 2 or x.shape[0] != n_items:
            raise ValueError(f"{path}: expected ({n_items}, d) features, got {x.shape}")
        finite = np.isfinite(x)
        x = np.where(finite, x, 0.0).astype(np.float32)
        present = finite.any(1) & (np.abs(x).sum(1) > 0)
        views[name] = View(x, present)
    return views


@ADAPTERS.register("matrices")
def load_matrices(data_dir: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load ``trnMat.pkl`` / ``tstMat.pkl`` / optional ``valMat.pkl`` and ``*_feat.npy``."""
    folder = Path(data_dir)
    for required in (TRAIN, TEST):
        if not (folder / required).exists():
            raise FileNotFoundError(f"{folder / required} is missing")
    train = binarize(load_sparse_pickle(folder / TRAIN))
    test = binarize(load_sparse_pickle(folder / TEST))
    validation = (binarize(load_sparse_pickle(folder / VALIDATION))
                  if (folder / VALIDATION).exists() else None)
    n_users = max(m.shape[0] for m in (train, test, validation) if m is not None)
    n_items = max(m.shape[1] for m in (train, test, validation) if m is not None)

    def fit(m):
        if m is None or m.shape == (n_users, n_items):
            return m
        m = m.tocoo()
        return binarize(type(train)((m.data, (m.row, m.col)), shape=(n_users, n_items)))

    views = load_feature_views(folder, n_items)
    return Dataset(name or folder.name, fit(train), fit(validation), fit(test), views)
