"""Fault injection and abuse, property-based (Hypothesis, a fixed derandomized profile).

1. Bad HTTP inputs (paths, query parameters, JSON bodies, form fields, uploads) never give a
   5xx or a traceback; every error is a JSON body with an ``error`` field.
2. Bad catalogs (empty/duplicate/odd ids, invalid UTF-8, huge fields, escaping, missing, empty
   and garbage media, bad interactions) load with every good record kept and every bad one
   reported by name; only ``CatalogError`` is raised, and only when no item is left. The CLI's
   ``fuserec validate`` exits 0 or 2 on them, never with a traceback.
3. ``kill -9`` of a server with a journal at random moments loses no acknowledged feedback and
   no acknowledged undo of one (``DELETE /users/{id}/feedback/{item}``).

Every test counts the generated inputs it ran and asserts the count at its end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import psutil
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from fuserec.cli import app as cli_app
from fuserec.data.loaders import load_catalog
from fuserec.data.validate import DROPPED_MEDIA, REJECTED, CatalogError, clean_id
from fuserec.serve import create_app
from serve_helpers import build_fake_artifacts

TESTS = Path(__file__).resolve().parent

settings.register_profile(
    "fuserec-abuse", deadline=None, derandomize=True, database=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.large_base_example])
ABUSE = settings.get_profile("fuserec-abuse")

#: generated inputs run, by test (each test asserts its own count at its end)
COUNTS: Counter[str] = Counter()
#: minimum inputs per test; together well over 500
N_PATHS, N_QUERIES, N_FEEDBACK, N_ITEMS, N_SEARCH = 150, 150, 150, 100, 60
#: kill cycles of the server; with 4 of ``fuserec run`` (test_one_system) and 1 of ``fuserec
#: encode`` (test_portability) the suite kills 20 processes, a few seconds per cycle
N_CATALOGS, N_CLI, N_KILL_CYCLES = 80, 10, 15


# -- shared strategies ------------------------------------------------------------------------
def _chars(*exclude: str) -> st.SearchStrategy[str]:
    return st.characters(blacklist_categories=("Cs", *exclude))  # no lone surrogates


TEXT = st.text(alphabet=_chars(), max_size=40)
LONG_TEXT = st.integers(129, 5000).flatmap(
    lambda n: st.sampled_from(["x", "ü", "😀", "a/", ".", "%"]).map(lambda c: c * n))
ODD_SEGMENTS = st.sampled_from([
    "..", ".", "...", "%2e%2e", "%2F", "a b", "ü", "😀", "\x00", "\t", "%", "?", "#", "&", "\\",
    "item_0001", "user_0001", "popular", "item_0001\x00", " item_0001", "item_0001 ",
    "<script>", "' OR 1=1 --", "${jndi:x}", "{{7*7}}", "NaN", "-1", "0", "1e999",
])
IDS = st.one_of(TEXT, ODD_SEGMENTS, LONG_TEXT)
NUMBERS = st.one_of(st.integers(), st.integers(-(10**40), 10**40),
                    st.floats(allow_nan=True, allow_infinity=True))
PARAM = st.one_of(TEXT, NUMBERS.map(str), st.sampled_from(
    ["", " ", "nan", "NaN", "inf", "-inf", "1e999", "-0", "0x10", "1_000", "true", "None",
     "10" * 40, "٣", "１０"]))
FILTER = st.one_of(
    TEXT,
    st.tuples(st.sampled_from(["year", "price", "attr_year", "attr_price", "color", "", "1x",
                               "year year", "attr_", "__class__"]),
              st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "=", "", "=>", "~", "in"]),
              PARAM).map("".join),
    st.integers(500, 3000).map(lambda n: "year>=" + "9" * n),
)
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**300), 10**300),
    st.floats(allow_nan=True, allow_infinity=True), TEXT,
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "nan", "0x10", "", "item_0001"]))
JSON = st.recursive(JSON_LEAF, lambda c: st.lists(c, max_size=4)
                    | st.dictionaries(TEXT, c, max_size=4), max_leaves=12)


def _deep(n: int, kind: str) -> str:
    return ("[" * n + "]" * n) if kind == "list" else ('{"a":' * n + "1" + "}" * n)


DEEP_JSON = st.tuples(st.integers(17, 200_000), st.sampled_from(["list", "dict"])).map(
    lambda t: _deep(*t))


# -- 1. HTTP ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return build_fake_artifacts(tmp_path_factory.mktemp("abuse") / "run")


@pytest.fixture(scope="module")
def client(artifacts):
    app = create_app(artifacts, token="")
    with TestClient(app, raise_server_exceptions=False) as c:
        c.state = app.state.serving  # type: ignore[attr-defined]
        yield c


STATUSES: Counter[int] = Counter()


def check(resp: httpx.Response, what: str) -> None:
    """No 5xx, no traceback, and every error is JSON with an ``error`` field."""
    STATUSES[resp.status_code] += 1
    text = resp.text
    assert resp.status_code < 500, f"{what} -> {resp.status_code}: {text[:500]}"
    assert "Traceback" not in text, f"{what} -> {text[:500]}"
    if resp.status_code >= 400 and resp.request.method != "HEAD":  # HEAD: no body at all
        try:
            body = resp.json()
        except ValueError:
            pytest.fail(f"{what} -> {resp.status_code} with a body that is not JSON: {text[:300]}")
        assert isinstance(body, dict) and isinstance(body.get("error"), str), \
            f"{what} -> {resp.status_code}: {text[:300]}"
        assert body.get("status") == resp.status_code


def seg(text: str) -> str:
    return quote(text, safe="")


def test_fuzzed_path_ids_never_fail(client):
    start = COUNTS["paths"]
    templates = ["/items/{}", "/items/{}/similar", "/users/{}", "/users/{}/recommendations",
                 "/media/{}", "/media/images/{}", "/{}", "/items/{}/{}"]

    @settings(ABUSE, max_examples=N_PATHS)
    @given(template=st.sampled_from(templates), a=IDS, b=IDS,
           method=st.sampled_from(["GET", "GET", "GET", "POST", "DELETE", "PUT", "HEAD"]))
    def run(template, a, b, method):
        COUNTS["paths"] += 1
        url = template.format(seg(a), seg(b))
        check(client.request(method, url), f"{method} {url[:200]}")

    run()
    assert COUNTS["paths"] - start >= N_PATHS


def test_fuzzed_query_parameters_never_fail(client):
    start = COUNTS["queries"]
    state = client.state
    user, item = next(iter(state.user_row)), state.item_ids[0]
    endpoints = ["/items", "/items/popular", f"/items/{item}/similar", "/users",
                 f"/users/{user}/recommendations", "/attributes", "/health"]
    names = ["k", "diversity", "filter", "offset", "limit", "explain"]

    @settings(ABUSE, max_examples=N_QUERIES)
    @given(endpoint=st.sampled_from(endpoints),
           params=st.dictionaries(st.sampled_from(names), PARAM, max_size=5),
           filters=st.lists(FILTER, max_size=4))
    def run(endpoint, params, filters):
        COUNTS["queries"] += 1
        query = [(k, v) for k, v in params.items()] + [("filter", f) for f in filters]
        check(client.get(endpoint, params=query), f"GET {endpoint} {query!r:.300}")

    run()
    assert COUNTS["queries"] - start >= N_QUERIES
    assert STATUSES[200] and STATUSES[422]  # the fuzz reached the handlers, not just the router


def test_fuzzed_feedback_bodies_never_fail(client):
    start = COUNTS["feedback"]
    items = client.state.item_ids[:5]
    body = st.one_of(
        JSON.map(lambda v: json.dumps(v)),  # NaN and Infinity as Python writes them
        st.fixed_dictionaries(
            {"item_id": st.one_of(st.sampled_from(items), JSON)},
            optional={"weight": st.one_of(NUMBERS, JSON), "extra": JSON},
        ).map(lambda v: json.dumps(v)),
        st.tuples(st.sampled_from(items), st.sampled_from(
            ["1e999", "-1e999", "NaN", "1" * 5000, "1" * 4301, "0." + "0" * 5000 + "1",
             "true", '"2"', "null", "[]", "1e-400", "-0.0", "100.0000001", "9" * 400])
        ).map(lambda t: f'{{"item_id": "{t[0]}", "weight": {t[1]}}}'),
        DEEP_JSON,
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    )

    @settings(ABUSE, max_examples=N_FEEDBACK)
    @given(user=st.one_of(st.sampled_from(["fz_user", "user_0001"]), IDS), body=body,
           content_type=st.sampled_from(["application/json", "application/json",
                                         "text/plain", "application/x-www-form-urlencoded",
                                         None]))
    def run(user, body, content_type):
        COUNTS["feedback"] += 1
        headers = {"content-type": content_type} if content_type else {}
        url = f"/users/{seg(user)}/feedback"
        resp = client.post(url, content=body.encode("utf-8", "surrogatepass"), headers=headers)
        check(resp, f"POST {url[:100]} {body[:200]!r}")

    run()
    assert COUNTS["feedback"] - start >= N_FEEDBACK


#: a valid item but for one odd attribute value (JSON NaN, Infinity, huge numbers...)
ODD_ATTRIBUTES = st.tuples(
    st.sampled_from(["year", "price", "attr_year", "attr_price"]),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308, -0.0, 10**400, True,
                     "1e999", "-inf", [], {}, None, "", 2024]),
).map(lambda t: json.dumps({"title": "odd number", t[0]: t[1]}))
FIELD_KEYS = st.one_of(st.sampled_from(["title", "description", "attr_year", "year", "price",
                                        "attr_price", "images", "id", "attr_"]), TEXT)
FIELDS = st.one_of(
    TEXT,
    JSON.map(json.dumps),
    st.dictionaries(FIELD_KEYS, JSON, max_size=4).map(json.dumps),
    st.dictionaries(st.sampled_from(["title", "description"]), TEXT, min_size=1).map(json.dumps),
    st.fixed_dictionaries({"title": TEXT}, optional={
        "year": st.one_of(NUMBERS, TEXT), "price": JSON}).map(json.dumps),
    DEEP_JSON,
    st.integers(16, 200).map(lambda n: json.dumps({"title": "x" * (70_000 - n)})),
)
UPLOAD = st.tuples(
    st.one_of(st.sampled_from(["a.png", "b.jpg", "c.wav", "d.mp3", "e.txt", "", ".png",
                               "../../x.png", "/etc/passwd.png", "f.PNG", "noext", "a\x00.png"]),
              TEXT),
    st.one_of(st.binary(max_size=300),
              st.sampled_from([b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,
                               b"RIFF\xff\xff\xff\x7fWAVE", b"GIF89a" + b"\xff" * 20])),
)


def test_fuzzed_new_items_never_fail(client):
    start = COUNTS["items"]

    fresh = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1,
                    max_size=20).map(lambda s: f"new_{s}")

    any_id = st.one_of(fresh, fresh, st.sampled_from(["item_0001", "", "-", ".."]), IDS)
    uploads = st.one_of(st.just([]), st.lists(
        st.tuples(st.sampled_from(["images", "audio"]), UPLOAD), min_size=1, max_size=3))
    anything = st.tuples(any_id, st.one_of(st.none(), FIELDS), uploads)
    odd_but_valid = st.tuples(fresh, ODD_ATTRIBUTES, st.just([]))

    @settings(ABUSE, max_examples=N_ITEMS)
    @given(case=st.one_of(anything, odd_but_valid))
    def run(case):
        item_id, fields, uploads = case
        COUNTS["items"] += 1
        data = {"id": item_id}
        if fields is not None:
            data["fields"] = fields
        files = [(column, (name, content, "application/octet-stream"))
                 for column, (name, content) in uploads]
        resp = client.post("/items", data=data, files=files or None)
        what = (f"POST /items id={item_id[:80]!r} fields={(fields or '')[:200]!r} "
                f"files={[(c, n) for c, (n, _) in uploads]}")
        check(resp, what)
        outcomes[resp.status_code] += 1
        if resp.status_code == 201:  # what was added must not break the catalog's summaries
            attrs = client.get("/attributes")
            check(attrs, f"GET /attributes after {what}")
            for a in attrs.json():
                if a["kind"] == "number":  # a range a filter control can use: finite bounds
                    assert a["min"] is not None and a["max"] is not None, (what, a)

    outcomes: Counter[int] = Counter()
    run()
    assert COUNTS["items"] - start >= N_ITEMS
    assert outcomes[201] and outcomes[422], outcomes


def test_fuzzed_search_never_fails(client):
    start = COUNTS["search"]

    @settings(ABUSE, max_examples=N_SEARCH)
    @given(text=st.one_of(st.none(), TEXT, st.integers(100, 20_000).map(lambda n: "rain " * n)),
           k=st.one_of(st.none(), PARAM), filters=st.lists(FILTER, max_size=3),
           upload=st.one_of(st.none(), UPLOAD))
    def run(text, k, filters, upload):
        COUNTS["search"] += 1
        data: dict[str, object] = {}
        if text is not None:
            data["text"] = text
        if k is not None:
            data["k"] = k
        if filters:
            data["filter"] = filters
        files = {"file": (upload[0], upload[1], "application/octet-stream")} if upload else None
        resp = client.post("/search", data=data, files=files)
        check(resp, f"POST /search {str(data)[:300]} file={upload and upload[0]!r}")

    run()
    assert COUNTS["search"] - start >= N_SEARCH


# -- 2. catalogs ------------------------------------------------------------------------------
def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 6, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.linspace(0, 40, 800)).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


GOOD_PNG, GOOD_WAV = _png(), _wav()
SAFE_TEXT = st.text(alphabet=_chars("Cc", "Zl", "Zp"), max_size=30)  # no line breaks
ODD_IDS = ["a b", "ü-é", "😀", "a,b", 'q"uote', "..", "../etc", "/abs", "<script>", "tab\tid",
           "id;DROP TABLE items", "١٢٣", "0", "C:\\x", "%00", "a\x00b", " padded ", "x" * 600,
           "NaN", "None", "null"]
BAD_KINDS = ["empty_id", "dup_id", "odd_id", "bad_utf8", "huge_text", "huge_attr",
             "escape_media", "abs_media", "missing_media", "zero_media", "garbage_media",
             "wrong_ext_media"]
BAD_WEIGHTS = ["abc", "-1", "inf", "-inf", "nan", "1e999", "true", "NaN", "--2"]


def catalogs(*fmts: str) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"fmt": st.sampled_from(fmts), **_CATALOG})


_CATALOG = {
    "good": st.lists(st.tuples(SAFE_TEXT, st.booleans(), st.booleans()), max_size=3),
    "bad": st.lists(st.tuples(st.sampled_from(BAD_KINDS), st.integers(0, 10**6),
                              st.binary(min_size=1, max_size=64)), min_size=1, max_size=6),
    "inter": st.lists(st.tuples(st.sampled_from(["good", "unknown_item", "bad_weight",
                                                 "empty_user"]),
                                st.integers(0, 50), st.sampled_from(BAD_WEIGHTS)),
                      max_size=6),
}


def write_catalog(root: Path, plan: dict) -> dict:
    """Write ``plan`` as a catalog under ``root``; return what loading it must give."""
    media = root / "media"
    media.mkdir(parents=True)
    fmt = plan["fmt"]
    rows: list[dict] = []  # id, title, images, audio, attr_color (str may hold surrogates)
    expect: list[dict] = []  # one per row: what must happen to it

    def add(row: dict, **e) -> None:
        rows.append({"images": [], "audio": [], "attr_color": "", "title": "t", **row})
        expect.append(e)

    good_ids = []
    for n, (title, with_image, with_audio) in enumerate(plan["good"]):
        rid = f"good_{n}"
        good_ids.append(rid)
        row = {"id": rid, "title": title or f"good {n}", "images": [], "audio": []}
        if with_image:
            (media / f"{rid}.png").write_bytes(GOOD_PNG)
            row["images"] = [f"media/{rid}.png"]
        if with_audio:
            (media / f"{rid}.wav").write_bytes(GOOD_WAV)
            row["audio"] = [f"media/{rid}.wav"]
        add(row, kind="good", id=rid, images=row["images"], audio=row["audio"])
    for n, (kind, salt, garbage) in enumerate(plan["bad"]):
        rid = f"bad_{n}"
        if kind == "empty_id":
            add({"id": ["", " ", "\t"][salt % 3]}, kind=kind, expect=REJECTED, id=None)
        elif kind == "dup_id":
            if good_ids:
                add({"id": good_ids[salt % len(good_ids)], "title": "dup"}, kind=kind,
                    expect=REJECTED, id=good_ids[salt % len(good_ids)])
            else:
                add({"id": rid}, kind="good", id=rid, images=[], audio=[])
                add({"id": rid, "title": "dup"}, kind=kind, expect=REJECTED, id=rid)
        elif kind == "odd_id":
            add({"id": f"{ODD_IDS[salt % len(ODD_IDS)]}{n}"}, kind=kind,
                id=clean_id(f"{ODD_IDS[salt % len(ODD_IDS)]}{n}"))
        elif kind == "bad_utf8":
            add({"id": rid, "title": "ok \udcff\udcfe" + "\udc80" * (salt % 3)}, kind=kind,
                expect=REJECTED, id=rid)
        elif kind == "huge_text":
            add({"id": rid, "title": "w " * (10_001 + salt % 5000)}, kind=kind, expect=REJECTED,
                id=rid)
        elif kind == "huge_attr":
            add({"id": rid, "attr_color": "c" * (2_001 + salt % 3000)}, kind=kind,
                expect=REJECTED, id=rid)
        else:  # a good record with one bad media path: the path is dropped, the record kept
            column, ext = (("images", ".png"), ("audio", ".wav"), ("images", ".jpg"),
                           ("audio", ".flac"))[salt % 4]
            if kind == "escape_media":
                rel = ["../x" + ext, "media/../../y" + ext, "../../../../etc/passwd" + ext,
                       "media/./../../z" + ext][salt % 4]
            elif kind == "abs_media":
                target = media / f"abs_{n}{ext}"
                target.write_bytes(GOOD_PNG if column == "images" else GOOD_WAV)
                rel = [str(target), "/etc/hostname" + ext, "\\\\server\\share" + ext,
                       "C:/x" + ext][salt % 4]
            elif kind == "missing_media":
                rel = f"media/missing_{n}{ext}"
            elif kind == "zero_media":
                rel = f"media/zero_{n}{ext}"
                (root / rel).write_bytes(b"")
            elif kind == "garbage_media":
                rel = f"media/garbage_{n}{ext}"
                prefix = [b"", b"RIFF", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"][salt % 4]
                (root / rel).write_bytes(prefix + b"\x00garbage" + garbage)
            else:  # wrong_ext_media
                rel = f"media/file_{n}.txt"
                (root / rel).write_bytes(GOOD_PNG)
            add({"id": rid, column: [rel]}, kind=kind, expect=DROPPED_MEDIA, id=rid,
                column=column, path=rel)
    user_items = good_ids or [e["id"] for e in expect if e["kind"] == "good"]
    inter_rows: list[dict] = []
    inter_expect: list[dict] = []
    for kind, salt, weight in plan["inter"]:
        item = user_items[salt % len(user_items)] if user_items else None
        if kind == "good" and item is not None:
            inter_rows.append({"user_id": f"u_{salt % 4}", "item_id": item,
                               "weight": str(1 + salt % 3)})
            inter_expect.append({"kind": "good"})
        elif kind == "unknown_item" or item is None:
            inter_rows.append({"user_id": "u_0", "item_id": f"nope_{salt}", "weight": "1"})
            inter_expect.append({"kind": "bad"})
        elif kind == "bad_weight":
            inter_rows.append({"user_id": "u_1", "item_id": item, "weight": weight})
            inter_expect.append({"kind": "bad"})
        else:
            inter_rows.append({"user_id": " ", "item_id": item, "weight": "1"})
            inter_expect.append({"kind": "bad"})

    if fmt == "csv":
        _write_csv(root / "items.csv", ["id", "title", "images", "audio", "attr_color"], rows,
                   {"images", "audio"})
        for n, e in enumerate(expect):
            e["line"] = f"line {n + 2}"
        if inter_rows:
            _write_csv(root / "interactions.csv", ["user_id", "item_id", "weight"], inter_rows,
                       set())
            for n, e in enumerate(inter_expect):
                e["line"] = f"line {n + 2}"
        items_file = "items.csv"
    else:
        _write_jsonl(root / "items.jsonl", rows)
        for n, e in enumerate(expect):
            e["line"] = f"line {n + 1}"
            if e["kind"] == "bad_utf8":  # the whole line is not UTF-8: named by its line
                e["id"] = None
        if inter_rows:
            for r in inter_rows:  # JSON numbers where they parse, strings otherwise
                with contextlib.suppress(ValueError):
                    r["weight"] = json.loads(r["weight"])
            _write_jsonl(root / "interactions.jsonl", inter_rows)
            for n, e in enumerate(inter_expect):
                e["line"] = f"line {n + 1}"
        items_file = "items.jsonl"
    return {"items_file": items_file, "items": expect, "interactions": inter_expect,
            "inter_rows": inter_rows}


def _write_csv(path: Path, columns: list[str], rows: list[dict], lists: set[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["|".join(row[c]) if c in lists else row[c] for c in columns])
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogateescape"))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_bytes("".join(f"{line}\n" for line in lines).encode("utf-8", "surrogateescape"))


def check_loaded(root: Path, expected: dict) -> str:
    """Load the catalog and check it against ``expected``; returns "ok" or "no items"."""
    must_keep = [e for e in expected["items"]
                 if e["kind"] == "good" or e.get("expect") == DROPPED_MEDIA]
    try:
        catalog, report = load_catalog(root, items=expected["items_file"], progress=False)
    except CatalogError as exc:
        assert not must_keep, f"CatalogError although records must survive: {exc}"
        assert exc.report is not None and exc.report.ok.get("items") == 0
        assert "no valid items" in str(exc)
        issues = exc.report.issues
        named = {(r.table, r.record) for r in issues if r.action == REJECTED}
        for e in expected["items"]:
            assert ("items", e["id"]) in named or ("items", e["line"]) in named, (e, issues)
        return "no items"
    ids = catalog.items["id"].tolist()
    assert len(ids) == len(set(ids)), "duplicate ids survived"
    by_id = {rid: catalog.items.iloc[n] for n, rid in enumerate(ids)}
    issues = report.issues
    rejected = {(r.table, r.record) for r in issues if r.action == REJECTED}
    dropped = {(r.record, r.field, r.path) for r in issues if r.action == DROPPED_MEDIA}
    allowed: set[tuple[str, str]] = set()  # (table, record) an issue may name
    for e in expected["items"]:
        names = {e["line"]} | ({e["id"]} if e["id"] else set())
        allowed |= {("items", x) for x in names}
        if e["kind"] == "good":
            assert e["id"] in by_id, f"good record {e['id']} lost: {issues}"
            assert list(by_id[e["id"]]["images"]) == e["images"], (e, issues)
            assert list(by_id[e["id"]]["audio"]) == e["audio"], (e, issues)
        elif e["kind"] == "odd_id":  # any id text is allowed in a catalog; if not, say why
            assert e["id"] in by_id or any(("items", x) in rejected for x in names), (e, issues)
        elif e.get("expect") == DROPPED_MEDIA:
            assert e["id"] in by_id, f"record {e['id']} lost for a bad media path: {issues}"
            assert e["path"] not in list(by_id[e["id"]][e["column"]])
            assert (e["id"], e["column"], e["path"]) in dropped, (e, issues)
        else:
            assert any(("items", x) in rejected for x in names), (e, issues)
            if e["kind"] == "dup_id":
                assert ids.count(e["id"]) == 1
            elif e["id"]:
                assert e["id"] not in by_id, e
    inter = catalog.interactions
    kept = set(zip(inter["user_id"], inter["item_id"], inter["weight"], strict=True))
    for e, row in zip(expected["interactions"], expected["inter_rows"], strict=True):
        allowed.add(("interactions", e["line"]))
        if e["kind"] == "good":
            assert (row["user_id"], row["item_id"], float(row["weight"])) in kept, (row, issues)
        else:
            assert ("interactions", e["line"]) in rejected, (row, e, issues)
    unexpected = [r for r in issues if (r.table, r.record) not in allowed]
    assert not unexpected, f"issues about records that were fine: {unexpected}"
    assert report.ok["items"] == len(ids)
    return "ok"


def test_fuzzed_catalogs_keep_good_records_and_name_bad_ones():
    start = COUNTS["catalogs"]
    outcomes: Counter[str] = Counter()

    @settings(ABUSE, max_examples=N_CATALOGS)
    @given(plan=catalogs("csv", "csv", "jsonl"))
    def run(plan):
        COUNTS["catalogs"] += 1
        with tempfile.TemporaryDirectory(prefix="fuserec-abuse-") as tmp:
            root = Path(tmp) / "cat"
            expected = write_catalog(root, plan)
            outcomes[check_loaded(root, expected)] += 1

    run()
    assert COUNTS["catalogs"] - start >= N_CATALOGS
    assert outcomes["ok"] and outcomes["no items"], outcomes  # both paths were exercised


def test_validate_cli_on_fuzzed_catalogs_exits_cleanly():
    start = COUNTS["cli"]
    runner = CliRunner(env={"COLUMNS": "200"})
    codes: Counter[int] = Counter()

    @settings(ABUSE, max_examples=N_CLI)
    @given(plan=catalogs("csv"))  # the CLI reads items.csv
    def run(plan):
        COUNTS["cli"] += 1
        with tempfile.TemporaryDirectory(prefix="fuserec-abuse-cli-") as tmp:
            root = Path(tmp) / "cat"
            write_catalog(root, plan)
            result = runner.invoke(cli_app, ["validate", str(root), "--no-progress"])
            codes[result.exit_code] += 1
            assert result.exit_code in (0, 2), result.output
            assert "Traceback" not in result.output
            assert result.exception is None or isinstance(result.exception, SystemExit), \
                repr(result.exception)
            if result.exit_code == 2:
                assert "error:" in result.output and "no valid items" in result.output

    run()
    assert COUNTS["cli"] - start >= N_CLI
    assert codes[0], codes


# -- 3. kill -9 of a journaling server --------------------------------------------------------
SERVER = """
import sys
sys.path.insert(0, {tests!r})
import serve_helpers  # registers the fake encoders named in the manifest
import uvicorn
from fuserec.serve import create_app
app = create_app({artifacts!r}, token="", journal={journal!r})
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, artifacts: Path, journal: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = SERVER.format(tests=str(TESTS), artifacts=str(artifacts), journal=str(journal),
                             port=self.port)
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: "
                                     f"{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def family(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the server; assert nothing of it is left running."""
        family = self.family()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()
        survivors = []
        for p in family[1:]:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(p)
            except psutil.NoSuchProcess:
                pass
        for p in survivors:  # clean up what this test started before failing
            p.kill()
        assert not survivors, f"processes left behind after kill -9: {survivors}"
        assert not psutil.pid_exists(self.proc.pid) or \
            psutil.Process(self.proc.pid).status() == psutil.STATUS_ZOMBIE

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()


