"""VBPR (He & McAuley, AAAI 2016): matrix factorisation plus a content term.

``score(u, i) = p_u · q_i + θ_u · (E f_i) + β' · f_i + b_i`` where ``f_i`` concatenates the
item's normalised content views and ``E`` projects it to ``content_factors`` dimensions. It is
exported as one dot product of ``[p_u, θ_u, 1]`` and ``[q_i, E f_i, b_i + β' · f_i]``; items
never seen in training keep only their content part, so they are scored from content alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fuserec.fuse.base import View
from fuserec.models.base import MODELS
from fuserec.models.torch_base import TorchRecommender, content_matrix


class _VBPR(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, content_dim: int,
                 feat_dim: int) -> None:
        super().__init__()
        self.users = torch.nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.items = torch.nn.Parameter(torch.randn(n_items, dim) * 0.1)
        self.theta = torch.nn.Parameter(torch.randn(n_users, content_dim) * 0.1)
        self.proj = torch.nn.Linear(feat_dim, content_dim, bias=False)
        self.bias = torch.nn.Parameter(torch.zeros(n_items, 1))
        self.beta = torch.nn.Linear(feat_dim, 1, bias=False)


@MODELS.register("vbpr")
class VBPR(TorchRecommender):
    """Visual/content-aware BPR with every available content view concatenated."""

    name = "vbpr"
    needs_content = True

    train_defaults = {"batch_size": 2048, "lr": 5e-3, "loss": "bpr"}

    def __init__(self, factors: int = 32, content_factors: int = 32, **train: Any) -> None:
        super().__init__(factors, **train)
        self.content_factors = content_factors

    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        if not item_features:
            raise ValueError("vbpr needs item_features")
        blocks = content_matrix(item_features)
        self._features = torch.from_numpy(np.concatenate(list(blocks.values()), axis=1))
        return _VBPR(*interactions.shape, self.factors, self.content_factors,
                     self._features.shape[1])

    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        m = self.module
        ones = torch.ones(m.users.shape[0], 1)
        users = torch.cat([m.users, m.theta, ones], 1)
        items = torch.cat([m.items, m.proj(self._features),
                           m.bias + m.beta(self._features)], 1)
        # the regularised "ego" rows: user parts and item parts (indexed per batch)
        return users, items, [torch.cat([m.users, m.theta], 1), torch.cat([m.items, m.bias], 1),
                              m.proj.weight]

    def finalize(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unseen = np.asarray(self.interactions.sum(0)).ravel() == 0
        items = items.copy()
        items[unseen, : self.factors] = 0.0  # no ID signal: content only
        if unseen.any():
            # their free bias b_i never moved from 0, keep only β' · f_i
            items[unseen, -1] = (self.module.beta(self._features[torch.from_numpy(unseen)])
                                 .detach().numpy().ravel())
        return users, items

    def content_vectors(self) -> np.ndarray:
        """``[0, E f_i, β' f_i]``: the item vector VBPR gives an item it has never seen."""
        m = self.module
        with torch.no_grad():
            proj = m.proj(self._features).numpy()
            beta = m.beta(self._features).numpy()
        ids = np.zeros((len(proj), self.factors), np.float32)
        return np.concatenate([ids, proj, beta], 1).astype(np.float32)
