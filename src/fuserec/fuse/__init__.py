"""Fusion: per-modality views into one vector per record."""

from fuserec.fuse.base import FUSERS, Fuser, View
from fuserec.fuse.normalize import ModalityNormalizer, l2_normalize
from fuserec.fuse.sum import SumFusion

__all__ = ["FUSERS", "Fuser", "View", "ModalityNormalizer", "SumFusion", "l2_normalize"]
