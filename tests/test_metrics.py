import numpy as np
import pytest
import scipy.sparse as sp

from fuserec.evaluate import ndcg_at_k, recall_at_k, relevant_sets


def test_recall_and_ndcg_match_hand_computed_values():
    ranked = np.array([[3, 1, 7, 2], [5, 6, 0, 4]])
    relevant = [{1, 2, 9}, {4}]
    # user 0: hits at ranks 2 and 4 of k=4 -> recall 2/3; user 1: hit at rank 4 -> 1/1
    assert recall_at_k(ranked, relevant, 4) == pytest.approx((2 / 3 + 1) / 2)
    # user 0 DCG = 1/log2(3) + 1/log2(5); IDCG over 3 hits = 1 + 1/log2(3) + 1/log2(4)
    u0 = (1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3) + 0.5)
    u1 = (1 / np.log2(5)) / 1.0
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx((u0 + u1) / 2)
    # cut at k=2: only user 0's rank-2 hit counts
    assert recall_at_k(ranked, relevant, 2) == pytest.approx((1 / 3 + 0) / 2)
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx(
        ((1 / np.log2(3)) / (1 + 1 / np.log2(3)) + 0) / 2)


def test_perfect_ranking_scores_one_and_users_without_relevant_items_are_skipped():
    ranked = np.array([[0, 1], [2, 3], [1, 0]])
    relevant = [{0, 1}, {2}, set()]
    assert recall_at_k(ranked, relevant, 2) == 1.0
    assert ndcg_at_k(ranked, relevant, 2) == 1.0


def test_relevant_sets_from_matrix():
    m = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    assert relevant_sets(m) == [{1, 2}, set(), {0}]
