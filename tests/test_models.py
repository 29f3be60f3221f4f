"""Contract tests run against every recommender, on a tiny matrix whose answer is known."""

import numpy as np
import pytest
import scipy.sparse as sp

from fuserec.fuse import View
from fuserec.models import (
    ALS,
    BPRMF,
    EASE,
    MODELS,
    VBPR,
    Blend,
    ContentCosine,
    FuseGraph,
    FusionRecommender,
    ItemKNN,
    LightGCN,
    MultDAE,
    MultimodalEASE,
    Popularity,
    Recommender,
    TextFusion,
)
from fuserec.models.base import fit_with

# 6 users x 8 items: users 0-2 like the "even" items, users 3-5 the "odd" items, and the items
# carry that structure in their content (text: one direction per group; image: noise).
N_USERS, N_ITEMS = 6, 8


def _data():
    rows, cols = [], []
    for u in range(N_USERS):
        group = u // 3
        liked = [i for i in range(N_ITEMS) if i % 2 == group]
        for i in liked[: 1 + u % 3]:  # leave unseen items of the same group
            rows.append(u)
            cols.append(i)
    # item 0 is the most popular: everyone in group 0 has it, and user 5 too
    rows.append(5)
    cols.append(0)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N_USERS, N_ITEMS))
    rng = np.random.default_rng(0)
    text = np.zeros((N_ITEMS, 4), np.float32)
    text[np.arange(N_ITEMS), np.arange(N_ITEMS) % 2] = 1.0
    text += rng.normal(0, 0.05, text.shape).astype(np.float32)
    image = rng.normal(size=(N_ITEMS, 6)).astype(np.float32)
    ones = np.ones(N_ITEMS, bool)
    features = {"text": View(text, ones), "image": View(image, ones)}
    return matrix, features


_FAST = {"factors": 8, "seed": 0, "threads": 1}

# item texts for the text models, with the same two groups: even items space, odd items love
_SPACE = ["a rocket launch into outer space", "astronauts explore a distant galaxy",
          "a space station orbiting mars", "aliens invade from the stars",
          "a starship crew on a deep space mission", "a comet is about to hit the planet",
          "robots build a base on the moon", "a voyage beyond the solar system"]
_LOVE = ["a romantic love story in paris", "two hearts fall in love at a wedding",
         "a first date turns into romance", "newlyweds on their honeymoon",
         "a love letter from an old flame", "a romantic comedy about a proposal",
         "a couple renews their wedding vows", "a summer romance by the sea"]


