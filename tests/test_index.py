"""Contract tests run against every index: exact answers on small data, recall on larger data,
filters, incremental adds and persistence."""

import numpy as np
import pandas as pd
import pytest

from fuserec.index import INDEXES, ExactIndex, build_index, load_index
from fuserec.index import base as index_base
from fuserec.index.filters import FilterError, filter_mask, parse_filter, parse_filters

# name -> (registered kind, config); every registered kind must appear at least once
INDEX_CONFIGS = {
    "exact": ("exact", {}),
    "faiss-auto": ("faiss", {}),
    "faiss-flat": ("faiss", {"structure": "flat"}),
    "faiss-hnsw": ("faiss", {"structure": "hnsw"}),
    "faiss-ivf": ("faiss", {"structure": "ivf"}),
    # one build thread: a multi-threaded HNSW build differs run to run, and the exactness
    # checks below compare against brute force item by item
    "usearch": ("usearch", {"threads": 1}),
    "qdrant-memory": ("qdrant", {}),
}
APPROXIMATE = ["faiss-hnsw", "faiss-ivf", "usearch"]


def clustered(n: int, dim: int, seed: int = 0, n_clusters: int = 40) -> np.ndarray:
    """Vectors around cluster centres, unit length: the shape real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = centres[rng.integers(0, n_clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None):
    scores = q @ x.T
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


def test_every_registered_index_is_under_contract():
    assert set(INDEXES.names()) == {kind for kind, _ in INDEX_CONFIGS.values()}


@pytest.fixture(params=sorted(INDEX_CONFIGS))
def make(request):
    kind, config = INDEX_CONFIGS[request.param]
    return lambda vectors: build_index(vectors, kind, **config)


def test_exact_answers_on_small_data(make):
    x, q = clustered(60, 16, seed=1), clustered(5, 16, seed=2)
    index = make(x)
    assert index.ntotal == len(index) == 60
    pos, scores = index.search(q, 5)
    want_pos, want_scores = brute(x, q, 5)
    assert pos.shape == scores.shape == (5, 5)
    np.testing.assert_array_equal(pos, want_pos)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_exclude_and_allow_filters(make):
    x, q = clustered(80, 16, seed=3), clustered(3, 16, seed=4)
    index = make(x)
    allow = np.arange(80) % 3 != 0
    exclude = [brute(x, q[i: i + 1], 4, allow)[0][0] for i in range(3)]  # drop each best four
    pos, _ = index.search(q, 6, exclude=exclude, allow=allow)
    for row in range(3):
        mask = allow.copy()
        mask[exclude[row]] = False
        want, _ = brute(x, q[row: row + 1], 6, mask)
        np.testing.assert_array_equal(pos[row], want[0])
        assert not set(pos[row]) & set(exclude[row])
        assert allow[pos[row]].all()


def test_overfetch_path_matches_exact(make, monkeypatch):
    """With the exact-subset shortcut disabled, over-fetching must still find the filtered top-k."""
    monkeypatch.setattr(index_base, "EXACT_SUBSET_MAX", 0)
    x, q = clustered(200, 16, seed=5), clustered(4, 16, seed=6)
    index = make(x)
    allow = np.arange(200) % 2 == 0
    shared = np.array([0, 2, 4, 6, 8], dtype=np.int64)
    pos, _ = index.search(q, 5, exclude=shared, allow=allow)
    mask = allow.copy()
    mask[shared] = False
    want, _ = brute(x, q, 5, mask)
    np.testing.assert_array_equal(pos, want)


def test_pads_when_filters_leave_too_few(make):
    x = clustered(30, 8, seed=7)
    index = make(x)
    allow = np.zeros(30, bool)
    allow[[3, 5]] = True
    pos, scores = index.search(x[:1], 4, exclude=np.array([5]), allow=allow)
    assert pos[0].tolist() == [3, -1, -1, -1]
    assert np.isfinite(scores[0, 0]) and np.isneginf(scores[0, 1:]).all()
    pos, scores = index.search(x[:1], 3, allow=np.zeros(30, bool))
    assert (pos == -1).all() and np.isneginf(scores).all()


def test_add_appends_positions_and_is_searchable(make):
    x = clustered(50, 16, seed=8)
    index = make(x[:40])
    new = index.add(x[40:])
    assert new.tolist() == list(range(40, 50))
    assert index.ntotal == 50
    pos, _ = index.search(x[45], 1)
    assert pos[0, 0] == 45
    np.testing.assert_allclose(index.reconstruct(np.array([41, 3])), x[[41, 3]], atol=1e-6)


def test_save_load_round_trip(make, tmp_path):
    x, q = clustered(70, 16, seed=9), clustered(3, 16, seed=10)
    index = make(x)
    before = index.search(q, 5)
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert type(loaded) is type(index) and loaded.ntotal == 70 and loaded.dim == 16
    after = loaded.search(q, 5)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-5)
    names = {p.name for p in (tmp_path / "ix").iterdir()}
    assert "index.json" in names and not any(n.endswith((".tmp", ".pkl", ".pickle")) for n in names)
    loaded.add(clustered(2, 16, seed=11))  # still usable after loading
    assert loaded.ntotal == 72


def test_load_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.json"):
        load_index(tmp_path)


def test_bad_shapes_are_reported():
    index = ExactIndex(8)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        index.add(np.zeros((2, 5), np.float32))
    index.add(np.eye(8, dtype=np.float32))
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.zeros(8, np.float32), 0)
    with pytest.raises(ValueError, match="allow mask"):
        index.search(np.zeros(8, np.float32), 2, allow=np.ones(3, bool))


@pytest.mark.parametrize("name", APPROXIMATE + ["faiss-auto-large"])
def test_approximate_indexes_reach_recall(name):
    x, q = clustered(6000, 64, seed=12, n_clusters=80), clustered(100, 64, seed=13, n_clusters=80)
    if name == "faiss-auto-large":
        index = build_index(x, "faiss", threshold=1000)
        assert index.built == "hnsw" and not index.exact
    else:
        kind, config = INDEX_CONFIGS[name]
        index = build_index(x, kind, **config)
    pos, _ = index.search(q, 10)
    want, _ = brute(x, q, 10)
    recall = np.mean([len(set(p) & set(w)) / 10 for p, w in zip(pos, want, strict=True)])
    assert recall >= 0.95, f"{name}: recall@10 {recall:.3f}"


def test_faiss_auto_is_flat_below_threshold():
    index = build_index(clustered(100, 8), "faiss")
    assert index.built == "flat" and index.exact


# -- attribute filters ---------------------------------------------------------------------
ITEMS = pd.DataFrame({"id": ["a", "b", "c", "d"], "attr_year": [1999, 2005, None, 2010],
                      "attr_category": ["rock", "jazz", "rock", None]})


def test_parse_filters():
    f = parse_filter("year >= 2000")
    assert (f.column, f.op, f.value) == ("attr_year", ">=", "2000")
    assert parse_filter("attr_category=rock").op == "=="
    assert parse_filter("category=='rock'").value == "rock"
    with pytest.raises(FilterError, match="cannot read filter"):
        parse_filter("year ~ 2000")


def test_filter_masks():
    assert filter_mask(ITEMS, parse_filters(["year>=2000"])).tolist() == [False, True, False, True]
    assert filter_mask(ITEMS, parse_filters(["category==rock"])).tolist() == [True, False, True,
                                                                              False]
    both = filter_mask(ITEMS, parse_filters(["year<2006", "category!=rock"]))
    assert both.tolist() == [False, True, False, False]
    assert filter_mask(ITEMS, []) is None
    with pytest.raises(FilterError, match="unknown attribute 'attr_colour'"):
        filter_mask(ITEMS, parse_filters(["colour==red"]))
    with pytest.raises(FilterError, match="needs a number"):
        filter_mask(ITEMS, parse_filters(["category>rock"]))
