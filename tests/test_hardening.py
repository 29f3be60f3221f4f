"""Reproductions of faults found in the HTTP service and the loaders, each shown fixed: a torn
journal tail, deeply nested JSON, slow filters, pickle memory bombs and protocols, loose feedback
weights, user data readable without the token, and API docs that needed a CDN."""

from __future__ import annotations

import json
import pickle
import re
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fuserec.data.adapters import UnsafePickleError, load_sparse_pickle
from fuserec.index.filters import MAX_FILTER_CHARS, FilterError, parse_filter, parse_filters
from fuserec.serve import create_app
from fuserec.serve.app import MAX_FIELDS_CHARS, json_depth
from fuserec.serve.journal import Journal, JournalError
from serve_helpers import build_fake_artifacts, start_server

TOKEN = "hardening-token"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return build_fake_artifacts(tmp_path_factory.mktemp("hardening") / "run")


@pytest.fixture()
def client(artifacts):
    with TestClient(create_app(artifacts, token="")) as c:
        yield c


def _user(state) -> str:
    return min(state.user_row, key=lambda u: len(state.seen_positions(u)))


# -- 1. a torn journal tail is cut off, not glued onto ------------------------------------------
def _events(n: int) -> list[dict]:
    return [{"event": "feedback", "user": f"u{i}", "item": f"i{i}", "weight": 1.0}
            for i in range(n)]


def test_journal_torn_tail_is_cut_before_the_next_append(tmp_path):
    path = tmp_path / "journal.jsonl"
    good = _events(3)
    path.write_text("".join(json.dumps(e) + "\n" for e in good)
                    + '{"event":"feedback","user":"u9","ite')  # crash mid-write
    journal = Journal(path)
    with pytest.warns(UserWarning, match="line 4 is an unfinished write"):
        assert [e for _, e in journal.events()] == good
    assert path.read_bytes().endswith(b"\n")  # the fragment is gone from the file
    new = {"event": "feedback", "user": "later", "item": "i1", "weight": 2.0}
    journal.append(new)
    # a restart: a fresh Journal replays every complete event plus the new one, no error
    again = [e for _, e in Journal(path).events()]
    assert again == [*good, new]
    assert len(path.read_text().splitlines()) == 4


