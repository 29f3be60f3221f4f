"""Matrix factorisation learned from implicit feedback (BPR-MF, or softmax-trained MF)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch

from fuserec.fuse.base import View
from fuserec.models.base import MODELS
from fuserec.models.torch_base import TorchRecommender


class _Embeddings(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, std: float) -> None:
        super().__init__()
        self.users = torch.nn.Parameter(torch.randn(n_users, dim) * std)
        self.items = torch.nn.Parameter(torch.randn(n_items, dim) * std)


@MODELS.register("bpr-mf")
class BPRMF(TorchRecommender):
    """``score(u, i) = p_u · q_i``, trained with BPR by default (Rendle et al., UAI 2009)."""

    name = "bpr-mf"

    train_defaults = {"batch_size": 2048, "lr": 5e-3, "loss": "bpr"}

    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        return _Embeddings(*interactions.shape, self.factors, 0.1)

    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        m = self.module
        return m.users, m.items, [m.users, m.items]

    def finalize(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # items nobody interacted with keep their random start: they carry no information
        unseen = np.asarray(self.interactions.sum(0)).ravel() == 0
        items = items.copy()
        items[unseen] = 0.0
        return users, items
