"""Recommenders behind one protocol, registered by name."""

from fuserec.models.base import MODELS, Recommender, top_k
from fuserec.models.content import ContentCosine
from fuserec.models.popularity import Popularity

__all__ = ["MODELS", "Recommender", "ContentCosine", "Popularity", "top_k"]
