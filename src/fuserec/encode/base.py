"""The encoder interface, the encoder registry and small helpers shared by the encoders.

An :class:`Encoder` turns texts (``modality == "text"``) or media file paths (``"image"``,
``"audio"``) into fixed-length float32 vectors. Its :attr:`Encoder.version` fingerprints the
model weights and preprocessing so that cached vectors are never reused across changes.

Encoders implement :meth:`Encoder.encode`; the pipeline uses :meth:`Encoder.encode_batches`,
which yields results batch by batch and reports undecodable inputs instead of raising. The
default ``encode_batches`` is built on ``encode`` (so a minimal subclass only needs ``encode``);
the built-in encoders override it to overlap decoding with inference.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from fuserec.registry import Registry

Modality = Literal["text", "image", "audio"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "audio")

DEFAULT_ENCODERS: dict[str, str] = {
    "text": "minilm",
    "image": "efficientnet-lite0",
    "audio": "librosa",
}


class EncodeError(Exception):
    """An input could not be decoded or encoded; ``input`` names it (a path or a text)."""

    def __init__(self, message: str, input: str | Path | None = None) -> None:
        super().__init__(message)
        self.input = None if input is None else str(input)


@dataclass
class EncodedBatch:
    """One batch of results: ``vectors[j]`` encodes ``inputs[indices[j]]``.

    ``errors`` lists ``(input index, reason)`` for inputs that failed and are not in ``indices``.
    """

    indices: list[int]
    vectors: np.ndarray
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.indices) + len(self.errors)


class Encoder(ABC):
    """Maps texts or media files to ``(n, dim)`` float32 vectors."""

    name: str
    modality: Modality
    dim: int
    #: batch size used when ``batch_size`` is None
    default_batch_size: int = 32
    #: bump when preprocessing changes in a way that changes the vectors
    preprocess_version: str = "1"

    @property
    def version(self) -> str:
        """Fingerprint of name, model identity and preprocessing: the cache key for vectors."""
        return f"{self.name}|{self.model_identity()}|pre{self.preprocess_version}"

    def model_identity(self) -> str:
        """Identity of the model weights and settings (override; e.g. file size and mtime)."""
        return type(self).__qualname__

    @abstractmethod
    def encode(self, inputs: Sequence[str] | Sequence[Path], batch_size: int | None = None
               ) -> np.ndarray:
        """Encode ``inputs`` into an ``(n, dim)`` float32 array.

        Texts for the text modality, file paths otherwise. Raises :class:`EncodeError` naming
        the input when a file cannot be decoded.
        """

    def encode_batches(self, inputs: Sequence[str] | Sequence[Path],
                       batch_size: int | None = None) -> Iterator[EncodedBatch]:
        """Yield results batch by batch; failed inputs are reported in ``errors``, not raised.

        The default calls :meth:`encode` once per batch; on :class:`EncodeError` the named
        input is dropped and the rest of the batch retried (one by one if the error names no
        input of the batch). Other exceptions propagate.
        """
        bs = batch_size or self.default_batch_size
        for start in range(0, len(inputs), bs):
            yield self._encode_chunk(inputs, list(range(start, min(start + bs, len(inputs)))), bs)

    def _encode_chunk(self, inputs: Sequence, idx: list[int], bs: int) -> EncodedBatch:
        errors: list[tuple[int, str]] = []
        pending = list(idx)
        while pending:
            try:
                vectors = self.encode([inputs[i] for i in pending], bs)
                return EncodedBatch(pending, _as_matrix(vectors, len(pending), self.dim), errors)
            except EncodeError as exc:
                named = [i for i in pending if str(inputs[i]) == exc.input]
                if named:
                    errors.append((named[0], str(exc)))
                    pending.remove(named[0])
                    continue
                if len(pending) == 1:
                    errors.append((pending[0], str(exc)))
                    pending = []
                    continue
                # the error names nothing we know: isolate failures one input at a time
                good, vecs = [], []
                for i in pending:
                    try:
                        vecs.append(self.encode([inputs[i]], 1)[0])
                        good.append(i)
                    except EncodeError as one:
                        errors.append((i, str(one)))
                matrix = np.stack(vecs) if vecs else np.zeros((0, self.dim), np.float32)
                return EncodedBatch(good, _as_matrix(matrix, len(good), self.dim), errors)
        return EncodedBatch([], np.zeros((0, self.dim), np.float32), errors)

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release worker pools or other resources (optional)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def collect_batches(encoder: Encoder, batches: Iterator[EncodedBatch], inputs: Sequence
                    ) -> np.ndarray:
    """Assemble ``encode_batches`` output into one ``(n, dim)`` array; raise on the first error."""
    out = np.zeros((len(inputs), encoder.dim), dtype=np.float32)
    for batch in batches:
        if batch.errors:
            index, reason = batch.errors[0]
            raise EncodeError(reason, inputs[index])
        if batch.indices:
            out[np.asarray(batch.indices)] = batch.vectors
    return out


def _as_matrix(vectors: np.ndarray, n: int, dim: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.shape != (n, dim):
        raise ValueError(f"encoder returned shape {arr.shape}, expected {(n, dim)}")
    return arr


ENCODERS: Registry[Encoder] = Registry("encoder")


def _load_builtin() -> None:
    # importing the modules registers their encoders
    from fuserec.encode import audio, image, text  # noqa: F401


def get_encoder(name: str, **kwargs) -> Encoder:
    """Build the encoder registered as ``name`` (e.g. ``"minilm"``) with ``kwargs``."""
    _load_builtin()
    return ENCODERS.create(name, **kwargs)


def file_identity(path: str | os.PathLike[str]) -> str:
    """Cheap identity of a model file or folder: name, size and mtime (ns) of its files."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{st.st_size}:"
                 f"{st.st_mtime_ns};".encode())
    return f"{path.name}@{h.hexdigest()[:16]}"


def default_threads() -> int:
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the old value afterwards."""
    import torch

    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)
