"""A text encoder whose top transformer layers train on interactions, over cached lower layers.

The text side of :class:`~fuserec.models.textfusion.TextFusion`. A sentence-transformers BERT
(MiniLM by default) is split at layer ``L - k``: the lower layers stay frozen, so each text's
hidden states after them are computed once and kept in a content-hash keyed cache
(:class:`HiddenStateCache`, safetensors shards on disk); the top ``k`` layers and the mean
pooling run in every training step. :class:`TopLayers` re-implements the BERT layer with the
same parameter names, so the pretrained weights load into it unchanged and it does not depend
on the attention-mask conventions of one ``transformers`` version.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from fuserec.io import write_with

#: dtype of the cached hidden states (half the memory of fp32; the trained layers see fp32)
STATE_DTYPE = np.float16


class _Layer(torch.nn.Module):
    """One post-LayerNorm BERT encoder layer; parameter names match ``BertLayer``'s."""

    def __init__(self, dim: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention = torch.nn.Module()
        self.attention.self = torch.nn.Module()
        for name in ("query", "key", "value"):
            setattr(self.attention.self, name, torch.nn.Linear(dim, dim))
        self.attention.output = torch.nn.Module()
        self.attention.output.dense = torch.nn.Linear(dim, dim)
        self.attention.output.LayerNorm = torch.nn.LayerNorm(dim, eps=eps)
        self.intermediate = torch.nn.Module()
        self.intermediate.dense = torch.nn.Linear(dim, ffn)
        self.output = torch.nn.Module()
        self.output.dense = torch.nn.Linear(ffn, dim)
        self.output.LayerNorm = torch.nn.LayerNorm(dim, eps=eps)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, dim = h.shape
        att = self.attention.self

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(att.query(h)), split(att.key(h)), split(att.value(h))
        ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None,
                                                                                       None, :])
        ctx = ctx.transpose(1, 2).reshape(n, length, dim)
        out = self.attention.output
        h = out.LayerNorm(out.dense(ctx) + h)
        ff = self.output.dense(torch.nn.functional.gelu(self.intermediate.dense(h)))
        return self.output.LayerNorm(ff + h)


