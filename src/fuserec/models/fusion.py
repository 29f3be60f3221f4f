"""A learned fusion model: content towers fused by a gate, plus ID embeddings with dropout.

Item vector ``v_i = c_i + keep_i · q_i`` where ``c_i`` is the gated fusion of the item's
projected content views (:class:`~fuserec.models.content_tower.ContentTower`) and ``q_i`` a free
ID embedding. During training the ID part of each item is dropped with probability
``id_dropout``, so the content tower must carry the signal on its own; items with no training
interactions are scored from ``c_i`` alone, which is what makes the model usable for cold
items. Users are ID embeddings. Trained with a softmax over the catalog by default (or BPR).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fuserec.fuse.base import View
from fuserec.models.base import MODELS
from fuserec.models.content_tower import ContentTower
from fuserec.models.torch_base import TorchRecommender


class _Fusion(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, tower: ContentTower) -> None:
        super().__init__()
        self.users = torch.nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.items = torch.nn.Parameter(torch.randn(n_items, dim) * 0.1)
        self.tower = tower


@MODELS.register("fusion")
class FusionRecommender(TorchRecommender):
    """Gated multimodal fusion learned from interactions; cold items scored from content."""

    name = "fusion"
    needs_content = True

    train_defaults = {"batch_size": 512, "lr": 2e-3, "loss": "softmax"}

    def __init__(self, factors: int = 64, hidden: int = 256, gate: str = "attention",
                 id_dropout: float = 0.3, **train: Any) -> None:
        super().__init__(factors, **train)
        self.hidden = hidden
        self.gate = gate
        self.id_dropout = id_dropout

    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        if not item_features:
            raise ValueError("fusion needs item_features")
        self._seen = torch.from_numpy(np.asarray(interactions.sum(0)).ravel() > 0)
        tower = ContentTower(item_features, self.factors, self.hidden, self.gate)
        return _Fusion(*interactions.shape, self.factors, tower)

    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        m = self.module
        keep = self._seen.float()[:, None]
        if training and self.id_dropout > 0:
            keep = keep * (torch.rand(keep.shape[0], 1) >= self.id_dropout).float()
        items = m.tower() + keep * m.items
        return m.users, items, [m.users, m.items]

    def content_vectors(self) -> np.ndarray:
        """The content tower's output: the vector of an item without an ID embedding."""
        self.module.eval()
        with torch.no_grad():
            out = self.module.tower().numpy().astype(np.float32)
        self.module.train()
        return out

    def modality_weights(self) -> dict[str, float]:
        """Mean gate weight of each modality over the catalog (after training)."""
        w = getattr(self.module.tower, "last_weights", None)
        if w is None:
            return {}
        return {m: float(w[:, j].mean()) for j, m in enumerate(self.module.tower.modalities)}
