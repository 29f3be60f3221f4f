"""The text fusion model: MiniLM's top layer trained on interactions over cached lower layers.

Tiny texts, a few epochs: the real packaged MiniLM is loaded once per process and only its top
layer runs in training, so these stay fast.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fuserec.data.adapters.base import Dataset
from fuserec.evaluate.selection import skip_reason
from fuserec.models import MODELS, Blend, Recommender, TextFusion
from fuserec.models.base import NewItems, fit_with
from fuserec.models.text_tower import HiddenStateCache, lower_layers

SPACE = ["a rocket launch into outer space", "astronauts explore a distant galaxy",
         "a space station orbiting mars", "aliens invade from the stars",
         "a starship crew on a deep space mission", "a comet is about to hit the planet"]
LOVE = ["a romantic love story in paris", "two hearts fall in love at a wedding",
        "a first date turns into romance", "newlyweds on their honeymoon",
        "a love letter from an old flame", "a romantic comedy about a proposal"]
TEXTS = [t for pair in zip(SPACE, LOVE, strict=True) for t in pair]  # even: space, odd: love
N_USERS = 20
COLD = (10, 11)  # one space and one love item nobody clicked

FAST = {"epochs": 4, "batch_size": 8, "negatives": 8, "threads": 1, "seed": 0}


def _clicks(n_items: int, group_of, n_users: int = N_USERS, per_user: int = 4,
            cold=COLD) -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for u in range(n_users):
        own = [i for i in range(n_items) if group_of(i) == u % 2 and i not in cold]
        for i in rng.choice(own, min(per_user, len(own)), replace=False):
            rows.append(u)
            cols.append(int(i))
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                         shape=(n_users, n_items))


def _fit(**options) -> tuple[TextFusion, sp.csr_matrix]:
    x = _clicks(len(TEXTS), lambda i: i % 2)
    return TextFusion(**{**FAST, **options}).fit(x, item_texts=TEXTS), x


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_co_clicked_words_move_closer_and_rank_a_cold_item():
    """Known answer: the texts are made-up words the pretrained encoder knows nothing about;
    users click "zorblax" with "quimby" items and "flurp" with "blarg" ones. After training
    (text tower only, no IDs) a zorblax item is closer to the quimby items than before, and a
    never-clicked quimby item is ranked above a never-clicked blarg item for zorblax users."""
    words = ["zorblax", "quimby", "flurp", "blarg"]
    texts = [f"{words[i % 4]} {n}" for n, i in enumerate(range(24))]
    group = [0 if i % 4 in (0, 1) else 1 for i in range(24)]
    cold = (21, 23)  # a quimby and a blarg item
    x = _clicks(24, lambda i: group[i], n_users=40, per_user=6, cold=cold)
    before = TextFusion(ids=False, **{**FAST, "epochs": 1}, lr=0.0).fit(x, item_texts=texts)
    after = TextFusion(ids=False, **{**FAST, "epochs": 30, "lr": 1e-3}).fit(x, item_texts=texts)

    def gap(model: TextFusion) -> float:
        v = _unit(model.item_factors)
        zorblax = [i for i in range(24) if i % 4 == 0]
        quimby = [i for i in range(24) if i % 4 == 1]
        blarg = [i for i in range(24) if i % 4 == 3]
        return float((v[zorblax] @ v[quimby].T).mean() - (v[zorblax] @ v[blarg].T).mean())

    assert gap(after) > gap(before) + 0.05, (gap(before), gap(after))
    scores = after.score(np.arange(0, 40, 2))  # users of the zorblax + quimby group
    assert (scores[:, 21] > scores[:, 23]).all()


def test_save_load_gives_identical_scores_and_the_same_encoder(tmp_path):
    model, x = _fit()
    model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    assert isinstance(again, TextFusion) and again.negatives == model.negatives
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(model.score(users), again.score(users))
    again.save(tmp_path / "m2")  # a loaded model saves its encoder without rebuilding it
    assert again._top is None
    again = Recommender.load(tmp_path / "m2")
    np.testing.assert_allclose(model.encode_texts(["a trip to the moon"]),
                               again.encode_texts(["a trip to the moon"]), atol=1e-6)
    new = NewItems({}, ["a trip to the moon", "a wedding in june"])
    np.testing.assert_allclose(model.score_new_items(x[:3], new),
                               again.score_new_items(x[:3], new), atol=1e-6)


def test_new_items_are_scored_through_the_trained_encoder():
    model, x = _fit()
    # a never-clicked item gets exactly the vector its text gets as a new item
    np.testing.assert_allclose(model.encode_texts([TEXTS[10]])[0], model.item_factors[10],
                               atol=1e-5)
    new = NewItems({}, ["a wedding and a love song", "a rocket to the stars"])
    scores = model.score_new_items(x, new)
    assert scores.shape == (N_USERS, 2)
    for u in range(N_USERS):  # each user's own topic first
        assert np.argmax(scores[u]) == (0 if u % 2 else 1), (u, scores[u])
    # on the scale of score_history: a new copy of a cold item scores as that item does
    same = model.score_new_items(x, NewItems({}, [TEXTS[10]]))[:, 0]
    np.testing.assert_allclose(same, model.score_history(x)[:, 10], atol=1e-5)
    assert model.score_new_items(x, NewItems({"text": None})) is None  # no texts: no opinion
    query = model.encode_texts(["outer space"])
    assert query.shape == (1, model.item_factors.shape[1])
    assert np.argmax(query @ model.item_factors.T) % 2 == 0


def test_lower_layer_states_are_cached_on_disk(tmp_path, monkeypatch):
    model, x = _fit(cache_dir=str(tmp_path))
    shards = list(tmp_path.rglob("*.safetensors"))
    assert shards and model.cache_seconds > 0
    # a fresh process's cache reads the same states from disk, computing nothing
    lower = lower_layers(None, 1, TextFusion().max_length, str(tmp_path))
    fresh = HiddenStateCache(lower.cache.root)
    found = fresh.get_many([lower.key(t) for t in TEXTS])
    assert len(found) == len(TEXTS)
    states = lower.states(TEXTS)
    np.testing.assert_array_equal(found[lower.key(TEXTS[0])], states[0])
    assert states[0].dtype == np.float16 and states[0].shape[1] == 384

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached state")

    monkeypatch.setattr(type(lower), "_compute", fail)
    again = TextFusion(**FAST, cache_dir=str(tmp_path)).fit(x, item_texts=TEXTS)
    np.testing.assert_allclose(again.item_factors, model.item_factors, atol=1e-6)


def test_user_profiles_validation_early_stopping_and_budget():
    x = _clicks(len(TEXTS), lambda i: i % 2)
    validation = sp.lil_matrix(x.shape, dtype=np.float32)
    validation[0, 2] = validation[1, 3] = 1.0
    profiles = ["I love space films" if u % 2 == 0 else "" for u in range(N_USERS)]
    model = TextFusion(**{**FAST, "epochs": 50, "patience": 2}, progress=False).fit(
        x, validation=validation.tocsr(), item_texts=TEXTS, user_texts=profiles)
    assert 1 <= model.best_epoch <= len(model.history) < 50
    assert "val_recall@20" in model.history[0] and model.seconds_per_epoch > 0
    budget = TextFusion(**{**FAST, "epochs": 10_000, "patience": 10_000},
                        max_seconds=0.5).fit(x, validation=validation.tocsr(), item_texts=TEXTS)
    assert budget.stopped_by_budget and len(budget.history) < 10_000
    with pytest.raises(ValueError, match="item_texts"):
        TextFusion(**FAST).fit(x)


def test_selection_and_blend_see_textfusion_as_a_content_model():
    x = _clicks(len(TEXTS), lambda i: i % 2)
    data = Dataset("t", x, None, x, item_texts=TEXTS)
    assert skip_reason("textfusion", data) is None
    assert "needs item texts" in skip_reason("textfusion", Dataset("t", x, None, x))
    assert "textfusion" in MODELS.names()
    model = fit_with(TextFusion(**FAST), x, item_texts=TEXTS)  # fit_with hands texts over
    blend = Blend.of_fitted([model, MODELS.create("popularity").fit(x)], [{}, {}],
                            weights=[0.5, 0.5]).fit(x)
    users = np.arange(N_USERS)
    # on never-clicked items popularity has no say: they are ranked by the text model alone
    for u in users:
        mine, other = (10, 11) if u % 2 == 0 else (11, 10)
        assert blend.score(np.array([u]))[0, mine] > blend.score(np.array([u]))[0, other]


def test_serving_ranks_a_text_query_with_the_trained_encoder():
    """A text-only search goes through the served model's trained encoder, also when the
    text model is a member of a served blend."""
    from types import SimpleNamespace

    from fuserec.serve.scoring import Scoring

    model, x = _fit()
    blend = Blend.of_fitted([MODELS.create("popularity").fit(x), model], [{}, {}],
                            weights=[0.5, 0.5]).fit(x)

    class State(Scoring):
        ranker = blend
        n_items = len(TEXTS)
        limits = SimpleNamespace(max_k=50, max_text_chars=200)

    state = State()
    assert state.text_model() is model
    hits = state.search("a honeymoon and a wedding", k=4)
    assert len(hits) == 4 and all(h["pos"] % 2 == 1 for h in hits)  # love items
    expected = model.encode_texts(["a honeymoon and a wedding"])[0] @ model.item_factors.T
    assert hits[0]["score"] == pytest.approx(float(expected.max()), abs=1e-5)