def test_journal_first_append_cuts_a_torn_tail_without_a_replay(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n" + '{"event":"fee')
    new = _events(2)[1]
    Journal(path).append(new)  # no replay ran first
    assert [e for _, e in Journal(path).events()] == [_events(1)[0], new]
    only_fragment = tmp_path / "fragment.jsonl"
    only_fragment.write_text('{"event":')
    Journal(only_fragment).append(new)
    assert [e for _, e in Journal(only_fragment).events()] == [new]


def test_journal_damage_before_the_tail_is_still_an_error_and_left_alone(tmp_path):
    path = tmp_path / "journal.jsonl"
    text = "not json\n" + json.dumps(_events(1)[0]) + "\n" + '{"torn'
    path.write_text(text)
    with pytest.raises(JournalError, match="line 1 is not valid JSON"):
        list(Journal(path).events())
    assert path.read_text() == text  # nothing is truncated when replay fails


def test_journal_syncs_its_folder_when_it_creates_the_file(tmp_path, monkeypatch):
    import fuserec.serve.journal as journal_module

    synced: list[Path] = []
    real = journal_module._fsync_dir
    monkeypatch.setattr(journal_module, "_fsync_dir", lambda d: (synced.append(d), real(d)))
    journal = Journal(tmp_path / "sub" / "journal.jsonl")
    journal.append(_events(1)[0])
    assert synced == [tmp_path / "sub"]
    journal.append(_events(2)[1])
    assert synced == [tmp_path / "sub"]  # not again for an existing file
    (tmp_path / "sub" / "journal.jsonl").write_text('{"event":"feedback"}\n{"to')
    with pytest.warns(UserWarning):
        list(Journal(tmp_path / "sub" / "journal.jsonl").events())
    assert synced == [tmp_path / "sub"] * 2  # the truncation is synced too


def test_server_restarts_twice_after_a_torn_journal(artifacts, tmp_path):
    path = tmp_path / "journal.jsonl"
    with TestClient(create_app(artifacts, token="", journal=path)) as c:
        item = c.app.state.serving.item_ids[0]
        assert c.post("/users/solo/feedback", json={"item_id": item}).status_code == 200
    path.write_text(path.read_text() + '{"event":"feedback","user":"solo","ite')
    with pytest.warns(UserWarning, match="unfinished write"):
        restarted = create_app(artifacts, token="", journal=path)
    with TestClient(restarted) as c:
        second = c.app.state.serving.item_ids[1]
        assert c.post("/users/solo/feedback", json={"item_id": second}).status_code == 200
    with TestClient(create_app(artifacts, token="", journal=path)) as c:  # used to fail
        assert c.app.state.serving.replayed == {"feedback": 2, "items": 0}


# -- 2. deeply nested JSON in POST /items -------------------------------------------------------
def test_deeply_nested_fields_are_422_not_500(client):
    res = client.post("/items", data={"id": "deep", "fields": "[" * 5000 + "]" * 5000})
    assert res.status_code == 422, res.text
    assert "nested" in res.json()["error"] and "fields" in res.json()["error"]
    res = client.post("/items", data={"id": "deep", "fields": '{"a":' * 5000 + "1" + "}" * 5000})
    assert res.status_code == 422 and "nested" in res.json()["error"]
    assert "deep" not in client.app.state.serving.item_pos


def test_oversized_fields_are_422(client):
    res = client.post("/items", data={"id": "big", "fields": json.dumps(
        {"title": "x" * (MAX_FIELDS_CHARS + 1)})})
    assert res.status_code == 422 and "limit" in res.json()["error"]


def test_json_depth_is_linear_and_ignores_brackets_in_strings():
    assert json_depth('{"a": [1, {"b": 2}]}', 16) == 3
    assert json_depth('{"title": "[[[[{{{{ \\"]]]] [[["}', 16) == 1
    assert json_depth("[" * 100_000, 16) == 17  # stops as soon as it passes the limit
    t0 = time.perf_counter()
    assert json_depth('"' + "[" * 60_000 + '"', 16) == 0
    assert time.perf_counter() - t0 < 0.5


def test_brackets_inside_field_strings_are_accepted(client):
    fields = {"title": "Brackets [[[[ {{{{", "description": "]]]] }}}} \\\" [" * 20}
    res = client.post("/items", data={"id": "item_brackets", "fields": json.dumps(fields)})
    assert res.status_code == 201, res.text
    assert res.json()["title"] == fields["title"]


# -- 3. filters: bounded length, linear parsing -------------------------------------------------
def test_long_whitespace_filter_is_refused_fast():
    text = " " * 100_000
    for f in (lambda: parse_filter(text), lambda: parse_filters([text]),
              lambda: parse_filter("year>=" + text + "1")):
        t0 = time.perf_counter()
        with pytest.raises(FilterError, match=f"at most {MAX_FILTER_CHARS} characters"):
            f()
        assert time.perf_counter() - t0 < 0.05


def _asgi_get(app, path: str, query: bytes) -> tuple[int, dict]:
    """One GET straight through the ASGI app (httpx refuses URLs over 64 KiB client-side)."""
    import anyio

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "headers": [(b"host", b"testserver")],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    anyio.run(app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_long_whitespace_filter_is_422_through_http_fast(client):
    client.get("/items", params={"limit": 1})  # warm up
    for text in (" " * 60_000, "year==" + " " * 60_000 + "x"):
        t0 = time.perf_counter()
        res = client.get("/items", params={"filter": text, "limit": 1})
        elapsed = time.perf_counter() - t0
        assert res.status_code == 422 and "at most 512 characters" in res.json()["error"]
        assert elapsed < 0.5  # the quadratic regex took 3.6 s on 32k characters
    for query in (b"filter=" + b"+" * 100_000, b"filter=year%3D%3D" + b"%20" * 100_000 + b"x"):
        t0 = time.perf_counter()
        status, body = _asgi_get(client.app, "/items", query + b"&limit=1")
        elapsed = time.perf_counter() - t0
        assert status == 422 and "at most 512 characters" in body["error"]
        # linear parsing answers in milliseconds; the bound leaves room for a loaded machine
        # and still fails the quadratic parse (seconds at this length)
        assert elapsed < 0.5


def test_a_500_character_filter_parses_fast_and_right():
    text = "  year  >=" + " " * 480 + "2000   "
    assert len(text) <= MAX_FILTER_CHARS
    t0 = time.perf_counter()
    for _ in range(100):
        f = parse_filter(text)
    assert (time.perf_counter() - t0) / 100 < 0.001
    assert (f.column, f.op, f.value) == ("attr_year", ">=", "2000")
    g = parse_filter("category = 'rock'" + " " * 400)
    assert (g.column, g.op, g.value) == ("attr_category", "==", "rock")
    for bad in ("1year>=2", "year", "year>=", ">=2", "year ~ 2"):
        with pytest.raises(FilterError, match="cannot read filter"):
            parse_filter(bad)


# -- 4. the restricted unpickler: every protocol, no memory bombs, the file named -------------
def _small_csr() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    return sp.random(30, 20, density=0.15, format="csr", random_state=rng, dtype=np.float32)


@pytest.mark.parametrize("protocol", range(6))
def test_every_pickle_protocol_loads_a_csr_matrix(tmp_path, protocol):
    m = _small_csr()
    path = tmp_path / f"m{protocol}.pkl"
    path.write_bytes(pickle.dumps(m, protocol=protocol))
    loaded = load_sparse_pickle(path)
    assert sp.isspmatrix_csr(loaded) and loaded.shape == m.shape and loaded.dtype == m.dtype
    np.testing.assert_array_equal(loaded.toarray(), m.toarray())
    loaded.data[:] = 1  # writable, as callers binarize in place


@pytest.mark.parametrize("protocol", range(6))
def test_empty_matrices_load_at_every_protocol(tmp_path, protocol):
    path = tmp_path / "empty.pkl"
    for m in (sp.csr_matrix((4, 3)), sp.coo_matrix((0, 0)), sp.lil_matrix((2, 2))):
        path.write_bytes(pickle.dumps(m, protocol=protocol))
        loaded = load_sparse_pickle(path)
        assert loaded.shape == m.shape and loaded.nnz == 0


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok", "csr_array", "coo_array"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_other_admitted_formats_load_at_any_protocol(tmp_path, fmt, protocol):
    m = _small_csr()
    obj = {"csr_array": sp.csr_array, "coo_array": sp.coo_array}[fmt](m) \
        if fmt.endswith("_array") else m.asformat(fmt)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(load_sparse_pickle(path).toarray(), m.toarray())


class _Reduce:
    """Pickles as ``func(*args)`` (plus an optional BUILD state): hand-made hostile pickles."""

    def __init__(self, func, args, state=None):
        self.value = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.value


def _refused_quickly(path: Path, match: str) -> str:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(UnsafePickleError, match=match) as info:
            load_sparse_pickle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB allocated while refusing"
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_a_sparse_memory_bomb_is_refused_without_allocating(tmp_path):
    bomb = sp.coo_matrix(([1.0], ([0], [0])), shape=(10**9, 10**9))  # cheap as COO
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps(bomb))
    assert path.stat().st_size < 500  # ~360 bytes; CSR of it needed 3.7 GiB
    message = _refused_quickly(path, "budget")
    assert "1000000000" in message
    csr = _small_csr()
    csr._shape = (10**9, 10**9)  # declared shape inconsistent with the index pointer
    path.write_bytes(pickle.dumps(csr))
    _refused_quickly(path, "index pointer")


def test_calling_a_sparse_class_or_ndarray_from_a_pickle_is_refused(tmp_path):
    from numpy._core import multiarray

    path = tmp_path / "call.pkl"
    cases = [
        (_Reduce(sp.csr_matrix, ((10**9, 10**9),)), "refusing to call csr_matrix"),
        (_Reduce(np.ndarray, ((10**5, 10**5),)), "refusing to call numpy.ndarray"),
        (_Reduce(multiarray._reconstruct, (np.ndarray, (10**9,), b"b")), "non-empty shape"),
        (_Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (10**8,), np.dtype("f8"), False, b"abc")), "holds 3 bytes"),
        (_Reduce(bytes, (10**9,)), "only allowed without arguments"),
        (_Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (10**8,), np.dtype(object), False, [])), "declares 100000000 elements"),
        (_Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                 (1, (10**10,), np.dtype("f8"), False, b"")), "over the budget"),
    ]
    for obj, match in cases:
        path.write_bytes(pickle.dumps(obj, protocol=2))
        _refused_quickly(path, match)


