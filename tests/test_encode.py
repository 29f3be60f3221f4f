"""Encoders, the embedding cache and the encode pipeline.

Plumbing is tested with tiny fake encoders (fast); the real models are tested with known
answers in the ``slow`` tests, using the session fixtures from ``conftest.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image, ImageDraw

from fuserec.data.schema import Catalog
from fuserec.encode import (
    DEFAULT_ENCODERS,
    ENCODERS,
    EmbeddingCache,
    EncodedView,
    EncodeError,
    Encoder,
    encode_catalog,
    encode_records,
    encode_texts,
    file_hash,
    get_encoder,
    text_hash,
)

# -- fakes -------------------------------------------------------------------------------


def _vec(data: bytes, dim: int) -> np.ndarray:
    raw = np.frombuffer(hashlib.sha256(data).digest(), dtype=np.uint8)[:dim]
    return raw.astype(np.float32) / 255.0


class FakeText(Encoder):
    """Hash-based text vectors; counts calls; can fail after ``fail_after`` calls."""

    name, modality, dim = "fake-text", "text", 4
    default_batch_size = 2

    def __init__(self, fail_after: int | None = None, tag: str = "1") -> None:
        self.calls = 0
        self.seen: list[str] = []
        self.fail_after = fail_after
        self.preprocess_version = tag

    def encode(self, inputs: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls += 1
        self.seen.extend(inputs)
        return np.stack([_vec(t.encode(), self.dim) for t in inputs]).reshape(-1, self.dim)


class FakeImage(Encoder):
    """Vectors from file bytes; files starting with b"BAD" are undecodable."""

    name, modality, dim = "fake-image", "image", 3
    default_batch_size = 2

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[str] = []

    def encode(self, inputs: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        self.calls += 1
        out = []
        for p in inputs:
            data = Path(p).read_bytes()
            if data.startswith(b"BAD"):
                raise EncodeError(f"cannot decode {p}", p)
            self.seen.append(Path(p).name)
            out.append(_vec(data, self.dim))
        return np.stack(out).reshape(-1, self.dim)


def _items(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"i{k}" for k in range(n)],
                         "title": [f"item number {k}" for k in range(n)],
                         "body": ["" if k % 2 else f"details {k}" for k in range(n)]})


# -- hashing & registry ------------------------------------------------------------------


def test_hashes(tmp_path: Path) -> None:
    assert text_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    f = tmp_path / "big.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    f.write_bytes(data)
    assert file_hash(f) == hashlib.sha256(data).hexdigest()


def test_registry_and_defaults() -> None:
    for name in DEFAULT_ENCODERS.values():
        assert name in ENCODERS
    with pytest.raises(KeyError, match="unknown encoder"):
        get_encoder("no-such-encoder")


# -- cache -------------------------------------------------------------------------------


def test_cache_persists_in_shards_and_compacts(tmp_path: Path) -> None:
    enc = FakeText()
    cache = EmbeddingCache(tmp_path)
    v1, v2 = np.ones((2, 4), np.float32), np.full((1, 4), 2.0, np.float32)
    cache.put_many(enc, ["a", "b"], v1)
    cache.put_many(enc, ["c"], v2)
    shards = cache.shards(enc)
    assert len(shards) == 2
    assert all(p.parent.parent.name == "fake-text" for p in shards)
    assert not list(tmp_path.rglob("*.tmp"))

    fresh = EmbeddingCache(tmp_path)  # lazily reads the shards
    got = fresh.get_many(enc, ["a", "c", "zzz"])
    assert set(got) == {"a", "c"}
    np.testing.assert_array_equal(got["c"], v2[0])

    assert fresh.compact() == 2
    assert len(fresh.shards(enc)) == 1
    again = EmbeddingCache(tmp_path).get_many(enc, ["a", "b", "c"])
    assert len(again) == 3


def test_cache_versions_do_not_share(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    old, new = FakeText(tag="1"), FakeText(tag="2")
    assert old.version != new.version
    cache.put_many(old, ["a"], np.ones((1, 4), np.float32))
    assert cache.get_many(new, ["a"]) == {}
    assert EmbeddingCache(tmp_path).get_many(new, ["a"]) == {}
    assert set(EmbeddingCache(tmp_path).get_many(old, ["a"])) == {"a"}


def test_in_memory_cache_writes_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(None)
    enc = FakeText()
    cache.put_many(enc, ["a"], np.ones((1, 4), np.float32))
    assert set(cache.get_many(enc, ["a"])) == {"a"}
    assert cache.directory(enc) is None


def test_cache_rejects_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        EmbeddingCache(tmp_path).put_many(FakeText(), ["a"], np.ones((1, 3), np.float32))


# -- pipeline with fakes -----------------------------------------------------------------


def test_text_records_second_run_encodes_nothing(tmp_path: Path) -> None:
    frame = _items(5)
    enc = FakeText()
    view = encode_records(frame, tmp_path, "text", enc, EmbeddingCache(tmp_path / "c"),
                          progress=False)
    assert isinstance(view, EncodedView)
    assert view.ids == [f"i{k}" for k in range(5)]
    assert view.vectors.shape == (5, 4) and view.vectors.dtype == np.float32
    assert view.present.all()
    assert enc.seen[0] in {"item number 0. details 0", "item number 1"}

    again = FakeText()
    view2 = encode_records(frame, tmp_path, "text", again, EmbeddingCache(tmp_path / "c"),
                           progress=False)
    assert again.calls == 0
    np.testing.assert_array_equal(view.vectors, view2.vectors)


def test_empty_text_is_not_present(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["hello", "  "]})
    view = encode_records(frame, tmp_path, "text", FakeText(), None, progress=False)
    assert view.present.tolist() == [True, False]
    assert not view.vectors[1].any()


def test_interrupted_run_resumes(tmp_path: Path) -> None:
    frame = _items(6)  # 6 distinct texts, batches of 2
    cache_dir = tmp_path / "c"
    with pytest.raises(RuntimeError, match="interrupted"):
        encode_records(frame, tmp_path, "text", FakeText(fail_after=1),
                       EmbeddingCache(cache_dir), progress=False)
    resumed = FakeText()
    view = encode_records(frame, tmp_path, "text", resumed, EmbeddingCache(cache_dir),
                          progress=False)
    assert len(resumed.seen) == 4  # the first batch of 2 was kept
    assert view.present.all()


def test_encode_texts_dedupes_and_caches(tmp_path: Path) -> None:
    enc = FakeText()
    cache = EmbeddingCache(tmp_path)
    out = encode_texts(["x", "y", "x"], enc, cache, batch_size=8, progress=False)
    assert out.shape == (3, 4)
    assert sorted(enc.seen) == ["x", "y"]
    np.testing.assert_array_equal(out[0], out[2])
    encode_texts(["y", "x"], enc, cache, progress=False)
    assert enc.calls == 1


def _media_frame(tmp_path: Path) -> pd.DataFrame:
    (tmp_path / "img").mkdir()
    for name, data in [("a.png", b"AAA"), ("b.png", b"BBB"), ("copy.png", b"AAA"),
                       ("bad.png", b"BAD!"), ("c.png", b"CCC")]:
        (tmp_path / "img" / name).write_bytes(data)
    return pd.DataFrame({
        "id": ["r0", "r1", "r2", "r3", "r4"],
        "title": ["x"] * 5,
        "images": [["img/a.png", "img/b.png"], ["img/copy.png"], ["img/bad.png"],
                   ["img/bad.png", "img/c.png", "img/missing.png"], []],
    })


def test_media_records_mean_errors_and_dedupe(tmp_path: Path) -> None:
    frame = _media_frame(tmp_path)
    enc = FakeImage()
    view = encode_records(frame, tmp_path, "image", enc, EmbeddingCache(tmp_path / "c"),
                          progress=False)
    assert view.present.tolist() == [True, True, False, True, False]
    a, b, c = (_vec(x, 3) for x in (b"AAA", b"BBB", b"CCC"))
    np.testing.assert_allclose(view.vectors[0], (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(view.vectors[1], a)  # same content: hashed once
    np.testing.assert_allclose(view.vectors[3], c)
    assert sorted(enc.seen) == ["a.png", "b.png", "c.png"]
    errs = {(rid, why.split(":")[0]) for rid, why in view.errors}
    assert errs == {("r2", "img/bad.png"), ("r3", "img/bad.png"), ("r3", "img/missing.png")}

    again = FakeImage()
    view2 = encode_records(frame, tmp_path, "image", again, EmbeddingCache(tmp_path / "c"),
                           progress=False)
    assert not again.seen  # only the bad file is retried, and it fails again
    np.testing.assert_array_equal(view.vectors, view2.vectors)
    assert len(view2.errors) == 3


def test_media_column_as_joined_string(tmp_path: Path) -> None:
    frame = _media_frame(tmp_path)
    frame["images"] = ["img/a.png|img/b.png", None, float("nan"), "", "img/c.png"]
    view = encode_records(frame, tmp_path, "image", FakeImage(), None, progress=False)
    assert view.present.tolist() == [True, False, False, False, True]


def test_modality_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        encode_records(_items(2), tmp_path, "image", FakeText(), None, progress=False)


def test_encode_catalog_skips_missing_modalities(tmp_path: Path) -> None:
    items = _media_frame(tmp_path)
    catalog = Catalog(root=tmp_path, items=items)  # users: id only
    out = encode_catalog(catalog, {"text": FakeText(), "image": FakeImage()},
                         EmbeddingCache(None), progress=False)
    assert set(out) == {"items", "users"}
    assert set(out["items"]) == {"text", "image"}
    assert out["users"] == {}


def test_progress_bar_runs(tmp_path: Path) -> None:
    view = encode_records(_items(3), tmp_path, "text", FakeText(), None, progress=True)
    assert view.present.all()


# -- real models -------------------------------------------------------------------------


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.slow
def test_text_known_answers(text_encoder) -> None:
    v = text_encoder.encode(["a kitten sleeping on a sofa", "a cat napping on a couch",
                             "quarterly stock market report"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert _cos(v[0], v[1]) > _cos(v[0], v[2]) + 0.3
    assert text_encoder.dim == 384 and text_encoder.modality == "text"


@pytest.mark.slow
def test_text_matches_sentence_transformers(text_encoder) -> None:
    from sentence_transformers import SentenceTransformer

    from fuserec.encode.text import default_model_path

    texts = ["short", "a much longer sentence about hiking boots and rainy autumn evenings",
             "", "émigré café ünïcödé"]
    ref = SentenceTransformer(str(default_model_path()), device="cpu").encode(texts)
    fp32 = get_encoder("minilm", precision="fp32")
    assert fp32.version != text_encoder.version or text_encoder.precision == "fp32"
    exact = fp32.encode(texts, batch_size=2)
    assert (np.sum(exact * ref, axis=1) > 0.9999).all()
    fast = text_encoder.encode(texts)
    assert (np.sum(fast * ref, axis=1) > 0.999).all()


@pytest.mark.slow
def test_text_interrupted_real_run_resumes(text_encoder, tmp_path: Path, monkeypatch) -> None:
    frame = pd.DataFrame({"id": [f"t{k}" for k in range(6)],
                          "title": [f"product {k} is a {w}" for k, w in
                                    enumerate(["lamp", "scarf", "boot", "pan", "game", "bike"])]})
    original = text_encoder.encode_batches
    seen: list[int] = []

    def first_batch_then_fail(inputs, batch_size=None):
        for i, batch in enumerate(original(inputs, batch_size)):
            if i == 1:
                raise KeyboardInterrupt
            seen.append(len(batch.indices))
            yield batch

    monkeypatch.setattr(text_encoder, "encode_batches", first_batch_then_fail)
    with pytest.raises(KeyboardInterrupt):
        encode_records(frame, tmp_path, "text", text_encoder, EmbeddingCache(tmp_path),
                       batch_size=2, progress=False)
    assert seen == [2]

    def counting(inputs, batch_size=None):
        seen.append(len(inputs))
        return original(inputs, batch_size)

    monkeypatch.setattr(text_encoder, "encode_batches", counting)
    view = encode_records(frame, tmp_path, "text", text_encoder, EmbeddingCache(tmp_path),
                          batch_size=2, progress=False)
    assert seen == [2, 4] and view.present.all()
    # the same batches as the resumed run: bf16 results depend on a batch's padding
    direct = text_encoder.encode(frame["title"].tolist(), batch_size=2)
    np.testing.assert_allclose(view.vectors, direct, atol=1e-5)


def _disc(path: Path, center: tuple[int, int], radius: int, size=(256, 256), mode="RGB") -> Path:
    img = Image.new("RGB", size, "white")
    x, y = center
    ImageDraw.Draw(img).ellipse((x - radius, y - radius, x + radius, y + radius), fill="red")
    img.convert(mode).save(path)
    return path


def _stripes(path: Path) -> Path:
    img = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(img)
    for x in range(0, 256, 32):
        draw.rectangle((x, 0, x + 15, 255), fill="blue")
    img.save(path)
    return path


@pytest.mark.slow
def test_image_known_answers(image_encoder, tmp_path: Path) -> None:
    a = _disc(tmp_path / "a.png", (128, 128), 80)
    b = _disc(tmp_path / "b.jpg", (90, 150), 45, size=(320, 240))
    c = _stripes(tmp_path / "c.png")
    v = image_encoder.encode([a, b, c])
    assert v.shape == (3, 1280) and v.dtype == np.float32
    assert _cos(v[0], v[1]) > _cos(v[0], v[2])
    logits = image_encoder.logits([a, c])
    assert logits.shape == (2, 1000)
    # palette, RGBA and greyscale files decode too
    other = [_disc(tmp_path / f"m.{mode}.png", (128, 128), 80, mode=mode)
             for mode in ("P", "RGBA", "L")]
    assert image_encoder.encode(other).shape == (3, 1280)


@pytest.mark.slow
def test_image_corrupt_file_raises_and_pipeline_reports(image_encoder, tmp_path: Path,
                                                        monkeypatch) -> None:
    good = _disc(tmp_path / "good.png", (128, 128), 60)
    _stripes(tmp_path / "other.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(EncodeError) as info:
        image_encoder.encode([good, bad])
    assert "bad.jpg" in str(info.value) and info.value.input == str(bad)

    frame = pd.DataFrame({"id": ["x", "y", "z"],
                          "images": [["good.png", "bad.jpg"], ["bad.jpg"], ["other.png"]]})
    view = encode_records(frame, tmp_path, "image", image_encoder,
                          EmbeddingCache(tmp_path / "c"), progress=False)
    assert view.present.tolist() == [True, False, True]
    assert [rid for rid, _ in view.errors] == ["x", "y"]
    np.testing.assert_allclose(view.vectors[0], image_encoder.encode([good])[0], atol=1e-4)

    calls: list[int] = []
    original = image_encoder.encode_batches

    def counting(inputs, batch_size=None):
        calls.append(len(inputs))
        return original(inputs, batch_size)

    monkeypatch.setattr(image_encoder, "encode_batches", counting)
    view2 = encode_records(frame.iloc[[0, 2]], tmp_path, "image", image_encoder,
                           EmbeddingCache(tmp_path / "c"), progress=False)
    assert calls == [1]  # only the bad file is attempted again
    np.testing.assert_array_equal(view2.vectors, view.vectors[[0, 2]])
    clean = frame.iloc[[2]]
    encode_records(clean, tmp_path, "image", image_encoder, EmbeddingCache(tmp_path / "c"),
                   progress=False)
    assert calls == [1]  # fully cached: the encoder is not called


def _tone(path: Path, freq: float | None, seconds: float = 3.0, sr: int = 22_050) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    if freq is None:
        y = 0.3 * np.random.default_rng(0).standard_normal(t.size)
    else:
        y = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(path, y.astype(np.float32), sr)
    return path


@pytest.mark.slow
def test_audio_known_answers(audio_encoder, tmp_path: Path) -> None:
    from fuserec.encode.audio import DIM

    paths = [_tone(tmp_path / "a440.wav", 440), _tone(tmp_path / "a450.wav", 450),
             _tone(tmp_path / "noise.wav", None)]
    v = audio_encoder.encode(paths)
    assert v.shape == (3, DIM) and audio_encoder.dim == DIM and v.dtype == np.float32
    assert np.isfinite(v).all()
    z = (v - v.mean(0)) / (v.std(0) + 1e-8)
    assert np.linalg.norm(z[0] - z[1]) < np.linalg.norm(z[0] - z[2])
    # in-process path gives the same vectors as the worker pool
    from fuserec.encode.audio import LibrosaAudioEncoder

    single = LibrosaAudioEncoder(workers=0).encode(paths[:2])
    np.testing.assert_allclose(single, v[:2], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_audio_bad_file(audio_encoder, tmp_path: Path) -> None:
    good = _tone(tmp_path / "ok.wav", 300, seconds=1.0)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(EncodeError, match="broken.wav"):
        audio_encoder.encode([good, bad])
    frame = pd.DataFrame({"id": ["p", "q"], "audio": [["ok.wav", "broken.wav"], []]})
    view = encode_records(frame, tmp_path, "audio", audio_encoder, None, progress=False)
    assert view.present.tolist() == [True, False]
    assert len(view.errors) == 1 and "broken.wav" in view.errors[0][1]


def test_file_hash_is_remembered_until_the_file_changes(tmp_path):
    import hashlib

    from fuserec.encode.hashing import file_hash

    path = tmp_path / "clip.bin"
    path.write_bytes(b"first version")
    first = file_hash(path)
    assert first == hashlib.sha256(b"first version").hexdigest()
    assert file_hash(path) == first
    path.write_bytes(b"second, longer version")
    assert file_hash(path) == hashlib.sha256(b"second, longer version").hexdigest()
