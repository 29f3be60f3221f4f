"""Where batch work runs: in-process (the default) or on a Ray cluster.

>>> from fuserec.engines import get_engine, EncoderSpec
>>> with get_engine("ray", workers=2) as engine:                    # doctest: +SKIP
...     views = engine.encode_catalog(catalog, {"text": EncoderSpec("minilm")}, cache)
...     ids, scores = engine.recommend_all(model, k=10)

Only the CLI imports this package (it is the lowest layer of the design).
"""

from fuserec.engines.base import (
    DEFAULT_ENGINE,
    ENGINES,
    BatchFn,
    BatchFnSpec,
    EncoderSpec,
    Engine,
    RecommendFn,
    get_engine,
    model_from_payload,
    model_payload,
)
from fuserec.engines.describing import DescriberSpec, EngineDescriber
from fuserec.engines.local import LocalEngine

__all__ = ["DEFAULT_ENGINE", "ENGINES", "BatchFn", "BatchFnSpec", "DescriberSpec",
           "EngineDescriber", "Engine", "EncoderSpec",
           "LocalEngine", "RecommendFn", "get_engine", "model_from_payload", "model_payload"]
