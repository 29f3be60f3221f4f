"""fuserec: multimodal recommendation from text, images and audio.

The pipeline stages are subpackages (``data``, ``encode``, ``fuse``, ``models``, ``evaluate``);
:func:`run_pipeline` and :func:`run_demo` run them all.
"""

# before anything imports numba (librosa does): see fuserec.portable
from fuserec.portable import choose_numba_target

choose_numba_target()

from fuserec.data.schema import Catalog  # noqa: E402
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
    # heavy imports (torch, models) only when asked for
    lazy = {
        "run_pipeline": ("fuserec.pipeline", "run_pipeline"),
        "run_demo": ("fuserec.pipeline", "run_demo"),
        "PipelineConfig": ("fuserec.pipeline", "PipelineConfig"),
        "load_catalog": ("fuserec.data.loaders", "load_catalog"),
        "load_artifacts": ("fuserec.artifacts", "load_artifacts"),
        "get_encoder": ("fuserec.encode", "get_encoder"),
        "SumFusion": ("fuserec.fuse", "SumFusion"),
        "ContentCosine": ("fuserec.models", "ContentCosine"),
        "Popularity": ("fuserec.models", "Popularity"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'fuserec' has no attribute {name!r}")


__all__ = ["Catalog", "DemoCatalogSpec", "generate_demo_catalog", "__version__",
           "run_pipeline", "run_demo", "PipelineConfig", "load_catalog", "load_artifacts",
           "get_encoder", "SumFusion", "ContentCosine", "Popularity"]
