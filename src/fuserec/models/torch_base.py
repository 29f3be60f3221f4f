"""Shared training machinery for the models learned in torch on the CPU.

Every trained model ends as two matrices, user vectors and item vectors, and scores by their
dot product; subclasses only say how the vectors are computed from parameters
(:meth:`TorchRecommender.build` and :meth:`TorchRecommender.forward`). This class supplies:

* two losses: ``"bpr"`` (Rendle et al.: mini-batches of (user, positive, sampled negative)
  triples) and ``"softmax"`` (the multinomial likelihood of each user's items under a softmax
  over the catalog with temperature ``temperature``; mini-batches of users, the full catalog as
  candidates up to ``full_softmax_items`` items, beyond that the batch's positives plus
  ``negatives`` uniformly sampled items: a sampled softmax),
* Adam, L2 regularisation on the embeddings a batch touches,
* early stopping on a validation matrix (Recall@``val_k`` with full ranking, training items
  excluded), keeping the best epoch's vectors,
* seeds, a Rich progress bar, and per-epoch timings (``history``: epoch, loss, seconds, metric).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fuserec.fuse.base import View
from fuserec.fuse.normalize import ModalityNormalizer
from fuserec.models.base import NewItems, Recommender, constructor_arguments
from fuserec.models.content_side import ContentMap
from fuserec.models.validation import scored_metrics


def sparse_tensor(m: sp.spmatrix) -> torch.Tensor:
    """A scipy matrix as a torch sparse COO tensor (float32, coalesced)."""
    m = m.tocoo()
    idx = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(m.data.astype(np.float32)),
                                   m.shape, check_invariants=False).coalesce()


def normalized_adjacency(interactions: sp.csr_matrix) -> sp.csr_matrix:
    """The symmetric normalised user-item bipartite adjacency D^-1/2 A D^-1/2 (LightGCN)."""
    r = sp.csr_matrix(interactions, dtype=np.float32)
    r.data[:] = 1.0
    n_users, n_items = r.shape
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    d = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
    return (sp.diags(d) @ a @ sp.diags(d)).tocsr()


def content_matrix(item_features: Mapping[str, View] | None,
                   modalities: list[str] | None = None) -> dict[str, np.ndarray]:
    """Each modality's item features centred and L2-normalised (absent rows are zero)."""
    out = {}
    for m in modalities or sorted(item_features or {}):
        view = (item_features or {})[m]
        norm = ModalityNormalizer("center").fit(view.vectors, view.present)
        out[m] = norm.transform(view.vectors, view.present)
    return out


def ranking_metrics(user_vecs: np.ndarray, item_vecs: np.ndarray, seen: sp.csr_matrix,
                    target: sp.csr_matrix, k: int = 20, batch: int = 2048,
                    candidates: np.ndarray | None = None) -> dict[str, float]:
    """Recall@k and NDCG@k of dot-product scores over users with target items (full ranking,
    ``seen`` excluded; ``candidates`` restricts ranking to those items)."""
    items_t = torch.from_numpy(np.ascontiguousarray(item_vecs, dtype=np.float32))

    def score(users: np.ndarray) -> np.ndarray:
        u = torch.from_numpy(np.ascontiguousarray(user_vecs[users], dtype=np.float32))
        return (u @ items_t.T).numpy()

    return scored_metrics(score, seen, target, k, batch, candidates)


#: training options every torch model accepts, with their shared defaults
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100, "batch_size": 1024, "lr": 1e-3, "reg": 1e-4, "loss": "softmax",
    "temperature": 0.2, "negatives": 4096, "full_softmax_items": 50_000, "patience": 10,
    "eval_every": 1, "val_k": 20, "seed": 0, "threads": 1, "progress": False,
    # a wall-clock budget for training (None: none); training stops after the step that
    # crosses it and keeps the best epoch seen on validation
    "max_seconds": None,
}


