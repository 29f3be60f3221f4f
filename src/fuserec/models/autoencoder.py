"""Mult-DAE (Liang et al., WWW 2018): a denoising autoencoder of each user's item set.

A user's history ``x_u`` (L2-normalised, with input dropout while training) is encoded as
``h_u = tanh(x_u W_enc + b_enc)`` and decoded by a softmax over the catalog,
``p(i | u) ∝ exp(h_u · w_i + b_i)``, trained with the multinomial likelihood of the user's
items. The decoder is a dot product, so the model exports user vectors ``[h_u, 1]`` and item
vectors ``[w_i, b_i]`` like every embedding model here. Unlike ID-embedding models, a user's
vector is a function of the items they touched, so users share all parameters: a different
inductive bias from the graph models, which is what a blend wants.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fuserec.fuse.base import View
from fuserec.models.base import MODELS
from fuserec.models.torch_base import TorchRecommender, sparse_tensor


def row_normalized(x: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (empty rows stay empty)."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    return (sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)) @ x).tocsr()


class _AutoEncoder(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        scale = 1.0 / np.sqrt(dim)
        self.encoder = torch.nn.Parameter(torch.randn(n_items, dim) * scale)
        self.encoder_bias = torch.nn.Parameter(torch.zeros(dim))
        self.decoder = torch.nn.Parameter(torch.randn(n_items, dim) * scale)
        self.decoder_bias = torch.nn.Parameter(torch.zeros(n_items, 1))
        # users have no parameters of their own; the shared training step regularises the
        # batch's rows of ``ego[0]``, so it gets an empty per-user tensor
        self.register_buffer("no_user_params", torch.zeros(n_users, 0))


@MODELS.register("multdae")
class MultDAE(TorchRecommender):
    """Denoising autoencoder over users' item sets with a multinomial (softmax) likelihood."""

    name = "multdae"

    train_defaults = {"epochs": 200, "batch_size": 500, "lr": 1e-3, "loss": "softmax",
                      "temperature": 1.0, "reg": 1e-2}

    def __init__(self, factors: int = 200, dropout: float = 0.5, **train: Any) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        super().__init__(factors, **train)
        if self.loss != "softmax":
            raise ValueError("multdae is trained with the multinomial likelihood: loss='softmax'")
        self.dropout = dropout

    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        self._inputs = row_normalized(interactions).tocoo()  # resampled with dropout per step
        self._input_tensor = sparse_tensor(self._inputs)
        self._rng = np.random.default_rng(self.seed)
        return _AutoEncoder(*interactions.shape, self.factors)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        return torch.tanh(torch.sparse.mm(x, m.encoder) + m.encoder_bias)

    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        m = self.module
        x = self._input_tensor
        if training and self.dropout > 0:
            # drop each input interaction independently, rescaling the kept ones
            coo = self._inputs
            keep = self._rng.random(coo.nnz) >= self.dropout
            dropped = sp.csr_matrix((coo.data[keep] / (1.0 - self.dropout),
                                     (coo.row[keep], coo.col[keep])), shape=coo.shape)
            x = sparse_tensor(dropped)
        users = self._hidden(x)
        users = torch.cat([users, torch.ones(users.shape[0], 1)], 1)
        items = torch.cat([m.decoder, m.decoder_bias], 1)
        return users, items, [m.no_user_params, m.decoder, m.encoder]
