"""The HTTP API through FastAPI's TestClient, on artifacts built with small fake encoders
(fast); one slow test serves the real demo artifacts with the real encoders."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient

from fuserec.serve import ServeLimits, create_app
from fuserec.serve.state import mmr
from serve_helpers import build_fake_artifacts, single_image_item

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return build_fake_artifacts(tmp_path_factory.mktemp("serve") / "run")


@pytest.fixture()
def app(artifacts):
    return create_app(artifacts, token="")  # empty token: writes open (the env is ignored)


@pytest.fixture()
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def state(app):
    return app.state.serving


def a_user(state) -> str:
    """The user with the shortest history (so k unseen items are left to recommend)."""
    return min(state.user_row, key=lambda u: len(state.seen_positions(u)))


def file_bytes(state, pos: int, column: str) -> tuple[str, bytes]:
    rel = state.item_media[pos][column][0]
    return rel.rsplit("/", 1)[-1], (state.catalog_root / rel).read_bytes()


# -- reading ----------------------------------------------------------------------------------
def test_health(client, state):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["items"] == state.n_items and body["users"] == len(state.users)
    assert body["index"]["kind"] == "faiss" and body["index"]["exact"] is True
    assert body["modalities"] == ["text", "image", "audio"]
    assert set(body["attributes"]) == {"price", "year"}
    assert body["write_requires_token"] is False


def test_recommendations_exclude_seen_and_explain(client, state):
    user = a_user(state)
    body = client.get(f"/users/{user}/recommendations", params={"k": 5, "explain": True}).json()
    results = body["results"]
    assert len(results) == 5 and body["k"] == 5
    seen = {state.item_ids[p] for p in state.seen_positions(user)}
    ids = [r["item"]["id"] for r in results]
    assert not seen & set(ids)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        exp = r["explanation"]
        assert set(exp["modalities"]) == {"text", "image", "audio"}
        assert sum(exp["modalities"].values()) == pytest.approx(r["score"], abs=1e-3)
        assert exp["because_you_liked"] and {x["id"] for x in exp["because_you_liked"]} <= seen
        assert exp["text"] == r["item"]["text"] and r["item"]["text"]
        assert all(src.startswith("/media/") for src in r["item"]["images"])
    assert any(r["item"]["images"] for r in results)  # spoken episodes have no picture
    plain = client.get(f"/users/{user}/recommendations", params={"k": 5}).json()["results"]
    assert [r["item"]["id"] for r in plain] == ids and plain[0]["explanation"] is None


def test_recommendations_match_the_model(client, state):
    """The index answers what the model's own scoring answers (catalog interactions excluded)."""
    user = a_user(state)
    row = state.user_row[user]
    scores = state.model.score(np.array([row]))[0]
    scores[state.seen_positions(user)] = -np.inf
    want = [state.item_ids[p] for p in np.argsort(-scores)[:6]]
    got = client.get(f"/users/{user}/recommendations", params={"k": 6}).json()["results"]
    assert [r["item"]["id"] for r in got] == want


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 101}, {"k": "ten"}, {"diversity": 1.5},
                                    {"diversity": -0.1}])
def test_bad_parameters_are_422_with_a_message(client, state, params):
    res = client.get(f"/users/{a_user(state)}/recommendations", params=params)
    assert res.status_code == 422
    body = res.json()
    assert body["status"] == 422 and next(iter(params)) in body["error"]


def test_unknown_ids_are_404(client):
    for path in ("/users/nobody/recommendations", "/items/nothing", "/items/nothing/similar",
                 "/users/nobody"):
        res = client.get(path)
        assert res.status_code == 404, path
        assert "nobody" in res.json()["error"] or "nothing" in res.json()["error"]
    res = client.get("/no/such/endpoint")
    assert res.status_code == 404 and "/docs" in res.json()["error"]