def _texts(n_items: int) -> list[str]:
    return [(_SPACE if i % 2 == 0 else _LOVE)[i // 2] for i in range(n_items)]

MODEL_FACTORIES = {
    "popularity": lambda: Popularity(),
    "content-cosine": lambda: ContentCosine(weights={"text": 1.0, "image": 0.1}),
    "item-knn": lambda: ItemKNN(neighbors=20, shrink=0.0),
    "ease": lambda: EASE(l2=1.0),
    "als": lambda: ALS(factors=8, regularization=1.0),
    "mmease": lambda: MultimodalEASE(l2=1.0, alpha={"text": 5.0}),
    "blend": lambda: Blend([{"model": "ease", "params": {"l2": 1.0}},
                            {"model": "content-cosine",
                             "params": {"weights": {"text": 1.0, "image": 0.1}}}]),
    "bpr-mf": lambda: BPRMF(epochs=60, batch_size=64, lr=0.05, **_FAST),
    "lightgcn": lambda: LightGCN(layers=2, epochs=60, batch_size=64, lr=0.05, **_FAST),
    "vbpr": lambda: VBPR(content_factors=8, epochs=60, batch_size=64, lr=0.05, **_FAST),
    "fusion": lambda: FusionRecommender(hidden=16, gate="mean", id_dropout=0.2, epochs=60,
                                        batch_size=8, lr=0.02, **_FAST),
    "multdae": lambda: MultDAE(dropout=0.2, epochs=80, batch_size=8, lr=0.02, reg=0.0, **_FAST),
    "textfusion": lambda: TextFusion(epochs=8, batch_size=8, negatives=8, seed=0, threads=1),
    "fusegraph": lambda: FuseGraph(hidden=16, knn=3, epochs=60, batch_size=64, lr=0.02,
                                   **_FAST),
}
# which known answer each model must give: the content fixture (items with no interactions,
# ranked from content) or the collaborative checkerboard (plus its cold items for hybrids)
CONTENT_ANSWER = {"content-cosine"}
COLLABORATIVE = {"item-knn", "ease", "als", "mmease", "bpr-mf", "lightgcn", "vbpr", "fusion",
                 "fusegraph", "multdae", "blend", "textfusion"}
COLD_FROM_CONTENT = {"content-cosine", "vbpr", "fusion", "fusegraph", "mmease", "blend",
                     "textfusion"}


def test_every_registered_model_is_under_contract():
    assert set(MODELS.names()) == set(MODEL_FACTORIES)


@pytest.fixture(params=sorted(MODEL_FACTORIES))
def fitted(request):
    matrix, features = _data()
    model = fit_with(MODEL_FACTORIES[request.param](), matrix, features,
                     item_texts=_texts(N_ITEMS))
    return request.param, model, matrix


def test_recommend_shapes_order_and_excludes_seen(fitted):
    _, model, matrix = fitted
    ids, scores = model.recommend(np.arange(N_USERS), k=3)
    assert ids.shape == scores.shape == (N_USERS, 3)
    assert np.all(np.diff(scores, axis=1) <= 1e-7)
    for u in range(N_USERS):
        seen = set(matrix[u].indices)
        assert not seen & set(ids[u].tolist())
    with_seen, _ = model.recommend([0], k=N_ITEMS, exclude_seen=False)
    assert sorted(with_seen[0].tolist()) == list(range(N_ITEMS))


def test_k_larger_than_catalog_pads(fitted):
    _, model, matrix = fitted
    ids, scores = model.recommend([0], k=N_ITEMS + 2)
    n_unseen = N_ITEMS - matrix[0].nnz
    assert (ids[0] >= 0).sum() == n_unseen
    assert np.all(ids[0, n_unseen:] == -1) and np.all(np.isneginf(scores[0, n_unseen:]))


def test_known_answers(fitted):
    name, model, matrix = fitted
    ids, _ = model.recommend(np.arange(N_USERS), k=2)
    if name == "popularity":
        assert ids[4, 0] == 0  # the most popular item, unseen by user 4
    elif name in CONTENT_ANSWER:
        ids, _ = model.recommend(np.arange(N_USERS), k=N_ITEMS)
        for u in range(N_USERS):  # every unseen item of the user's own group comes first
            seen = set(matrix[u].indices.tolist())
            own = [i for i in range(N_ITEMS) if i % 2 == u // 3 and i not in seen]
            assert own and sorted(ids[u, : len(own)].tolist()) == own, (u, ids[u])
        similar, _ = model.similar_items([0, 1], k=3)
        assert all(i % 2 == 0 for i in similar[0]) and all(i % 2 == 1 for i in similar[1])
        assert 0 not in similar[0]


# models whose scores are a function of the history row itself: folding a user in from their
# own training row must give exactly their trained scores
HISTORY_READING = {"popularity", "item-knn", "ease", "mmease", "content-cosine"}


def test_score_history_shapes_and_history_reading_models(fitted):
    """Scores for users known only by history rows; models that read the history directly
    give a user's trained scores back from their own row."""
    name, model, matrix = fitted
    scores = model.score_history(matrix[[0, 4]])
    assert scores.shape == (2, N_ITEMS) and np.all(np.isfinite(scores))
    if name in HISTORY_READING:
        np.testing.assert_allclose(model.score_history(matrix), model.score(np.arange(N_USERS)),
                                   rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(fitted, tmp_path):
    _, model, _ = fitted
    model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    assert type(again) is type(model)
    a, sa = model.recommend(np.arange(N_USERS), k=4)
    b, sb = again.recommend(np.arange(N_USERS), k=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb)


def test_user_own_content_is_used_when_there_is_no_history():
    matrix, features = _data()
    matrix = matrix.tolil()
    matrix[5, :] = 0  # user 5 has no history...
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    own = np.zeros((N_USERS, 4), np.float32)
    own[5, 1] = 1.0  # ...but their own text points at the odd group
    present = np.zeros(N_USERS, bool)
    present[5] = True
    model = ContentCosine(modalities=["text"]).fit(
        matrix, features, user_features={"text": View(own, present)})
    ids, _ = model.recommend([5], k=4)
    assert all(i % 2 == 1 for i in ids[0])


def test_fold_in_matches_fit_and_explanations_add_up():
    matrix, features = _data()
    model = ContentCosine().fit(matrix, features)
    folded = model.fold_in(matrix[2])
    np.testing.assert_allclose(folded[0], model.user_vector_matrix()[2], atol=1e-6)
    parts = model.explain(folded[0], 4)
    total = float(folded[0] @ model.item_vectors()[4])
    assert set(parts) == {"text", "image"}
    assert sum(parts.values()) == pytest.approx(total, abs=1e-6)


# A checkerboard: 24 users and 16 items in two groups (parity); every user has most items of
# their own group, none of the other; items 14 and 15 are cold (no interactions) but their
# content (text) says which group they belong to.
CB_USERS, CB_ITEMS, CB_COLD = 24, 16, (14, 15)


def _checkerboard():
    rng = np.random.default_rng(1)
    rows, cols = [], []
    for u in range(CB_USERS):
        own = [i for i in range(CB_ITEMS) if i % 2 == u % 2 and i not in CB_COLD]
        held = set(rng.choice(own, 2, replace=False).tolist())
        for i in own:
            if i not in held:
                rows.append(u)
                cols.append(i)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                           shape=(CB_USERS, CB_ITEMS))
    text = np.zeros((CB_ITEMS, 4), np.float32)
    text[np.arange(CB_ITEMS), np.arange(CB_ITEMS) % 2] = 1.0
    text += rng.normal(0, 0.05, text.shape).astype(np.float32)
    image = rng.normal(size=(CB_ITEMS, 6)).astype(np.float32)
    ones = np.ones(CB_ITEMS, bool)
    return matrix, {"text": View(text, ones), "image": View(image, ones)}


@pytest.mark.parametrize("name", sorted(COLLABORATIVE))
def test_collaborative_known_answers(name):
    matrix, features = _checkerboard()
    model = fit_with(MODEL_FACTORIES[name](), matrix, features, item_texts=_texts(CB_ITEMS))
    ids, _ = model.recommend(np.arange(CB_USERS), k=CB_ITEMS)
    # the same users folded in from their history rows alone, as serving scores them after
    # feedback, must get the same known answer
    folded = model.score_history(matrix)
    folded[matrix.nonzero()] = -np.inf
    folded_ids = np.argsort(-folded, axis=1, kind="stable")
    for u in range(CB_USERS):  # own-group unseen warm items come before other-group ones
        warm = [i for i in folded_ids[u].tolist() if i not in CB_COLD and not matrix[u, i]]
        own = [i for i in range(CB_ITEMS)
               if i % 2 == u % 2 and i not in CB_COLD and not matrix[u, i]]
        assert sorted(warm[: len(own)]) == own, (name, "folded in", u, folded_ids[u])
    for u in range(CB_USERS):  # own-group unseen warm items come before other-group ones
        warm = [i for i in ids[u].tolist() if i >= 0 and i not in CB_COLD]
        own = [i for i in range(CB_ITEMS)
               if i % 2 == u % 2 and i not in CB_COLD and not matrix[u, i]]
        assert sorted(warm[: len(own)]) == own, (name, u, ids[u])
        if name in COLD_FROM_CONTENT:  # a cold item of the own group beats the other one
            ranked = ids[u].tolist()
            mine, other = (14, 15) if u % 2 == 0 else (15, 14)
            assert ranked.index(mine) < ranked.index(other), (name, u, ids[u])
    similar, _ = model.similar_items([0, 1], k=3)
    assert all(i % 2 == 0 for i in similar[0]) and all(i % 2 == 1 for i in similar[1]), similar


def test_training_records_epochs_and_stops_early():
    matrix, features = _checkerboard()
    validation = sp.csr_matrix(matrix.shape, dtype=np.float32)
    validation[0, 2] = 1.0
    model = LightGCN(epochs=50, patience=2, batch_size=64, lr=0.05, **_FAST)
    model.fit(matrix, validation=validation.tocsr())
    assert 1 <= len(model.history) < 50
    assert all(h["seconds"] >= 0 for h in model.history)
    assert "val_recall@20" in model.history[0]
    assert model.seconds_per_epoch > 0


def test_training_is_reproducible_with_a_seed():
    matrix, features = _checkerboard()
    a = FusionRecommender(hidden=16, epochs=5, batch_size=8, **_FAST).fit(matrix, features)
    b = FusionRecommender(hidden=16, epochs=5, batch_size=8, **_FAST).fit(matrix, features)
    np.testing.assert_allclose(a.item_factors, b.item_factors, atol=1e-6)


def test_added_items_are_scored_and_folded_in():
    matrix, features = _data()
    model = ContentCosine().fit(matrix, features)
    new = model.item_vectors()[[1]]  # a copy of an odd-group item
    model.add_items(new)
    assert model.item_vectors().shape[0] == N_ITEMS + 1
    assert model.item_popularity()[-1] == 0.0
    ids, _ = model.recommend([4], k=N_ITEMS + 1)
    assert N_ITEMS in ids[0]
    history = sp.csr_matrix(([1.0], ([0], [N_ITEMS])), shape=(1, N_ITEMS + 1))
    folded = model.fold_in(history)
    assert float(folded[0] @ model.item_vectors()[1]) > float(folded[0] @ model.item_vectors()[0])


def test_blend_weights_come_from_validation():
    """Known answer: blended with popularity (no signal between the two groups), the
    checkerboard's EASE must get most of the weight, and the mix must recommend as EASE does."""
    matrix, features = _checkerboard()
    rng = np.random.default_rng(3)
    train = matrix.tolil()
    val = sp.lil_matrix(matrix.shape, dtype=np.float32)
    for u in range(CB_USERS):  # hold one training item per user out for validation
        i = int(rng.choice(matrix[u].indices))
        train[u, i], val[u, i] = 0, 1
    train, val = train.tocsr(), val.tocsr()
    train.eliminate_zeros()
    blend = Blend([{"model": "popularity"}, {"model": "ease", "params": {"l2": 1.0}}],
                  select_k=3, grid_step=0.25).fit(train, features, validation=val)
    assert blend.weights[1] >= 0.75 and len(blend.validation_recall) == 5
    ease = EASE(l2=1.0).fit(train)
    ids, _ = blend.recommend(np.arange(CB_USERS), k=2)
    assert all(i % 2 == u % 2 for u in range(CB_USERS) for i in ids[u])
    np.testing.assert_array_equal(ids[:, :1], ease.recommend(np.arange(CB_USERS), k=1)[0])
    with pytest.raises(ValueError, match="non-negative"):
        Blend([{"model": "ease"}], weights=[0.0])
    with pytest.raises(KeyError, match="unknown model"):
        Blend([{"model": "no-such-model"}])


def test_mmease_ranks_a_cold_item_by_its_content_and_reduces_to_ease():
    matrix, features = _checkerboard()
    plain = EASE(l2=1.0).fit(matrix)
    same = MultimodalEASE(l2=1.0, alpha=0.0).fit(matrix, features)
    np.testing.assert_allclose(same.item_vectors(), plain.item_vectors(), atol=1e-5)
    model = MultimodalEASE(l2=1.0, alpha={"text": 5.0}).fit(matrix, features)
    for u in range(CB_USERS):
        mine, other = (14, 15) if u % 2 == 0 else (15, 14)
        s = model.score(np.array([u]))[0]
        assert s[mine] > s[other], (u, s[14], s[15])
    with pytest.raises(ValueError, match="item_features"):
        MultimodalEASE().fit(matrix)


def test_multdae_user_vectors_are_a_function_of_history():
    matrix, _ = _checkerboard()
    twin = sp.vstack([matrix, matrix[[0]]]).tocsr()  # a new user with user 0's exact history
    model = MultDAE(dropout=0.2, epochs=20, batch_size=8, lr=0.02, reg=0.0, **_FAST).fit(twin)
    np.testing.assert_allclose(model.user_factors[0], model.user_factors[-1], atol=1e-6)
    with pytest.raises(ValueError, match="dropout"):
        MultDAE(dropout=1.0)
    with pytest.raises(ValueError, match="softmax"):
        MultDAE(loss="bpr")


def test_a_training_budget_stops_early_and_keeps_the_best_epoch():
    matrix, features = _checkerboard()
    validation = sp.csr_matrix(matrix.shape, dtype=np.float32)
    validation[0, 2] = 1.0
    model = LightGCN(epochs=10_000, patience=10_000, batch_size=4, lr=0.01, max_seconds=0.5,
                     **_FAST).fit(matrix, validation=validation)
    assert model.stopped_by_budget and len(model.history) < 10_000
    assert model.user_factors.shape[0] == matrix.shape[0]
    assert 1 <= model.best_epoch <= len(model.history)


def test_a_blend_of_fitted_members_trains_nothing_again():
    matrix, features = _checkerboard()
    validation = sp.csr_matrix(matrix.shape, dtype=np.float32)
    validation[0, 2] = validation[1, 3] = 1.0
    ease = EASE(l2=1.0).fit(matrix)
    cosine = ContentCosine().fit(matrix, item_features=features)
    before = ease.weights.copy()
    blend = Blend.of_fitted([ease, cosine], [{"l2": 1.0}, {}], select_k=5)
    blend.fit(matrix, item_features=features, validation=validation)
    assert blend.members[0] is ease and np.array_equal(ease.weights, before)
    assert sum(blend.weights) == pytest.approx(1.0)
    assert blend.cross_fitted is not None and "recall@5" in blend.cross_fitted


def test_a_blend_ranks_cold_items_by_its_content_side():
    """EASE knows nothing of items without training interactions; in a blend its say on them
    goes to the content-aware members, so cold items are ranked by content alone."""
    from fuserec.models.blend import standardise

    matrix, features = _checkerboard()
    ease = EASE(l2=1.0).fit(matrix)
    cosine = ContentCosine().fit(matrix, item_features=features)
    blend = Blend.of_fitted([ease, cosine], [{"l2": 1.0}, {}], weights=[0.7, 0.3])
    blend.fit(matrix, item_features=features)
    users = np.arange(CB_USERS)
    cold = sorted(CB_COLD)
    np.testing.assert_allclose(blend.score(users)[:, cold],
                               standardise(cosine.score(users))[:, cold], rtol=1e-5, atol=1e-5)
    shares = blend.member_scores(user_ids=users)
    np.testing.assert_allclose(sum(shares.values()), blend.score(users), rtol=1e-5, atol=1e-5)
