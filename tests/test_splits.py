import pandas as pd

from fuserec.data.matrix import interaction_matrix
from fuserec.data.splits import SPLIT, random_split_per_user


def _log():
    rows = [(f"u{u}", f"i{i}") for u in range(5) for i in range(u + 1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(weight=1.0)


def test_split_is_per_user_deterministic_and_keeps_training_items():
    log = _log()
    a = random_split_per_user(log, 0.25, seed=3)
    b = random_split_per_user(log, 0.25, seed=3)
    assert a[SPLIT].tolist() == b[SPLIT].tolist()
    per_user = a.groupby("user_id")[SPLIT].apply(list)
    assert per_user["u0"] == ["train"]  # a single interaction always stays in train
    for u in ["u1", "u2", "u3", "u4"]:
        assert per_user[u].count("test") >= 1 and per_user[u].count("train") >= 1
    assert per_user["u4"].count("test") == 1  # round(5 * 0.25)


def test_validation_share_and_matrix():
    log = _log()
    split = random_split_per_user(log, 0.2, validation_fraction=0.2, seed=0)
    assert set(split[SPLIT]) == {"train", "validation", "test"}
    m = interaction_matrix(log, [f"u{u}" for u in range(5)], [f"i{i}" for i in range(5)])
    assert m.shape == (5, 5) and m.nnz == 15 and m[4].sum() == 5