def test_diversity_reranks_with_mmr(client, state):
    user = min(state.user_row, key=lambda u: len(state.seen_positions(u)))
    url = f"/users/{user}/recommendations"
    base = client.get(url, params={"k": 4}).json()["results"]
    zero = client.get(url, params={"k": 4, "diversity": 0}).json()["results"]
    div = client.get(url, params={"k": 4, "diversity": 0.9}).json()["results"]
    assert [r["item"]["id"] for r in zero] == [r["item"]["id"] for r in base]
    assert [r["item"]["id"] for r in div] != [r["item"]["id"] for r in base]
    assert div[0]["item"]["id"] == base[0]["item"]["id"]  # MMR always starts with the best

    def mean_pairwise(results):
        v = state.vectors[[state.item_pos[r["item"]["id"]] for r in results]]
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        s = v @ v.T
        return (s.sum() - np.trace(s)) / (len(v) * (len(v) - 1))

    assert mean_pairwise(div) < mean_pairwise(base)


def test_mmr_unit():
    vecs = np.array([[1, 0], [0.99, 0.1], [0, 1]], np.float32)
    pos, _ = mmr(np.array([0, 1, 2]), np.array([1.0, 0.95, 0.5]), vecs, 2, 0.0)
    assert pos.tolist() == [0, 1]
    pos, _ = mmr(np.array([0, 1, 2]), np.array([1.0, 0.95, 0.5]), vecs, 2, 0.7)
    assert pos.tolist() == [0, 2]


def test_attribute_filters(client, state):
    user = a_user(state)
    res = client.get(f"/users/{user}/recommendations",
                     params={"k": 5, "filter": ["year>=2010", "price<40"]}).json()
    assert res["filters"] == ["attr_year>=2010", "attr_price<40"]
    for r in res["results"]:
        assert float(r["item"]["attributes"]["year"]) >= 2010
        assert float(r["item"]["attributes"]["price"]) < 40
    page = client.get("/items", params={"filter": "year<2000", "limit": 200}).json()
    assert page["total"] == len(page["items"])
    assert all(float(i["attributes"]["year"]) < 2000 for i in page["items"])
    bad = client.get(f"/users/{user}/recommendations", params={"filter": "colour==red"})
    assert bad.status_code == 422 and "unknown attribute" in bad.json()["error"]
    bad = client.get(f"/users/{user}/recommendations", params={"filter": "year ~ 3"})
    assert bad.status_code == 422 and "cannot read filter" in bad.json()["error"]


def test_items_and_similar(client, state):
    page = client.get("/items", params={"offset": 2, "limit": 5}).json()
    assert page["total"] == state.n_items and len(page["items"]) == 5
    assert page["items"][0]["id"] == state.item_ids[2]
    item_id = state.item_ids[0]
    item = client.get(f"/items/{item_id}").json()
    assert item["id"] == item_id and item["title"] and "year" in item["attributes"]
    sim = client.get(f"/items/{item_id}/similar", params={"k": 4}).json()
    ids = [r["item"]["id"] for r in sim["results"]]
    assert len(ids) == 4 and item_id not in ids
    assert [r["score"] for r in sim["results"]] == sorted((r["score"] for r in sim["results"]),
                                                          reverse=True)


def test_users_listing(client, state):
    body = client.get("/users", params={"limit": 3}).json()
    assert body["total"] == len(state.users) and len(body["users"]) == 3
    user = client.get(f"/users/{body['users'][0]['id']}").json()
    assert user["n_interactions"] > 0 and user["liked"]


# -- search -----------------------------------------------------------------------------------
def test_search_by_text_finds_the_item(client, state):
    pos = 5
    res = client.post("/search", data={"text": state.item_texts[pos], "k": 3})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["query"]["text"] == state.item_texts[pos]
    assert body["results"][0]["item"]["id"] == state.item_ids[pos]


