"""Dataset adapters: the restricted unpickler, matrix folders, MovieLens, splits, the CLI."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from fuserec.cli import app
from fuserec.data.adapters import (
    UnsafePickleError,
    carve_validation,
    cold_start_split,
    load_dataset,
    load_sparse_pickle,
)

SHARED_TIKTOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "diffmm_tiktok"


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _random_coo(n_users=30, n_items=20, nnz=120, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, n_users, nnz), rng.integers(0, n_items, nnz)
    m = sp.coo_matrix((np.ones(nnz), (rows, cols)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def test_restricted_unpickler_rejects_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(UnsafePickleError, match="system"):
        load_sparse_pickle(path)
    assert not marker.exists()


def test_restricted_unpickler_rejects_other_objects(tmp_path):
    path = tmp_path / "frame.pkl"
    path.write_bytes(pickle.dumps(pd.DataFrame({"a": [1]})))
    with pytest.raises(UnsafePickleError):
        load_sparse_pickle(path)
    path.write_bytes(pickle.dumps({"not": "a matrix"}))
    with pytest.raises(UnsafePickleError, match="expected a scipy.sparse"):
        load_sparse_pickle(path)


@pytest.mark.parametrize("fmt", ["coo", "csr"])
def test_restricted_unpickler_loads_sparse_it_wrote(tmp_path, fmt):
    m = _random_coo().asformat(fmt)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(m))
    loaded = load_sparse_pickle(path)
    assert sp.isspmatrix_csr(loaded)
    np.testing.assert_array_equal(loaded.toarray(), m.toarray())


def _write_matrix_folder(folder: Path, with_validation: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    full = _random_coo(40, 25, 400, seed=1).tocsr()
    coo = full.tocoo()
    split = rng.random(coo.nnz)
    names = {"trnMat.pkl": split < 0.7, "tstMat.pkl": split >= 0.85}
    if with_validation:
        names["valMat.pkl"] = (split >= 0.7) & (split < 0.85)
    for name, mask in names.items():
        m = sp.coo_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=full.shape)
        (folder / name).write_bytes(pickle.dumps(m))
    np.save(folder / "image_feat.npy", rng.normal(size=(25, 8)).astype(np.float16))
    np.save(folder / "audio_feat.npy", rng.normal(size=(25, 5)).astype(np.float16))


@pytest.mark.parametrize("with_validation", [True, False])
def test_matrices_adapter(tmp_path, with_validation):
    _write_matrix_folder(tmp_path / "d", with_validation)
    data = load_dataset("matrices", tmp_path / "d")
    assert data.train.shape == data.test.shape == (40, 25)
    assert set(data.item_features) == {"image", "audio"}
    assert data.item_features["image"].vectors.dtype == np.float32
    assert (data.validation is not None) == with_validation
    carved = data.with_validation(0.2, seed=0)
    assert carved.validation is not None and carved.validation.nnz > 0
    assert carved.seen().nnz == data.train.nnz + (data.validation.nnz if with_validation else 0)


def test_tiktok_adapter_is_the_matrices_layout(tmp_path):
    _write_matrix_folder(tmp_path / "t")
    data = load_dataset("tiktok", tmp_path / "t")
    assert data.name == "tiktok"


def test_carve_validation_is_a_seeded_partition():
    train = _random_coo(50, 30, 600).tocsr()
    train.data[:] = 1
    a_train, a_val = carve_validation(train, 0.2, seed=5)
    b_train, b_val = carve_validation(train, 0.2, seed=5)
    assert (a_val != b_val).nnz == 0 and (a_train != b_train).nnz == 0
    assert a_train.multiply(a_val).nnz == 0
    assert ((a_train + a_val) != train).nnz == 0
    counts = np.diff(train.indptr)
    assert np.all(np.diff(a_val.indptr)[counts > 1] >= 1)
    assert np.all(np.diff(a_train.indptr)[counts > 0] >= 1)


def test_cold_start_split_removes_items_from_training():
    train = _random_coo(50, 30, 600).tocsr()
    from fuserec.data.adapters import Dataset

    data = Dataset("x", train, None, _random_coo(50, 30, 100, seed=2).tocsr())
    cold_data, cold = cold_start_split(data, 0.2, seed=0)
    assert len(cold) == 6
    assert cold_data.train[:, cold].nnz == 0
    assert set(np.unique(cold_data.test.indices)) <= set(cold.tolist())
    assert cold_data.test.nnz == (train + data.test)[:, cold].count_nonzero()


def _write_movielens(root: Path) -> None:
    pairs = root / "ml-1m_pairs"
    pairs.mkdir(parents=True)
    rng = np.random.default_rng(0)
    users, items = np.arange(1, 21), np.array([1, 2, 5, 7, 9, 11])
    rows = [(u, i) for u in users for i in items if rng.random() < 0.6]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]).sample(frac=1, random_state=0)
    cut = int(len(frame) * 0.8)
    frame[:cut].to_csv(pairs / "villa_10core_seed42_train.csv", index=False)
    frame[cut:].to_csv(pairs / "villa_10core_seed42_test.csv", index=False)
    pd.DataFrame({"movie_id": items, "title": [f"Movie {i}" for i in items],
                  "genres": ["Comedy", "Drama|Comedy", "Horror", "Drama", "Comedy", "Horror"],
                  "poster_file": [f"posters/{i}.jpg" for i in items],
                  "llm_description": ["words"] * 6, "colakg_item_idx": range(6),
                  "has_mmtf_trailer_audio": [1, 0, 1, 0, 0, 0]}).to_csv(root / "items_ml1m.csv",
                                                                     index=False)
    audio = root / "mmtf14k_trailer_feats"
    audio.mkdir()
    emb = [",".join(str(v) for v in rng.normal(size=40)) for _ in range(2)]
    pd.DataFrame({"itemId": [1, 5], "title": ["a", "b"], "genres": ["x", "y"],
                  "embedding": emb}).to_csv(
        audio / "fused_llm_mmtf_audio_IVec_splitItem_fold_1_gmm_128_tvDim_40.csv", index=False)


def test_movielens_adapter_on_a_tiny_fixture(tmp_path):
    _write_movielens(tmp_path / "ml")
    data = load_dataset("movielens", tmp_path / "ml", views=("genres", "audio"))
    assert data.train.shape == (20, 6)
    assert data.validation is None
    assert data.train.nnz + data.test.nnz > 0
    genres = data.item_features["genres"]
    assert genres.vectors.shape == (6, 3) and genres.present.all()
    audio = data.item_features["audio"]
    assert audio.vectors.shape == (6, 40) and audio.present.tolist() == [1, 0, 1, 0, 0, 0]
    assert list(data.item_ids) == [1, 2, 5, 7, 9, 11]


def test_cli_evaluate_writes_json(tmp_path):
    _write_matrix_folder(tmp_path / "d")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [
        "evaluate", "--dataset", "matrices", "--data-dir", str(tmp_path / "d"),
        "--model", "popularity", "--model", "content-cosine", "--k", "5", "10",
        "--json", str(out), "--no-progress", "--save-dir", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["popularity", "content-cosine"]
    assert set(rows[0]["metrics"]) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    assert all(0 <= v <= 1 for r in rows for v in r["metrics"].values())
    assert "train_seconds" in rows[0]
    assert (tmp_path / "models" / "content-cosine" / "model.safetensors").exists()


def test_cli_lists_models():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    assert "lightgcn" in result.output and "fusegraph" in result.output


@pytest.mark.skipif(not SHARED_TIKTOK.exists(), reason="../shared/data is not present")
def test_real_tiktok_files_load():
    data = load_dataset("tiktok", SHARED_TIKTOK)
    assert data.train.shape == (9308, 6710)
    assert (data.train.nnz, data.validation.nnz, data.test.nnz) == (59541, 3051, 6130)
    assert data.item_features["image"].vectors.shape == (6710, 128)
