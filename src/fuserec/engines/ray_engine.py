"""The Ray engine: batch functions run as Ray Data ``map_batches`` actors on a Ray cluster.

Each actor builds its batch function once (for encoders: loads the model once) and then
processes batch after batch; the pool has ``workers`` actors of ``cpus_per_worker`` CPUs (or
``gpus_per_worker`` GPUs) each. With no ``address`` and no running Ray, a local Ray is started
in this process and stopped by :meth:`RayEngine.close`; ``address="auto"`` or
``"ray://host:10001"``/``"host:6379"`` joins an existing cluster (``ray start --head``).

Encoding: :meth:`RayEngine.encoder` returns a :class:`RemoteEncoder`, an :class:`Encoder` whose
``encode_batches`` runs on the actors, so the ordinary encode pipeline
(:func:`fuserec.encode.encode_catalog`) keeps doing hashing, cache lookups and cache writes
here, in the driver, with the real encoder's name and version: the cache a Ray run writes is
the cache a local run reads, and the other way round. Media paths are sent as absolute paths,
so on a multi-node cluster the catalog must live on storage every node mounts at the same path.

Do not run encoders that fork worker processes (``librosa`` with ``workers > 1``) in a process
that has started or joined Ray: forking a process that holds Ray's gRPC connections can hang
it. Each actor analyses audio in one *spawned* worker process (started once per actor), so a
clip that crashes its analysis fails alone instead of killing the actor; audio scales by more
actors.

Batch scoring: the model's arrays are put in the object store once
(:func:`~fuserec.engines.base.model_payload`); each actor rebuilds the model from them and
scores blocks of user ids.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fuserec.encode import EncodedBatch, Encoder
from fuserec.encode.base import Modality, collect_batches
from fuserec.engines.base import (
    ENGINES,
    BatchFnSpec,
    Columns,
    EncoderSpec,
    Engine,
    RecommendFn,
    model_payload,
)

if TYPE_CHECKING:
    from fuserec.models.base import Recommender

#: Environment for the driver and Ray's workers: no usage reporting, no model-hub lookups.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
#: Input blocks hold at most this many batches (smaller blocks balance load better).
MAX_BATCHES_PER_BLOCK = 16


def _ray() -> Any:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the ray engine needs Ray Data: pip install 'fuserec[scale]'") from exc
    return ray


@ENGINES.register("ray")
class RayEngine(Engine):
    """Runs batch functions as Ray Data actors.

    Args:
        address: a Ray cluster to join (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``);
            None joins the Ray this process already runs, or starts a local one.
        workers: actors per job; all cluster CPUs / ``cpus_per_worker`` when None.
        cpus_per_worker: CPUs each actor reserves (also its torch threads).
        gpus_per_worker: GPUs each actor reserves (0 on CPU clusters).
        num_cpus: CPUs of a locally started Ray (all cores when None).
        init_options: further ``ray.init`` keywords when this engine starts or joins Ray.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 num_cpus: int | None = None, init_options: dict[str, Any] | None = None
                 ) -> None:
        ray = _ray()
        self._owns_ray = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            if address is None:
                options["num_cpus"] = num_cpus
                options["runtime_env"] = {"env_vars": dict(RAY_ENV)}
            options.update(init_options or {})
            ray.init(address=address, **options)
            self._owns_ray = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        if workers is None:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            workers = max(1, int(cpus // max(cpus_per_worker, 1e-9)))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = int(workers)
        self._info: dict[str, tuple[Any, ...]] = {}

    # -- the primitive ---------------------------------------------------------------------
    def map_batches(self, columns: Mapping[str, np.ndarray | Sequence[Any]], fn: BatchFnSpec,
                    batch_size: int) -> Iterator[Columns]:
        import pyarrow as pa

        ray = _ray()
        cols = {k: v if isinstance(v, np.ndarray) and v.dtype != object else list(v)
                for k, v in columns.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns have different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        batch_size = max(1, int(batch_size))
        per_block = batch_size * max(1, min(MAX_BATCHES_PER_BLOCK,
                                            n // (batch_size * self.workers * 4)))
        table = pa.table({k: pa.array(v) for k, v in cols.items()})
        blocks = [table.slice(s, per_block) for s in range(0, n, per_block)]
        ds = ray.data.from_arrow(blocks)
        out = ds.map_batches(
            _BatchActor, fn_constructor_args=(fn,), batch_size=batch_size,
            batch_format="numpy", num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker or None,
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(blocks))))
        yield from out.iter_batches(batch_size=None, batch_format="numpy")

    # -- jobs ------------------------------------------------------------------------------
    def encoder(self, spec: EncoderSpec) -> Encoder:
        return RemoteEncoder(self, spec)

    def encoder_info(self, spec: EncoderSpec) -> tuple[str, str, int, str, int]:
        """Name, modality, dim, version and batch size of ``spec``'s encoder, as a worker
        builds it (one Ray task per spec, remembered by this engine)."""
        key = repr(spec)
        if key not in self._info:
            ray = _ray()
            task = ray.remote(num_cpus=self.cpus_per_worker,
                              num_gpus=self.gpus_per_worker or None)(_encoder_info)
            self._info[key] = tuple(ray.get(task.remote(spec, self.worker_defaults())))
        return self._info[key]  # type: ignore[return-value]

    def _scorer(self, model: Recommender, k: int, exclude_seen: bool) -> BatchFnSpec:
        ref = _ray().put(model_payload(model))
        return BatchFnSpec(RecommendFn, (ref, k, exclude_seen))

    def worker_defaults(self) -> dict[str, Any]:
        """Encoder options each actor applies unless the spec sets them (and the encoder
        accepts them): torch threads and decode threads sized to the actor's CPUs, audio
        analysis in one spawned process, and the GPU when actors reserve one."""
        threads = max(1, int(self.cpus_per_worker))
        # never fork inside an actor (it holds Ray's gRPC connections); one spawned worker
        # contains native crashes, and audio scales with more actors
        defaults: dict[str, Any] = {"num_threads": threads, "workers": 1,
                                    "start_method": "spawn", "decode_workers": threads}
        if self.gpus_per_worker > 0:
            defaults["device"] = "cuda"  # encoders that take a device run on the actor's GPU
        return defaults

    def close(self) -> None:
        if self._owns_ray:
            ray = _ray()
            if ray.is_initialized():
                ray.shutdown()
            self._owns_ray = False

    def __repr__(self) -> str:
        return (f"RayEngine(workers={self.workers}, cpus_per_worker={self.cpus_per_worker}, "
                f"gpus_per_worker={self.gpus_per_worker})")


class _BatchActor:
    """The Ray Data callable class: builds the batch function once, then maps batches."""

    def __init__(self, spec: BatchFnSpec) -> None:
        ray = _ray()
        args = tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in spec.args)
        self.fn = BatchFnSpec(spec.factory, args, spec.kwargs).build()

    def __call__(self, batch: Columns) -> Columns:
        return self.fn(batch)


class EncodeFn:
    """Batch function: encode the ``input`` column with an encoder built once per worker.

    Returns ``idx``, ``vector`` (zeros where encoding failed), ``ok``, ``error`` and
    ``seconds`` (the batch's encode time spread over its rows) columns.
    Refuses to run when the worker's encoder version differs from ``expected_version`` (other
    model files on that node), so that no vector is ever cached under the wrong version.
    """

    def __init__(self, spec: EncoderSpec, defaults: dict[str, Any],
                 expected_version: str | None = None) -> None:
        self.encoder = spec.build(**defaults)
        if expected_version is not None and self.encoder.version != expected_version:
            raise RuntimeError(f"encoder {spec.name!r} on this worker has version "
                               f"{self.encoder.version!r}, the driver expects "
                               f"{expected_version!r}: install the same model files everywhere")

    def __call__(self, batch: Columns) -> Columns:
        start = time.perf_counter()
        idx = np.asarray(batch["idx"], dtype=np.int64)
        inputs = [str(x) for x in batch["input"]]
        vectors = np.zeros((len(inputs), self.encoder.dim), np.float32)
        ok = np.zeros(len(inputs), bool)
        error = np.full(len(inputs), "", dtype=object)
        for part in self.encoder.encode_batches(inputs, len(inputs)):
            if part.indices:
                vectors[part.indices] = part.vectors
                ok[part.indices] = True
            for i, reason in part.errors:
                error[i] = reason
        busy = np.full(len(idx), (time.perf_counter() - start) / max(len(idx), 1))
        return {"idx": idx, "vector": vectors, "ok": ok, "error": error.astype(str),
                "seconds": busy}


def _encoder_info(spec: EncoderSpec, defaults: dict[str, Any]) -> tuple[str, str, int, str, int]:
    """Build the encoder on a worker and report its identity (a Ray task, run once per spec)."""
    enc = spec.build(**defaults)
    try:
        return enc.name, enc.modality, enc.dim, enc.version, enc.default_batch_size
    finally:
        enc.close()


class RemoteEncoder(Encoder):
    """An :class:`Encoder` whose batches run on a :class:`RayEngine`'s actors.

    Its identity (name, modality, dim, version) is read once from a worker, so cache keys are
    those of the real encoder; the model itself is only ever loaded on the workers.
    """

    def __init__(self, engine: RayEngine, spec: EncoderSpec) -> None:
        self.engine = engine
        self.spec = spec
        defaults = engine.worker_defaults()
        name, modality, dim, version, bs = engine.encoder_info(spec)
        self.name = name
        self.modality: Modality = modality  # type: ignore[assignment]
        self.dim = int(dim)
        self._version = version
        self.default_batch_size = int(bs)
        self._fn = BatchFnSpec(EncodeFn, (spec, defaults, self._version))
        #: seconds the actors spent encoding (excludes start-up, model loading and transfer)
        self.busy_seconds = 0.0

    @property
    def version(self) -> str:
        return self._version

    def encode(self, inputs: Sequence[str] | Sequence[Path], batch_size: int | None = None
               ) -> np.ndarray:
        return collect_batches(self, self.encode_batches(inputs, batch_size), inputs)

    def encode_batches(self, inputs: Sequence[str] | Sequence[Path],
                       batch_size: int | None = None) -> Iterator[EncodedBatch]:
        """Yield results as the actors finish them (failed inputs in ``errors``)."""
        bs = batch_size or self.default_batch_size
        if not len(inputs):
            return
        columns = {"idx": np.arange(len(inputs), dtype=np.int64),
                   "input": [str(x) for x in inputs]}
        for out in self.engine.map_batches(columns, self._fn, bs):
            idx, ok = out["idx"], np.asarray(out["ok"], bool)
            self.busy_seconds += float(np.sum(out["seconds"]))
            vectors = np.asarray(out["vector"], np.float32).reshape(len(idx), self.dim)
            # report in chunks of ``bs`` so the caller's per-batch progress adds up
            for s in range(0, len(idx), bs):
                sl = slice(s, s + bs)
                good = ok[sl]
                yield EncodedBatch([int(i) for i in idx[sl][good]], vectors[sl][good],
                                   [(int(i), str(e)) for i, e in
                                    zip(idx[sl][~good], out["error"][sl][~good], strict=True)])

    def __repr__(self) -> str:
        return f"RemoteEncoder(name={self.name!r}, dim={self.dim}, engine={self.engine!r})"

