"""Top-k retrieval over item vectors: exact (numpy), FAISS (the default), usearch and Qdrant."""

from fuserec.index.base import (
    DEFAULT_INDEX,
    INDEXES,
    VectorIndex,
    build_index,
    load_index,
)
from fuserec.index.exact import ExactIndex
from fuserec.index.faiss_index import FaissIndex
from fuserec.index.filters import AttributeFilter, parse_filters
from fuserec.index.qdrant_index import QdrantIndex
from fuserec.index.usearch_index import USearchIndex

__all__ = ["DEFAULT_INDEX", "INDEXES", "AttributeFilter", "ExactIndex", "FaissIndex",
           "QdrantIndex", "USearchIndex", "VectorIndex", "build_index", "load_index",
           "parse_filters"]
