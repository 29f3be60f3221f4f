"""Load pickled scipy.sparse matrices without running arbitrary code or exhausting memory.

Python's :mod:`pickle` executes whatever callables a file names, so a pickle from the internet
can run ``os.system``. :class:`SparseUnpickler` resolves only a fixed allow-list of globals (the
scipy.sparse matrix classes and the numpy array-reconstruction helpers they need, as every pickle
protocol 0-5 writes them) and maps each name to a guarded stand-in defined here, so a file can
never make it import a module or call a constructor with arguments of its choosing:

* a sparse class becomes an inert *shell* that only collects the pickled attributes (calling it,
  e.g. ``csr_matrix((10**9, 10**9))``, is refused);
* numpy arrays are rebuilt only after their declared shape, dtype and byte size were checked
  against the data the file actually carries and against a memory budget;
* the matrix is then assembled as CSR from the collected arrays, once its shape, ``nnz``, index
  bounds and the memory the CSR form needs (``max_bytes``, 4 GiB by default) were checked.

Anything else raises :class:`UnsafePickleError`, whose one-line message names the file.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

DEFAULT_MAX_BYTES = 4 * 2**30
_INDEX_BYTES = 8  # budget with int64 indices: scipy may need them for the CSR form
_DATA_KINDS = "biufc"


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list, or declares data it cannot hold."""


def _refuse(message: str) -> UnsafePickleError:
    return UnsafePickleError(message)


# -- stand-ins for the admitted classes ------------------------------------------------------
class _Shell:
    """Stands for an admitted sparse class while unpickling: collects attributes, runs nothing."""

    _target: type = object
    _format: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Shell:
        if args or kwargs:
            raise _refuse(f"refusing to call {cls._target.__name__}(...) from a pickle")
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _refuse(f"refusing to call {type(self)._target.__name__}(...) from a pickle")

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise _refuse(f"the state of {type(self)._target.__name__} is not an attribute "
                          f"dict")
        self.__dict__.update(state)


class _DictShell(_Shell, dict):
    """A shell for dok matrices, which scipy pickles as dict subclasses."""


