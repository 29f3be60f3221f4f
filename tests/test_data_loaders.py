"""Loading CSV, JSONL and Parquet catalogs; per-record parse problems."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from data_helpers import good_rows, make_catalog, make_media, write_rows
from fuserec.data import ValidationReport, load_catalog, read_table


def _load(root: Path, fmt: str):
    return load_catalog(root, items=f"items.{fmt}", progress=False)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_good_catalog_loads_clean(tmp_path: Path, fmt: str) -> None:
    root = make_catalog(tmp_path / fmt, fmt)
    catalog, report = _load(root, fmt)
    assert report.issues == []
    assert report.ok == {"items": 4, "users": 3, "interactions": 5}
    assert catalog.item_ids == ["i1", "i2", "i3", "i4"]
    assert catalog.user_ids == ["u1", "u2", "u3"]
    assert catalog.items.loc[1, "images"] == ["images/i2.jpg", "images/i1.png"]
    assert catalog.items.loc[3, "images"] == []
    assert catalog.interactions["weight"].dtype == "float64"
    assert catalog.interactions["timestamp"].tolist()[0] == 1700000000


def test_three_formats_give_equal_tables(tmp_path: Path) -> None:
    loaded = {fmt: _load(make_catalog(tmp_path / fmt, fmt), fmt)[0]
              for fmt in ("csv", "jsonl", "parquet")}
    base = loaded["csv"]
    for fmt in ("jsonl", "parquet"):
        other = loaded[fmt]
        pd.testing.assert_frame_equal(base.items, other.items)
        pd.testing.assert_frame_equal(base.users, other.users)
        pd.testing.assert_frame_equal(base.interactions, other.interactions)


def test_jsonl_accepts_pipe_strings_and_nulls(tmp_path: Path) -> None:
    make_media(tmp_path)
    items, _, _ = good_rows()
    items[1]["images"] = "images/i2.jpg | images/i1.png"
    items[3]["images"] = None
    items[3]["description"] = None
    write_rows(tmp_path / "items.jsonl", items)
    frame, issues = read_table(tmp_path / "items.jsonl", "items")
    assert issues == []
    assert frame.loc[1, "images"] == ["images/i2.jpg", "images/i1.png"]
    assert frame.loc[3, "images"] == []
    assert frame.loc[3, "description"] == ""


def test_ids_are_stripped_strings_and_weight_defaults(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("id,title\n 7 ,seven\n8,eight\n", encoding="utf-8")
    (tmp_path / "interactions.csv").write_text("user_id,item_id\nu1,7\nu2, 8\n", encoding="utf-8")
    catalog, report = load_catalog(tmp_path, progress=False)
    assert catalog.item_ids == ["7", "8"]
    assert catalog.interactions["item_id"].tolist() == ["7", "8"]
    assert catalog.interactions["weight"].tolist() == [1.0, 1.0]
    # no users table: users are implied by interactions
    assert catalog.user_ids == ["u1", "u2"]
    assert report.n_rejected == 0


def test_missing_id_column_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("name,title\na,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"items\.csv.*'id'"):
        read_table(path, "items")
    with pytest.raises(ValueError, match="items.csv"):
        load_catalog(tmp_path, progress=False)


def test_missing_interaction_columns(tmp_path: Path) -> None:
    path = tmp_path / "interactions.jsonl"
    path.write_text(json.dumps({"user": "u1", "item_id": "i1"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"interactions\.jsonl.*'user_id'"):
        read_table(path, "interactions")


def test_unsupported_table_format(tmp_path: Path) -> None:
    path = tmp_path / "items.xlsx"
    path.write_bytes(b"xx")
    with pytest.raises(ValueError, match="unsupported table format"):
        read_table(path, "items")


def test_non_utf8_csv_row_is_rejected_alone(tmp_path: Path) -> None:
    root = make_catalog(tmp_path, "csv")
    data = (root / "items.csv").read_bytes()
    bad = b"i5,Caf\xe9 cr\xe8me,Latin-1 text,brown,,\n"
    (root / "items.csv").write_bytes(data + bad)
    catalog, report = load_catalog(root, progress=False)
    assert catalog.item_ids == ["i1", "i2", "i3", "i4"]
    [rej] = report.rejected("items")
    assert rej.record == "i5"
    assert "UTF-8" in rej.reason and "title" in rej.reason
    assert report.ok["items"] == 4


def test_non_utf8_in_csv_id_uses_line_number(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_bytes(b"id,title\na,ok\n\xff\xfe,bad\nb,ok\n")
    frame, issues = read_table(tmp_path / "items.csv", "items")
    assert frame["id"].tolist() == ["a", "b"]
    assert [(r.record, r.field) for r in issues] == [("line 3", "id")]


def test_malformed_csv_rows(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text(
        "id,title\na,ok\nb,too,many,fields\nc\nd,fine\n", encoding="utf-8"
    )
    frame, issues = read_table(tmp_path / "items.csv", "items")
    assert frame["id"].tolist() == ["a", "d"]
    assert [r.record for r in issues] == ["line 3", "line 4"]
    assert all("malformed" in r.reason for r in issues)


def test_jsonl_bad_lines_are_rejected_alone(tmp_path: Path) -> None:
    root = make_catalog(tmp_path, "jsonl")
    with open(root / "items.jsonl", "ab") as fh:
        fh.write(b'{"id": "i5", "title": "caf\xe9"}\n')  # line 5: Latin-1 byte
        fh.write(b'{"id": "i6", "title": \n')  # line 6: malformed JSON
        fh.write(b"\n")  # blank, ignored
        fh.write(b'["not", "an", "object"]\n')  # line 8
        fh.write(b'{"id": "i9", "title": "bad \\udc80 escape"}\n')  # line 9: lone surrogate
    catalog, report = load_catalog(root, items="items.jsonl", progress=False)
    assert catalog.item_ids == ["i1", "i2", "i3", "i4"]
    rejected = {r.record: r.reason for r in report.rejected("items")}
    assert "UTF-8" in rejected["line 5"]
    assert "malformed JSON" in rejected["line 6"]
    assert "JSON object" in rejected["line 8"]
    assert "UTF-8" in rejected["i9"]
    assert report.n_rejected == 4
    assert report.ok == {"items": 4, "users": 3, "interactions": 5}


def test_default_table_discovery(tmp_path: Path) -> None:
    root = make_catalog(tmp_path, "csv")
    (root / "users.csv").rename(root / "users_moved.csv")
    items, users, inter = good_rows()
    write_rows(root / "users.parquet", users)
    catalog, report = load_catalog(root, progress=False)
    assert catalog.user_ids == ["u1", "u2", "u3"]
    assert isinstance(report, ValidationReport)
    (root / "interactions.csv").unlink()
    catalog, _ = load_catalog(root, progress=False)
    assert len(catalog.interactions) == 0
    assert list(catalog.interactions.columns[:3]) == ["user_id", "item_id", "weight"]
