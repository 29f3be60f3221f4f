"""Contract tests run against every recommender, on a tiny matrix whose answer is known."""

import numpy as np
import pytest
import scipy.sparse as sp

from fuserec.fuse import View
from fuserec.models import MODELS, ContentCosine, Popularity, Recommender

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


MODEL_FACTORIES = {
    "popularity": lambda: Popularity(),
    "content-cosine": lambda: ContentCosine(weights={"text": 1.0, "image": 0.1}),
}


def test_every_registered_model_is_under_contract():
    assert set(MODELS.names()) == set(MODEL_FACTORIES)


@pytest.fixture(params=sorted(MODEL_FACTORIES))
def fitted(request):
    matrix, features = _data()
    model = MODEL_FACTORIES[request.param]().fit(matrix, item_features=features)
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
    else:
        ids, _ = model.recommend(np.arange(N_USERS), k=N_ITEMS)
        for u in range(N_USERS):  # every unseen item of the user's own group comes first
            seen = set(matrix[u].indices.tolist())
            own = [i for i in range(N_ITEMS) if i % 2 == u // 3 and i not in seen]
            assert own and sorted(ids[u, : len(own)].tolist()) == own, (u, ids[u])
        similar, _ = model.similar_items([0, 1], k=3)
        assert all(i % 2 == 0 for i in similar[0]) and all(i % 2 == 1 for i in similar[1])
        assert 0 not in similar[0]


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