class TopLayers(torch.nn.Module):
    """The trained top layers plus mean pooling and L2 normalisation (sentence-transformers'
    pooling for MiniLM): padded hidden states in, one unit vector per text out."""

    def __init__(self, n_layers: int, dim: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(_Layer(dim, heads, ffn, eps) for _ in range(n_layers))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = layer(hidden, mask)
        m = mask[..., None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=1)


def pad_states(states: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged (tokens, dim) arrays as one zero-padded fp32 tensor and its boolean token mask."""
    width = max(len(s) for s in states)
    dim = states[0].shape[1]
    out = np.zeros((len(states), width, dim), np.float32)
    mask = np.zeros((len(states), width), bool)
    for row, s in enumerate(states):
        out[row, :len(s)] = s
        mask[row, :len(s)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def encode_states(top: TopLayers, states: Sequence[np.ndarray], batch: int = 256,
                  grad: bool = False) -> torch.Tensor:
    """Run ``top`` over ragged hidden states in length-sorted batches (little padding); rows
    come back in the input order."""
    if not states:
        return torch.zeros(0, 0)
    order = np.argsort([len(s) for s in states], kind="stable")
    parts: list[torch.Tensor] = []
    with torch.set_grad_enabled(grad):
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            hidden, mask = pad_states([states[i] for i in idx])
            parts.append(top(hidden, mask))
    out = torch.cat(parts)
    inverse = torch.from_numpy(np.argsort(order, kind="stable"))
    return out[inverse]


class HiddenStateCache:
    """Lower-layer hidden states by content hash, in safetensors shards under ``root``.

    One shard per batch of new texts (written atomically), so a catalog costs one write; the
    index of what every shard holds is read from the shards' headers. ``root=None`` keeps the
    states in memory only.
    """

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self._index: dict[str, Path] | None = None

    def _load_index(self) -> dict[str, Path]:
        if self._index is None:
            from safetensors import safe_open

            self._index = {}
            if self.root is not None and self.root.is_dir():
                for shard in sorted(self.root.glob("*.safetensors")):
                    with safe_open(str(shard), "np") as f:
                        self._index.update(dict.fromkeys(f.keys(), shard))
        return self._index

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached states of those ``keys`` that are cached."""
        from safetensors import safe_open

        out = {k: self._memory[k] for k in keys if k in self._memory}
        by_shard: dict[Path, list[str]] = {}
        index = self._load_index()
        for k in keys:
            if k not in out and k in index:
                by_shard.setdefault(index[k], []).append(k)
        for shard, wanted in by_shard.items():
            with safe_open(str(shard), "np") as f:
                for k in wanted:
                    out[k] = self._memory[k] = f.get_tensor(k)
        return out

    def put_many(self, states: Mapping[str, np.ndarray]) -> None:
        """Store new states (one shard named by the hash of its keys)."""
        if not states:
            return
        self._memory.update(states)
        if self.root is None:
            return
        from safetensors.numpy import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("\n".join(sorted(states)).encode()).hexdigest()[:24]
        shard = self.root / f"{name}.safetensors"
        arrays = {k: np.ascontiguousarray(v) for k, v in states.items()}
        write_with(shard, lambda tmp: save_file(arrays, str(tmp)))
        self._load_index().update({k: shard for k in states})


class LowerLayers:
    """The frozen part of the encoder: tokeniser, embeddings and the lower layers.

    ``states(texts)`` returns each text's hidden states after layer ``L - train_layers``
    (tokens x dim, fp16), from the cache when it has them; ``top_state()`` gives the pretrained
    weights of the layers above, the starting point of training.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None, train_layers: int,
                 max_length: int, cache_dir: str | os.PathLike[str] | None = None,
                 threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from fuserec.encode.base import file_identity
        from fuserec.encode.text import default_model_path

        hf_logging.disable_progress_bar()
        self.path = Path(model_path) if model_path else default_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        model = AutoModel.from_pretrained(self.path, local_files_only=True).float().eval()
        config = model.config
        n_layers = int(config.num_hidden_layers)
        if not 1 <= train_layers <= n_layers:
            raise ValueError(f"train_layers must lie in [1, {n_layers}], not {train_layers}")
        self.shape = {"dim": int(config.hidden_size), "heads": int(config.num_attention_heads),
                      "ffn": int(config.intermediate_size), "eps": float(config.layer_norm_eps)}
        if getattr(config, "hidden_act", "gelu") != "gelu":
            raise ValueError(f"only GELU BERT layers are supported, not {config.hidden_act!r}")
        cut = n_layers - train_layers
        self._top = [{k: v.clone() for k, v in layer.state_dict().items()}
                     for layer in model.encoder.layer[cut:]]
        model.encoder.layer = model.encoder.layer[:cut]  # only the frozen part runs here
        self.model = model
        self.train_layers, self.max_length, self.threads = train_layers, max_length, threads
        self.identity = hashlib.sha256(
            f"{file_identity(self.path)}|cut{cut}|len{max_length}|fp16".encode()).hexdigest()[:16]
        root = Path(cache_dir) / self.identity if cache_dir is not None else None
        self.cache = HiddenStateCache(root)

    def new_top(self) -> TopLayers:
        """The top layers with their pretrained weights."""
        top = TopLayers(self.train_layers, **self.shape)
        top.layers.load_state_dict({f"{i}.{k}": v for i, state in enumerate(self._top)
                                    for k, v in state.items()})
        return top

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.identity}|{text}".encode()).hexdigest()

    def states(self, texts: Sequence[str], batch: int = 64, progress: bool = False,
               store: bool = True) -> list[np.ndarray]:
        """Each text's lower-layer hidden states (computed once, then read from the cache;
        ``store=False`` computes what is missing without keeping it, e.g. search queries)."""
        keys = [self.key(t) for t in texts]
        found = self.cache.get_many(sorted(set(keys)))
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True)
                          if k not in found}.items())
        if missing:
            computed = self._compute([t for _, t in missing], batch, progress)
            new = {k: s for (k, _), s in zip(missing, computed, strict=True)}
            if store:
                self.cache.put_many(new)
            found.update(new)
        return [found[k] for k in keys]

    def _compute(self, texts: list[str], batch: int, progress: bool) -> list[np.ndarray]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length,
                             return_attention_mask=False, return_token_type_ids=False)
        ids: list[list[int]] = enc["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out: list[np.ndarray | None] = [None] * len(texts)
        pad = int(self.tokenizer.pad_token_id or 0)
        old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        columns = [TextColumn("[bold]caching lower-layer states"), BarColumn(),
                   MofNCompleteColumn()]
        try:
            with Progress(*columns, disable=not progress, transient=True) as bar, \
                    torch.inference_mode():
                task = bar.add_task("states", total=len(texts))
                for start in range(0, len(order), batch):
                    idx = order[start:start + batch]
                    width = len(ids[idx[0]])
                    x = np.full((len(idx), width), pad, np.int64)
                    m = np.zeros((len(idx), width), np.int64)
                    for row, i in enumerate(idx):
                        x[row, :len(ids[i])] = ids[i]
                        m[row, :len(ids[i])] = 1
                    x_t, m_t = torch.from_numpy(x), torch.from_numpy(m)
                    hidden = self.model(input_ids=x_t, attention_mask=m_t,
                                        token_type_ids=torch.zeros_like(x_t)).last_hidden_state
                    for row, i in enumerate(idx):
                        out[i] = hidden[row, :len(ids[i])].numpy().astype(STATE_DTYPE)
                    bar.advance(task, len(idx))
        finally:
            torch.set_num_threads(old)
        return out  # type: ignore[return-value]


_LOADED: dict[tuple[str, int, int, str], LowerLayers] = {}


def lower_layers(model_path: str | os.PathLike[str] | None, train_layers: int, max_length: int,
                 cache_dir: str | os.PathLike[str] | None = None,
                 threads: int | None = None) -> LowerLayers:
    """A :class:`LowerLayers`, loaded once per process for the same arguments (fitting several
    models, or a model and its reload, reuses the weights and the in-memory states)."""
    key = (str(model_path or ""), train_layers, max_length, str(cache_dir or ""))
    if key not in _LOADED:
        _LOADED[key] = LowerLayers(model_path, train_layers, max_length, cache_dir, threads)
    lower = _LOADED[key]
    lower.threads = threads
    return lower

