"""Load pickled scipy.sparse matrices without running arbitrary code.

Python's :mod:`pickle` executes whatever callables a file names, so a pickle from the internet
can run ``os.system``. :class:`SparseUnpickler` resolves only a fixed allow-list of globals (the
scipy.sparse matrix classes and the numpy array-reconstruction helpers they need) and maps each
name to an object imported here, so a file can never make it import a module either. Anything
else raises :class:`UnsafePickleError`.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


def _allowed() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray

    table: dict[tuple[str, str], Any] = {}
    sparse_classes = {
        "coo": ("coo_matrix", "coo_array"), "csr": ("csr_matrix", "csr_array"),
        "csc": ("csc_matrix", "csc_array"), "dok": ("dok_matrix", "dok_array"),
        "lil": ("lil_matrix", "lil_array"),
    }
    for fmt, names in sparse_classes.items():
        for name in names:
            obj = getattr(sp, name, None)
            if obj is None:
                continue
            # old pickles name the public module, newer ones the private one
            for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
                table[(module, name)] = obj
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = multiarray._reconstruct
        table[(module, "scalar")] = multiarray.scalar
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "ndarray")] = np.ndarray
        table[(module, "dtype")] = np.dtype
    return table


class SparseUnpickler(pickle.Unpickler):
    """An unpickler that admits only scipy.sparse matrices and the numpy types inside them."""

    _ALLOWED = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only scipy.sparse matrices and "
                "numpy arrays may appear in this file") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent ids are not allowed in this file")


def load_sparse_pickle(path: str | os.PathLike[str]) -> sp.csr_matrix:
    """Read a pickled scipy.sparse matrix with :class:`SparseUnpickler`, returned as CSR."""
    data = Path(path).read_bytes()
    obj = SparseUnpickler(io.BytesIO(data)).load()
    if not sp.issparse(obj):
        raise UnsafePickleError(f"{path}: expected a scipy.sparse matrix, got {type(obj).__name__}")
    return sp.csr_matrix(obj)
