"""Items added after fit are scored through each model's own content side
(:meth:`Recommender.score_new_items`), in the model, after a save/load, and in serving."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from rich.console import Console

from fuserec.artifacts import load_artifacts
from fuserec.data.synthetic import DemoCatalogSpec
from fuserec.fuse.base import View
from fuserec.models import MODELS
from fuserec.models.base import NewItems, Recommender
from fuserec.models.blend import Blend
from fuserec.models.mmease import MultimodalEASE
from fuserec.pipeline import PipelineConfig, run_demo
from fuserec.serve.state import ServingState
from serve_helpers import FAKE_ENCODERS

USERS, ITEMS = 30, 20


def _data(seed: int = 0):
    """Two taste groups (even / odd items), text that tells the groups apart."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(USERS):
        own = [i for i in range(ITEMS) if i % 2 == u % 2]
        for i in rng.choice(own, 5, replace=False):
            rows.append(u)
            cols.append(int(i))
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(USERS, ITEMS))
    text = np.zeros((ITEMS, 4), np.float32)
    text[np.arange(ITEMS), np.arange(ITEMS) % 2] = 1.0
    text += rng.normal(0, 0.05, text.shape).astype(np.float32)
    image = rng.normal(size=(ITEMS, 6)).astype(np.float32)
    ones = np.ones(ITEMS, bool)
    return matrix, {"text": View(text, ones), "image": View(image, ones)}


def _subset(views, rows):
    return {m: View(v.vectors[rows], np.asarray(v.present)[rows]) for m, v in views.items()}


def test_mmease_gives_a_new_item_exactly_the_column_a_fit_with_it_would_give(tmp_path):
    """Known answer: the new item's column is what solving the whole system again, with the
    item appended (content similarities, no interactions), gives."""
    matrix, views = _data()
    keep = np.arange(ITEMS - 1)
    train = matrix[:, keep]
    fitted = MultimodalEASE(l2=5.0, alpha=3.0).fit(train, _subset(views, keep))
    new_views = _subset(views, [ITEMS - 1])
    got = fitted.score_new_items(train, NewItems(new_views))

    feats = {m: np.concatenate([f, fitted.blocks.transform(new_views, 1)[m]])
             for m, f in fitted.features.items()}
    gram = np.zeros((ITEMS, ITEMS))
    gram[:-1, :-1] = (train.T @ train).toarray()
    for f in feats.values():
        gram += 3.0 * (f.astype(np.float64) @ f.T.astype(np.float64))
    weights = MultimodalEASE.solve(gram, 5.0)
    padded = sp.hstack([train, sp.csr_matrix((USERS, 1))]).tocsr()
    np.testing.assert_allclose(got[:, 0], (padded @ weights)[:, -1], rtol=1e-3, atol=1e-5)

    # the same after a save and load
    again = Recommender.load(fitted.save(tmp_path / "mmease"))
    np.testing.assert_allclose(again.score_new_items(train, NewItems(new_views)), got,
                               rtol=1e-6)