class _NdarrayToken:
    """``numpy.ndarray`` as a pickle names it: only usable as the first argument of
    ``_reconstruct`` (calling ``ndarray(shape)`` would allocate whatever the file declares)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NdarrayToken:
        raise _refuse("refusing to call numpy.ndarray(...) from a pickle")


class _CheckedArray(np.ndarray):
    """An array whose ``__setstate__`` checks the declared shape against the data and budget."""

    _max_bytes: int = DEFAULT_MAX_BYTES

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _refuse("malformed numpy array state")
        shape, dtype, _fortran, raw = state[-4:]
        n = _elements(shape)
        dtype = _plain_dtype(dtype)
        nbytes = n * dtype.itemsize
        if nbytes > self._max_bytes:
            raise _refuse(f"an array declares {nbytes:,} bytes, over the budget of "
                          f"{self._max_bytes:,}")
        if dtype.hasobject:
            if not isinstance(raw, list) or len(raw) != n:
                raise _refuse(f"an object array declares {n} elements but holds "
                              f"{len(raw) if isinstance(raw, list) else 'no list of'} them")
        elif not isinstance(raw, bytes | bytearray) or len(raw) != nbytes:
            size = len(raw) if isinstance(raw, bytes | bytearray) else "no"
            raise _refuse(f"an array declares shape {tuple(shape)} of {dtype} ({nbytes:,} "
                          f"bytes) but holds {size} bytes of data")
        np.ndarray.__setstate__(self, state)


def _elements(shape: Any) -> int:
    if not isinstance(shape, tuple) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and 0 <= d < 2**63
            for d in shape):
        raise _refuse(f"an array declares an invalid shape {shape!r}")
    return math.prod(int(d) for d in shape)


def _plain_dtype(dtype: Any) -> np.dtype:
    """Numbers, bools, or plain objects (lil rows); no structured or sub-array dtypes."""
    if not isinstance(dtype, np.dtype):
        raise _refuse(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.fields is not None or dtype.subdtype is not None or (
            dtype.kind not in _DATA_KINDS and dtype != np.dtype(object)):
        raise _refuse(f"dtype {dtype} is not allowed in a sparse matrix pickle")
    return dtype


def _allowed(max_bytes: int) -> dict[tuple[str, str], Any]:
    import codecs

    from numpy._core import multiarray, numeric

    # fresh classes per unpickler: whatever a file does to them cannot outlive its load
    checked = type("_CheckedArray", (_CheckedArray,), {"_max_bytes": max_bytes})
    ndarray_token = type("ndarray", (_NdarrayToken,), {})

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not ndarray_token:
            raise _refuse("_reconstruct may only rebuild numpy arrays")
        if _elements(shape) != 0:  # numpy writes (0,); the data comes with __setstate__
            raise _refuse(f"_reconstruct declares a non-empty shape {shape!r}")
        if not isinstance(dtype, bytes | str) or len(dtype) > 8:
            raise _refuse("malformed _reconstruct call")
        return multiarray._reconstruct(checked, shape, dtype)

    def frombuffer(buf: Any, dtype: Any, shape: Any, order: Any,
                   axis_order: Any = None) -> np.ndarray:
        """``numpy._core.numeric._frombuffer``: how protocol 5 writes arrays."""
        dtype = _plain_dtype(dtype)
        if dtype.hasobject or order not in ("C", "F", "K") or not (
                axis_order is None or (isinstance(axis_order, tuple)
                                       and sorted(axis_order) == list(range(len(shape))))):
            raise _refuse("malformed numpy array buffer")
        try:
            size = memoryview(buf).nbytes
        except TypeError:
            raise _refuse("a numpy array's buffer is not bytes") from None
        nbytes = _elements(shape) * dtype.itemsize
        if nbytes != size or nbytes > max_bytes:
            raise _refuse(f"an array declares shape {shape!r} of {dtype} ({nbytes:,} bytes) "
                          f"but holds {size:,} bytes of data")
        return numeric._frombuffer(buf, dtype, shape, order, axis_order)

    def scalar(dtype: Any, obj: Any = None) -> Any:
        dtype = _plain_dtype(dtype)
        if not dtype.hasobject and (not isinstance(obj, bytes) or len(obj) != dtype.itemsize):
            raise _refuse(f"a numpy {dtype} scalar needs exactly {dtype.itemsize} bytes")
        return multiarray.scalar(dtype, obj)

    def make_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
        if not isinstance(spec, str) or len(spec) > 8:
            raise _refuse(f"refusing numpy dtype {spec!r}")
        return np.dtype(spec, bool(align), bool(copy))

    def reconstructor(cls: Any, base: Any, state: Any) -> Any:
        """``copyreg._reconstructor`` (protocols 0 and 1; dok matrices at any protocol)."""
        if not (isinstance(cls, type) and issubclass(cls, _Shell)):
            raise _refuse("copyreg._reconstructor may only rebuild scipy.sparse matrices")
        if base is object and state is None:
            return object.__new__(cls)
        if base is dict and issubclass(cls, dict) and isinstance(state, dict | None):
            obj = dict.__new__(cls)
            dict.update(obj, state or {})
            return obj
        raise _refuse("malformed copyreg._reconstructor call")

    def encode(text: Any, encoding: Any = "utf-8") -> bytes:
        """``_codecs.encode``: protocols 0-2 write bytes as latin-1 text."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _refuse("_codecs.encode is only allowed for latin-1 text")
        return codecs.encode(text, "latin1")

    def empty_bytes(*args: Any) -> bytes:
        """``bytes()``: protocols 0-2 write empty bytes this way (non-empty via encode)."""
        if args:
            raise _refuse("bytes(...) is only allowed without arguments")
        return b""

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
            base = _DictShell if fmt == "dok" else _Shell
            shell = type(f"_{name}_shell", (base,), {"_target": obj, "_format": fmt})
            # old pickles name the public module, newer ones the private one
            for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
                table[(module, name)] = shell
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "ndarray")] = ndarray_token
        table[(module, "dtype")] = make_dtype
    for module in ("copyreg", "copy_reg"):
        table[(module, "_reconstructor")] = reconstructor
    for module in ("builtins", "__builtin__"):
        table[(module, "object")] = object
        table[(module, "dict")] = dict
        table[(module, "bytes")] = empty_bytes
    table[("_codecs", "encode")] = encode
    return table


