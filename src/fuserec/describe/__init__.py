"""Describe: images and audio become text, an LLM writes item descriptions and user profiles.

>>> from fuserec.describe import get_describer, get_llm, describe_catalog   # doctest: +SKIP
>>> labels = get_describer("imagenet-labels").describe(["photo.jpg"])      # doctest: +SKIP
>>> llm = get_llm("smollm2")                                                # doctest: +SKIP

Layering: this package may import :mod:`fuserec.data` and :mod:`fuserec.encode` only.
"""

from fuserec.describe import audio, image, llm  # noqa: F401  (registers the built-ins)
from fuserec.describe.audio import WhisperAcousticDescriber, whisper_model_dir
from fuserec.describe.base import (
    DEFAULT_DESCRIBERS,
    DESCRIBERS,
    DescribeError,
    Describer,
    Description,
    get_describer,
)
from fuserec.describe.cache import TextCache
from fuserec.describe.catalog import (
    DescribedCatalog,
    describe_catalog,
    describe_files,
    load_described,
    save_described,
)
from fuserec.describe.image import ImageNetLabeler, imagenet_class_names
from fuserec.describe.llm import (
    LLMS,
    GeneratedText,
    LLMBackend,
    LLMError,
    OpenAIEndpointLLM,
    TransformersLLM,
    check_text,
    clean_text,
    generate_checked,
    get_llm,
    packaged_gguf,
)

__all__ = [
    "DEFAULT_DESCRIBERS", "DESCRIBERS", "LLMS", "DescribeError", "DescribedCatalog", "Describer",
    "Description", "GeneratedText", "ImageNetLabeler", "LLMBackend", "LLMError",
    "OpenAIEndpointLLM", "TextCache", "TransformersLLM", "WhisperAcousticDescriber",
    "check_text", "clean_text", "describe_catalog", "describe_files", "generate_checked",
    "get_describer", "get_llm", "imagenet_class_names", "load_described", "packaged_gguf",
    "save_described", "whisper_model_dir",
]
