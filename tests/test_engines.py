"""Engines: the in-process engine and the Ray engine give the same embeddings, the same cache
entries and the same recommendations.

One local Ray (2 CPUs, no dashboard, no usage stats) serves the whole module. The fast tests use
tiny hash-based encoders; the ``slow`` ones run the real encoders on a generated catalog.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from fuserec.data.loaders import load_catalog
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog
from fuserec.encode import EmbeddingCache, EncodeError, Encoder, encode_catalog, get_encoder
from fuserec.engines import (
    ENGINES,
    BatchFnSpec,
    EncoderSpec,
    LocalEngine,
    get_engine,
    model_from_payload,
    model_payload,
)
from fuserec.fuse.base import View
from fuserec.models.content import ContentCosine


# -- tiny encoders (pickled by value to the Ray workers) ---------------------------------
def _vec(data: bytes, dim: int) -> np.ndarray:
    raw = np.frombuffer(hashlib.sha256(data).digest(), dtype=np.uint8)[:dim]
    return raw.astype(np.float32) / 255.0 - 0.5


class HashText(Encoder):
    """Text vectors from a hash of the text; records the process it ran in."""

    name, modality, dim = "hash-text", "text", 8
    default_batch_size = 4

    def __init__(self, num_threads: int | None = None) -> None:
        self.num_threads = num_threads

    def encode(self, inputs: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return np.stack([_vec(t.encode(), self.dim) for t in inputs]).reshape(-1, self.dim)


class HashImage(Encoder):
    """Vectors from file bytes; files starting with b"BAD" are undecodable."""

    name, modality, dim = "hash-image", "image", 6
    default_batch_size = 3

    def encode(self, inputs: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        out = []
        for p in inputs:
            data = Path(p).read_bytes()
            if data.startswith(b"BAD"):
                raise EncodeError(f"cannot decode {p}", p)
            out.append(_vec(data, self.dim))
        return np.stack(out).reshape(-1, self.dim)


class Square:
    """A batch function: squares ``x``, tags rows with the worker's process id."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(batch["x"], np.float64)
        return {"row": batch["row"], "y": x * x + self.offset,
                "pid": np.full(len(x), os.getpid())}


FAKE_SPECS = {"text": EncoderSpec("hash-text", factory=HashText),
              "image": EncoderSpec("hash-image", factory=HashImage)}


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray for the module: 2 CPUs, loopback only, no dashboard, no usage stats."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                                       "TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("engines") / "catalog"
    generate_demo_catalog(root, DemoCatalogSpec(n_items=24, n_users=10, seed=3,
                                                inject_errors=False), progress=False)
    cat, _ = load_catalog(root, progress=False)
    return cat


def _model(catalog, encoded) -> ContentCosine:
    from fuserec.data.matrix import interaction_matrix

    train = interaction_matrix(catalog.interactions, catalog.user_ids, catalog.item_ids)
    items = {m: View(v.vectors, v.present) for m, v in encoded["items"].items()}
    users = {m: View(v.vectors, v.present) for m, v in encoded.get("users", {}).items()}
    return ContentCosine().fit(train, items, users)


def _assert_same_views(a, b) -> None:
    assert a.keys() == b.keys()
    for table in a:
        assert a[table].keys() == b[table].keys(), table
        for m in a[table]:
            va, vb = a[table][m], b[table][m]
            assert va.ids == vb.ids
            np.testing.assert_array_equal(va.present, vb.present)
            np.testing.assert_allclose(va.vectors, vb.vectors, rtol=1e-4, atol=1e-5)
            assert sorted(va.errors) == sorted(vb.errors)


def _cache_keys(root: Path) -> dict[str, set[str]]:
    import pyarrow.parquet as pq

    out: dict[str, set[str]] = {}
    for shard in root.glob("*/*/part-*.parquet"):
        rel = str(shard.parent.relative_to(root))
        out.setdefault(rel, set()).update(pq.read_table(shard).column("key").to_pylist())
    return out


