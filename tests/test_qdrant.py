"""Qdrant beyond the shared index contract (tests/test_index.py runs it in memory): the
on-disk local mode, reloading, and what the server mode saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from fuserec.index import QdrantIndex, build_index, load_index  # noqa: E402


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_path_mode_persists_and_reloads(tmp_path: Path) -> None:
    x, q = _unit(40, 8, 0), _unit(3, 8, 1)
    index = build_index(x, "qdrant", path=str(tmp_path / "store"), collection="items")
    assert index.exact and index.ntotal == 40
    want = np.argsort(-(q @ x.T), axis=1)[:, :4]
    np.testing.assert_array_equal(index.search(q, 4)[0], want)
    index.save(tmp_path / "ix")
    assert {p.name for p in (tmp_path / "ix").iterdir()} == {"index.json", "vectors.npy"}
    loaded = load_index(tmp_path / "ix")
    assert isinstance(loaded, QdrantIndex) and loaded.collection == "items"
    np.testing.assert_array_equal(loaded.search(q, 4)[0], want)
    np.testing.assert_allclose(loaded.reconstruct(np.array([5, 0])), x[[5, 0]], atol=1e-6)


def test_memory_mode_reloads_into_a_fresh_store(tmp_path: Path) -> None:
    x = _unit(12, 4, 2)
    build_index(x, "qdrant").save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert loaded.ntotal == 12
    np.testing.assert_allclose(loaded.reconstruct(np.arange(12)), x, atol=1e-6)


def test_server_mode_saves_only_the_config(tmp_path: Path, monkeypatch) -> None:
    index = QdrantIndex(4)  # memory mode, then pretend it talks to a server
    index.url = "http://qdrant.example:6333"
    index._save(tmp_path)
    assert not (tmp_path / "vectors.npy").exists()
    assert index.config()["url"] == "http://qdrant.example:6333"
    with pytest.raises(ValueError, match="not both"):
        QdrantIndex(4, url="http://x:6333", path=str(tmp_path))


def test_reconstruct_rejects_unknown_positions() -> None:
    index = build_index(_unit(5, 4, 3), "qdrant")
    with pytest.raises(KeyError, match="positions not in collection"):
        index.reconstruct(np.array([7]))