@pytest.mark.parametrize("column", ["images", "audio"])
def test_search_by_uploaded_media_finds_the_item(client, state, column):
    pos = single_image_item(state)
    name, data = file_bytes(state, pos, column)
    res = client.post("/search", files={"file": (name, data)}, data={"k": "3"})
    assert res.status_code == 200, res.text
    body = res.json()
    modality = "image" if column == "images" else "audio"
    assert body["query"] == {modality: name}
    assert body["results"][0]["item"]["id"] == state.item_ids[pos]


def test_search_rejects_bad_input(client):
    res = client.post("/search", data={"k": "3"})
    assert res.status_code == 422 and "text query" in res.json()["error"]
    res = client.post("/search", files={"file": ("notes.txt", b"hello")})
    assert res.status_code == 415 and "not a supported file type" in res.json()["error"]
    res = client.post("/search", files={"file": ("broken.png", b"\x89PNG not really")})
    assert res.status_code == 422 and "rejected" in res.json()["error"]
    res = client.post("/search", data={"text": "x" * 3000})
    assert res.status_code == 422 and "limit" in res.json()["error"]
    res = client.post("/search", data={"text": "hello", "k": "500"})
    assert res.status_code == 422 and "'k'" in res.json()["error"]


def test_upload_and_request_size_limits(artifacts, state):
    limits = ServeLimits(max_upload_bytes=2000, max_request_bytes=500_000)
    small = create_app(state=type(state)(state.artifacts, limits=limits), token="")
    pos = single_image_item(state)
    name, data = file_bytes(state, pos, "audio")
    assert len(data) > 2000
    with TestClient(small) as c:
        res = c.post("/search", files={"file": (name, data)})
        assert res.status_code == 413 and "upload limit" in res.json()["error"]
        res = c.post("/search", files={"file": ("big.wav", b"0" * 600_000)})
        assert res.status_code == 413 and "larger than the limit" in res.json()["error"]


# -- writes -----------------------------------------------------------------------------------
def test_feedback_moves_recommendations_without_retraining(client, state):
    user = a_user(state)
    url = f"/users/{user}/recommendations"
    before = [r["item"]["id"] for r in client.get(url, params={"k": 5}).json()["results"]]
    old_vec = state.user_vector(user).copy()
    liked = before[0]
    res = client.post(f"/users/{user}/feedback", json={"item_id": liked, "weight": 3})
    assert res.status_code == 200 and res.json() == {"user_id": user, "item_id": liked,
                                                     "n_feedback": 1, "new_user": False}
    after = [r["item"]["id"] for r in client.get(url, params={"k": 5}).json()["results"]]
    assert liked not in after
    new_vec = state.user_vector(user)
    assert not np.allclose(old_vec, new_vec)
    # the new vector is the model's fold-in of the training history plus the feedback
    row = state.user_row[user]
    history = state.model.interactions[row].toarray()
    history[0, state.item_pos[liked]] += 3
    views = {m: type(v)(v.vectors[row: row + 1], v.present[row: row + 1])
             for m, v in state.artifacts.embeddings["users"].items()}
    want = state.model.fold_in(sp.csr_matrix(history), views)[0]
    np.testing.assert_allclose(new_vec, want, atol=1e-5)


def test_feedback_creates_a_new_user(client, state):
    assert client.get("/users/newcomer/recommendations").status_code == 404
    liked = state.item_ids[7]
    res = client.post("/users/newcomer/feedback", json={"item_id": liked})
    assert res.status_code == 200 and res.json()["new_user"] is True
    recs = client.get("/users/newcomer/recommendations", params={"k": 3}).json()["results"]
    ids = [r["item"]["id"] for r in recs]
    assert liked not in ids
    nearest = client.get(f"/items/{liked}/similar", params={"k": 1}).json()["results"][0]
    assert ids[0] == nearest["item"]["id"]  # one liked item: its nearest neighbour comes first
    assert "newcomer" in [u["id"] for u in client.get("/users", params={"limit": 500})
                          .json()["users"]]