def test_out_of_bounds_indices_are_refused(tmp_path):
    m = _small_csr()
    m.indices[0] = 10**6
    path = tmp_path / "oob.pkl"
    path.write_bytes(pickle.dumps(m))
    _refused_quickly(path, "outside the declared shape")
    coo = _small_csr().tocoo()
    coo.coords = (coo.row, coo.col.copy())
    coo.coords[1][0] = -1
    path.write_bytes(pickle.dumps(coo))
    _refused_quickly(path, "outside the declared shape")


def test_a_small_memory_budget_is_honoured(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_small_csr()))
    with pytest.raises(UnsafePickleError, match=re.escape(str(path))):
        load_sparse_pickle(path, max_bytes=100)
    assert load_sparse_pickle(path, max_bytes=2**20).nnz == _small_csr().nnz


def test_refusals_and_damage_name_the_file_in_one_line(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Reduce(eval, ("1+1",))))
    message = _refused_quickly(path, "builtins.eval")
    assert message.startswith(f"{path}: refusing to load global")
    path.write_bytes(pickle.dumps(_small_csr())[:-30])  # truncated
    _refused_quickly(path, "not a readable sparse matrix pickle")


# -- 5. strict feedback weights -----------------------------------------------------------------
@pytest.mark.parametrize("weight", [True, False, "1", "2.5", None, [1]])
def test_feedback_weight_refuses_booleans_and_strings(client, weight):
    state = client.app.state.serving
    res = client.post(f"/users/{_user(state)}/feedback",
                      json={"item_id": state.item_ids[0], "weight": weight})
    assert res.status_code == 422, res.text
    assert "weight" in res.json()["error"]


