"""The TikTok micro-video benchmark as released with DiffMM (ACM MM 2024).

9,308 users x 6,710 items; train / validation / test matrices and 128-d image and audio
features (float16 on disk, float32 here). Published Recall@20 / NDCG@20 on this split:
DiffMM .1129 / .0456, BM3 .0957 / .0404, LightGCN .0653 / .0282.
"""

from __future__ import annotations

import os

from fuserec.data.adapters.base import ADAPTERS, Dataset
from fuserec.data.adapters.matrices import load_matrices

PUBLISHED = {
    "MF-BPR": (0.0346, 0.0130), "VBPR": (0.0380, 0.0134), "LightGCN": (0.0653, 0.0282),
    "MMGCN": (0.0730, 0.0307), "GRCN": (0.0804, 0.0350), "LATTICE": (0.0843, 0.0367),
    "SLMRec": (0.0845, 0.0353), "BM3": (0.0957, 0.0404), "DiffMM": (0.1129, 0.0456),
}
"""Recall@20 / NDCG@20 from DiffMM's Table 1 (all-item ranking, training items excluded)."""


@ADAPTERS.register("tiktok")
def load_tiktok(data_dir: str | os.PathLike[str]) -> Dataset:
    """Load the TikTok folder (``trnMat.pkl``, ``valMat.pkl``, ``tstMat.pkl``, ``*_feat.npy``)."""
    return load_matrices(data_dir, name="tiktok")
