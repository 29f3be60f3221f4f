"""Recommenders behind one protocol, registered by name."""

from fuserec.models.als import ALS
from fuserec.models.autoencoder import MultDAE
from fuserec.models.base import MODELS, Recommender, top_k
from fuserec.models.blend import Blend
from fuserec.models.content import ContentCosine
from fuserec.models.ease import EASE
from fuserec.models.fusion import FusionRecommender
from fuserec.models.graph import FuseGraph
from fuserec.models.knn import ItemKNN
from fuserec.models.lightgcn import LightGCN
from fuserec.models.mf import BPRMF
from fuserec.models.mmease import MultimodalEASE
from fuserec.models.popularity import Popularity
from fuserec.models.textfusion import TextFusion
from fuserec.models.torch_base import EmbeddingRecommender, TorchRecommender
from fuserec.models.vbpr import VBPR

__all__ = ["ALS", "MODELS", "BPRMF", "EASE", "Blend", "ContentCosine", "EmbeddingRecommender",
           "FuseGraph", "FusionRecommender", "ItemKNN", "LightGCN", "MultDAE", "MultimodalEASE",
           "Popularity", "Recommender", "TextFusion", "TorchRecommender", "VBPR", "top_k"]