def _journal_events(path: Path) -> tuple[Counter[tuple[str, str, float]],
                                          Counter[tuple[str, str]]]:
    """Feedback and undo (``unfeedback``) events in the journal's complete lines."""
    data = path.read_bytes() if path.exists() else b""
    out: Counter[tuple[str, str, float]] = Counter()
    undos: Counter[tuple[str, str]] = Counter()
    for raw in data[: data.rfind(b"\n") + 1].split(b"\n"):
        if raw.strip():
            event = json.loads(raw)
            if event["event"] == "feedback":
                out[(event["user"], event["item"], float(event["weight"]))] += 1
            elif event["event"] == "unfeedback":
                undos[(event["user"], event["item"])] += 1
    return out, undos


class Acks:
    """What a cycle's writers sent and what the server acknowledged (200)."""

    def __init__(self) -> None:
        self.likes: list[tuple[str, str, float]] = []
        self.undone: list[tuple[str, str]] = []  # acknowledged undos
        self.undo_sent: set[tuple[str, str]] = set()  # every undo tried, acknowledged or not

    def extend(self, other: Acks) -> None:
        self.likes += other.likes
        self.undone += other.undone
        self.undo_sent |= other.undo_sent


def _check_acked(url: str, acks: Acks, journal: Path) -> None:
    """Every acknowledged like is back after the replay unless an undo of it was sent (one in
    flight at the kill may or may not have reached the journal); every acknowledged undo too."""
    on_disk, undos_on_disk = _journal_events(journal)
    missing = [a for a in acks.likes if on_disk[a] < 1]
    assert not missing, f"acknowledged feedback not in the journal: {missing[:5]}"
    missing_undos = [u for u in acks.undone if undos_on_disk[u] < 1]
    assert not missing_undos, f"acknowledged undos not in the journal: {missing_undos[:5]}"
    kept: dict[str, set[str]] = {}
    for user, item, _ in acks.likes:
        kept.setdefault(user, set())
        if (user, item) not in acks.undo_sent:
            kept[user].add(item)
    gone: dict[str, set[str]] = {}
    for user, item in acks.undone:
        gone.setdefault(user, set()).add(item)
    with httpx.Client(base_url=url, timeout=10) as c:
        for user in kept.keys() | gone.keys():
            resp = c.get(f"/users/{user}")
            items = kept.get(user, set())
            if resp.status_code == 404 and not items:
                continue  # never liked durably: the user does not exist
            assert resp.status_code == 200, (user, resp.text)
            body = resp.json()
            assert body["n_feedback"] >= len(items), (user, body["n_feedback"], items)
            liked = {x["id"] for x in body["liked"]}
            assert items <= liked, (user, items - liked)
            assert not liked & gone.get(user, set()), (user, liked & gone[user])