# -- fast tests: no Ray ------------------------------------------------------------------
def test_registry_and_default() -> None:
    engine = get_engine()
    assert isinstance(engine, LocalEngine) and engine.name == "local"
    assert "local" in ENGINES and "ray" in ENGINES


def test_local_map_batches_in_order() -> None:
    out = list(LocalEngine().map_batches({"row": np.arange(7), "x": np.arange(7.0)},
                                         BatchFnSpec(Square, (1.0,)), 3))
    assert [len(b["row"]) for b in out] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in out]), np.arange(7.0) ** 2 + 1)
    with pytest.raises(ValueError, match="different lengths"):
        list(LocalEngine().map_batches({"a": np.arange(2), "b": np.arange(3)},
                                       BatchFnSpec(Square), 2))


def test_encoder_spec_fills_only_accepted_defaults() -> None:
    enc = EncoderSpec("hash-text", factory=HashText).build(num_threads=3, workers=5)
    assert isinstance(enc, HashText) and enc.num_threads == 3
    assert isinstance(EncoderSpec("hash-image", factory=HashImage).build(num_threads=2),
                      HashImage)
    assert EncoderSpec("librosa").build(workers=0, num_threads=1).workers == 0


def test_local_engine_is_the_encode_pipeline(catalog, tmp_path: Path) -> None:
    want = encode_catalog(catalog, {m: s.build() for m, s in FAKE_SPECS.items()},
                          EmbeddingCache(tmp_path / "a"), progress=False)
    got = LocalEngine().encode_catalog(catalog, FAKE_SPECS, EmbeddingCache(tmp_path / "b"),
                                       progress=False)
    _assert_same_views(want, got)
    assert _cache_keys(tmp_path / "a") == _cache_keys(tmp_path / "b")


def test_model_payload_round_trip_and_local_recommend_all(catalog, tmp_path: Path) -> None:
    encoded = LocalEngine().encode_catalog(catalog, FAKE_SPECS, None, progress=False)
    model = _model(catalog, encoded)
    again = model_from_payload(*model_payload(model))
    users = np.arange(len(catalog.user_ids))
    want = model.recommend(users, 5)
    np.testing.assert_array_equal(again.recommend(users, 5)[0], want[0])
    ids, scores = LocalEngine().recommend_all(model, k=5, batch_size=3)
    np.testing.assert_array_equal(ids, want[0])
    # float32 products of different batch shapes may differ in the last bit
    np.testing.assert_allclose(scores, want[1], rtol=1e-5, atol=1e-6)
    some = np.array([7, 2])
    ids, _ = LocalEngine().recommend_all(model, k=3, user_ids=some)
    np.testing.assert_array_equal(ids, model.recommend(some, 3)[0])


# -- Ray with the tiny encoders ----------------------------------------------------------
def test_ray_map_batches_uses_both_workers(ray_local) -> None:
    import ray.data

    engine = get_engine("ray", workers=2)
    assert engine.workers == 2
    n = 64
    rows, ys, pids = [], [], set()
    # Ray Data hands blocks to whichever actor is up first; on a loaded machine the second
    # one can start after the first has done everything. Gate the start on both actors, so
    # the test checks the engine's fan-out and not the machine's start-up timing.
    context = ray.data.DataContext.get_current()
    waited, context.wait_for_min_actors_s = context.wait_for_min_actors_s, 120
    try:
        for out in engine.map_batches({"row": np.arange(n), "x": np.arange(n, dtype=float)},
                                      BatchFnSpec(Square, (0.5,)), 4):
            rows.append(out["row"])
            ys.append(out["y"])
            pids.update(out["pid"].tolist())
    finally:
        context.wait_for_min_actors_s = waited
    order = np.argsort(np.concatenate(rows))
    np.testing.assert_array_equal(np.concatenate(rows)[order], np.arange(n))
    np.testing.assert_allclose(np.concatenate(ys)[order], np.arange(n) ** 2 + 0.5)
    assert len(pids) == 2 and os.getpid() not in pids
    engine.close()  # joined an existing Ray: leaves it running
    import ray

    assert ray.is_initialized()


