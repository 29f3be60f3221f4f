"""Interaction tables to scipy.sparse matrices (users x items)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fuserec.data.schema import ITEM_ID, USER_ID, WEIGHT


def interaction_matrix(interactions: pd.DataFrame, user_ids: Sequence[str],
                       item_ids: Sequence[str]) -> sp.csr_matrix:
    """A CSR matrix of weights, rows in ``user_ids`` order, columns in ``item_ids`` order.

    Rows whose user or item is not listed are ignored; repeated pairs add up.
    """
    u_index = pd.Index(user_ids)
    i_index = pd.Index(item_ids)
    rows = u_index.get_indexer(interactions[USER_ID])
    cols = i_index.get_indexer(interactions[ITEM_ID])
    keep = (rows >= 0) & (cols >= 0)
    if WEIGHT in interactions:
        data = interactions[WEIGHT].to_numpy(dtype=np.float32)[keep]
    else:
        data = np.ones(int(keep.sum()), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows[keep], cols[keep])),
                           shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix
