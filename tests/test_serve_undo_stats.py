"""Undoing feedback (``DELETE /users/{id}/feedback/{item_id}``), journaled and replayed, and the
count of what the server recommended (``GET /stats``), through FastAPI's TestClient on
artifacts built with the small fake encoders."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from fuserec.serve import create_app
from fuserec.serve.journal import JournalError
from fuserec.serve.state import ServingState
from fuserec.serve.stats import RecommendationCounter
from serve_helpers import build_fake_artifacts

TOKEN = "undo-s3cret"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return build_fake_artifacts(tmp_path_factory.mktemp("undo") / "run")


def _client(artifacts, journal=None, token=""):
    return TestClient(create_app(artifacts, token=token, journal=journal))


def _rec_ids(client, user, k=None):
    state = client.app.state.serving
    k = k or state.limits.max_k
    body = client.get(f"/users/{user}/recommendations", params={"k": min(k, state.n_items)})
    assert body.status_code == 200, body.text
    return [r["item"]["id"] for r in body.json()["results"]]


def test_like_then_undo_restores_recommendations_and_survives_a_restart(artifacts, tmp_path):
    journal = tmp_path / "journal.jsonl"
    with _client(artifacts, journal) as c:
        state = c.app.state.serving
        user = min(state.user_row, key=lambda u: len(state.seen_positions(u)))
        before = _rec_ids(c, user, 5)
        item = before[0]
        assert c.post(f"/users/{user}/feedback", json={"item_id": item}).status_code == 200
        assert item not in _rec_ids(c, user)  # liked: seen, so no longer recommended
        res = c.delete(f"/users/{user}/feedback/{item}")
        assert res.status_code == 200, res.text
        assert res.json() == {"user_id": user, "item_id": item, "removed_weight": 1.0,
                              "n_feedback": 0}
        assert _rec_ids(c, user, 5) == before  # the same list as before the like
        assert c.get(f"/users/{user}").json()["n_feedback"] == 0
        # a second undo has nothing left to remove
        again = c.delete(f"/users/{user}/feedback/{item}")
        assert again.status_code == 404 and "no feedback" in again.json()["error"]
        # a new user created by a like and emptied by its undo stays known, with no feedback
        assert c.post("/users/fresh/feedback", json={"item_id": item}).status_code == 200
        other = state.item_ids[1]
        assert c.post("/users/fresh/feedback", json={"item_id": other}).status_code == 200
        assert c.delete(f"/users/fresh/feedback/{item}").json()["n_feedback"] == 1
        fresh = _rec_ids(c, "fresh")
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert events == ["feedback", "unfeedback", "feedback", "feedback", "unfeedback"]

    with _client(artifacts, journal) as second:  # the replay ends in the same state
        again_state = second.app.state.serving
        assert again_state.replayed == {"feedback": 3, "items": 0, "unfeedback": 2}
        assert _rec_ids(second, user, 5) == before
        assert _rec_ids(second, "fresh") == fresh
        assert second.get("/users/fresh").json()["n_feedback"] == 1
        assert not again_state.feedback[user]


def test_undo_needs_the_token_and_names_unknown_items(artifacts):
    with _client(artifacts, token=TOKEN) as c:
        state = c.app.state.serving
        item = state.item_ids[0]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/users/u1/feedback", json={"item_id": item}, headers=auth).status_code \
            == 200
        assert c.delete(f"/users/u1/feedback/{item}").status_code == 401
        assert state.feedback["u1"]  # nothing removed without the token
        missing = c.delete("/users/u1/feedback/no_such_item", headers=auth)
        assert missing.status_code == 404 and "no_such_item" in missing.json()["error"]
        assert c.delete(f"/users/u1/feedback/{item}", headers=auth).status_code == 200
        assert not state.feedback["u1"]


def test_a_journaled_undo_that_found_nothing_replays_as_a_no_op(artifacts, tmp_path):
    """Two concurrent undos of one like both reach the journal (each was checked before the
    other applied); the second removes nothing, live and in the replay alike."""
    journal = tmp_path / "journal.jsonl"
    state = ServingState.from_folder(artifacts)
    item = state.item_ids[0]
    undo = json.dumps({"event": "unfeedback", "user": "x", "item": item}) + "\n"
    like = json.dumps({"event": "feedback", "user": "x", "item": item, "weight": 2.0}) + "\n"
    journal.write_text(like + undo + undo)
    again = ServingState.from_folder(artifacts, journal=journal)
    assert again.replayed == {"feedback": 1, "items": 0, "unfeedback": 2}
    assert again.feedback == {"x": {}}
    journal.write_text('{"event":"unfeedback","user":"x","item":"no_such_item"}\n')
    with pytest.raises(JournalError, match=r"line 1: .*no_such_item"):
        ServingState.from_folder(artifacts, journal=journal)


def test_concurrent_undos_of_one_like_remove_it_once(artifacts, tmp_path):
    import threading

    state = ServingState.from_folder(artifacts, journal=tmp_path / "journal.jsonl")
    item = state.item_ids[2]
    state.add_feedback("twice", item, 3.0)
    start, outcome = threading.Barrier(8), []

    def undo() -> None:
        start.wait()
        try:
            outcome.append(state.remove_feedback("twice", item))
        except Exception as exc:  # the losers: 404
            outcome.append(exc)

    threads = [threading.Thread(target=undo) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wins = [o for o in outcome if isinstance(o, tuple)]
    assert wins == [(0, 3.0)] and len(outcome) == 8
    assert all(getattr(o, "status", None) == 404 for o in outcome if o not in wins)
    again = ServingState.from_folder(artifacts, journal=tmp_path / "journal.jsonl")
    assert again.feedback == state.feedback == {"twice": {}}


def test_stats_count_what_was_recommended(artifacts):
    with _client(artifacts) as c:
        state = c.app.state.serving
        empty = c.get("/stats").json()
        assert empty == {"answers": 0, "recommended": 0, "distinct_items": 0,
                         "most_recommended": []}
        users = sorted(state.user_row)[:3]
        given: dict[str, int] = {}
        for u in users:
            for item in _rec_ids(c, u, 4):
                given[item] = given.get(item, 0) + 1
        body = c.get("/stats", params={"k": 3}).json()
        assert body["answers"] == 3 and body["recommended"] == sum(given.values())
        assert body["distinct_items"] == len(given)
        top = [(r["item"]["id"], r["score"]) for r in body["most_recommended"]]
        assert len(top) == 3 and [s for _, s in top] == sorted(given.values(), reverse=True)[:3]
        assert all(given[i] == s for i, s in top)
        assert c.get("/stats", params={"k": 0}).status_code == 422


def test_counter_grows_for_new_items_and_breaks_ties_by_position():
    counter = RecommendationCounter(2)
    counter.add([1, 0])
    counter.add([5, 1])  # a position past the start size (an item added while serving)
    counter.add([])
    assert counter.answers == 3 and counter.total == 4 and counter.distinct() == 3
    assert counter.top(2) == [(1, 2), (0, 1)]
    assert counter.top(10) == [(1, 2), (0, 1), (5, 1)]


def test_recommendations_from_cached_scores_match_computed_ones(artifacts):
    """The first answer computes the scores in the thread pool; later ones rank the cached
    scores on the event loop: the same items, and feedback still invalidates the cache."""
    state = ServingState.from_folder(artifacts)
    if state.ranker is None:  # the small fake run may pick the content model itself
        state.ranker = state.model  # any Recommender ranks; this one is at hand
    with TestClient(create_app(state=state, token="")) as c:
        user = sorted(state.user_row)[4]
        assert not state.scores_cached(user)
        computed = c.get(f"/users/{user}/recommendations", params={"k": 6}).json()
        assert state.scores_cached(user)
        cached = c.get(f"/users/{user}/recommendations", params={"k": 6}).json()
        assert cached == computed
        item = computed["results"][0]["item"]["id"]
        assert c.post(f"/users/{user}/feedback", json={"item_id": item}).status_code == 200
        assert not state.scores_cached(user)
        assert item not in _rec_ids(c, user, 6)
