"""Benchmark datasets: TikTok (DiffMM release), any folder of pickled matrices, MovieLens-1M."""

from fuserec.data.adapters import matrices, movielens, tiktok  # noqa: F401  (registration)
from fuserec.data.adapters.base import (
    ADAPTERS,
    Dataset,
    binarize,
    carve_validation,
    cold_start_split,
    load_dataset,
)
from fuserec.data.adapters.matrices import load_matrices
from fuserec.data.adapters.movielens import load_movielens
from fuserec.data.adapters.safe_pickle import SparseUnpickler, UnsafePickleError, load_sparse_pickle
from fuserec.data.adapters.tiktok import PUBLISHED as TIKTOK_PUBLISHED
from fuserec.data.adapters.tiktok import load_tiktok

__all__ = ["ADAPTERS", "Dataset", "SparseUnpickler", "TIKTOK_PUBLISHED", "UnsafePickleError",
           "binarize", "carve_validation", "cold_start_split", "load_dataset", "load_matrices",
           "load_movielens", "load_sparse_pickle", "load_tiktok"]
