"""Evaluation: full-ranking and beyond-accuracy metrics, studies and reports."""

from fuserec.evaluate.metrics import (
    all_metrics,
    catalog_coverage,
    exposure_gini,
    hit_rate_at_k,
    intra_list_diversity,
    mean_popularity,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    relevant_sets,
)
from fuserec.evaluate.ranking import evaluate_ranking

__all__ = ["all_metrics", "catalog_coverage", "evaluate_ranking", "exposure_gini",
           "hit_rate_at_k", "intra_list_diversity", "mean_popularity", "mrr_at_k", "ndcg_at_k",
           "novelty", "precision_at_k", "recall_at_k", "relevant_sets"]