class SparseUnpickler(pickle.Unpickler):
    """An unpickler that admits only scipy.sparse matrices and the numpy types inside them.

    :meth:`load` returns the matrix as a checked ``scipy.sparse.csr_matrix``; ``max_bytes``
    bounds every array it rebuilds and the memory of that CSR form.
    """

    def __init__(self, file: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.max_bytes = int(max_bytes)
        self._table = _allowed(self.max_bytes)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only scipy.sparse matrices and "
                "numpy arrays may appear in this file") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent ids are not allowed in this file")

    def load(self) -> Any:
        obj = super().load()
        if isinstance(obj, _Shell):
            return _to_csr(obj, self.max_bytes)
        return obj


def load_sparse_pickle(path: str | os.PathLike[str], *,
                       max_bytes: int = DEFAULT_MAX_BYTES) -> sp.csr_matrix:
    """Read a pickled scipy.sparse matrix (any protocol 0-5) with :class:`SparseUnpickler`,
    returned as CSR. Raises :class:`UnsafePickleError` naming ``path`` when the file is not a
    plain sparse matrix, is damaged, or needs more than ``max_bytes`` of memory."""
    data = Path(path).read_bytes()
    try:
        obj = SparseUnpickler(io.BytesIO(data), max_bytes=max_bytes).load()
    except (UnsafePickleError, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, OverflowError, MemoryError,
            RecursionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, UnsafePickleError):
            reason = f"not a readable sparse matrix pickle ({type(exc).__name__}: {reason})"
        raise UnsafePickleError(f"{path}: {reason}") from None
    if not sp.issparse(obj):
        raise UnsafePickleError(f"{path}: expected a scipy.sparse matrix, got {type(obj).__name__}")
    return obj


# -- from the collected attributes to a checked CSR matrix ------------------------------------
def _to_csr(shell: _Shell, max_bytes: int) -> sp.csr_matrix:
    kind = type(shell)  # not the instance: the file sets instance attributes
    name, state = kind._target.__name__, vars(shell)
    shape = state.get("_shape")
    if (not isinstance(shape, tuple) or len(shape) != 2
            or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                       and 0 <= d < 2**62 for d in shape)):
        raise _refuse(f"{name} declares an invalid shape {shape!r}")
    m, n = (int(d) for d in shape)
    build: Callable[[str, dict, int, int, int], sp.csr_matrix] = {
        "csr": _compressed, "csc": _compressed, "coo": _coo, "dok": _dok, "lil": _lil,
    }[kind._format]
    return build(name, state if kind._format != "dok" else {**state, "_items": dict(shell)},
                 m, n, max_bytes)


def _budget(name: str, m: int, n: int, nnz: int, itemsize: int, max_bytes: int,
            extra: int = 0) -> None:
    if nnz > m * n:
        raise _refuse(f"{name} declares shape ({m}, {n}) but holds {nnz:,} entries")
    need = (m + 1) * _INDEX_BYTES + nnz * (_INDEX_BYTES + itemsize) + extra
    if need > max_bytes:
        raise _refuse(f"{name} of shape ({m}, {n}) with {nnz:,} entries needs about "
                      f"{need / 2**30:.1f} GiB as CSR, over the budget of "
                      f"{max_bytes / 2**30:.1f} GiB")


def _array(name: str, state: dict, key: str, kinds: str) -> np.ndarray:
    value = state.get(key)
    if not isinstance(value, np.ndarray):
        raise _refuse(f"{name}.{key} is not a numpy array")
    value = np.asarray(value)  # drop the checking subclass
    if value.ndim != 1 or value.dtype.kind not in kinds:
        raise _refuse(f"{name}.{key} must be a 1-D array of kind {kinds!r}, got "
                      f"{value.ndim}-D {value.dtype}")
    return np.require(value, requirements=["C", "W"])


def _check_bounds(name: str, what: str, index: np.ndarray, limit: int) -> None:
    if index.size and (int(index.min()) < 0 or int(index.max()) >= limit):
        raise _refuse(f"{name}: {what} indices fall outside the declared shape")


def _compressed(name: str, state: dict, m: int, n: int, max_bytes: int) -> sp.csr_matrix:
    data = _array(name, state, "data", _DATA_KINDS)
    indices = _array(name, state, "indices", "iu")
    indptr = _array(name, state, "indptr", "iu")
    csc = name.startswith("csc")
    major, minor = (n, m) if csc else (m, n)
    if len(indptr) != major + 1:
        raise _refuse(f"{name}: index pointer has {len(indptr):,} entries for shape "
                      f"({m}, {n}); it needs {major + 1:,}")
    if len(indices) != len(data):
        raise _refuse(f"{name}: {len(indices):,} indices but {len(data):,} values")
    nnz = len(data)
    _budget(name, m, n, nnz, data.dtype.itemsize, max_bytes,
            extra=(n + 1) * _INDEX_BYTES if csc else 0)
    if int(indptr[0]) != 0 or int(indptr[-1]) != nnz or (
            major and int(np.diff(indptr).min()) < 0):
        raise _refuse(f"{name}: the index pointer is not a non-decreasing 0..nnz sequence")
    _check_bounds(name, "column" if not csc else "row", indices, minor)
    cls = sp.csc_matrix if csc else sp.csr_matrix
    out = cls((data, indices, indptr), shape=(m, n))
    return out.tocsr() if csc else out