class EmbeddingRecommender(Recommender):
    """A model that scores by the dot product of user and item vectors."""

    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None
    #: content views -> item vectors, for items added after fit (None: no content at fit)
    content_map: ContentMap | None = None

    def fit_content_map(self, item_features: Mapping[str, View] | None) -> None:
        """Fit :attr:`content_map` after training: from the content views to the model's own
        content vectors (:meth:`content_vectors`) or, without a content path, to the trained
        vectors of the items that had interactions."""
        if not item_features:
            return
        target = self.content_vectors()
        rows = None
        if target is None:
            target = self.item_factors
            if self.interactions is not None:
                rows = np.flatnonzero(np.diff(self.interactions.tocsc().indptr) > 0)
        try:
            self.content_map = ContentMap.fit(item_features, target, rows)
        except ValueError:  # too few items with content: no content side
            self.content_map = None

    def content_vectors(self) -> np.ndarray | None:
        """Item vectors from content alone, where the model has a content path (else None)."""
        return None

    def score_new_items(self, history: sp.csr_matrix, items: NewItems) -> np.ndarray | None:
        """New items' vectors from :attr:`content_map`, scored against users folded in from
        their history as :meth:`score_history` does."""
        if self.content_map is None or len(items) == 0:
            return None
        vectors = self.content_map.predict(items.views, len(items))
        return self._fold_in(history) @ vectors.T

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return self.user_factors[user_ids] @ self.item_factors.T

    def item_vectors(self) -> np.ndarray:
        return self.item_factors

    def score_history(self, history: sp.csr_matrix) -> np.ndarray:
        """Users folded in as the weighted mean of their items' vectors, then scored.

        On the contract suite's checkerboard this keeps every known answer for every embedding
        model; an implicit-ALS style least-squares fold-in lost several (measured there).
        """
        return self._fold_in(history) @ np.asarray(self.item_factors, np.float32).T

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        history = sp.csr_matrix(history, dtype=np.float32)
        sums = np.maximum(np.asarray(history.sum(1)).ravel(), 1e-12)
        users = (sp.diags(1.0 / sums) @ history) @ self.item_factors
        return np.asarray(users, np.float32)

    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments, read back from attributes of the same name."""
        return {n: getattr(self, n) for n in constructor_arguments(type(self))}

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"user_factors": self.user_factors, "item_factors": self.item_factors}
        config = {"params": self.hyperparameters(), "history": getattr(self, "history", [])}
        if self.content_map is not None:
            map_arrays, config["content_map"] = self.content_map.state()
            arrays.update(map_arrays)
        return arrays, config

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   config: Mapping[str, Any]) -> EmbeddingRecommender:
        model = cls(**config["params"])
        model.user_factors = np.asarray(arrays["user_factors"])
        model.item_factors = np.asarray(arrays["item_factors"])
        model.history = list(config.get("history", []))
        if "content_map" in config:
            model.content_map = ContentMap.from_state(arrays, config["content_map"])
        return model


class TorchRecommender(EmbeddingRecommender):
    """Base of the models trained with mini-batch gradient descent in torch.

    Every subclass takes the training options of ``TRAIN_DEFAULTS`` as keyword arguments
    (``epochs``, ``batch_size``, ``lr``, ``reg``, ``loss``, ``temperature``, ``negatives``,
    ``full_softmax_items``, ``patience``, ``eval_every``, ``val_k``, ``seed``, ``threads``,
    ``progress``); a subclass overrides the defaults it needs in ``train_defaults``.
    """

    #: this model's own defaults for the shared training options (see ``TRAIN_DEFAULTS``)
    train_defaults: dict[str, Any] = {}

    epochs: int
    batch_size: int
    lr: float
    reg: float
    loss: str
    temperature: float
    negatives: int
    full_softmax_items: int
    patience: int
    eval_every: int
    val_k: int
    seed: int
    threads: int | None
    progress: bool

    def __init__(self, factors: int = 64, **train: Any) -> None:
        unknown = sorted(set(train) - set(TRAIN_DEFAULTS))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown option(s) {unknown}; training "
                            f"options are {sorted(TRAIN_DEFAULTS)}")
        options = {**TRAIN_DEFAULTS, **self.train_defaults, **train}
        if options["loss"] not in ("bpr", "softmax"):
            raise ValueError(f"loss must be 'bpr' or 'softmax', not {options['loss']!r}")
        self.factors = factors
        for name, value in options.items():
            setattr(self, name, value)
        self.history: list[dict[str, float]] = []
        self.best_epoch: int = 0

    @classmethod
    def options(cls) -> set[str]:
        return super().options() | set(TRAIN_DEFAULTS)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), **{n: getattr(self, n) for n in TRAIN_DEFAULTS}}

    # -- what subclasses provide ---------------------------------------------------------
    @abstractmethod
    def build(self, interactions: sp.csr_matrix,
              item_features: Mapping[str, View] | None) -> torch.nn.Module:
        """Create the parameters (a module) for this matrix and these features."""

    @abstractmethod
    def forward(self, training: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """All user vectors, all item vectors, and the ego embeddings to regularise."""

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Hook for per-epoch work (e.g. resampling dropped edges)."""

    def finalize(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Post-process the exported vectors (e.g. zero the ID part of items never seen)."""
        return users, items

    # -- training ------------------------------------------------------------------------
    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None,
            validation: sp.csr_matrix | None = None) -> TorchRecommender:
        """Train; with ``validation``, stop early on its Recall@``val_k`` and keep the best."""
        x = sp.csr_matrix(interactions, dtype=np.float32)
        x.sum_duplicates()
        x.data[:] = 1.0
        x.eliminate_zeros()
        self.interactions = x
        old_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        try:
            self.module = self.build(x, item_features)
            self._train(x, validation, rng)
            self.fit_content_map(item_features)
        finally:
            torch.set_num_threads(old_threads)
        return self

    def _export(self) -> tuple[np.ndarray, np.ndarray]:
        self.module.eval()
        with torch.no_grad():
            u, i, _ = self.forward(training=False)
        self.module.train()
        return self.finalize(u.detach().numpy().astype(np.float32),
                             i.detach().numpy().astype(np.float32))

    def _train(self, x: sp.csr_matrix, validation: sp.csr_matrix | None,
               rng: np.random.Generator) -> None:
        opt = torch.optim.Adam(self.module.parameters(), lr=self.lr)
        n_users, n_items = x.shape
        active = np.flatnonzero(np.diff(x.indptr) > 0)
        coo = x.tocoo()
        pairs_u, pairs_i = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.history = []
        best, best_vecs, bad = -1.0, None, 0
        started = time.perf_counter()
        self.stopped_by_budget = False

        def over_budget() -> bool:
            if self.max_seconds is not None and time.perf_counter() - started > self.max_seconds:
                self.stopped_by_budget = True
            return self.stopped_by_budget

        columns = [TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} {task.fields[info]}"),
                   TimeElapsedColumn()]
        with Progress(*columns, disable=not self.progress, transient=True) as bar:
            task = bar.add_task(f"training {self.name}", total=self.epochs, info="")
            for epoch in range(1, self.epochs + 1):
                t0 = time.perf_counter()
                self.on_epoch_start(epoch, rng)
                total, n_batches = 0.0, 0
                if self.loss == "bpr":
                    order = rng.permutation(len(pairs_u))
                    for start in range(0, len(order), self.batch_size):
                        b = order[start:start + self.batch_size]
                        neg = rng.integers(0, n_items, len(b))
                        loss = self._bpr_step(pairs_u[b], pairs_i[b], neg)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        total += float(loss.detach())
                        n_batches += 1
                        if over_budget():
                            break
                else:
                    order = rng.permutation(active)
                    for start in range(0, len(order), self.batch_size):
                        b = order[start:start + self.batch_size]
                        loss = self._softmax_step(x[b], b, rng)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        total += float(loss.detach())
                        n_batches += 1
                        if over_budget():
                            break
                seconds = time.perf_counter() - t0
                record: dict[str, float] = {"epoch": epoch, "loss": total / max(n_batches, 1),
                                            "seconds": seconds}
                if validation is not None and validation.nnz and epoch % self.eval_every == 0:
                    u, i = self._export()
                    metric = ranking_metrics(u, i, x, validation, self.val_k)
                    record.update({f"val_{k}": v for k, v in metric.items()})
                    value = metric[f"recall@{self.val_k}"]
                    if value > best:
                        best, best_vecs, bad, self.best_epoch = value, (u, i), 0, epoch
                    else:
                        bad += 1
                self.history.append(record)
                info = f"loss {record['loss']:.4f}"
                if f"val_recall@{self.val_k}" in record:
                    info += f" val R@{self.val_k} {record[f'val_recall@{self.val_k}']:.4f}"
                bar.update(task, advance=1, info=info)
                if best_vecs is not None and bad >= self.patience or self.stopped_by_budget:
                    break
        if best_vecs is None:
            best_vecs = self._export()
            self.best_epoch = len(self.history)
        self.user_factors, self.item_factors = best_vecs

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall-clock seconds of a training epoch (validation excluded)."""
        return float(np.mean([h["seconds"] for h in self.history])) if self.history else 0.0

    def _reg(self, tensors: list[torch.Tensor], batch: int) -> torch.Tensor:
        return self.reg * sum((t ** 2).sum() for t in tensors) / (2 * batch)

    def _bpr_step(self, users: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> torch.Tensor:
        u_all, i_all, ego = self.forward(training=True)
        u_t, p_t, n_t = (torch.from_numpy(a) for a in (users, pos, neg))
        u, p, n = u_all[u_t], i_all[p_t], i_all[n_t]
        diff = (u * p).sum(1) - (u * n).sum(1)
        loss = -torch.nn.functional.logsigmoid(diff).mean()
        ego_u, ego_i = ego[0], ego[1]
        reg_terms = [ego_u[u_t], ego_i[p_t], ego_i[n_t]] + ego[2:]
        return loss + self._reg(reg_terms, len(users))

    def _softmax_step(self, rows: sp.csr_matrix, users: np.ndarray,
                      rng: np.random.Generator) -> torch.Tensor:
        u_all, i_all, ego = self.forward(training=True)
        u_t = torch.from_numpy(users.astype(np.int64))
        n_items = i_all.shape[0]
        if n_items <= self.full_softmax_items:
            cand = None
            items = i_all
            target = rows
        else:
            pos = np.unique(rows.indices)
            extra = rng.integers(0, n_items, self.negatives)
            cand = np.unique(np.concatenate([pos, extra]))
            items = i_all[torch.from_numpy(cand)]
            target = rows[:, cand]
        logits = (u_all[u_t] @ items.T) / self.temperature
        log_p = torch.log_softmax(logits, dim=1)
        t = target.tocoo()
        picked = log_p[torch.from_numpy(t.row.astype(np.int64)),
                       torch.from_numpy(t.col.astype(np.int64))]
        loss = -picked.sum() / len(users)
        ego_u, ego_i = ego[0], ego[1]
        reg_i = ego_i if cand is None else ego_i[torch.from_numpy(cand)]
        return loss + self._reg([ego_u[u_t], reg_i] + ego[2:], len(users))
