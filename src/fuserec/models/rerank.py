"""Diversity-aware re-ranking: maximal marginal relevance (MMR) over item content vectors.

One implementation serves :meth:`fuserec.models.base.Recommender.recommend` (``diversity=``),
the evaluation's accuracy-diversity trade-off curve and the HTTP API's ``diversity`` parameter.

MMR greedily builds a list from a candidate pool; at each step it takes the candidate with the
highest ``(1 - λ) * rel_i - λ * max_{j picked} cos(i, j)``, where ``rel`` is the candidates'
relevance rescaled to [0, 1] within the pool. ``λ = 0`` keeps the relevance order; ``λ = 1``
ignores relevance after the first pick and maximises dissimilarity to what was already picked.
"""

from __future__ import annotations

import numpy as np

from fuserec.fuse.normalize import l2_normalize


def mmr(candidates: np.ndarray, relevance: np.ndarray, vectors: np.ndarray, k: int,
        diversity: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank one candidate list with MMR; returns ``k`` item indices and their relevance.

    ``candidates`` are item indices (-1 = padding, dropped), ``relevance`` their scores,
    ``vectors`` the (n_items, d) content vectors the similarity is measured with and
    ``diversity`` the trade-off λ in [0, 1]. The returned scores are the original relevance
    scores of the picked items, in pick order.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must lie in [0, 1], got {diversity}")
    candidates = np.asarray(candidates)
    relevance = np.asarray(relevance)
    keep = (candidates >= 0) & np.isfinite(relevance)
    cand, rel = candidates[keep], relevance[keep].astype(np.float64)
    if len(cand) == 0:
        return cand.astype(np.int64), rel.astype(np.float32)
    span = rel.max() - rel.min()
    rel01 = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    unit = l2_normalize(np.asarray(vectors)[cand]).astype(np.float64)
    sims = unit @ unit.T
    chosen: list[int] = []
    max_sim = np.full(len(cand), -np.inf)
    available = np.ones(len(cand), bool)
    for _ in range(min(k, len(cand))):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = (1 - diversity) * rel01 - diversity * penalty
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    idx = np.asarray(chosen, dtype=np.int64)
    return cand[idx].astype(np.int64), rel[idx].astype(np.float32)


def mmr_batch(candidates: np.ndarray, relevance: np.ndarray, vectors: np.ndarray, k: int,
              diversity: float, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mmr` on every row of (n_users, pool) candidate and score arrays, vectorised over
    ``chunk`` rows at a time (same picks as calling :func:`mmr` row by row).

    Returns (n_users, k) item indices and scores, padded with -1 / -inf like
    :func:`fuserec.models.base.top_k`.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must lie in [0, 1], got {diversity}")
    candidates = np.asarray(candidates)
    relevance = np.asarray(relevance)
    n = len(candidates)
    items = np.full((n, k), -1, np.int64)
    scores = np.full((n, k), -np.inf, np.float32)
    valid_all = (candidates >= 0) & np.isfinite(relevance)
    vectors = np.asarray(vectors)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        cand = candidates[start:stop]
        valid = valid_all[start:stop]
        rel = np.where(valid, relevance[start:stop], 0.0).astype(np.float64)
        lo = np.where(valid, rel, np.inf).min(1, keepdims=True)
        hi = np.where(valid, rel, -np.inf).max(1, keepdims=True)
        span = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            rel01 = np.where(span > 0, (rel - lo) / np.where(span > 0, span, 1.0), 1.0)
        rows = np.arange(stop - start)
        if diversity > 0:
            unit = l2_normalize(vectors[np.where(valid, cand, 0)]).astype(np.float64)
        max_sim = np.full(cand.shape, -np.inf)
        available = valid.copy()
        for step in range(min(k, cand.shape[1])):
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            value = (1 - diversity) * rel01 - diversity * penalty
            value[~available] = -np.inf
            best = value.argmax(1)
            ok = available[rows, best]
            items[start + rows[ok], step] = cand[rows[ok], best[ok]]
            scores[start + rows[ok], step] = rel[rows[ok], best[ok]]
            available[rows, best] = False
            if diversity > 0:
                # similarity of each candidate to the item just picked (only what is needed)
                picked = unit[rows, best]
                max_sim = np.maximum(max_sim, np.einsum("bd,bpd->bp", picked, unit))
    return items, scores


def pool_size(k: int, n_items: int, factor: int = 5, minimum: int = 50) -> int:
    """How many relevance-ranked candidates MMR re-ranks for a list of ``k``."""
    return int(min(n_items, max(k * factor, minimum, k)))


__all__ = ["mmr", "mmr_batch", "pool_size"]
