"""``fuserec example movielens`` on a tiny fake data folder with the real file names."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from data_helpers import make_jpeg
from fuserec.cli import app
from fuserec.data.examples import MOVIELENS_AUDIO, write_movielens_catalog
from fuserec.data.loaders import load_catalog

MOVIES = [
    ("1", "Toy Story (1995)", "Animation|Children's|Comedy"),
    ("2", "Jumanji (1995)", "Adventure|Children's|Fantasy"),
    ("3", "Grumpier Old Men (1995)", "Comedy|Romance"),
    ("4", "Never Rated (1999)", "Drama"),
]


def fake_movielens(root):
    """items_ml1m.csv, 2 posters, a 5-pair ViLLA split and a tiny MMTF audio CSV."""
    root.mkdir(parents=True)
    pd.DataFrame({
        "movie_id": [m[0] for m in MOVIES], "title": [m[1] for m in MOVIES],
        "genres": [m[2] for m in MOVIES],
        "poster_file": [f"posters_ml1m_ids/{m[0]}.jpg" for m in MOVIES],
        "llm_description": ['"Toy Story" is about toys,\nwith a second line.',
                            "A board game comes alive.", "Two old men.", "Unseen."],
        "colakg_item_idx": ["0", "1", "2", "3"], "has_mmtf_trailer_audio": ["1", "0", "0", "0"],
    }).to_csv(root / "items_ml1m.csv", index=False)
    make_jpeg(root / "posters_ml1m_ids" / "1.jpg", seed=1)
    make_jpeg(root / "posters_ml1m_ids" / "3.jpg", seed=3)
    (root / "ml-1m_pairs").mkdir()
    pd.DataFrame({"user_id": ["10", "10", "20"], "item_id": ["1", "2", "3"]}).to_csv(
        root / "ml-1m_pairs" / "villa_10core_seed42_train.csv", index=False)
    pd.DataFrame({"user_id": ["10", "20"], "item_id": ["3", "1"]}).to_csv(
        root / "ml-1m_pairs" / "villa_10core_seed42_test.csv", index=False)
    audio = root / MOVIELENS_AUDIO[0]
    audio.parent.mkdir(parents=True)
    pd.DataFrame({"itemId": [1, 999], "title": ["Toy Story (1995)", "Not in ML-1M (2010)"],
                  "genres": ["Animation", "Drama"],
                  "embedding": ["0.5,-0.25,0.125", "1,2,3"]}).to_csv(audio, index=False)
    return root


def test_written_folder_is_a_catalog_with_split_and_trailer_audio(tmp_path):
    data = fake_movielens(tmp_path / "data")
    summary = write_movielens_catalog(data, tmp_path / "catalog", progress=False)
    assert summary["items"] == 3  # movie 4 is not in the split
    assert summary["posters_copied"] == 2 and summary["posters_missing"] == 1
    assert summary["items_with_trailer_audio"] == 1 and summary["trailer_audio_dim"] == 3
    assert summary["interactions"] == 5 and summary["test"] == 2

    catalog, report = load_catalog(tmp_path / "catalog", progress=False)
    assert report.n_rejected == 0 and report.n_dropped_media == 0
    assert catalog.item_ids == ["1", "2", "3"]
    first = catalog.items.iloc[0]
    assert first["title"] == "Toy Story (1995)" and first["attr_year"] == "1995"
    assert first["genres"] == "Animation, Children's, Comedy"
    assert first["attr_genre"] == "Animation|Children's|Comedy"  # the page's genre facet
    assert "second line" in first["description"]
    assert first["images"] == ["posters/1.jpg"] and catalog.items.iloc[1]["images"] == []
    assert (tmp_path / "catalog" / "posters" / "1.jpg").read_bytes() == \
        (data / "posters_ml1m_ids" / "1.jpg").read_bytes()
    assert set(catalog.interactions["split"]) <= {"train", "validation", "test"}
    test = catalog.interactions[catalog.interactions["split"] == "test"]
    assert sorted(zip(test["user_id"], test["item_id"], strict=True)) == [("10", "3"),
                                                                          ("20", "1")]
    audio = catalog.item_features["trailer_audio"]
    assert audio.present.tolist() == [True, False, False]
    np.testing.assert_allclose(audio.vectors[0], [0.5, -0.25, 0.125])


def test_validation_rows_are_carved_from_train_deterministically(tmp_path):
    data = fake_movielens(tmp_path / "data")
    a = write_movielens_catalog(data, tmp_path / "a", validation_fraction=0.5, progress=False)
    write_movielens_catalog(data, tmp_path / "b", validation_fraction=0.5, progress=False)
    assert (tmp_path / "a" / "interactions.csv").read_bytes() == \
        (tmp_path / "b" / "interactions.csv").read_bytes()
    # user 10 has two train rows: one becomes validation, one stays train; test is untouched
    assert a["validation"] == 1 and a["train"] == 2 and a["test"] == 2


def test_cli_prints_counts_and_names_a_missing_file(tmp_path):
    data = fake_movielens(tmp_path / "data")
    result = CliRunner().invoke(app, ["example", "movielens", "--data-dir", str(data),
                                      "--out", str(tmp_path / "cat"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 items, 2 users, 5 interactions" in result.output
    assert "2 posters copied" in result.output and "1 items with trailer audio" in result.output
    (data / "items_ml1m.csv").unlink()
    result = CliRunner().invoke(app, ["example", "movielens", "--data-dir", str(data),
                                      "--out", str(tmp_path / "cat2"), "--no-progress"])
    assert result.exit_code == 2 and "items_ml1m.csv" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["example", "netflix", "--data-dir", str(data),
                                      "--out", str(tmp_path / "cat3")])
    assert result.exit_code != 0