def test_ray_encode_matches_local_and_shares_the_cache(ray_local, catalog, tmp_path: Path
                                                       ) -> None:
    local = LocalEngine().encode_catalog(catalog, FAKE_SPECS, EmbeddingCache(tmp_path / "l"),
                                         progress=False)
    engine = get_engine("ray", workers=2)
    remote = engine.encode_catalog(catalog, FAKE_SPECS, EmbeddingCache(tmp_path / "r"),
                                   progress=False)
    _assert_same_views(local, remote)
    assert _cache_keys(tmp_path / "l") == _cache_keys(tmp_path / "r")
    assert engine.encoder(FAKE_SPECS["text"]).version == HashText().version
    # a second Ray run over the filled cache computes nothing (no new shards)
    before = sorted((tmp_path / "r").rglob("part-*.parquet"))
    engine.encode_catalog(catalog, FAKE_SPECS, EmbeddingCache(tmp_path / "r"), progress=False)
    assert sorted((tmp_path / "r").rglob("part-*.parquet")) == before


def test_ray_encoder_reports_undecodable_files(ray_local, tmp_path: Path) -> None:
    files = []
    for i in range(7):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"BAD" if i == 4 else f"image {i}".encode())
        files.append(p)
    enc = get_engine("ray", workers=2).encoder(FAKE_SPECS["image"])
    got, errors = np.zeros((7, enc.dim), np.float32), {}
    for batch in enc.encode_batches(files, 2):
        got[batch.indices] = batch.vectors
        errors.update(dict(batch.errors))
    assert list(errors) == [4] and "cannot decode" in errors[4]
    assert enc.busy_seconds > 0  # measured in the actors
    want = HashImage()
    for i in (0, 1, 2, 3, 5, 6):
        np.testing.assert_allclose(got[i], want.encode([files[i]])[0])


def test_ray_recommend_all_matches_the_model(ray_local, catalog) -> None:
    encoded = LocalEngine().encode_catalog(catalog, FAKE_SPECS, None, progress=False)
    model = _model(catalog, encoded)
    want = model.recommend(np.arange(len(catalog.user_ids)), 5)
    ids, scores = get_engine("ray", workers=2).recommend_all(model, k=5, batch_size=3)
    np.testing.assert_array_equal(ids, want[0])
    np.testing.assert_allclose(scores, want[1], rtol=1e-5, atol=1e-6)


# -- Ray with the real encoders ----------------------------------------------------------
@pytest.mark.slow
def test_ray_real_encoders_match_local(ray_local, catalog, text_encoder, image_encoder,
                                       tmp_path: Path) -> None:
    # in-process audio here: a forking process pool next to a running Ray can hang the driver
    audio_encoder = get_encoder("librosa", workers=0)
    local = encode_catalog(catalog, {"text": text_encoder, "image": image_encoder,
                                     "audio": audio_encoder},
                           EmbeddingCache(tmp_path / "l"), progress=False)
    engine = get_engine("ray", workers=2)
    specs = {"text": EncoderSpec("minilm"), "image": EncoderSpec("efficientnet-lite0"),
             "audio": EncoderSpec("librosa")}
    remote = engine.encode_catalog(catalog, specs, EmbeddingCache(tmp_path / "r"),
                                   progress=False)
    _assert_same_views(local, remote)
    assert _cache_keys(tmp_path / "l") == _cache_keys(tmp_path / "r")
    # the local engine finds everything the Ray run cached: nothing left to compute
    cached = EmbeddingCache(tmp_path / "r")
    for enc in (text_encoder, image_encoder, audio_encoder):
        assert cached.count(enc) == EmbeddingCache(tmp_path / "l").count(enc) > 0
    # the same recommendations from either engine's embeddings, scored either way
    model_l, model_r = _model(catalog, local), _model(catalog, remote)
    users = np.arange(len(catalog.user_ids))
    want_ids, want_scores = model_l.recommend(users, 5)
    ids, scores = engine.recommend_all(model_r, k=5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-5)