def test_feedback_validation(client, state):
    user = a_user(state)
    assert client.post(f"/users/{user}/feedback", json={"item_id": "nope"}).status_code == 404
    res = client.post(f"/users/{user}/feedback", json={"item_id": state.item_ids[0],
                                                       "weight": -1})
    assert res.status_code == 422 and "weight" in res.json()["error"]
    res = client.post(f"/users/{user}/feedback", json={})
    assert res.status_code == 422 and "'item_id': is required" in res.json()["error"]
    res = client.post("/users/bad%20id!/feedback", json={"item_id": state.item_ids[0]})
    assert res.status_code == 422 and "user ids" in res.json()["error"]


def test_write_endpoints_need_the_token(artifacts, monkeypatch):
    monkeypatch.setenv("FUSEREC_TOKEN", TOKEN)
    guarded = create_app(artifacts)  # token from the environment
    with TestClient(guarded) as c:
        item = c.get("/items", params={"limit": 1}).json()["items"][0]["id"]
        body = {"item_id": item}
        res = c.post("/users/someone/feedback", json=body)
        assert res.status_code == 401 and "token" in res.json()["error"]
        assert res.headers["www-authenticate"] == "Bearer"
        res = c.post("/users/someone/feedback", json=body,
                     headers={"Authorization": "Bearer wrong"})
        assert res.status_code == 401
        assert c.post("/items", data={"id": "x"}).status_code == 401
        res = c.post("/users/someone/feedback", json=body,
                     headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200
        assert c.get("/health").json()["write_requires_token"] is True
        assert c.get("/users/someone/recommendations").status_code == 200  # reads stay open


def test_add_item_while_serving(client, state):
    pos = single_image_item(state)
    img_name, img = file_bytes(state, pos, "images")
    wav_name, wav = file_bytes(state, pos, "audio")
    fields = {"title": "Brand new thing", "description": "Freshly added while serving.",
              "year": 2024, "attr_price": 9.5}
    res = client.post("/items", data={"id": "item_new", "fields": json.dumps(fields)},
                      files=[("images", (img_name, img)), ("audio", (wav_name, wav))])
    assert res.status_code == 201, res.text
    item = res.json()
    assert item["id"] == "item_new" and item["title"] == "Brand new thing"
    assert item["attributes"] == {"price": "9.5", "year": "2024"}
    assert client.get("/items/item_new").status_code == 200
    assert client.get(item["images"][0]).content == img
    assert client.get(item["audio"][0]).status_code == 200
    assert state.index.ntotal == state.n_items
    # indexed: a search with its text finds it, and it is similar to the item it copies
    found = client.post("/search", data={"text": state.item_texts[-1], "k": 1}).json()
    assert found["results"][0]["item"]["id"] == "item_new"
    similar = client.get("/items/item_new/similar", params={"k": 3}).json()["results"]
    assert len(similar) == 3
    new_pos = state.item_pos["item_new"]
    for m in ("image", "audio"):  # same files, same encoders: the same blocks as the original
        sl = state.model.fuser.block_slices()[m]
        np.testing.assert_allclose(state.vectors[new_pos, sl], state.vectors[pos, sl], atol=1e-5)
    # filters see the new attributes; feedback on it folds in
    years = client.get("/items", params={"filter": "year==2024", "limit": 200}).json()
    assert "item_new" in [i["id"] for i in years["items"]]
    res = client.post("/users/fan/feedback", json={"item_id": "item_new"})
    assert res.status_code == 200
    assert client.get("/users/fan/recommendations", params={"k": 2}).status_code == 200
    dup = client.post("/items", data={"id": "item_new", "fields": json.dumps(fields)})
    assert dup.status_code == 409 and "already exists" in dup.json()["error"]


def test_add_item_rejects_bad_input(client, state):
    root = state.catalog_root
    res = client.post("/items", data={"id": "bad_img"},
                      files=[("images", ("x.jpg", b"\xff\xd8\xff not a jpeg"))])
    assert res.status_code == 422 and "rejected" in res.json()["error"]
    assert not (root / "uploads" / "bad_img").exists()
    res = client.post("/items", data={"id": "bad_field", "fields": json.dumps({"colour": "red"})})
    assert res.status_code == 422 and "unknown fields" in res.json()["error"]
    res = client.post("/items", data={"id": "bad_json", "fields": "{nope"})
    assert res.status_code == 422 and "JSON" in res.json()["error"]
    _, wav = file_bytes(state, single_image_item(state), "audio")
    res = client.post("/items", data={"id": "swapped"}, files=[("images", ("a.wav", wav))])
    assert res.status_code == 422 and "sent as image" in res.json()["error"]
    res = client.post("/items", data={"id": "empty"})
    assert res.status_code == 422 and "needs at least" in res.json()["error"]
    res = client.post("/items", data={"id": "../escape", "fields": '{"title": "x"}'})
    assert res.status_code == 422 and "item ids" in res.json()["error"]
    assert "empty" not in state.item_pos and "bad_img" not in state.item_pos


def test_media_is_served_only_for_catalog_files(client, state):
    rel = state.item_media[0]["images"][0]
    res = client.get(f"/media/{rel}")
    assert res.status_code == 200 and res.headers["content-type"].startswith("image/")
    assert res.content == (state.catalog_root / rel).read_bytes()
    for path in ("/media/items.csv", "/media/truth.json", "/media/images/../items.csv",
                 "/media/%2e%2e/%2e%2e/etc/passwd", "/media//etc/passwd",
                 "/media/images%2f..%2f..%2fmanifest.json"):
        res = client.get(path)
        assert res.status_code == 404, path
        assert "root:" not in res.text


def test_page_docs_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "fuserec" in page.text and "app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/users/{user_id}/recommendations", "/items/{item_id}", "/items/{item_id}/similar",
              "/search", "/users/{user_id}/feedback", "/items", "/health"):
        assert p in paths


