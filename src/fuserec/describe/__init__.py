"""Describe: images and audio become text, an LLM writes item descriptions and user profiles.

>>> from fuserec.describe import get_describer, get_llm, describe_catalog   # doctest: +SKIP
>>> labels = get_describer("imagenet-labels").describe(["photo.jpg"])      # doctest: +SKIP
>>> llm = get_llm("smollm2")            # CTranslate2 int8, batched     # doctest: +SKIP

Layering: this package may import :mod:`fuserec.data` and :mod:`fuserec.encode` only.
"""

from fuserec.describe import audio, ct2, image, llm  # noqa: F401  (registers the built-ins)
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
from fuserec.describe.ct2 import CT2LLM, user_cache_dir
from fuserec.describe.faithful import Fact, Facts, check_sentences, coverage
from fuserec.describe.generate import (
    Budget,
    GeneratedText,
    Request,
    generate_checked,
    generate_checked_many,
)
from fuserec.describe.image import ImageNetLabeler, imagenet_class_names
from fuserec.describe.llm import (
    LLMS,
    LLMBackend,
    LLMError,
    OpenAIEndpointLLM,
    TransformersLLM,
    check_text,
    clean_text,
    get_llm,
    packaged_gguf,
)

__all__ = [
    "CT2LLM", "DEFAULT_DESCRIBERS", "DESCRIBERS", "LLMS", "Budget", "DescribeError",
    "DescribedCatalog", "Describer", "Description", "Fact", "Facts", "GeneratedText",
    "ImageNetLabeler", "LLMBackend", "LLMError", "OpenAIEndpointLLM", "Request", "TextCache",
    "TransformersLLM", "WhisperAcousticDescriber", "check_sentences", "check_text",
    "clean_text", "coverage", "describe_catalog", "describe_files", "generate_checked",
    "generate_checked_many", "get_describer", "get_llm", "imagenet_class_names",
    "load_described", "packaged_gguf", "save_described", "user_cache_dir", "whisper_model_dir",
]