def test_unknown_engine() -> None:
    with pytest.raises(KeyError, match="unknown engine 'spark'"):
        get_engine("spark")


def test_real_encoder_name_is_registered() -> None:
    assert EncoderSpec("librosa").build(workers=0).name == get_encoder("librosa",
                                                                       workers=0).name


def test_cli_encode_writes_cache_and_outputs(catalog, tmp_path: Path, monkeypatch) -> None:
    from safetensors.numpy import load_file
    from typer.testing import CliRunner

    from fuserec.cli import app
    from fuserec.encode import DEFAULT_ENCODERS, ENCODERS

    monkeypatch.setitem(ENCODERS._factories, "hash-text", HashText)
    monkeypatch.setitem(DEFAULT_ENCODERS, "text", "hash-text")
    args = ["encode", str(catalog.root), "--cache", str(tmp_path / "cache"), "--out",
            str(tmp_path / "out"), "--modality", "text", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "items text: 24/24 encoded" in result.output
    arrays = load_file(str(tmp_path / "out" / "embeddings.safetensors"))
    want = LocalEngine().encode_catalog(catalog, {"text": FAKE_SPECS["text"]}, None,
                                        progress=False)
    np.testing.assert_allclose(arrays["items.text"], want["items"]["text"].vectors)
    assert (tmp_path / "out" / "encode.json").exists()
    assert _cache_keys(tmp_path / "cache")
    bad = CliRunner().invoke(app, [*args, "--workers", "2"])
    assert bad.exit_code != 0 and "--engine ray" in bad.output


@pytest.mark.slow
def test_ray_describer_matches_local_and_fills_the_shared_text_cache(ray_local, catalog,
                                                                     tmp_path: Path) -> None:
    from fuserec.describe import Description, TextCache, describe_files
    from fuserec.engines import DescriberSpec, get_engine

    paths = [catalog.root / p for ps in catalog.items["images"][:6] for p in ps]
    paths.append(tmp_path / "broken.jpg")
    paths[-1].write_bytes(b"\xff\xd8 not a picture")
    spec = DescriberSpec("imagenet-labels")
    local = get_engine("local").describer(spec).describe(paths)
    with get_engine("ray", workers=2) as engine:
        remote_describer = engine.describer(spec, batch_size=2)
        assert remote_describer.version == spec.build().version
        remote = remote_describer.describe(paths)
        cache = TextCache(tmp_path / "describe")
        describe_files(remote_describer, paths[:-1], cache)
    assert [r.text for r in remote[:-1]] == [r.text for r in local[:-1]]
    assert all(isinstance(r, Description) and r.text for r in remote[:-1])
    assert not isinstance(remote[-1], Description) and "broken.jpg" in str(remote[-1].input)

    class _Refuses:  # a local pass over the same cache must compute nothing
        name, version = remote_describer.name, remote_describer.version

        def describe(self, paths):
            raise AssertionError(f"recomputed {paths}")

    again = describe_files(_Refuses(), paths[:-1], TextCache(tmp_path / "describe"))
    assert [again[p].text for p in paths[:-1]] == [r.text for r in local[:-1]]


@pytest.mark.slow
def test_cli_encode_describe_fills_the_text_cache(catalog, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fuserec.cli import app

    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["encode", str(catalog.root), "--cache", str(tmp_path / "cache"),
              "--modality", "image", "--describe", "--no-progress"])
    assert result.exit_code == 0, result.output
    have = int(catalog.items["images"].map(len).gt(0).sum())  # spoken episodes have none
    assert f"items image: {have}/{have} described ({len(catalog.items) - have} without one)" \
        in result.output
    assert any((tmp_path / "cache" / "describe").rglob("part-*.parquet"))