def _writer(tid: int, url: str, cycle: int, items: list[str], acks: Acks,
            lock: threading.Lock, stop: threading.Event, counts: Counter[str]) -> None:
    """Send feedback until ``stop``, undoing every fourth acknowledged like; record in ``acks``
    what the server acknowledged (200)."""
    n = 0
    with httpx.Client(base_url=url, timeout=5) as c:
        while not stop.is_set():
            user = f"kill{cycle}_t{tid}_b{n // 8}"  # at most 8 distinct items per user
            item = items[(tid * 8 + n) % len(items)]
            weight = float(1 + n % 3)
            with lock:
                counts["sent"] += 1
            try:
                resp = c.post(f"/users/{user}/feedback", json={"item_id": item, "weight": weight})
            except httpx.HTTPError:  # the server is gone (or going)
                time.sleep(0.01)
                continue
            with lock:
                if resp.status_code == 200:
                    acks.likes.append((user, item, weight))
                else:
                    counts[f"status {resp.status_code}"] += 1
            n += 1
            if resp.status_code != 200 or n % 4:
                continue
            with lock:
                acks.undo_sent.add((user, item))
            try:
                resp = c.delete(f"/users/{user}/feedback/{item}")
            except httpx.HTTPError:
                continue
            with lock:
                if resp.status_code == 200:
                    acks.undone.append((user, item))
                else:
                    counts[f"undo status {resp.status_code}"] += 1


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_feedback(artifacts, tmp_path):
    rng = random.Random(20240607)
    journal = tmp_path / "journal.jsonl"
    log = tmp_path / "server.log"
    items: list[str] | None = None  # filled from the first server
    all_acked, previous = Acks(), Acks()
    sent = 0
    server: Server | None = None
    try:
        for cycle in range(N_KILL_CYCLES):
            server = Server(artifacts, journal, log)
            if previous.likes:  # the restart replayed the journal: every acknowledged write is back
                _check_acked(server.url, previous, journal)
            if items is None:
                listing = httpx.get(f"{server.url}/items", params={"limit": 200}).json()
                items = [x["id"] for x in listing["items"]]
            acked = Acks()
            lock, stop, counts = threading.Lock(), threading.Event(), Counter()
            args = (server.url, cycle, items, acked, lock, stop, counts)
            threads = [threading.Thread(target=_writer, args=(t, *args), daemon=True)
                       for t in range(4)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 1.5))
            server.kill()
            stop.set()
            for t in threads:
                t.join(timeout=10)
            assert not any(t.is_alive() for t in threads)
            # every 200 was sent before the kill (after its fsync)
            assert not [k for k in counts if "status" in k], counts
            sent += counts["sent"]
            COUNTS["kill_cycles"] += 1
            all_acked.extend(acked)
            previous = acked
        server = Server(artifacts, journal, log)  # the last restart: everything is back
        _check_acked(server.url, all_acked, journal)
        server.stop()
        assert not server.family() or server.proc.poll() is not None
    finally:
        if server is not None:
            server.stop()
    assert COUNTS["kill_cycles"] >= N_KILL_CYCLES
    assert all_acked.likes and all_acked.undone and sent >= len(all_acked.likes)
    print(f"kill -9: {COUNTS['kill_cycles']} cycles, {len(all_acked.likes)} acknowledged "
          f"likes and {len(all_acked.undone)} undos, none lost")  # for BENCHMARKS.md (-s)