def _coo(name: str, state: dict, m: int, n: int, max_bytes: int) -> sp.csr_matrix:
    if "coords" in state:
        coords = state["coords"]
        if not isinstance(coords, tuple) or len(coords) != 2:
            raise _refuse(f"{name}.coords must hold two index arrays")
        state = {**state, "row": coords[0], "col": coords[1]}
    data = _array(name, state, "data", _DATA_KINDS)
    row = _array(name, state, "row", "iu")
    col = _array(name, state, "col", "iu")
    if not len(row) == len(col) == len(data):
        raise _refuse(f"{name}: {len(row):,} rows, {len(col):,} columns and {len(data):,} "
                      f"values differ in length")
    _budget(name, m, n, len(data), data.dtype.itemsize, max_bytes)
    _check_bounds(name, "row", row, m)
    _check_bounds(name, "column", col, n)
    return sp.coo_matrix((data, (row, col)), shape=(m, n)).tocsr()


def _dtype_of(name: str, state: dict) -> np.dtype:
    dtype = _plain_dtype(state.get("dtype"))
    if dtype.hasobject:
        raise _refuse(f"{name} declares dtype object")
    return dtype


def _index(value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError


def _dok(name: str, state: dict, m: int, n: int, max_bytes: int) -> sp.csr_matrix:
    items = state.get("_dict", state["_items"])
    if not isinstance(items, dict):
        raise _refuse(f"{name}._dict is not a dict")
    dtype = _dtype_of(name, state)
    _budget(name, m, n, len(items), dtype.itemsize, max_bytes)
    rows, cols, values = [], [], []
    for key, value in items.items():
        try:
            i, j = (_index(x) for x in key)
        except (TypeError, ValueError):
            raise _refuse(f"{name}: key {key!r} is not a (row, column) pair") from None
        if not (0 <= i < m and 0 <= j < n):
            raise _refuse(f"{name}: entry ({i}, {j}) falls outside the declared shape")
        if not isinstance(value, numbers.Number):
            raise _refuse(f"{name}: value {value!r} is not a number")
        rows.append(i)
        cols.append(j)
        values.append(value)
    return sp.coo_matrix((np.asarray(values, dtype=dtype),
                          (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                         shape=(m, n)).tocsr()


def _lil(name: str, state: dict, m: int, n: int, max_bytes: int) -> sp.csr_matrix:
    rows, data = state.get("rows"), state.get("data")
    if not all(isinstance(a, np.ndarray) and a.dtype == object and a.shape == (m,)
               for a in (rows, data)):
        raise _refuse(f"{name}: rows and data must be object arrays of length {m}")
    dtype = _dtype_of(name, state)
    nnz = sum(len(r) if isinstance(r, list) else 0 for r in rows)
    _budget(name, m, n, nnz, dtype.itemsize, max_bytes)
    indptr = np.zeros(m + 1, np.int64)
    indices, values = [], []
    for i, (r, d) in enumerate(zip(rows, data, strict=True)):
        if not isinstance(r, list) or not isinstance(d, list) or len(r) != len(d):
            raise _refuse(f"{name}: row {i} is malformed")
        try:
            cols = [_index(j) for j in r]
        except TypeError:
            raise _refuse(f"{name}: row {i} holds a non-integer column") from None
        if any(not 0 <= j < n for j in cols):
            raise _refuse(f"{name}: row {i} has a column outside the declared shape")
        if any(not isinstance(v, numbers.Number) for v in d):
            raise _refuse(f"{name}: row {i} holds a value that is not a number")
        indices.extend(cols)
        values.extend(d)
        indptr[i + 1] = indptr[i] + len(cols)
    return sp.csr_matrix((np.asarray(values, dtype=dtype), np.asarray(indices, np.int64),
                          indptr), shape=(m, n))
