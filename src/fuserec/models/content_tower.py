"""Learned fusion of content views: per-modality projections combined by a gate.

Each modality's normalised features go through their own projection (two layers, or one
linear map when ``hidden=0``) into a shared ``dim``-dimensional space; an attention gate
scores each projected view per item, ``a_im = softmax_m(q · tanh(W h_im))`` over the
modalities the item has, and the item's content vector is ``Σ_m a_im h_im``.
With ``gate="mean"`` the views are averaged instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from fuserec.fuse.base import View
from fuserec.models.torch_base import content_matrix


class ContentTower(torch.nn.Module):
    """Per-modality projections + gated (attention) fusion, over fixed item features."""

    def __init__(self, item_features: Mapping[str, View], dim: int, hidden: int = 256,
                 gate: str = "attention", dropout: float = 0.0) -> None:
        super().__init__()
        if gate not in ("attention", "mean"):
            raise ValueError("gate must be 'attention' or 'mean'")
        blocks = content_matrix(item_features)
        self.modalities = list(blocks)
        self.gate = gate
        for m, x in blocks.items():
            self.register_buffer(f"feat_{m}", torch.from_numpy(x))
            present = np.asarray(item_features[m].present, bool)
            self.register_buffer(f"present_{m}", torch.from_numpy(present))
        self.proj = torch.nn.ModuleDict({m: self._projection(x.shape[1], hidden, dim, dropout)
                                         for m, x in blocks.items()})
        self.att = torch.nn.Linear(dim, dim)
        self.query = torch.nn.Parameter(torch.randn(dim) * 0.1)

    @staticmethod
    def _projection(d_in: int, hidden: int, dim: int, dropout: float) -> torch.nn.Module:
        """Two layers with a LeakyReLU between, or one linear map when ``hidden`` is 0."""
        if hidden <= 0:
            return torch.nn.Linear(d_in, dim)
        return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.LeakyReLU(0.2),
                                   torch.nn.Dropout(dropout), torch.nn.Linear(hidden, dim))

    def views(self) -> dict[str, torch.Tensor]:
        """Each modality's projection of every item (zero where the item lacks it)."""
        out = {}
        for m in self.modalities:
            h = self.proj[m](getattr(self, f"feat_{m}"))
            out[m] = h * getattr(self, f"present_{m}")[:, None]
        return out

    def forward(self) -> torch.Tensor:
        views = self.views()
        stacked = torch.stack([views[m] for m in self.modalities], 1)  # (n, M, dim)
        present = torch.stack([getattr(self, f"present_{m}") for m in self.modalities], 1)
        if self.gate == "mean":
            w = present.float()
            w = w / w.sum(1, keepdim=True).clamp(min=1.0)
        else:
            logits = torch.tanh(self.att(stacked)) @ self.query
            logits = logits.masked_fill(~present, -1e9)
            w = torch.softmax(logits, 1) * present.any(1, keepdim=True)
        self.last_weights = w.detach()
        return (w[..., None] * stacked).sum(1)
