"""Describers on an engine: media files become text views on the engine's workers.

:meth:`Engine.describer` wraps a describer spec in a :class:`Describer` whose ``describe`` runs
as a batch function on the engine (on Ray: a ``map_batches`` actor that loads the describer's
models once). It keeps the real describer's name, modality and version, so the
:class:`~fuserec.describe.cache.TextCache` entries it fills are exactly those the in-process
describer would fill, and :func:`fuserec.describe.catalog.describe_files` works unchanged on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fuserec.describe import DescribeError, Describer, Description, get_describer
from fuserec.engines.base import BatchFnSpec, Columns

if TYPE_CHECKING:
    from fuserec.engines.base import Engine


@dataclass(frozen=True)
class DescriberSpec:
    """A describer by registry name and constructor options, buildable on any worker."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Describer:
        return get_describer(self.name, **self.options)


class DescribeFn:
    """Batch function: describe a block of file paths (the describer is built once)."""

    def __init__(self, spec: DescriberSpec, expected_version: str) -> None:
        self.describer = spec.build()
        if self.describer.version != expected_version:
            # a worker with other weights would fill the cache under the wrong key
            raise RuntimeError(f"describer {spec.name!r} on this worker is version "
                               f"{self.describer.version!r}, the driver expects "
                               f"{expected_version!r}")

    def __call__(self, batch: Columns) -> Columns:
        paths = [str(p) for p in batch["path"]]
        results = self.describer.describe(paths)
        texts = [json.dumps(r.to_json()) if isinstance(r, Description) else "" for r in results]
        errors = ["" if isinstance(r, Description) else str(r) for r in results]
        return {"row": np.asarray(batch["row"], np.int64), "description": np.array(texts),
                "error": np.array(errors)}


class EngineDescriber(Describer):
    """A describer whose work runs on ``engine``; metadata comes from a local probe build."""

    def __init__(self, engine: Engine, spec: DescriberSpec, batch_size: int = 16) -> None:
        probe = spec.build()
        try:
            self.name, self.modality = probe.name, probe.modality
            self._version = probe.version
        finally:
            probe.close()
        self.engine, self.spec, self.batch_size = engine, spec, batch_size

    @property
    def version(self) -> str:
        return self._version

    def describe(self, paths: Sequence[str | Path]) -> list[Description | DescribeError]:
        out: list[Description | DescribeError | None] = [None] * len(paths)
        if not paths:
            return []
        columns = {"row": np.arange(len(paths), dtype=np.int64),
                   "path": np.array([str(p) for p in paths])}
        fn = BatchFnSpec(DescribeFn, (self.spec, self._version))
        for batch in self.engine.map_batches(columns, fn, self.batch_size):
            for row, text, error in zip(batch["row"], batch["description"], batch["error"],
                                        strict=True):
                out[int(row)] = (Description.from_json(json.loads(str(text))) if text
                                 else DescribeError(str(error), paths[int(row)]))
        return [r if r is not None else DescribeError("no result from the engine", p)
                for r, p in zip(out, paths, strict=True)]
