"""A model's content side for items added after fit: content views -> the model's item space.

Two pieces, both saved with the model (safetensors arrays under a prefix):

* :class:`ContentBlocks` keeps the per-modality normalisers fitted on the training catalog, so a
  new item's raw views are normalised exactly as the training items were.
* :class:`ContentMap` is a ridge map from those normalised blocks to the model's item vectors,
  fitted on the catalog's items after training (the attribute-to-factor mapping of cold-start
  recommendation). Its target is the model's own content path where it has one (VBPR's
  projection, the fusion tower), else its trained item vectors; the ridge strength is chosen
  on a held-out fifth of the items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fuserec.fuse.base import View
from fuserec.fuse.normalize import ModalityNormalizer

RIDGE_GRID = (0.1, 1.0, 10.0, 100.0)


@dataclass
class ContentBlocks:
    """Per-modality normalisers (centre, optional z-score, unit length) in a fixed order."""

    normalizers: dict[str, ModalityNormalizer]

    @classmethod
    def fit(cls, views: Mapping[str, View], modes: Mapping[str, str] | None = None,
            modalities: Sequence[str] | None = None) -> ContentBlocks:
        norms = {}
        for m in modalities or sorted(views):
            mode = (modes or {}).get(m, "center")
            norms[m] = ModalityNormalizer(mode).fit(views[m].vectors, views[m].present)
        return cls(norms)

    def transform(self, views: Mapping[str, View], n: int) -> dict[str, np.ndarray]:
        """Each modality's normalised rows; a modality the views lack is all zeros."""
        out = {}
        for m, norm in self.normalizers.items():
            view = views.get(m)
            if view is None:
                out[m] = np.zeros((n, len(norm.mean)), np.float32)
                continue
            if view.vectors.shape != (n, len(norm.mean)):
                raise ValueError(f"the {m} view has shape {view.vectors.shape}; the model "
                                 f"expects ({n}, {len(norm.mean)})")
            out[m] = norm.transform(view.vectors, view.present)
        return out

    def matrix(self, views: Mapping[str, View], n: int) -> np.ndarray:
        blocks = self.transform(views, n)
        return np.concatenate([blocks[m] for m in self.normalizers], 1) if blocks else \
            np.zeros((n, 0), np.float32)

    def state(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        arrays = {}
        for m, norm in self.normalizers.items():
            arrays[f"{prefix}.{m}.mean"] = norm.mean
            arrays[f"{prefix}.{m}.scale"] = norm.scale
        return arrays, {m: norm.mode for m, norm in self.normalizers.items()}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], modes: Mapping[str, str],
                   prefix: str) -> ContentBlocks:
        norms = {}
        for m, mode in modes.items():
            norm = ModalityNormalizer(mode)  # type: ignore[arg-type]
            norm.mean = np.asarray(arrays[f"{prefix}.{m}.mean"])
            norm.scale = np.asarray(arrays[f"{prefix}.{m}.scale"])
            norms[m] = norm
        return cls(norms)


@dataclass
class ContentMap:
    """Ridge map ``content blocks -> item vectors``, with the blocks' normalisers."""

    blocks: ContentBlocks
    weights: np.ndarray  # (content dims + 1, vector dims): the last row is the intercept

    @classmethod
    def fit(cls, views: Mapping[str, View], targets: np.ndarray,
            rows: np.ndarray | None = None, seed: int = 0) -> ContentMap:
        """Fit on ``rows`` (default: every item with any content); ridge strength chosen by
        the cosine between predicted and true vectors on a held-out fifth of them."""
        n = targets.shape[0]
        blocks = ContentBlocks.fit(views)
        x = _with_intercept(blocks.matrix(views, n))
        has_content = np.zeros(n, bool)
        for v in views.values():
            has_content |= np.asarray(v.present, bool)
        rows = np.flatnonzero(has_content) if rows is None else np.intersect1d(
            rows, np.flatnonzero(has_content))
        y = np.asarray(targets, np.float64)
        if len(rows) < 5:
            raise ValueError("a content map needs at least five items with content")
        order = np.random.default_rng(seed).permutation(rows)
        held, fit_rows = order[: len(order) // 5], order[len(order) // 5:]
        best, best_score = RIDGE_GRID[0], -np.inf
        for lam in RIDGE_GRID:
            w = _ridge(x[fit_rows], y[fit_rows], lam)
            score = _mean_cosine(x[held] @ w, y[held])
            if score > best_score:
                best, best_score = lam, score
        return cls(blocks, _ridge(x[rows], y[rows], best).astype(np.float32))

    def predict(self, views: Mapping[str, View], n: int) -> np.ndarray:
        """Item vectors of ``n`` items given only by their content views."""
        return (_with_intercept(self.blocks.matrix(views, n)) @ self.weights).astype(np.float32)

    def state(self, prefix: str = "content_map") -> tuple[dict[str, np.ndarray], dict]:
        arrays, modes = self.blocks.state(prefix)
        arrays[f"{prefix}.weights"] = self.weights
        return arrays, {"modes": modes}

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping,
                   prefix: str = "content_map") -> ContentMap | None:
        if f"{prefix}.weights" not in arrays:
            return None
        blocks = ContentBlocks.from_state(arrays, config["modes"], prefix)
        return cls(blocks, np.asarray(arrays[f"{prefix}.weights"]))


def _with_intercept(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1), x.dtype)], 1).astype(np.float64)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    gram = x.T @ x
    reg = lam * np.eye(gram.shape[0])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(gram + reg + 1e-9 * np.eye(gram.shape[0]), x.T @ y)


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))
