"""The consistency router: per item, text fusion where the text views agree, feature fusion where
they do not.

Every view of an item that the describe stage generated as words (image words, audio words, an
LLM-written description) is embedded by the text encoder, so it lives in the same space as the
item's own text. :func:`agreement` measures, per item, the cosine of each generated view to the
own text and of the generated views to each other; the router's score is their mean. Only
generated views take part: a text that embeds the own text verbatim (the template description)
would mostly measure its agreement with itself. Items whose score reaches the threshold are
*consistent*: their views tell one story and are fused as text, through the embedding of the
unified description. The rest are *inconsistent*: the words disagree (or an image's labels say
little about the item), so their modality features are fused instead (:class:`SumFusion`
blocks).

:meth:`ConsistencyRouter.routed_views` expresses both paths in one direct-sum space, so one
content model ranks all items: a ``describe`` block holds the description embedding of text-path
items (zero for the others) and the feature blocks hold the features of feature-path items (zero
for the others). The ``describe`` block's weight equals the summed weights of the feature
blocks, so a perfect match scores the same on either path.
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


def _cosines(a: View, b: View) -> np.ndarray:
    cos = np.einsum("ij,ij->i", l2_normalize(a.vectors), l2_normalize(b.vectors))
    ok = np.asarray(a.present, bool) & np.asarray(b.present, bool)
    return np.where(ok, cos, np.nan).astype(np.float32)


def agreement(own: View, generated: Mapping[str, View], pairwise: bool = True
              ) -> dict[str, np.ndarray]:
    """Per item: the cosine of each generated view to the own text (keyed by the view's
    name), with ``pairwise`` the cosine of each pair of generated views (``"a~b"``), and
    ``"mean"`` over all of these that the item has (NaN when it has none).
    """
    out = {name: _cosines(own, view) for name, view in generated.items()}
    if pairwise:
        names = list(generated)
        for k, a in enumerate(names):
            for b in names[k + 1:]:
                out[f"{a}~{b}"] = _cosines(generated[a], generated[b])
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
