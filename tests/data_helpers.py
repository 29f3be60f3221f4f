"""Builders for small real catalogs (PNG/JPEG images, WAV clips) used by the data tests."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

MEDIA = ("images", "audio")


def make_png(path: Path, size: tuple[int, int] = (32, 24), color: tuple = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def jpeg_bytes(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_jpeg(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(size, seed))
    return path


def make_wav(path: Path, seconds: float = 0.5, sr: int = 8000, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def good_rows() -> tuple[list[dict], list[dict], list[dict]]:
    """Items, users and interactions of a small valid catalog (paths relative to the root)."""
    items = [
        {"id": "i1", "title": "Red shirt", "description": "A bright red shirt.",
         "attr_color": "red", "images": ["images/i1.png"], "audio": ["audio/i1.wav"]},
        {"id": "i2", "title": "Blue jeans", "description": "Denim, straight cut.",
         "attr_color": "blue", "images": ["images/i2.jpg", "images/i1.png"], "audio": []},
        {"id": "i3", "title": "Green hat", "description": "", "attr_color": "green",
         "images": [], "audio": ["audio/i3.wav"]},
        {"id": "i4", "title": "Plain box", "description": "No media at all.",
         "attr_color": "", "images": [], "audio": []},
    ]
    users = [
        {"id": "u1", "bio": "likes red", "images": [], "audio": []},
        {"id": "u2", "bio": "likes hats", "images": ["images/i2.jpg"], "audio": []},
        {"id": "u3", "bio": "", "images": [], "audio": []},
    ]
    interactions = [
        {"user_id": "u1", "item_id": "i1", "weight": 1.0, "timestamp": 1700000000},
        {"user_id": "u1", "item_id": "i2", "weight": 2.5, "timestamp": 1700000100},
        {"user_id": "u2", "item_id": "i3", "weight": 1.0, "timestamp": 1700000200},
        {"user_id": "u3", "item_id": "i4", "weight": 0.5, "timestamp": 1700000300},
        {"user_id": "u2", "item_id": "i1", "weight": 3.0, "timestamp": 1700000400},
    ]
    return items, users, interactions


def make_media(root: Path) -> None:
    make_png(root / "images" / "i1.png")
    make_jpeg(root / "images" / "i2.jpg")
    make_wav(root / "audio" / "i1.wav")
    make_wav(root / "audio" / "i3.wav", freq=660.0)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as CSV (media joined by ``|``), JSONL (media as lists) or Parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix
    if ext == ".csv":
        flat = [{k: "|".join(v) if k in MEDIA else v for k, v in r.items()} for r in rows]
        pd.DataFrame(flat).to_csv(path, index=False)
    elif ext == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif ext == ".parquet":
        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        raise ValueError(ext)
    return path


def make_catalog(root: Path, fmt: str = "csv", items: list[dict] | None = None,
                 users: list[dict] | None = None,
                 interactions: list[dict] | None = None) -> Path:
    """A valid catalog in ``root`` (tables in format ``fmt``); rows may be overridden."""
    gi, gu, gx = good_rows()
    make_media(root)
    write_rows(root / f"items.{fmt}", gi if items is None else items)
    write_rows(root / f"users.{fmt}", gu if users is None else users)
    write_rows(root / f"interactions.{fmt}", gx if interactions is None else interactions)
    return root
