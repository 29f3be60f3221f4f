"""The engine extension point: where batch work runs (in-process or on a cluster).

An :class:`Engine` maps a *batch function* over the rows of a table of columns. The function
is not shipped as an object but as a :class:`BatchFnSpec` (a class plus constructor
arguments) so that each worker builds it once, in its own process, and keeps it for every
batch it processes: this is how a worker loads an encoder's model once, and how describers
(image -> labels, speech -> transcript, LLM descriptions) will run the same way.

On top of :meth:`Engine.map_batches` every engine offers the two batch jobs of the pipeline:

* :meth:`Engine.encode_catalog`: the same outputs and the same :class:`EmbeddingCache` entries
  as :func:`fuserec.encode.encode_catalog` (content hash + encoder version keys), whichever
  engine computes the vectors;
* :meth:`Engine.recommend_all`: top-k for every user (or a list of users) of a fitted model.

Engines are the lowest layer of the design list: they may import every other stage, and only
the CLI imports them.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fuserec.data.schema import Catalog
from fuserec.encode import EmbeddingCache, EncodedView, Encoder, encode_catalog, get_encoder
from fuserec.encode.base import ENCODERS
from fuserec.registry import Registry

if TYPE_CHECKING:  # models import torch: workers that only encode never need it
    from fuserec.describe import Describer
    from fuserec.engines.describing import DescriberSpec
    from fuserec.models.base import Recommender

Columns = dict[str, np.ndarray]


class BatchFn(Protocol):
    """A function over one batch of rows: a dict of equal-length column arrays in and out."""

    def __call__(self, batch: Columns) -> Columns: ...


@dataclass(frozen=True)
class BatchFnSpec:
    """How to build a :class:`BatchFn` on a worker: ``factory(*args, **kwargs)``, once.

    ``factory`` must be importable by reference (a module-level class or function) so that it
    pickles to remote workers; ``args``/``kwargs`` must pickle too.
    """

    factory: Callable[..., BatchFn]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> BatchFn:
        """Construct the batch function (called once per worker)."""
        return self.factory(*self.args, **self.kwargs)


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder by registry name and constructor options, buildable on any worker.

    ``factory`` (optional) builds encoders that are not registered, e.g. a project's own
    :class:`Encoder` subclass; it must be importable (or picklable) on the workers.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    factory: Callable[..., Encoder] | None = None

    def build(self, **defaults: Any) -> Encoder:
        """Build the encoder; ``defaults`` fill options it accepts and the spec leaves unset."""
        options = dict(self.options)
        accepted = _accepted_options(self.factory or self.name)
        for key, value in defaults.items():
            if key not in options and (accepted is None or key in accepted):
                options[key] = value
        if self.factory is not None:
            return self.factory(**options)
        return get_encoder(self.name, **options)


def _accepted_options(target: str | Callable[..., Any]) -> set[str] | None:
    """Keyword names an encoder factory takes (None when it takes ``**kwargs``)."""
    if isinstance(target, str):
        from fuserec.encode import base as encode_base

        encode_base._load_builtin()
        if target not in ENCODERS:
            return set()
        target = ENCODERS._factories[target]
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


class Engine(ABC):
    """Runs batch functions over tables of rows; subclasses decide where."""

    name: str

    @abstractmethod
    def map_batches(self, columns: Mapping[str, np.ndarray | Sequence[Any]], fn: BatchFnSpec,
                    batch_size: int) -> Iterator[Columns]:
        """Apply ``fn`` to batches of at most ``batch_size`` rows of ``columns``.

        Yields output batches as they finish, in no guaranteed order: carry an index column
        through ``fn`` to put results back in place.
        """

    @abstractmethod
    def encoder(self, spec: EncoderSpec) -> Encoder:
        """An encoder whose ``encode_batches`` runs on this engine.

        Its ``name``, ``modality``, ``dim`` and ``version`` are those of the real encoder, so
        cache entries it produces are the ones the in-process encoder would produce.
        """

    def describer(self, spec: DescriberSpec, batch_size: int = 16) -> Describer:
        """A describer whose ``describe`` runs on this engine's workers.

        Same name, modality and version as the real one, so text-cache entries are shared
        across engines (see :mod:`fuserec.engines.describing`).
        """
        from fuserec.engines.describing import EngineDescriber

        return EngineDescriber(self, spec, batch_size)

    def encode_catalog(self, catalog: Catalog, encoders: Mapping[str, EncoderSpec | str],
                       cache: EmbeddingCache | None = None, progress: bool = True
                       ) -> dict[str, dict[str, EncodedView]]:
        """Encode items and users as :func:`fuserec.encode.encode_catalog` does, on this engine.

        ``encoders`` maps a modality to an :class:`EncoderSpec` or a registered encoder name.
        Cache lookups and writes happen here (the caller's process); the engine computes only
        the misses.
        """
        built = {m: self.encoder(_spec(s)) for m, s in encoders.items()}
        try:
            return encode_catalog(catalog, built, cache, progress=progress)
        finally:
            for enc in built.values():
                enc.close()

    def recommend_all(self, model: Recommender, k: int = 10,
                      user_ids: Sequence[int] | np.ndarray | None = None,
                      exclude_seen: bool = True, batch_size: int = 1024
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for ``user_ids`` (all users by default).

        Same result as ``model.recommend(user_ids, k, exclude_seen)``, computed in blocks of
        ``batch_size`` users by this engine's workers.
        """
        users = _all_users(model) if user_ids is None else \
            np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        ids = np.full((len(users), k), -1, np.int64)
        scores = np.full((len(users), k), -np.inf, np.float32)
        if len(users) == 0:
            return ids, scores
        fn = self._scorer(model, k, exclude_seen)
        columns = {"row": np.arange(len(users), dtype=np.int64), "user": users}
        for out in self.map_batches(columns, fn, batch_size):
            ids[out["row"]] = out["items"]
            scores[out["row"]] = out["scores"]
        return ids, scores

    def _scorer(self, model: Recommender, k: int, exclude_seen: bool) -> BatchFnSpec:
        """The batch function that scores blocks of users (engines may ship the model)."""
        return BatchFnSpec(RecommendFn, (model, k, exclude_seen))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources (optional)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RecommendFn:
    """Batch function: top-k for a block of users of a model (built once per worker).

    ``model`` is a fitted :class:`Recommender` or a payload from :func:`model_payload`
    (arrays + config, what a remote worker receives through the object store).
    """

    def __init__(self, model: Recommender | tuple[Mapping[str, np.ndarray], dict[str, Any]],
                 k: int, exclude_seen: bool = True) -> None:
        self.model = model_from_payload(*model) if isinstance(model, tuple) else model
        self.k = k
        self.exclude_seen = exclude_seen

    def __call__(self, batch: Columns) -> Columns:
        users = np.asarray(batch["user"], dtype=np.int64)
        items, scores = self.model.recommend(users, self.k, exclude_seen=self.exclude_seen)
        return {"row": np.asarray(batch["row"], dtype=np.int64), "items": items,
                "scores": scores}


def model_payload(model: Recommender) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A fitted model as ``(arrays, config)``: what ``Recommender.save`` writes, in memory."""
    arrays, config = model.state()
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    if model.interactions is not None:
        m = model.interactions.tocsr()
        arrays.update({"_seen.indptr": m.indptr.astype(np.int64),
                       "_seen.indices": m.indices.astype(np.int64),
                       "_seen.data": m.data.astype(np.float32)})
        config = {**config, "_seen_shape": list(m.shape)}
    return arrays, {"model": model.name, **config}


def model_from_payload(arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]
                       ) -> Recommender:
    """Rebuild a model from :func:`model_payload` output (like ``Recommender.load``)."""
    import scipy.sparse as sp

    from fuserec.models import MODELS

    model = MODELS.get(config["model"]).from_state(arrays, config)
    if "_seen_shape" in config:
        model.interactions = sp.csr_matrix(
            (arrays["_seen.data"], arrays["_seen.indices"], arrays["_seen.indptr"]),
            shape=tuple(config["_seen_shape"]))
    return model


def _all_users(model: Recommender) -> np.ndarray:
    if model.interactions is not None:
        return np.arange(model.interactions.shape[0], dtype=np.int64)
    users = getattr(model, "_users", None)
    if users is None:
        raise ValueError("pass user_ids: the model does not say how many users it has")
    return np.arange(len(users), dtype=np.int64)


def _spec(spec: EncoderSpec | str) -> EncoderSpec:
    return spec if isinstance(spec, EncoderSpec) else EncoderSpec(spec)


class _EngineRegistry(Registry[Engine]):
    pass


ENGINES = _EngineRegistry("engine")
DEFAULT_ENGINE = "local"


def get_engine(name: str = DEFAULT_ENGINE, **options: Any) -> Engine:
    """Build the engine registered as ``name`` (``"local"`` or ``"ray"``)."""
    from fuserec.engines import local, ray_engine  # noqa: F401  (registers the built-ins)

    return ENGINES.create(name, **options)
