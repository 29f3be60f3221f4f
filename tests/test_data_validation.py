"""Validation of records and media files, with real broken files made in tmp_path."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from rich.console import Console

from data_helpers import good_rows, jpeg_bytes, make_catalog, make_png, make_wav
from fuserec.data import (
    Catalog,
    Rejection,
    ValidationLimits,
    ValidationReport,
    load_catalog,
    validate_catalog,
)
from fuserec.data.media import MediaError, check_audio, check_image, resolve_media

GOOD_ITEMS = ["i1", "i2", "i3", "i4"]
GOOD_MEDIA = {
    "i1": (["images/i1.png"], ["audio/i1.wav"]),
    "i2": (["images/i2.jpg", "images/i1.png"], []),
    "i3": ([], ["audio/i3.wav"]),
    "i4": ([], []),
}


def _with_bad_item(root: Path, item: dict, fmt: str = "csv", limits=None):
    """Good catalog plus one extra item ``item``; returns (catalog, report)."""
    items, _, _ = good_rows()
    item = {"title": "bad one", "description": "", "attr_color": "", "images": [], "audio": [],
            **item}
    make_catalog(root, fmt, items=[*items, item])
    return load_catalog(root, items=f"items.{fmt}", limits=limits, progress=False)


def _assert_good_intact(catalog: Catalog, report: ValidationReport, extra: list[str]) -> None:
    assert catalog.item_ids == GOOD_ITEMS + extra
    for rid, (images, audio) in GOOD_MEDIA.items():
        row = catalog.items.set_index("id").loc[rid]
        assert row["images"] == images and row["audio"] == audio
    assert catalog.user_ids == ["u1", "u2", "u3"]
    assert len(catalog.interactions) == 5
    assert report.ok == {"items": 4 + len(extra), "users": 3, "interactions": 5}


def _dropped(report: ValidationReport, rid: str) -> Rejection:
    [rej] = [r for r in report.issues if r.record == rid]
    assert rej.action == "dropped_media" and rej.table == "items"
    return rej


# ------------------------------------------------------------------ broken media files


@pytest.mark.parametrize(
    ("name", "content", "word"),
    [
        ("images/corrupt.jpg", np.random.default_rng(1).bytes(4000), "not a readable image"),
        ("images/trunc.jpg", jpeg_bytes((256, 256))[: len(jpeg_bytes((256, 256))) // 2],
         "truncated"),
        ("images/empty.png", b"", "zero-byte"),
        ("images/scan.tiff", b"II*\x00fake tiff", "unsupported image format"),
        ("images/notes.txt", b"hello", "supported: .bmp"),
    ],
)
def test_bad_image_dropped_record_kept(tmp_path: Path, name: str, content: bytes,
                                       word: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    catalog, report = _with_bad_item(tmp_path, {"id": "bad", "images": [name, "images/i1.png"]})
    _assert_good_intact(catalog, report, ["bad"])
    rej = _dropped(report, "bad")
    assert word in rej.reason and rej.path == name and rej.field == "images"
    assert catalog.items.set_index("id").loc["bad", "images"] == ["images/i1.png"]
    assert report.n_rejected == 0 and report.n_dropped_media == 1


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8)).save(
        buf, format="PNG")
    path = tmp_path / "t.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(MediaError, match="truncated or corrupt"):
        check_image(path, ValidationLimits())


def test_truncated_wav(tmp_path: Path) -> None:
    full = make_wav(tmp_path / "audio" / "full.wav", seconds=1.0).read_bytes()
    (tmp_path / "audio" / "cut.wav").write_bytes(full[:1044])
    catalog, report = _with_bad_item(tmp_path, {"id": "bad", "audio": ["audio/cut.wav"]})
    _assert_good_intact(catalog, report, ["bad"])
    rej = _dropped(report, "bad")
    assert rej.reason == "WAV is truncated: header declares 16000 data bytes, file has 1000"
    assert rej.field == "audio"


def test_audio_problems(tmp_path: Path) -> None:
    limits = ValidationLimits(max_audio_seconds=1.0)
    check_audio(make_wav(tmp_path / "ok.wav", seconds=0.5), limits)
    with pytest.raises(MediaError, match="over the limit"):
        check_audio(make_wav(tmp_path / "long.wav", seconds=2.0), limits)
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(2).bytes(3000))
    with pytest.raises(MediaError, match="not a valid WAV"):
        check_audio(tmp_path / "noise.wav", limits)
    (tmp_path / "noise.flac").write_bytes(np.random.default_rng(2).bytes(3000))
    with pytest.raises(MediaError, match="cannot be opened"):
        check_audio(tmp_path / "noise.flac", limits)
    import soundfile as sf
    sf.write(tmp_path / "silent.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(MediaError, match="no samples"):
        check_audio(tmp_path / "silent.wav", limits)
    with pytest.raises(MediaError, match="unsupported audio format"):
        check_audio(make_png(tmp_path / "pic.png"), limits)


def test_file_size_limit(tmp_path: Path) -> None:
    path = make_png(tmp_path / "a.png")
    with pytest.raises(MediaError, match="over the limit"):
        check_image(path, ValidationLimits(max_file_bytes=10))


# ------------------------------------------------------------------ paths outside the root


def test_paths_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    outside = make_png(tmp_path / "x.png")
    (root / "images").mkdir(parents=True)
    os.symlink(outside, root / "images" / "link.png")
    os.symlink(tmp_path, root / "up")
    bad = {"id": "bad", "images": ["../x.png", str(outside), "images/link.png", "up/x.png",
                                   "images/missing.png"]}
    catalog, report = _with_bad_item(root, bad)
    _assert_good_intact(catalog, report, ["bad"])
    reasons = {r.path: r.reason for r in report.issues if r.record == "bad"}
    assert len(reasons) == 5
    assert "escapes the catalog root" in reasons["../x.png"]
    assert "absolute" in reasons[str(outside)]
    assert "escapes the catalog root" in reasons["images/link.png"]
    assert "symlink" in reasons["images/link.png"]
    assert "escapes the catalog root" in reasons["up/x.png"]
    assert "not found" in reasons["images/missing.png"]
    assert catalog.items.set_index("id").loc["bad", "images"] == []


def test_symlink_inside_root_is_fine(tmp_path: Path) -> None:
    target = make_png(tmp_path / "images" / "a.png")
    os.symlink(target, tmp_path / "alias.png")
    assert resolve_media(tmp_path, "alias.png") == target.resolve()
    assert resolve_media(tmp_path, "images/../alias.png") == target.resolve()


# ------------------------------------------------------------------ decompression bombs


def _bomb(path: Path, side: int) -> Path:
    Image.new("1", (side, side)).save(path, format="PNG")
    return path


def test_decompression_bomb_over_limit(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    path = _bomb(tmp_path / "images" / "bomb.png", 12000)
    assert path.stat().st_size < 100_000
    limits = ValidationLimits(max_image_pixels=100_000_000)
    catalog, report = _with_bad_item(tmp_path, {"id": "bad", "images": ["images/bomb.png"]},
                                     limits=limits)
    _assert_good_intact(catalog, report, ["bad"])
    rej = _dropped(report, "bad")
    assert "decompression bomb" in rej.reason and "144000000" in rej.reason


def test_pil_bomb_thresholds_caught_without_global_change(tmp_path: Path) -> None:
    huge = ValidationLimits(max_image_pixels=10**12)
    before = Image.MAX_IMAGE_PIXELS
    # above PIL's warning threshold (~89.5M px): the warning becomes an error here only
    with pytest.raises(MediaError, match="decompression bomb"):
        check_image(_bomb(tmp_path / "warn.png", 10000), huge)
    # above twice the threshold: PIL raises DecompressionBombError
    with pytest.raises(MediaError, match="decompression bomb"):
        check_image(_bomb(tmp_path / "err.png", 14000), huge)
    # default limits catch it from the header
    with pytest.raises(MediaError, match="decompression bomb"):
        check_image(tmp_path / "warn.png", ValidationLimits())
    assert before == Image.MAX_IMAGE_PIXELS


def test_truncated_images_flag_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "t.jpg"
    path.write_bytes(jpeg_bytes((256, 256))[:2000])
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(MediaError, match="truncated"):
            check_image(path, ValidationLimits())
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


# ------------------------------------------------------------------ record checks


def test_duplicate_ids_keep_first(tmp_path: Path) -> None:
    items, _, _ = good_rows()
    dup = {**items[0], "title": "second copy"}
    make_catalog(tmp_path, "jsonl", items=[*items, dup])
    catalog, report = load_catalog(tmp_path, items="items.jsonl", progress=False)
    _assert_good_intact(catalog, report, [])
    assert catalog.items.loc[0, "title"] == "Red shirt"
    [rej] = report.rejected("items")
    assert rej.record == "i1" and "duplicate" in rej.reason and "line 1" in rej.reason


def test_unknown_and_rejected_ids_in_interactions(tmp_path: Path) -> None:
    items, users, inter = good_rows()
    items.append({"id": "i9", "title": "x" * 50, "images": [], "audio": []})
    extra = [
        {"user_id": "u1", "item_id": "nope", "weight": 1.0, "timestamp": 1},
        {"user_id": "ghost", "item_id": "i1", "weight": 1.0, "timestamp": 2},
        {"user_id": "u1", "item_id": "i9", "weight": 1.0, "timestamp": 3},
        {"user_id": "u2", "item_id": "i2", "weight": -1.0, "timestamp": 4},
        {"user_id": "u2", "item_id": "i2", "weight": "heavy", "timestamp": 5},
        {"user_id": "u2", "item_id": "i2", "weight": float("nan"), "timestamp": 6},
    ]
    make_catalog(tmp_path, "jsonl", items=items, interactions=[*inter, *extra])
    catalog, report = load_catalog(tmp_path, items="items.jsonl", progress=False,
                                   limits=ValidationLimits(max_text_chars=40))
    _assert_good_intact(catalog, report, [])
    by_line = {r.record: r.reason for r in report.rejected("interactions")}
    assert by_line == {
        "line 6": "unknown item id 'nope'",
        "line 7": "unknown user id 'ghost'",
        "line 8": "item 'i9' was rejected (see items)",
        "line 9": "weight -1 is negative",
        "line 10": "weight 'heavy' is not a number",
        "line 11": "weight is NaN",
    }
    assert report.to_dict()["per_table"]["interactions"]["rejected"] == 6


def test_oversized_fields_and_too_many_media(tmp_path: Path) -> None:
    items, _, _ = good_rows()
    items += [
        {"id": "long", "title": "t", "description": "d" * 25_000, "images": [], "audio": []},
        {"id": "attr", "title": "t", "attr_color": "c" * 3000, "images": [], "audio": []},
        {"id": "many", "title": "t", "images": ["images/i1.png"] * 17, "audio": []},
        {"id": "", "title": "no id", "images": [], "audio": []},
    ]
    make_catalog(tmp_path, "csv", items=items)
    catalog, report = load_catalog(tmp_path, progress=False)
    _assert_good_intact(catalog, report, [])
    reasons = {r.record: r.reason for r in report.rejected("items")}
    assert reasons["long"] == (
        "text field 'description' is 25000 characters long, over the limit of 20000")
    assert "attribute 'attr_color' is 3000 characters" in reasons["attr"]
    assert "17 media paths" in reasons["many"]
    assert reasons["line 9"] == "missing or empty id"
    assert report.n_rejected == 4


def test_users_implied_when_table_empty(tmp_path: Path) -> None:
    items, _, inter = good_rows()
    make_catalog(tmp_path, "csv")
    (tmp_path / "users.csv").unlink()
    catalog, report = load_catalog(tmp_path, progress=False)
    assert catalog.user_ids == ["u1", "u2", "u3"]
    assert report.n_rejected == 0


def test_validate_in_memory_catalog_and_bad_checker(tmp_path: Path, monkeypatch) -> None:
    import pandas as pd

    make_png(tmp_path / "a.png")
    catalog = Catalog(root=tmp_path, items=pd.DataFrame(
        {"id": [1, 2, 2], "title": ["a", "b", "c"], "images": ["a.png", None, "a.png|b.png"]}))
    cleaned, report = validate_catalog(catalog, progress=False)
    assert cleaned.item_ids == ["1", "2"]
    assert cleaned.items["images"].tolist() == [["a.png"], []]
    assert [r.record for r in report.rejected()] == ["2"]

    def boom(path, limits):
        raise RuntimeError("checker bug")

    monkeypatch.setattr("fuserec.data.validate.check_image", boom)
    cleaned, report = validate_catalog(catalog, progress=False)
    assert cleaned.item_ids == ["1", "2"]
    assert "could not be checked" in report.issues[-1].reason


# ------------------------------------------------------------------ the report


def test_report_round_trip_and_counts(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    items, _, _ = good_rows()
    items += [{"id": "i1", "title": "dup", "images": [], "audio": []},
              {"id": "e", "title": "t", "images": ["images/empty.png"], "audio": []}]
    make_catalog(tmp_path, "csv", items=items)
    _, report = load_catalog(tmp_path, progress=False)
    data = report.to_dict()
    assert data["rejected"] == 1 and data["dropped_media"] == 1
    assert data["ok"] == 5 + 3 + 5
    assert data["per_table"]["items"] == {"ok": 5, "rejected": 1, "dropped_media": 1}
    out = report.write_json(tmp_path / "out" / "report.json")
    assert json.loads(out.read_text()) == data
    again = ValidationReport.read_json(out)
    assert again == report
    assert not list((tmp_path / "out").glob(".*tmp"))

    merged = ValidationReport(ok={"items": 1}, issues=[Rejection("items", "z", "why")])
    merged.merge(report)
    assert merged.ok["items"] == 6 and merged.n_rejected == 2

    console = Console(record=True, width=200)
    many = ValidationReport(ok={"items": 0}, issues=[
        Rejection("items", f"r{i}", "bad") for i in range(60)])
    many.print(console)
    text = console.export_text()
    assert "r49" in text and "r50" not in text and "and 10 more" in text
