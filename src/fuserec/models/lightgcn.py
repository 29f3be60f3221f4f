"""LightGCN (He et al., SIGIR 2020): ID embeddings smoothed over the user-item graph.

``E^(l+1) = Â E^(l)`` with ``Â = D^-1/2 A D^-1/2`` the normalised bipartite adjacency, and the
final vectors are the mean over layers 0..L. No feature transforms, no non-linearities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fuserec.fuse.base import View
from fuserec.models.base import MODELS
from fuserec.models.torch_base import TorchRecommender, normalized_adjacency, sparse_tensor


def propagate(adj: torch.Tensor, ego: torch.Tensor, layers: int) -> torch.Tensor:
    """Mean of ``ego, Â ego, ..., Â^layers ego``."""
    out, h = ego, ego
    for _ in range(layers):
        h = torch.sparse.mm(adj, h)
        out = out + h
    return out / (layers + 1)


class _Ego(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.users = torch.nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.items = torch.nn.Parameter(torch.randn(n_items, dim) * 0.1)


@MODELS.register("lightgcn")
class LightGCN(TorchRecommender):
    """Linear propagation of ID embeddings over the user-item graph, trained with BPR."""

    name = "lightgcn"

    train_defaults = {"epochs": 200, "batch_size": 2048, "lr": 1e-3, "loss": "bpr"}

    def __init__(self, factors: int = 64, layers: int = 3, **train: Any) -> None:
        super().__init__(factors, **train)
        self.layers = layers

    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        self._adj = sparse_tensor(normalized_adjacency(interactions))
        self._n_users = interactions.shape[0]
        return _Ego(*interactions.shape, self.factors)

    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        m = self.module
        h = propagate(self._adj, torch.cat([m.users, m.items]), self.layers)
        return h[: self._n_users], h[self._n_users:], [m.users, m.items]

    def finalize(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unseen = np.asarray(self.interactions.sum(0)).ravel() == 0
        items = items.copy()
        items[unseen] = 0.0
        return users, items
