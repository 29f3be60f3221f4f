"""The seed's text fusion model: a language model over each item's unified text, trained end
to end on the interactions.

Item tower: the MiniLM text encoder (:mod:`fuserec.models.text_tower`) whose top
``train_layers`` transformer layer(s) and mean pooling train on the interactions; the lower
layers stay frozen and their hidden states are cached once per text, so an epoch costs only
the trained layers. Optionally a free ID embedding is added for items with training
interactions (``v_i = [t_i, keep_i · e_i]``, ``t_i`` of unit norm), dropped with probability
``id_dropout`` while training so the text part must carry the signal: items without
interactions are scored from their text alone.

User tower: the mean of the user's history item vectors (plus the user's own profile text,
encoded by the same tower, where there is one). No user parameters: a new user, or one with
fresh feedback, is folded in exactly as the trained users are.

Training: batches of (user, item) pairs drawn from the interactions. Only the batch's items
run through the trained layers (with gradients): the positives, which are the in-batch
negatives of the other pairs (drawn by popularity), and ``negatives`` items drawn uniformly
among those with interactions (never items nobody has clicked: that would teach the encoder to
bury new items' texts). Each user is read from a table of item vectors (the last full pass,
refreshed wherever the encoder runs) as the mean of its other items, the target left out so an
item never predicts itself. A sampled softmax over the batch's items, each logit corrected by
the log of the item's expected count among them (logQ correction, Yi et al. 2019), the user's
other training items masked. An epoch is about one catalog's worth of items through the
trained layers, plus one pass without gradients that refreshes the table and exports.
Early stopping on validation Recall@``val_k`` keeps the best epoch's encoder and vectors;
``max_seconds`` bounds the training time like the other torch models.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fuserec.fuse.base import View
from fuserec.models.base import MODELS, NewItems
from fuserec.models.text_tower import LowerLayers, TopLayers, encode_states, lower_layers
from fuserec.models.torch_base import EmbeddingRecommender, ranking_metrics


@MODELS.register("textfusion")
class TextFusion(EmbeddingRecommender):
    """A fine-tuned text encoder as the item tower, users as the mean of their items.

    Args:
        train_layers: top transformer layers trained (the rest frozen, states cached).
        max_length: token limit per text. The trained layers cost grows with the tokens (a
            1-layer pass is ~3.5 MFLOP per token), so 64 by default: a title, genres and
            media words fit, a long description is cut.
        ids: add an ID embedding to items with training interactions.
        id_dropout: probability of dropping an item's ID part in a training step.
        temperature: softmax temperature over cosine-like scores.
        lr / id_lr: Adam learning rates of the encoder layers / of the ID embeddings.
        batch_size: (user, item) pairs per step; ``negatives``: extra negatives per step.
        epochs, patience, eval_every, val_k: passes over the users and early stopping.
        max_seconds: wall-clock training budget (None: none), the best epoch is kept.
        model_path: a local sentence-transformers folder (None: the packaged MiniLM).
        cache_dir: where the lower layers' states are cached (None: in memory only).
    """

    name = "textfusion"
    needs_text = True

    def __init__(self, train_layers: int = 1, max_length: int = 64, ids: bool = True,
                 id_dropout: float = 0.5, temperature: float = 0.05, lr: float = 3e-4,
                 id_lr: float = 1e-2, batch_size: int = 1024, negatives: int = 256,
                 epochs: int = 100,
                 patience: int = 5, eval_every: int = 1, val_k: int = 20, seed: int = 0,
                 threads: int | None = None, progress: bool = False,
                 max_seconds: float | None = None, model_path: str | None = None,
                 cache_dir: str | None = None) -> None:
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError("id_dropout must lie in [0, 1)")
        self.train_layers, self.max_length, self.ids = train_layers, max_length, ids
        self.id_dropout, self.temperature, self.lr, self.id_lr = id_dropout, temperature, lr, id_lr
        self.batch_size, self.negatives = batch_size, negatives
        self.epochs, self.patience = epochs, patience
        self.eval_every, self.val_k, self.seed, self.threads = eval_every, val_k, seed, threads
        self.progress, self.max_seconds = progress, max_seconds
        self.model_path, self.cache_dir = model_path, cache_dir
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0
        self.stopped_by_budget = False
        #: seconds spent computing the frozen lower layers' states (the one-time cost)
        self.cache_seconds = 0.0
        self._top: TopLayers | None = None
        self._top_state: dict[str, np.ndarray] | None = None

    # -- the encoder -------------------------------------------------------------------
    def _lower(self) -> LowerLayers:
        return lower_layers(self.model_path, self.train_layers, self.max_length,
                            self.cache_dir, self.threads)

    def _tower(self) -> TopLayers:
        """The trained top layers (rebuilt from saved weights after a load)."""
        if self._top is None:
            top = self._lower().new_top()
            if self._top_state is not None:
                top.load_state_dict({k: torch.from_numpy(np.array(v))
                                     for k, v in self._top_state.items()})
            self._top = top.eval()
        return self._top

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Item-space vectors of ``texts`` through the trained encoder (unit rows; no ID part),
        e.g. a search query or a new item's unified text."""
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.item_factors.shape[1]), np.float32)
        states = self._lower().states(texts, store=False)
        with _threads(self.threads):
            vecs = encode_states(self._tower(), states).numpy().astype(np.float32)
        out = np.zeros((len(texts), self.item_factors.shape[1]), np.float32)
        out[:, :vecs.shape[1]] = vecs  # the ID block stays zero, as for a cold item
        return out

    def score_new_items(self, history: sp.csr_matrix, items: NewItems) -> np.ndarray | None:
        """Users folded in from their history rows, scored against the new items' texts
        (their vectors are what a cold item gets: the trained encoder, no ID part)."""
        if not items.texts:
            return None
        vecs = self.encode_texts(list(items.texts))
        return self._fold_in(history) @ vecs.T

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        history = sp.csr_matrix(history, dtype=np.float32)
        sums = np.maximum(np.asarray(history.sum(1)).ravel(), 1e-12)
        return np.asarray((sp.diags(1.0 / sums) @ history) @ self.item_factors, np.float32)

    # -- training ----------------------------------------------------------------------
    def fit(self, interactions: sp.csr_matrix, item_features: Mapping[str, View] | None = None,
            user_features: Mapping[str, View] | None = None,
            validation: sp.csr_matrix | None = None, item_texts: Sequence[str] | None = None,
            user_texts: Sequence[str] | None = None) -> TextFusion:
        """Fine-tune the top layers on ``interactions`` from the items' unified texts."""
        x = sp.csr_matrix(interactions, dtype=np.float32)
        x.sum_duplicates()
        x.data[:] = 1.0
        x.eliminate_zeros()
        x.sort_indices()
        n_users, n_items = x.shape
        if item_texts is None or len(item_texts) != n_items:
            raise ValueError(f"textfusion needs item_texts, one per item ({n_items}); got "
                             f"{'none' if item_texts is None else len(item_texts)}")
        self.interactions = x
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        lower = self._lower()
        t0 = time.perf_counter()
        states = lower.states([str(t or "") for t in item_texts], progress=self.progress)
        profiles = self._profiles(lower, user_texts, n_users)
        self.cache_seconds = time.perf_counter() - t0
        self._top, self._top_state = lower.new_top(), None
        # small, not zero: at zero the bilinear ID term has no gradient at all
        self._ids = torch.nn.Parameter(torch.randn(n_items, lower.shape["dim"]) * 0.01)
        seen = np.diff(x.tocsc().indptr) > 0
        self._seen, self._warm = torch.from_numpy(seen), np.flatnonzero(seen)
        with _threads(self.threads):
            self._train(x, states, profiles, validation, rng)
        self._top.eval()
        return self

    @staticmethod
    def _profiles(lower: LowerLayers, user_texts: Sequence[str] | None,
                  n_users: int) -> dict[int, np.ndarray]:
        """Lower-layer states of the users' own texts, by user row (non-empty ones only)."""
        if user_texts is None:
            return {}
        if len(user_texts) != n_users:
            raise ValueError(f"user_texts has {len(user_texts)} rows for {n_users} users")
        rows = [u for u, t in enumerate(user_texts) if isinstance(t, str) and t.strip()]
        states = lower.states([user_texts[u] for u in rows])
        return dict(zip(rows, states, strict=True))

    def _item_vectors(self, text: torch.Tensor, items: torch.Tensor,
                      training: bool) -> torch.Tensor:
        """``[t_i, keep_i · e_i]``: the ID part sits in its own block, so it never blurs the
        text part of a user's mean, which alone scores items without interactions."""
        if not self.ids:
            return text
        keep = self._seen[items].float()[:, None]
        if training and self.id_dropout > 0:
            keep = keep * (torch.rand(len(items), 1) >= self.id_dropout).float()
        return torch.cat([text, keep * self._ids[items]], 1)

    def _export(self, x: sp.csr_matrix, states: list[np.ndarray],
                profiles: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """All item vectors, and users as the mean of their items (+ profile text)."""
        top = self._top
        top.eval()
        with torch.no_grad():
            text = encode_states(top, states)
            items = self._item_vectors(text, torch.arange(len(states)), False).numpy()
            self._profile_table = np.zeros((x.shape[0], items.shape[1]), np.float32)
            if profiles:
                rows = sorted(profiles)
                prof = encode_states(top, [profiles[u] for u in rows]).numpy()
                self._profile_table[rows, :prof.shape[1]] = prof  # a profile has no ID part
        top.train()
        counts = np.asarray(x.sum(1), np.float32).ravel() + (
            np.abs(self._profile_table).sum(1) > 0)
        users = (np.asarray(x @ items, np.float32) + self._profile_table) \
            / np.maximum(counts, 1.0)[:, None]
        self._table = items.copy()  # the item vectors users are read from while training
        return users.astype(np.float32), items.astype(np.float32)

    def _train(self, x: sp.csr_matrix, states: list[np.ndarray],
               profiles: dict[int, np.ndarray], validation: sp.csr_matrix | None,
               rng: np.random.Generator) -> None:
        top = self._top
        groups = [{"params": list(top.parameters()), "lr": self.lr}]
        if self.ids:
            groups.append({"params": [self._ids], "lr": self.id_lr})
        opt = torch.optim.Adam(groups)
        coo = x.tocoo()
        pairs_u, pairs_i = coo.row.astype(np.int64), coo.col.astype(np.int64)
        popularity = np.asarray(x.sum(0), np.float64).ravel() / max(x.nnz, 1)
        # about one pass of the catalog's texts through the trained layers per epoch
        steps = max(1, int(np.ceil(x.shape[1] / self.batch_size)))
        self.history, best, best_state, bad = [], -1.0, None, 0
        self.stopped_by_budget = False
        started = time.perf_counter()
        exported = self._export(x, states, profiles)
        columns = [TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} {task.fields[info]}"),
                   TimeElapsedColumn()]
        with Progress(*columns, disable=not self.progress, transient=True) as bar:
            task = bar.add_task(f"training {self.name}", total=self.epochs, info="")
            for epoch in range(1, self.epochs + 1):
                t0 = time.perf_counter()
                total, n_batches = 0.0, 0
                for _ in range(steps):
                    pick = rng.integers(0, len(pairs_u), self.batch_size)
                    loss = self._step(x, pairs_u[pick], pairs_i[pick], states, popularity, rng)
                    if loss is None:
                        continue
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                    n_batches += 1
                    if self.max_seconds is not None and \
                            time.perf_counter() - started > self.max_seconds:
                        self.stopped_by_budget = True
                        break
                record: dict[str, float] = {"epoch": epoch, "loss": total / max(n_batches, 1),
                                            "seconds": time.perf_counter() - t0}
                exported = self._export(x, states, profiles)
                if validation is not None and validation.nnz and epoch % self.eval_every == 0:
                    u, i = exported
                    metric = ranking_metrics(u, i, x, validation, self.val_k)
                    record.update({f"val_{k}": v for k, v in metric.items()})
                    value = metric[f"recall@{self.val_k}"]
                    if value > best:
                        best, bad, self.best_epoch = value, 0, epoch
                        best_state = ((u, i), _clone(top), self._ids.detach().clone())
                    else:
                        bad += 1
                self.history.append(record)
                info = f"loss {record['loss']:.4f}"
                if f"val_recall@{self.val_k}" in record:
                    info += f" val R@{self.val_k} {record[f'val_recall@{self.val_k}']:.4f}"
                bar.update(task, advance=1, info=info)
                if best_state is not None and bad >= self.patience or self.stopped_by_budget:
                    break
        if best_state is None:
            self.user_factors, self.item_factors = exported
            self.best_epoch = len(self.history)
        else:
            (self.user_factors, self.item_factors), weights, ids = best_state
            top.load_state_dict(weights)
            self._ids.data.copy_(ids)
        self._table = self._profile_table = None

    def _step(self, x: sp.csr_matrix, users: np.ndarray, positives: np.ndarray,
              states: list[np.ndarray], popularity: np.ndarray,
              rng: np.random.Generator) -> torch.Tensor | None:
        """The sampled-softmax loss of one batch of (user, item) pairs.

        Only the batch's items (positives and negatives) run through the trained layers, with
        gradients; each user is read from the item table (the vectors of the last pass, the
        batch's items refreshed after every step) as the mean of its other items."""
        table = self._table
        counts = np.asarray(x[users].sum(1)).ravel() + (
            np.abs(self._profile_table[users]).sum(1) > 0)
        keep = counts > 1  # a user needs another item (or a profile) to be read from
        if not keep.any():
            return None
        users, positives, counts = users[keep], positives[keep], counts[keep]
        sums = np.asarray(x[users] @ table, np.float32) + self._profile_table[users]
        user_vecs = torch.from_numpy((sums - table[positives]) / (counts - 1)[:, None])
        negatives = self._warm[rng.integers(0, len(self._warm), self.negatives)]
        cand = np.unique(np.concatenate([positives, negatives]))
        text = encode_states(self._top, [states[i] for i in cand], grad=True)
        vecs = self._item_vectors(text, torch.from_numpy(cand), True)
        # logQ correction: each candidate's expected count among the batch's items
        expected = len(positives) * popularity[cand] + self.negatives / len(self._warm)
        logits = (user_vecs @ vecs.T) / self.temperature - torch.from_numpy(
            np.log(np.maximum(expected, 1e-12)).astype(np.float32))
        # the user's other training items are not negatives
        seen = (x[users][:, cand] > 0).toarray()
        label = np.searchsorted(cand, positives)
        seen[np.arange(len(users)), label] = False
        logits = logits.masked_fill(torch.from_numpy(seen), float("-inf"))
        with torch.no_grad():  # refresh the table where the encoder just ran
            table[cand] = self._item_vectors(text, torch.from_numpy(cand), False).numpy()
        return torch.nn.functional.cross_entropy(logits, torch.from_numpy(label))

    # -- state -------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, config = super().state()
        if self._top is not None:
            weights = {k: v.detach().numpy().copy() for k, v in self._top.state_dict().items()}
        else:  # loaded and never used: the saved weights as they came (no encoder load)
            weights = dict(self._top_state or {})
        arrays.update({f"tower.{k}": v for k, v in weights.items()})
        config.update({"best_epoch": self.best_epoch, "cache_seconds": self.cache_seconds})
        return arrays, config

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray],
                   config: Mapping[str, Any]) -> TextFusion:
        model = cls(**config["params"])
        model.user_factors = np.asarray(arrays["user_factors"])
        model.item_factors = np.asarray(arrays["item_factors"])
        model.history = list(config.get("history", []))
        model.best_epoch = int(config.get("best_epoch", 0))
        model.cache_seconds = float(config.get("cache_seconds", 0.0))
        # the encoder is rebuilt on first use (only new items and text queries need it)
        model._top_state = {k.removeprefix("tower."): v for k, v in arrays.items()
                            if k.startswith("tower.")}
        return model

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall-clock seconds of a training epoch (validation excluded)."""
        return float(np.mean([h["seconds"] for h in self.history])) if self.history else 0.0


def _clone(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class _threads:
    """Set torch's thread count inside the block (unchanged when ``n`` is None)."""

    def __init__(self, n: int | None) -> None:
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)
