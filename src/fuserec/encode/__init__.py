"""Encoders for text, images and audio, an on-disk embedding cache and the encode pipeline.

>>> from fuserec.encode import get_encoder, EmbeddingCache, encode_records
>>> enc = get_encoder("minilm")                       # doctest: +SKIP
>>> view = encode_records(items, root, "text", enc, EmbeddingCache(cache_dir))  # doctest: +SKIP
"""

from fuserec.encode import audio, image, text  # noqa: F401  (registers the built-in encoders)
from fuserec.encode.audio import LibrosaAudioEncoder
from fuserec.encode.base import (
    DEFAULT_ENCODERS,
    ENCODERS,
    MODALITIES,
    EncodedBatch,
    EncodeError,
    Encoder,
    Modality,
    get_encoder,
)
from fuserec.encode.cache import EmbeddingCache
from fuserec.encode.hashing import file_hash, text_hash
from fuserec.encode.image import EfficientNetLiteEncoder
from fuserec.encode.pipeline import EncodedView, encode_catalog, encode_records, encode_texts
from fuserec.encode.text import SentenceEncoder

__all__ = [
    "DEFAULT_ENCODERS",
    "ENCODERS",
    "MODALITIES",
    "EfficientNetLiteEncoder",
    "EmbeddingCache",
    "EncodeError",
    "EncodedBatch",
    "EncodedView",
    "Encoder",
    "LibrosaAudioEncoder",
    "Modality",
    "SentenceEncoder",
    "encode_catalog",
    "encode_records",
    "encode_texts",
    "file_hash",
    "get_encoder",
    "text_hash",
]