def test_cli_has_serve():
    from typer.testing import CliRunner

    from fuserec.cli import app as cli

    res = CliRunner().invoke(cli, ["serve", "--help"])
    assert res.exit_code == 0 and "--artifacts" in res.output and "--token" in res.output


def test_other_indexes_serve_the_same(artifacts, state):
    user = a_user(state)
    ids = {}
    for kind in ("exact", "faiss", "usearch"):
        with TestClient(create_app(artifacts, token="", index=kind)) as c:
            res = c.get(f"/users/{user}/recommendations", params={"k": 5}).json()["results"]
            ids[kind] = [r["item"]["id"] for r in res]
    assert ids["exact"] == ids["faiss"] == ids["usearch"]


# -- real encoders ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def demo_artifacts(tmp_path_factory):
    from rich.console import Console

    from fuserec.data.synthetic import DemoCatalogSpec
    from fuserec.pipeline import PipelineConfig, run_demo

    out = tmp_path_factory.mktemp("demo_serve")
    run_demo(out, DemoCatalogSpec(n_items=40, n_users=20), PipelineConfig(progress=False),
             Console(quiet=True))
    return out / "artifacts"


@pytest.mark.slow
def test_real_encoders_search_and_add(demo_artifacts):
    app = create_app(demo_artifacts, token="")
    state = app.state.serving
    with TestClient(app) as c:
        assert c.get("/health").json()["modalities"] == ["text", "image", "audio"]
        pos = single_image_item(state)
        res = c.post("/search", data={"text": state.item_texts[pos], "k": 3}).json()
        assert res["results"][0]["item"]["id"] == state.item_ids[pos]
        name, data = file_bytes(state, pos, "images")
        res = c.post("/search", files={"file": (name, data)}, data={"k": "3"}).json()
        assert res["results"][0]["item"]["id"] == state.item_ids[pos]
        name, data = file_bytes(state, pos, "audio")
        res = c.post("/search", files={"file": (name, io.BytesIO(data))}, data={"k": "3"})
        assert res.json()["results"][0]["item"]["id"] == state.item_ids[pos]
        res = c.post("/items", data={"id": "real_new", "fields": json.dumps(
            {"title": "A new piece", "description": state.item_texts[pos]})},
            files=[("images", (name.replace(".wav", ".jpg"),
                               (state.catalog_root / state.item_media[pos]["images"][0])
                               .read_bytes()))])
        assert res.status_code == 201, res.text
        recs = c.get(f"/users/{next(iter(state.user_row))}/recommendations",
                     params={"k": 5, "explain": True, "diversity": 0.3})
        assert recs.status_code == 200 and len(recs.json()["results"]) == 5


