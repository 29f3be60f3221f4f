"""Evaluation: full-ranking metrics on held-out interactions."""

from fuserec.evaluate.metrics import ndcg_at_k, recall_at_k, relevant_sets
from fuserec.evaluate.ranking import evaluate_ranking

__all__ = ["evaluate_ranking", "ndcg_at_k", "recall_at_k", "relevant_sets"]
