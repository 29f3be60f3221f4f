"""The consistency router: per item, text fusion where the text views agree, feature fusion
where they do not.

Every view of an item that the describe stage turned into words (image words, audio words, the
unified description) is embedded by the text encoder, so it lives in the same space as the
item's own text. :func:`agreement` measures, per item, the cosine between each generated view
and the own text; the router's score is their mean. Items whose score reaches the threshold are
*consistent*: their views tell one story and are fused as text, through the embedding of the
unified description. The rest are *inconsistent*: the words disagree (or an image's labels say
little about the item), so their modality features are fused instead (:class:`SumFusion`
blocks).

:meth:`ConsistencyRouter.routed_views` expresses both paths in one direct-sum space, so one
content model ranks all items: a ``describe`` block holds the description embedding of
text-path items (zero for the others) and the feature blocks hold the features of
feature-path items (zero for the others). The ``describe`` block's weight equals the summed
weights of the feature blocks, so a perfect match scores the same on either path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fuserec.fuse.base import View
from fuserec.fuse.normalize import l2_normalize

DESCRIBE = "describe"
TEXT, FEATURE = "text", "feature"
#: used when no validation data chooses one: the choice on ML-1M's validation split
#: (BENCHMARKS.md, "Describe"); the pipeline chooses its own on validation by default
DEFAULT_THRESHOLD = 0.366


def agreement(own: View, generated: Mapping[str, View]) -> dict[str, np.ndarray]:
    """Cosine of each generated view to the own text per item, and their ``"mean"``.

    Items lacking the own text or a view get NaN for it; ``"mean"`` averages the views an
    item has (NaN when it has none).
    """
    own_unit = l2_normalize(own.vectors)
    out: dict[str, np.ndarray] = {}
    for name, view in generated.items():
        cos = np.einsum("ij,ij->i", own_unit, l2_normalize(view.vectors)).astype(np.float32)
        ok = np.asarray(own.present, bool) & np.asarray(view.present, bool)
        out[name] = np.where(ok, cos, np.nan).astype(np.float32)
    if out:
        stacked = np.stack(list(out.values()))
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(stacked), 0)
            mean = np.where(counts > 0, np.nansum(stacked, 0) / np.maximum(counts, 1), np.nan)
        out["mean"] = mean.astype(np.float32)
    return out


@dataclass
class ConsistencyRouter:
    """Routes items to text fusion (score >= ``threshold``) or feature fusion."""

    threshold: float = DEFAULT_THRESHOLD

    def route(self, score: np.ndarray) -> np.ndarray:
        """``"text"`` or ``"feature"`` per item (NaN scores go to feature fusion)."""
        score = np.asarray(score, np.float32)
        consistent = np.nan_to_num(score, nan=-np.inf) >= self.threshold
        return np.where(consistent, TEXT, FEATURE)

    @staticmethod
    def routed_views(item_views: Mapping[str, View], described: View, routes: np.ndarray,
                     modalities: Sequence[str] | None = None
                     ) -> tuple[dict[str, View], dict[str, float]]:
        """Item views and weights for one content model that follows ``routes``."""
        text_path = np.asarray(routes) == TEXT
        mods = [m for m in (modalities or item_views) if m in item_views and m != DESCRIBE]
        views = {DESCRIBE: View(described.vectors,
                                np.asarray(described.present, bool) & text_path)}
        for m in mods:
            v = item_views[m]
            views[m] = View(v.vectors, np.asarray(v.present, bool) & ~text_path)
        weights = {m: 1.0 for m in mods}
        weights[DESCRIBE] = float(max(len(mods), 1))
        return views, weights

    @staticmethod
    def candidates(score: np.ndarray, n: int = 9) -> list[float]:
        """Thresholds worth trying: all-feature, all-text, and ``n`` quantiles of ``score``
        (from the 10th to the 90th percentile)."""
        finite = np.asarray(score, np.float64)
        finite = finite[np.isfinite(finite)]
        qs = np.quantile(finite, np.linspace(0.1, 0.9, n)).tolist() if len(finite) else []
        return [float("inf"), float("-inf"), *sorted({round(q, 4) for q in qs})]


__all__ = ["DEFAULT_THRESHOLD", "DESCRIBE", "FEATURE", "TEXT", "ConsistencyRouter", "agreement"]