# -- the journal: writes survive a restart ---------------------------------------------------
def _restarted(artifacts, journal):
    return TestClient(create_app(artifacts, token="", journal=journal))


def test_journal_replays_feedback_and_new_items_after_a_restart(artifacts, tmp_path):
    journal = tmp_path / "live" / "journal.jsonl"
    with _restarted(artifacts, journal) as first:
        state = first.app.state.serving
        pos = single_image_item(state)
        img_name, img = file_bytes(state, pos, "images")
        fields = {"title": "Kept across restarts", "description": "Added, then restarted."}
        res = first.post("/items", data={"id": "item_kept", "fields": json.dumps(fields)},
                         files=[("images", (img_name, img))])
        assert res.status_code == 201, res.text
        user = a_user(state)
        for u, item in ((user, "item_kept"), ("returning", "item_kept"),
                        ("returning", state.item_ids[3])):
            assert first.post(f"/users/{u}/feedback", json={"item_id": item}).status_code == 200
        want = {u: first.get(f"/users/{u}/recommendations", params={"k": 5}).json()
                for u in (user, "returning")}
        vectors = state.vectors.copy()
    assert len(journal.read_text().splitlines()) == 4

    with _restarted(artifacts, journal) as second:
        again = second.app.state.serving
        assert again.replayed == {"feedback": 3, "items": 1}
        np.testing.assert_allclose(again.vectors, vectors, atol=1e-6)
        assert again.index.ntotal == again.n_items
        for u, body in want.items():
            got = second.get(f"/users/{u}/recommendations", params={"k": 5}).json()
            assert [r["item"]["id"] for r in got["results"]] == \
                [r["item"]["id"] for r in body["results"]]
        assert "item_kept" not in [r["item"]["id"] for r in got["results"]]  # seen before
        found = second.post("/search", data={"text": "Kept across restarts", "k": 1}).json()
        assert found["results"][0]["item"]["id"] == "item_kept"
        assert second.get(found["results"][0]["item"]["images"][0]).content == img


def test_journal_skips_a_torn_last_line_and_names_a_damaged_one(artifacts, tmp_path):
    from fuserec.serve.journal import JournalError
    from fuserec.serve.state import ServingState

    journal = tmp_path / "journal.jsonl"
    with _restarted(artifacts, journal) as c:
        item = c.app.state.serving.item_ids[0]
        assert c.post("/users/solo/feedback", json={"item_id": item}).status_code == 200
    good = journal.read_text()
    journal.write_text(good + '{"event":"feedback","user":"solo","ite')  # crash mid-write
    with pytest.warns(UserWarning, match="line 2 is an unfinished write"):
        state = ServingState.from_folder(artifacts, journal=journal)
    assert state.replayed == {"feedback": 1, "items": 0}

    journal.write_text('{"event":"feedback","user":"solo","item":"no_such_item",'
                       '"weight":1.0}\n' + good)
    with pytest.raises(JournalError, match=r"journal.jsonl: line 1: .*no_such_item"):
        ServingState.from_folder(artifacts, journal=journal)
    journal.write_text("not json\n" + good)
    with pytest.raises(JournalError, match="line 1 is not valid JSON"):
        ServingState.from_folder(artifacts, journal=journal)

