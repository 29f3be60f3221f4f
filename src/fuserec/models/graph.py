"""FuseGraph: a multimodal graph recommender of the LATTICE / FREEDOM / BM3 class.

Three parts, all trained end to end:

1. **Content tower.** Each modality's normalised features are projected and fused by an
   attention gate (:class:`~fuserec.models.content_tower.ContentTower`) into ``c_i``.
2. **Item-item graph from content.** For every modality a k-nearest-neighbour graph of item
   cosine similarity (frozen, as in FREEDOM), the graphs averaged over modalities and
   symmetrically normalised into ``S``. Items are smoothed over it:
   ``h_i = (S^L_ii (q + c))_i`` — which is what gives items with few or no interactions the
   collaborative signal of their content neighbours.
3. **User-item graph.** LightGCN propagation of ``[p; q + c]`` over the normalised bipartite
   graph, with random edge dropout each epoch (a regulariser in the spirit of FREEDOM's
   degree-sensitive edge pruning).

User vector: the propagated user; item vector: propagated item + ``h_i`` (plus, with
``item_bias``, a learned per-item bias as one more dimension). Trained with BPR or a
softmax over the catalog; items never seen in training keep their content and graph parts.
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
from fuserec.models.lightgcn import propagate
from fuserec.models.torch_base import (
    TorchRecommender,
    content_matrix,
    normalized_adjacency,
    sparse_tensor,
)


def knn_graph(features: np.ndarray, k: int, present: np.ndarray | None = None,
              batch: int = 2048) -> sp.csr_matrix:
    """Binary kNN graph of cosine similarity between rows (self excluded, absent rows empty)."""
    x = features.astype(np.float32)
    n = len(x)
    ok = np.ones(n, bool) if present is None else np.asarray(present, bool)
    rows, cols = [], []
    xt = torch.from_numpy(x)
    for start in range(0, n, batch):
        s = (xt[start:start + batch] @ xt.T).numpy()
        s[:, ~ok] = -np.inf
        s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf
        kk = min(k, n - 1)
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        r = np.repeat(np.arange(start, start + len(s)), kk)
        c = top.ravel()
        valid = np.isfinite(np.take_along_axis(s, top, 1)).ravel() & ok[r]
        rows.append(r[valid])
        cols.append(c[valid])
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))


def sym_normalize(a: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 over row sums."""
    a = sp.csr_matrix(a, dtype=np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    d = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
    return (sp.diags(d) @ a @ sp.diags(d)).tocsr()


class _Graph(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, tower: ContentTower,
                 item_bias: bool) -> None:
        super().__init__()
        self.users = torch.nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.items = torch.nn.Parameter(torch.randn(n_items, dim) * 0.1)
        self.bias = torch.nn.Parameter(torch.zeros(n_items, 1)) if item_bias else None
        self.tower = tower


@MODELS.register("fusegraph")
class FuseGraph(TorchRecommender):
    """Content tower + frozen multimodal item-item kNN graph + LightGCN over interactions."""

    name = "fusegraph"
    needs_content = True

    train_defaults = {"epochs": 200, "batch_size": 2048, "lr": 5e-3, "loss": "bpr"}

    def __init__(self, factors: int = 64, layers: int = 2, item_layers: int = 1,
                 knn: int = 10, hidden: int = 256, gate: str = "attention",
                 content_weight: float = 1.0, edge_dropout: float = 0.1,
                 item_bias: bool = False, **train: Any) -> None:
        super().__init__(factors, **train)
        self.layers = layers
        self.item_layers = item_layers
        self.knn = knn
        self.hidden = hidden
        self.gate = gate
        self.content_weight = content_weight
        self.edge_dropout = edge_dropout
        self.item_bias = item_bias

    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        if not item_features:
            raise ValueError("fusegraph needs item_features")
        n_users, n_items = interactions.shape
        blocks = content_matrix(item_features)
        graph = sp.csr_matrix((n_items, n_items), dtype=np.float32)
        for m, x in blocks.items():
            g = knn_graph(x, self.knn, item_features[m].present)
            graph = graph + sym_normalize(((g + g.T) > 0).astype(np.float32))
        self._item_graph = sparse_tensor(graph / max(len(blocks), 1))
        self._n_users = n_users
        self._coo = interactions.tocoo()
        self._adj = sparse_tensor(normalized_adjacency(interactions))
        tower = ContentTower(item_features, self.factors, self.hidden, self.gate)
        return _Graph(n_users, n_items, self.factors, tower, self.item_bias)

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        if self.edge_dropout <= 0:
            return
        coo = self._coo
        keep = rng.random(coo.nnz) >= self.edge_dropout
        sub = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=coo.shape)
        self._train_adj = sparse_tensor(normalized_adjacency(sub))

    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        m = self.module
        item_ego = m.items + self.content_weight * m.tower()
        adj = getattr(self, "_train_adj", self._adj) if training else self._adj
        h = propagate(adj, torch.cat([m.users, item_ego]), self.layers)
        side = item_ego
        for _ in range(self.item_layers):
            side = torch.sparse.mm(self._item_graph, side)
        users, items = h[: self._n_users], h[self._n_users:] + side
        if m.bias is not None:  # exported as one more dimension: user 1 · item bias
            users = torch.cat([users, torch.ones(users.shape[0], 1)], 1)
            items = torch.cat([items, m.bias], 1)
            return users, items, [m.users, torch.cat([m.items, m.bias], 1)]
        return users, items, [m.users, m.items]