def test_saved_models_keep_their_content_side(tmp_path):
    matrix, views = _data()
    keep = np.arange(ITEMS - 2)
    train = matrix[:, keep]
    new = NewItems(_subset(views, [ITEMS - 2, ITEMS - 1]))
    for name, params in [("mmease", {"l2": 5.0}), ("vbpr", {"factors": 4, "epochs": 3}),
                         ("fusion", {"factors": 4, "epochs": 3, "hidden": 0}),
                         ("content-cosine", {})]:
        model = MODELS.get(name)(**params).fit(train, _subset(views, keep))
        before = model.score_new_items(train, new)
        assert before is not None and before.shape == (USERS, 2), name
        loaded = Recommender.load(model.save(tmp_path / name))
        np.testing.assert_allclose(loaded.score_new_items(train, new), before, rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    # a model without a content side says so
    ease = MODELS.get("ease")(l2=5.0).fit(train)
    assert ease.score_new_items(train, new) is None


@pytest.mark.parametrize("name", ["mmease", "vbpr", "content-cosine"])
def test_a_new_item_goes_to_the_users_whose_taste_its_content_matches(name):
    """Known answer: a new item whose text is the odd group's reaches odd users above even
    users (and the other way round)."""
    matrix, views = _data(1)
    params = {"vbpr": {"factors": 4, "content_factors": 4, "epochs": 30, "seed": 0},
              "mmease": {"l2": 5.0, "alpha": 10.0}}.get(name, {})
    model = MODELS.get(name)(**params).fit(matrix, views)
    text = np.array([[0, 1, 0, 0], [1, 0, 0, 0]], np.float32)  # odd-like, even-like
    new = NewItems({"text": View(text, np.ones(2, bool))})
    scores = model.score_new_items(matrix, new)
    odd = np.arange(USERS) % 2 == 1
    assert scores[odd, 0].mean() > scores[~odd, 0].mean()
    assert scores[~odd, 1].mean() > scores[odd, 1].mean()


def test_a_blend_scores_new_items_on_its_own_scale_and_fills_members_without_content():
    matrix, views = _data(2)
    blend = Blend.of_fitted([MODELS.get("ease")(l2=5.0).fit(matrix),
                             MultimodalEASE(l2=5.0, alpha=10.0).fit(matrix, views)],
                            [{}, {}])
    blend.weights = [0.5, 0.5]
    text = np.array([[0, 1, 0, 0]], np.float32)
    new = NewItems({"text": View(text, np.ones(1, bool))})
    got = blend.score_new_items(matrix, new)
    member = blend.members[1]
    warm = member.score_history(matrix).astype(np.float64)
    z = (member.score_new_items(matrix, new) - warm.mean(1, keepdims=True)) / \
        warm.std(1, keepdims=True)
    # EASE cannot see content: it takes mmease's z-score, so the blend's score is mmease's z
    np.testing.assert_allclose(got, z, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mmease_artifacts(tmp_path_factory):
    out = tmp_path_factory.mktemp("content_side")
    spec = DemoCatalogSpec(n_items=40, n_users=24, seed=5, inject_errors=False)
    config = PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False,
                            models=("mmease",), cold_item_fraction=0.0)
    run_demo(out, spec, config, Console(quiet=True))
    return out / "artifacts"


def test_serving_scores_an_added_item_through_the_served_models_content_side(
        mmease_artifacts, tmp_path):
    art = load_artifacts(mmease_artifacts)
    assert art.ranker.name == "mmease"
    journal = tmp_path / "journal.jsonl"
    state = ServingState(art, index_kind="exact", journal=journal)
    user = state.users["id"].iloc[0]
    liked = state.seen_positions(user)
    source = int(liked[0])
    text_cols = state.text_columns
    fields = {c: state.items[c].iloc[source] for c in text_cols
              if isinstance(state.items[c].iloc[source], str)}
    pos = state.add_item("copy-of-liked", fields, {})
    n_model = art.ranker.interactions.shape[1]
    expected = art.ranker.score_new_items(
        state._history_row(user, state.user_row[user], n_model), state.new_items(n_model))
    scores = state.user_scores(user)
    assert scores[pos] == pytest.approx(float(expected[0, 0]), rel=1e-5)
    # the restart replays the item with its views: the same score
    again = ServingState(load_artifacts(mmease_artifacts), index_kind="exact", journal=journal)
    assert again.user_scores(user)[pos] == pytest.approx(scores[pos], rel=1e-5)


def test_a_blend_ranks_items_without_interactions_by_its_cold_model(tmp_path):
    matrix, views = _data(3)
    cold = np.array([ITEMS - 2, ITEMS - 1])
    train = matrix.tolil()
    train[:, cold] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    content = MODELS.get("content-cosine")().fit(train, views)
    blend = Blend.of_fitted([MODELS.get("ease")(l2=5.0).fit(train),
                             MultimodalEASE(l2=5.0, alpha=10.0).fit(train, views)], [{}, {}])
    blend.weights = [0.7, 0.3]
    blend.interactions = train
    blend.use_cold_model(content, {})
    users = np.arange(USERS)
    got = blend.score(users)[:, cold]
    z = content.score(users)
    z = (z - z.mean(1, keepdims=True)) / z.std(1, keepdims=True)
    np.testing.assert_allclose(got, z[:, cold], rtol=1e-4, atol=1e-4)
    # kept through a save and load, and used for items added after fit too
    again = Recommender.load(blend.save(tmp_path / "blend"))
    np.testing.assert_allclose(again.score(users)[:, cold], got, rtol=1e-5, atol=1e-5)
    new = NewItems({"text": View(np.array([[0, 1, 0, 0]], np.float32), np.ones(1, bool))})
    warm = content.score_history(train).astype(np.float64)
    expected = (content.score_new_items(train, new) - warm.mean(1, keepdims=True)) / \
        warm.std(1, keepdims=True)
    np.testing.assert_allclose(again.score_new_items(train, new), expected, rtol=1e-4,
                               atol=1e-4)


def test_the_cold_side_is_chosen_on_validation_cold_items():
    from fuserec.data.adapters.base import Dataset
    from fuserec.evaluate.selection import Candidate, choose_cold_side

    matrix, views = _data(4)
    rng = np.random.default_rng(0)
    train, val = matrix.tolil(), sp.lil_matrix(matrix.shape, dtype=np.float32)
    for u in range(USERS):
        i = int(rng.choice(matrix[u].indices))
        train[u, i], val[u, i] = 0, 1
    train, val = train.tocsr(), val.tocsr()
    train.eliminate_zeros()
    ds = Dataset("toy", train, val, val, item_features=views)
    pool = [Candidate("content-cosine", model=MODELS.get("content-cosine")().fit(train, views)),
            Candidate("mmease", params={"l2": 5.0},
                      model=MultimodalEASE(l2=5.0).fit(train, views)),
            Candidate("ease", model=MODELS.get("ease")().fit(train))]
    side, scores = choose_cold_side(ds, pool, (5,), fraction=0.2)
    assert set(scores) == {"content-cosine", "mmease"}  # only content models can rank them
    assert side is not None and scores[side.name] == max(scores.values())
    # no validation split: nothing to choose on
    assert choose_cold_side(Dataset("toy", train, None, val, item_features=views), pool) == \
        (None, {})