@pytest.mark.parametrize("weight", [1, 2.5, 100])
def test_feedback_weight_takes_numbers(client, weight):
    state = client.app.state.serving
    res = client.post("/users/weighed/feedback",
                      json={"item_id": state.item_ids[0], "weight": weight})
    assert res.status_code == 200, res.text


# -- 6. read-access policy ----------------------------------------------------------------------
USER_READS = ("/users", "/users/{u}", "/users/{u}/recommendations")


def test_user_reads_need_the_token_without_public_reads(artifacts):
    with TestClient(create_app(artifacts, token=TOKEN, public_reads=False)) as c:
        user = _user(c.app.state.serving)
        item = c.app.state.serving.item_ids[0]
        for path in USER_READS:
            res = c.get(path.format(u=user))
            assert res.status_code == 401, path
            assert "token" in res.json()["error"] and res.headers["www-authenticate"] == "Bearer"
            assert c.get(path.format(u=user), headers={"Authorization": "Bearer nope"}
                         ).status_code == 401
            ok = c.get(path.format(u=user), headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200, path
        for path in ("/health", "/items", f"/items/{item}", f"/items/{item}/similar", "/",
                     "/docs", "/openapi.json"):
            assert c.get(path).status_code == 200, path  # the catalog stays public
        assert c.post("/search", data={"text": "anything"}).status_code == 200
        health = c.get("/health").json()
        assert health["reads_require_token"] is True and health["write_requires_token"] is True


def test_public_reads_and_no_token_leave_user_reads_open(artifacts):
    for kwargs in ({"token": TOKEN, "public_reads": True}, {"token": TOKEN},
                   {"token": "", "public_reads": False}):
        with TestClient(create_app(artifacts, **kwargs)) as c:
            user = _user(c.app.state.serving)
            for path in USER_READS:
                assert c.get(path.format(u=user)).status_code == 200, (kwargs, path)
            assert c.get("/health").json()["reads_require_token"] is False


@pytest.fixture()
def fake_uvicorn(monkeypatch):
    import uvicorn

    monkeypatch.delenv("FUSEREC_TOKEN", raising=False)
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    return calls


def _serve(artifacts, *args):
    from fuserec.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", "--artifacts", str(artifacts), *args])
    return result, " ".join(result.output.split())


def test_cli_refuses_a_public_host_without_a_token(artifacts, fake_uvicorn):
    result, out = _serve(artifacts, "--host", "0.0.0.0")
    assert result.exit_code == 2 and "refusing to serve on 0.0.0.0 without a token" in out
    assert "--public-reads" in out and not fake_uvicorn
    result, out = _serve(artifacts, "--host", "0.0.0.0", "--no-public-reads")
    assert result.exit_code == 2 and not fake_uvicorn


def test_cli_public_reads_serves_openly_with_a_warning(artifacts, fake_uvicorn):
    result, out = _serve(artifacts, "--host", "0.0.0.0", "--public-reads")
    assert result.exit_code == 0, out
    assert "warning: serving on 0.0.0.0 without a token" in out
    assert fake_uvicorn[0]["host"] == "0.0.0.0"


def test_cli_with_a_token_guards_user_reads_by_default(artifacts, fake_uvicorn):
    result, out = _serve(artifacts, "--host", "0.0.0.0", "--token", TOKEN)
    assert result.exit_code == 0, out
    assert "warning" not in out and "write and user endpoints need the token" in out
    with TestClient(fake_uvicorn[0]["app"]) as c:
        assert c.get("/users").status_code == 401
        assert c.get("/health").json()["reads_require_token"] is True
    result, out = _serve(artifacts, "--token", TOKEN, "--public-reads")
    assert result.exit_code == 0, out
    with TestClient(fake_uvicorn[1]["app"]) as c:
        assert c.get("/users").status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_cli_loopback_without_a_token_is_the_quiet_default(artifacts, fake_uvicorn, host):
    result, out = _serve(artifacts, "--host", host)
    assert result.exit_code == 0, out
    assert "warning" not in out and "refusing" not in out
    with TestClient(fake_uvicorn[0]["app"]) as c:  # the web page's calls work as before
        assert c.get("/").status_code == 200 and c.get("/users").status_code == 200


# -- 7. API docs without a CDN ------------------------------------------------------------------
_ASSET = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_only_local_assets(client, page):
    res = client.get(page)
    assert res.status_code == 200 and "text/html" in res.headers["content-type"]
    html = res.text
    assets = _ASSET.findall(html)
    assert assets, html
    remote = [a for a in assets if re.match(r"(?:https?:)?//", a)]
    assert not remote, remote
    assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html
    for url in assets:
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > (1000 if url.endswith((".js", ".css")) else 0), url
    assert any(a.endswith(".js") for a in assets)
    if page == "/docs":
        assert any(a.endswith(".css") for a in assets)
        assert '"validatorUrl": null' in html
        assert "/openapi.json" in html
        assert client.get("/docs/oauth2-redirect").status_code == 200


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
def test_swagger_ui_renders_with_every_outside_request_blocked(artifacts):
    """Swagger UI (5.x, which reads OpenAPI 3.1) draws the operations in a real browser that
    may reach nothing but this server."""


    sync_api = pytest.importorskip("playwright.sync_api")
    url, server, thread = start_server(create_app(artifacts, token=""))
    try:
        outside: list[str] = []

        def only_local(route):
            if route.request.url.startswith(url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.route("**/*", only_local)
                page.goto(f"{url}/docs")
                page.wait_for_selector(".opblock-summary-path", timeout=20_000)
                paths = page.locator(".opblock-summary-path").all_inner_texts()
            finally:
                browser.close()
        assert any("/users/{user_id}/recommendations" in p for p in paths), paths
        assert outside == []
    finally:
        server.should_exit = True
        thread.join(10)
