"""Qdrant: an external vector store behind the index protocol, through ``qdrant-client``.

Three modes, picked by the config:

* ``url="http://host:6333"``: a Qdrant server (production). Vectors live on the server in the
  collection named ``collection``; :meth:`save` writes only ``index.json`` and loading
  reconnects to that collection. Searches use the server's HNSW index unless ``exact_search``.
* ``path="folder"``: qdrant-client's embedded local mode, persisted in ``folder``.
* neither: embedded local mode in memory (tests, small catalogs).

The embedded modes search exactly (qdrant-client scans all vectors), so they are marked
``exact``; they also write ``vectors.npy`` on :meth:`save` so the index reloads anywhere.
Points are identified by their position (0..n-1); scores are inner products (``Distance.DOT``).
``api_key`` is read from the ``QDRANT_API_KEY`` environment variable and never saved.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from fuserec.index.base import INDEXES, VectorIndex
from fuserec.io import write_with

#: points per upsert request and queries per search request
UPSERT_BATCH = 1024
QUERY_BATCH = 256

_LOCAL_CLIENTS: dict[str, Any] = {}


def _client(url: str | None, path: str | None, timeout: int | None) -> Any:
    from qdrant_client import QdrantClient

    if url is not None:
        return QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"), timeout=timeout)
    if path is not None:
        # an on-disk local store admits one client per folder and process: share it
        key = str(Path(path).resolve())
        if key not in _LOCAL_CLIENTS:
            _LOCAL_CLIENTS[key] = QdrantClient(path=key)
        return _LOCAL_CLIENTS[key]
    return QdrantClient(location=":memory:")


@INDEXES.register("qdrant")
class QdrantIndex(VectorIndex):
    """Inner-product search in a Qdrant collection (server, local folder or memory).

    Args:
        url: Qdrant server URL; None for the embedded local mode.
        path: folder of the embedded local mode; None keeps it in memory.
        collection: collection name (a fresh ``fuserec-<random>`` when None).
        exact_search: ask the server for exact (brute-force) search instead of HNSW.
        hnsw_m, hnsw_ef: server-side HNSW graph degree and search beam.
        timeout: request timeout in seconds (server mode).
    """

    name = "qdrant"

    def __init__(self, dim: int, url: str | None = None, path: str | None = None,
                 collection: str | None = None, exact_search: bool = False, hnsw_m: int = 16,
                 hnsw_ef: int = 128, timeout: int | None = 60) -> None:
        super().__init__(dim)
        if url is not None and path is not None:
            raise ValueError("give url (a Qdrant server) or path (local mode), not both")
        self.url = url
        self.path = None if path is None else str(path)
        self.collection = collection or f"fuserec-{uuid.uuid4().hex[:12]}"
        self.exact_search = exact_search
        self.hnsw_m = hnsw_m
        self.hnsw_ef = hnsw_ef
        self.timeout = timeout
        self.exact = url is None or exact_search
        self._client = _client(url, self.path, timeout)
        self._created = False

    # -- collection ------------------------------------------------------------------------
    def _create(self) -> None:
        from qdrant_client import models

        if self._client.collection_exists(self.collection):
            self._client.delete_collection(self.collection)
        self._client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.DOT),
            hnsw_config=models.HnswConfigDiff(m=self.hnsw_m))
        self._created = True

    def _count(self) -> int:
        if not self._client.collection_exists(self.collection):
            return -1
        return int(self._client.count(self.collection, exact=True).count)

    # -- backend hooks ---------------------------------------------------------------------
    def _add(self, vectors: np.ndarray) -> None:
        from qdrant_client import models

        if not self._created:
            self._create()
        for start in range(0, len(vectors), UPSERT_BATCH):
            chunk = vectors[start:start + UPSERT_BATCH]
            first = self._ntotal + start
            self._client.upsert(self.collection, wait=True, points=models.Batch(
                ids=list(range(first, first + len(chunk))), vectors=chunk.tolist()))

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from qdrant_client import models

        # embedded local mode always scans exactly and ignores (and warns about) params
        params = None if self.url is None else \
            models.SearchParams(hnsw_ef=max(self.hnsw_ef, k), exact=self.exact_search)
        pos = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        for start in range(0, len(queries), QUERY_BATCH):
            chunk = queries[start:start + QUERY_BATCH]
            responses = self._client.query_batch_points(self.collection, requests=[
                models.QueryRequest(query=q.tolist(), limit=k, params=params,
                                    with_payload=False, with_vector=False) for q in chunk])
            for row, response in enumerate(responses, start):
                hits = response.points[:k]
                pos[row, :len(hits)] = [int(h.id) for h in hits]
                scores[row, :len(hits)] = [float(h.score) for h in hits]
        return pos, scores

    def reconstruct(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64).ravel()
        if len(positions) == 0:
            return np.empty((0, self.dim), np.float32)
        wanted = np.unique(positions)
        records = self._client.retrieve(self.collection, [int(p) for p in wanted],
                                        with_payload=False, with_vectors=True)
        by_id = {int(r.id): r.vector for r in records}
        missing = [int(p) for p in wanted if int(p) not in by_id]
        if missing:
            raise KeyError(f"positions not in collection {self.collection!r}: {missing[:5]}")
        return np.asarray([by_id[int(p)] for p in positions], dtype=np.float32)

    def config(self) -> dict[str, Any]:
        return {"url": self.url, "path": self.path, "collection": self.collection,
                "exact_search": self.exact_search, "hnsw_m": self.hnsw_m,
                "hnsw_ef": self.hnsw_ef, "timeout": self.timeout}

    def _save(self, folder: Path) -> None:
        if self.url is not None:
            return  # the server keeps the vectors; index.json names the collection
        vectors = self.reconstruct(np.arange(self._ntotal)) if self._ntotal else \
            np.empty((0, self.dim), np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a handle: np.save would append ".npy" to a path
                np.save(fh, vectors, allow_pickle=False)

        write_with(folder / "vectors.npy", write)

    def _load(self, folder: Path, ntotal: int) -> None:
        if self._count() == ntotal:
            self._created = True  # a server or local folder that still holds the collection
            return
        file = folder / "vectors.npy"
        if not file.exists():
            raise FileNotFoundError(f"collection {self.collection!r} holds {self._count()} "
                                    f"points, expected {ntotal}, and {file} is missing")
        vectors = np.load(file, allow_pickle=False)
        if len(vectors) != ntotal:
            raise ValueError(f"{file} holds {len(vectors)} vectors, expected {ntotal}")
        self._create()
        self._ntotal = 0
        if ntotal:
            self._add(np.ascontiguousarray(vectors, dtype=np.float32))
