"""Bring-your-own embeddings: ``features/<name>.npy`` or ``feature_<name>`` list columns become
named precomputed views that validation checks, the pipeline fuses and serving starts on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from data_helpers import good_rows, make_catalog, make_media, write_rows
from fuserec.artifacts import load_artifacts
from fuserec.cli import app
from fuserec.data.loaders import load_catalog
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog
from fuserec.data.validate import DROPPED_FEATURE, CatalogError
from fuserec.encode import encode_catalog
from fuserec.pipeline import PipelineConfig, run_pipeline
from fuserec.serve.state import ServeError, ServingState
from serve_helpers import FAKE_ENCODERS

SPEC = DemoCatalogSpec(n_items=30, n_users=16, seed=5, inject_errors=False, spoken_share=0.0)


def _save(root, rows, name="clip", users=False):
    folder = root / "features" / ("users" if users else "")
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}.npy", np.asarray(rows))
    return folder / f"{name}.npy"


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("byo")
    catalog = generate_demo_catalog(base / "catalog", SPEC, progress=False)
    n = len(pd.read_csv(catalog / "items.csv"))
    clip = np.random.default_rng(0).normal(size=(n, 12)).astype(np.float32)
    _save(catalog, clip)
    config = PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False,
                            models=("content-cosine", "popularity"))
    results = run_pipeline(catalog, base / "run", config, Console(quiet=True))
    return base, results, clip


def test_precomputed_view_is_evaluated_fused_and_stored(byo_run):
    base, results, clip = byo_run
    assert "clip" in results["views"] and "ndcg@10" in results["views"]["clip"]
    assert set(results["encoders"]) == {"text", "image", "audio"}  # no encoder for clip
    assert "clip" in json.loads((base / "run" / "results.json").read_text())["views"]
    art = load_artifacts(base / "run" / "artifacts")
    assert "clip" not in art.manifest["encoders"]
    assert art.model.fuser.modalities == ["text", "image", "audio", "clip"]  # the fused view
    stored = art.embeddings["items"]["clip"]
    np.testing.assert_allclose(stored.vectors, clip)
    assert stored.present.all()
    # the content-cosine candidate of model selection reads it too
    assert "clip" in results["models"]["content-cosine"]["params"]["modalities"]


def test_serving_starts_on_precomputed_views(byo_run):
    base, _, _ = byo_run
    state = ServingState.from_folder(base / "run" / "artifacts")
    assert "clip" not in state.modalities  # nothing to encode a clip query with
    user = state.artifacts.users["id"].iloc[0]
    recs = state.recommend(user, k=5, explain=True)
    assert len(recs) == 5 and "clip" in recs[0]["explanation"]["modalities"]
    with pytest.raises(ServeError):
        state.encoder("clip")
    pos = state.add_item("new_item", {"title": "A fresh story about cooking"}, {})
    assert state.item_ids[pos] == "new_item"
    assert state.similar("new_item", k=3)


def test_nan_and_zero_rows_are_not_present_and_nan_is_reported(tmp_path):
    root = make_catalog(tmp_path)  # items i1..i4
    rows = np.arange(1, 13, dtype=np.float64).reshape(4, 3)
    rows[1, 0] = np.nan
    rows[2, 2] = np.inf
    rows[3] = 0.0
    _save(root, rows)
    catalog, report = load_catalog(root, progress=False)
    assert len(catalog.items) == 4  # the rest of the catalog loads
    view = catalog.item_features["clip"]
    assert view.vectors.dtype == np.float32 and view.vectors.shape == (4, 3)
    assert view.present.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(view.vectors[0], [1, 2, 3])
    assert np.isfinite(view.vectors).all()
    issues = [r for r in report.issues if r.action == DROPPED_FEATURE]
    assert [(r.record, r.field) for r in issues] == [("i2", "clip"), ("i3", "clip")]
    assert "clip" in issues[0].reason and "NaN" in issues[0].reason
    assert issues[0].path == "features/clip.npy"
    assert report.n_rejected == 0  # the record stays; only its clip view is missing
    encoded = encode_catalog(catalog, {}, progress=False)
    assert encoded["items"]["clip"].present.tolist() == [True, False, False, False]
    assert encoded["items"]["clip"].ids == ["i1", "i2", "i3", "i4"]


def test_rows_are_realigned_to_the_records_that_survive(tmp_path):
    make_media(tmp_path)
    items, _, interactions = good_rows()
    items = [items[0], {**items[1], "id": ""}, items[2], {**items[0]}, items[3]]  # 5 records
    write_rows(tmp_path / "items.csv", items)
    lines = (tmp_path / "items.csv").read_text().splitlines(keepends=True)
    lines.insert(3, "broken,row\n")  # a 6th record that does not parse, after the 2nd
    (tmp_path / "items.csv").write_text("".join(lines))
    write_rows(tmp_path / "interactions.csv", interactions)
    rows = np.array([[r, r + 0.5] for r in range(1, 7)], dtype=np.float32)
    _save(tmp_path, rows)
    catalog, report = load_catalog(tmp_path, progress=False)
    assert catalog.item_ids == ["i1", "i3", "i4"]  # empty id, broken row, duplicate rejected
    # file records: i1, (empty id), broken row, i3, i1 again, i4
    np.testing.assert_array_equal(catalog.item_features["clip"].vectors[:, 0], [1, 4, 6])


def test_user_features_align_with_the_users_file(tmp_path):
    root = make_catalog(tmp_path)  # users u1..u3
    _save(root, [[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], users=True)
    catalog, _ = load_catalog(root, progress=False)
    assert catalog.item_features == {}
    view = catalog.user_features["clip"]
    assert view.present.tolist() == [True, False, True]
    encoded = encode_catalog(catalog, {}, progress=False)
    assert set(encoded["users"]) == {"clip"} and set(encoded["items"]) == set()


def test_wrong_row_count_is_one_clear_error_naming_the_file(tmp_path):
    root = make_catalog(tmp_path)
    path = _save(root, np.ones((3, 4)))
    with pytest.raises(CatalogError, match=r"clip\.npy: 3 rows, but .*items\.csv has 4"):
        load_catalog(root, progress=False)
    result = CliRunner().invoke(app, ["validate", str(root), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().startswith("error:")
    assert path.name in result.output and "3 rows" in result.output


@pytest.mark.parametrize(("array", "message"), [
    (np.ones(4), "2-D"),
    (np.ones((4, 0)), "no dimensions"),
    (np.array([["a"]] * 4), "must be numbers"),
    (np.ones((4, 2), dtype=bool), "must be numbers"),
])
def test_unusable_feature_files_are_catalog_errors(tmp_path, array, message):
    root = make_catalog(tmp_path)
    _save(root, array)
    with pytest.raises(CatalogError, match=message):
        load_catalog(root, progress=False)


def test_bad_names_and_user_features_without_users_are_errors(tmp_path):
    root = make_catalog(tmp_path)
    _save(root, np.ones((4, 2)), name="text")
    with pytest.raises(CatalogError, match="reserved"):
        load_catalog(root, progress=False)
    (root / "features" / "text.npy").unlink()
    (root / "users.csv").unlink()
    _save(root, np.ones((3, 2)), users=True)
    with pytest.raises(CatalogError, match="need a users table"):
        load_catalog(root, progress=False)


def test_parquet_feature_column_works_like_a_file(tmp_path):
    items, users, interactions = good_rows()
    vectors = [[1.0, 2.0, 3.0], None, [4.0, float("nan"), 6.0], [0.0, 0.0, 0.0]]
    items = [{**row, "feature_clip": vec} for row, vec in zip(items, vectors, strict=True)]
    root = make_catalog(tmp_path, fmt="parquet", items=items)
    catalog, report = load_catalog(root, items="items.parquet", progress=False)
    assert "feature_clip" not in catalog.items.columns  # not text, not an attribute
    view = catalog.item_features["clip"]
    assert view.present.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(view.vectors[0], [1, 2, 3])
    issues = [r for r in report.issues if r.action == DROPPED_FEATURE]
    assert [(r.record, r.field) for r in issues] == [("i3", "clip")]
    assert "NaN" in issues[0].reason
    encoded = encode_catalog(catalog, {}, progress=False)
    assert encoded["items"]["clip"].dim == 3


def test_parquet_column_with_a_ragged_row_reports_that_row(tmp_path):
    items, _, _ = good_rows()
    vectors = [[1.0, 2.0], [3.0, 4.0], [5.0], [7.0, 8.0]]
    items = [{**row, "feature_clip": vec} for row, vec in zip(items, vectors, strict=True)]
    root = make_catalog(tmp_path, fmt="parquet", items=items)
    catalog, report = load_catalog(root, items="items.parquet", progress=False)
    assert catalog.item_features["clip"].present.tolist() == [True, True, False, True]
    issue = next(r for r in report.issues if r.action == DROPPED_FEATURE)
    assert issue.record == "i3" and "1 values" in issue.reason
