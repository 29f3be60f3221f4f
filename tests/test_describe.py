"""The describe stage without heavy models: caches, checks, backends, router, artifacts, CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fuserec.cli import app
from fuserec.data.loaders import load_catalog
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog
from fuserec.describe import (
    Budget,
    DescribeError,
    Describer,
    Description,
    LLMBackend,
    LLMError,
    OpenAIEndpointLLM,
    Request,
    TextCache,
    check_text,
    clean_text,
    describe_catalog,
    describe_files,
    generate_checked,
    generate_checked_many,
    imagenet_class_names,
    load_described,
    save_described,
)
from fuserec.describe.audio import render_acoustic_text
from fuserec.describe.faithful import item_facts
from fuserec.describe.image import render_image_text, visual_facts
from fuserec.describe.prompts import item_prompt, item_template
from fuserec.fuse.base import View
from fuserec.fuse.router import DESCRIBE, ConsistencyRouter, agreement


class FakeLLM(LLMBackend):
    """Answers from a list (an answer may be a function of the prompt), counting calls."""

    name = "fake"

    def __init__(self, answers: Sequence) -> None:
        self.answers = list(answers)
        self.calls = 0

    def chat(self, messages, max_tokens=None) -> str:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer(messages) if callable(answer) else answer


def restate_title(messages) -> str:
    """What a faithful model says: the title from the prompt's facts, nothing more."""
    line = next(x for x in messages[-1]["content"].splitlines() if x.startswith("- title: "))
    return f"{line[len('- title: '):]} is an item with a picture."


PASTA = item_facts([("title", "The bold pasta")], {"labels": [{"label": "plate", "p": 0.5}],
                                                    "colours": {"red": 0.6}},
                   "A picture that looks like a plate; mostly red.", None, "a low drone")


class FakeDescriber(Describer):
    """Describes a file by its name; files named ``bad*`` fail."""

    modality = "image"

    def __init__(self, name: str = "fake-describer") -> None:
        self.name = name
        self.seen: list[str] = []

    def describe(self, paths):
        out = []
        for p in paths:
            self.seen.append(Path(p).name)
            out.append(DescribeError("broken", p) if Path(p).name.startswith("bad")
                       else Description(f"a file called {Path(p).stem}", {"name": Path(p).name}))
        return out


def test_text_cache_round_trip_and_versions(tmp_path):
    cache = TextCache(tmp_path)
    cache.put_many("d", "v1", {"a": {"text": "x"}, "b": {"text": "y"}})
    again = TextCache(tmp_path)
    assert again.get_many("d", "v1", ["a", "b", "c"]) == {"a": {"text": "x"}, "b": {"text": "y"}}
    assert again.get_many("d", "v2", ["a"]) == {}
    assert not list(tmp_path.rglob("*.tmp"))


def test_describe_files_caches_by_content_and_reports_errors(tmp_path):
    (tmp_path / "one.jpg").write_bytes(b"same bytes")
    (tmp_path / "two.jpg").write_bytes(b"same bytes")  # same content: described once
    (tmp_path / "bad.jpg").write_bytes(b"other")
    cache = TextCache(tmp_path / "cache")
    d = FakeDescriber()
    out = describe_files(d, [tmp_path / "one.jpg", tmp_path / "two.jpg", tmp_path / "bad.jpg",
                             tmp_path / "missing.jpg"], cache)
    assert isinstance(out[tmp_path / "one.jpg"], Description)
    assert out[tmp_path / "two.jpg"].text == out[tmp_path / "one.jpg"].text
    assert isinstance(out[tmp_path / "bad.jpg"], DescribeError)
    assert isinstance(out[tmp_path / "missing.jpg"], DescribeError)
    assert len(d.seen) == 2
    d2 = FakeDescriber()
    describe_files(d2, [tmp_path / "one.jpg"], TextCache(tmp_path / "cache"))
    assert d2.seen == []  # served from the on-disk cache


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("Too short.", "too short"),
    ("the the the the the the the the the the the the the the", "repetitive"),
    ("a red ball. a red ball. a red ball. a red ball.", "repetitive"),
    ("1234 5678 9999 #### $$$$ 1111 2222 a b c d e", "not text"),
    ("A calm guide to baking fresh bread at home, with notes on flour.", None),
])
def test_check_text(text, reason):
    assert check_text(text) == reason


def test_clean_text_trims_quotes_labels_and_unfinished_sentences():
    raw = ' "Description: A bright guide to pasta. It covers dough and sauce. And then the'
    assert clean_text(raw) == "A bright guide to pasta. It covers dough and sauce."


def test_generate_checked_falls_back_and_records_why(tmp_path):
    messages = item_prompt(PASTA)
    fallback = item_template("The bold pasta", "red discs", "a low drone")
    good = FakeLLM(["The bold pasta has a picture of a red plate. It was invented in Rome."])
    cache = TextCache(tmp_path)
    out = generate_checked(good, messages, fallback, cache, facts=PASTA)
    # the unsupported second sentence is dropped, the supported first one kept
    assert out.source == "llm" and out.text == "The bold pasta has a picture of a red plate."
    assert (out.sentences, out.rejected, out.main_complete) == (2, 1, True)
    again = generate_checked(good, messages, fallback, cache, facts=PASTA)
    assert again.text == out.text and good.calls == 1  # cached by prompt hash
    for answer, why in (("", "empty"), ("ok ok ok ok ok ok ok ok ok ok ok ok ok", "repetitive"),
                        (LLMError("down"), "backend error"),
                        ("The bold pasta was passed down through generations.", "unsupported"),
                        ("The bold pasta costs 12 euros in a blue box.", "unsupported")):
        out = generate_checked(FakeLLM([answer]), messages, fallback, facts=PASTA)
        assert out.source == "template" and out.text == fallback
        assert why in out.fallback_reason
    # without facts, the older word-overlap check still guards
    out = generate_checked(FakeLLM(["Their favourite festival snack is a starfish eaten at "
                                    "midnight."]), messages, fallback)
    assert out.source == "template" and "ungrounded" in out.fallback_reason
    assert generate_checked(None, messages, fallback).source == "template"


def test_generate_checked_many_batches_caches_and_keeps_to_its_budget(tmp_path):
    class Batched(FakeLLM):
        batch_size = 2

        def chat_batch(self, batch, max_tokens=None):
            self.batches = getattr(self, "batches", 0) + 1
            time.sleep(0.2)
            return [self.chat(m, max_tokens) for m in batch]

    facts = [item_facts([("title", f"The bold pasta {n}")]) for n in range(5)]
    requests = [Request(item_prompt(f), f"template {n}", f) for n, f in enumerate(facts)]
    llm, cache = Batched([restate_title]), TextCache(tmp_path)
    out = generate_checked_many(llm, requests, cache, budget=Budget(0.3))
    assert llm.batches == 2  # the budget was spent after the second batch of two
    assert [g.source for g in out] == ["llm"] * 4 + ["template"]
    assert "budget" in out[4].fallback_reason and out[0].text.startswith("The bold pasta 0")
    again = Batched([restate_title])
    out = generate_checked_many(again, requests, TextCache(tmp_path))
    assert again.calls == 1 and all(g.source == "llm" for g in out)  # a rerun writes once


class _Handler(BaseHTTPRequestHandler):
    fail_first = 0
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body,
                                    "auth": self.headers.get("Authorization")})
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        user = body["messages"][-1]["content"]
        answer = {"choices": [{"message": {"role": "assistant",
                                           "content": f"An item described from {len(user)} "
                                                      "characters of facts, in one sentence."}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def endpoint() -> Iterator[str]:
    _Handler.fail_first = 0
    _Handler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_endpoint_backend_with_retries_and_key(endpoint):
    _Handler.fail_first = 2
    llm = OpenAIEndpointLLM(endpoint, model="tiny", api_key="secret", retries=2, backoff=0.01)
    out = generate_checked(llm, item_prompt(item_facts([("title", "A title")])), "fallback")
    assert out.source == "llm" and out.text.startswith("An item described")
    assert len(_Handler.requests) == 3
    last = _Handler.requests[-1]
    assert last["path"] == "/v1/chat/completions" and last["auth"] == "Bearer secret"
    assert last["body"]["temperature"] == 0.0 and last["body"]["model"] == "tiny"


def test_openai_endpoint_gives_up_and_falls_back(endpoint, monkeypatch):
    _Handler.fail_first = 10
    llm = OpenAIEndpointLLM(endpoint, retries=1, backoff=0.01)
    out = generate_checked(llm, item_prompt(item_facts([("title", "A title")])), "fallback text")
    assert out.source == "template" and "backend error" in out.fallback_reason
    assert len(_Handler.requests) == 2
    # configuration from the environment; an unreachable port fails fast, then falls back
    monkeypatch.setenv("FUSEREC_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("FUSEREC_LLM_API_KEY", "k")
    env_llm = OpenAIEndpointLLM(retries=0, timeout=2)
    assert env_llm.api_key == "k" and env_llm.base_url.endswith("/v1")
    with pytest.raises(LLMError):
        env_llm.chat([{"role": "user", "content": "hi"}])


def test_imagenet_names_come_from_the_timm_data_files():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[207] == "golden retriever"


def test_rendering_words():
    facts = visual_facts_stub = {"colours": {"blue": 0.6, "white": 0.3}, "brightness": 0.8,
                                 "colourfulness": 0.6, "orientation": "portrait"}
    text = render_image_text([("envelope", 0.6), ("umbrella", 0.2)], visual_facts_stub)
    assert text.startswith("A picture that looks like an envelope or an umbrella")
    assert "mostly blue and white" in text and "portrait" in text and facts
    words = render_acoustic_text({"tempo_bpm": 120.0, "loudness_dbfs": -8.0,
                                  "centroid_khz": 3.1, "flatness": 0.01, "onset_strength": 2.0})
    assert "bright" in words and "120 beats per minute" in words and "music" in words


def test_visual_facts_on_a_generated_image(tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 150), (200, 20, 20)).save(tmp_path / "red.png")
    facts = visual_facts(tmp_path / "red.png")
    assert list(facts["colours"]) == ["red"] and facts["orientation"] == "landscape"


def test_agreement_and_router():
    own = View(np.array([[1, 0], [1, 0], [0, 0]], np.float32), np.array([True, True, False]))
    gen = View(np.array([[1, 0.1], [0, 1], [1, 0]], np.float32), np.array([True, True, True]))
    scores = agreement(own, {"image": gen})
    assert scores["mean"][0] > 0.9 and abs(scores["mean"][1]) < 1e-6 and np.isnan(scores["mean"][2])
    routes = ConsistencyRouter(0.5).route(scores["mean"])
    assert routes.tolist() == ["text", "feature", "feature"]
    views, weights = ConsistencyRouter.routed_views(
        {"text": own, "image": gen}, gen, routes)
    assert views[DESCRIBE].present.tolist() == [True, False, False]
    assert views["image"].present.tolist() == [False, True, True]
    assert weights == {"text": 1.0, "image": 1.0, DESCRIBE: 2.0}
    cands = ConsistencyRouter.candidates(scores["mean"])
    assert cands[:2] == [float("inf"), float("-inf")]


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory):
    root = generate_demo_catalog(tmp_path_factory.mktemp("cat"),
                                 DemoCatalogSpec(n_items=12, n_users=5, seed=3,
                                                 inject_errors=False), progress=False)
    catalog, _ = load_catalog(root, progress=False)
    return catalog


def test_describe_catalog_save_load_and_cli(small_catalog, tmp_path):
    history = {u: small_catalog.item_ids[:3] for u in small_catalog.user_ids}
    llm = FakeLLM([restate_title, ""])
    described = describe_catalog(small_catalog, FakeDescriber(), None, llm,
                                 TextCache(tmp_path / "c"), history,
                                 llm_items=small_catalog.item_ids[:2],
                                 llm_users=small_catalog.user_ids[:1])
    first = small_catalog.item_ids[0]
    assert described.unified[0].source == "llm"
    assert described.unified[1].source == "template" and described.unified[1].fallback_reason
    assert all(g.source == "template" for g in described.unified[2:])
    assert described.image[0].startswith("a file called")
    assert "Picture:" in described.unified[2].text and described.own[2] in described.unified[2].text
    assert len(described.profiles) == len(small_catalog.user_ids)
    assert "Likes items such as" in described.profiles[-1].text
    n = len(described.item_ids)
    described.routes = ["text"] * (n - 1) + ["feature"]
    described.agreement = {"mean": np.linspace(0, 1, n, dtype=np.float32)}
    described.threshold = 0.1
    art = tmp_path / "artifacts"
    save_described(art / "describe", described, {"items.unified": np.zeros((n, 4), np.float32)})
    items, users, summary = load_described(art / "describe")
    assert items["route"].tolist() == described.routes and summary["routes"]["text"] == n - 1
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["describe", "--item", first, "--artifacts", str(art),
                                 "--user", small_catalog.user_ids[0]])
    assert result.exit_code == 0, result.output
    for expected in ("own text", "image", "unified (llm)", "router", "text fusion",
                     "taste profile"):
        assert expected in result.output
    bad = runner.invoke(app, ["describe", "--item", "nope", "--artifacts", str(art)])
    assert bad.exit_code == 1 and "unknown item id" in bad.output


def test_a_backend_that_crashes_falls_back_to_templates(small_catalog):
    llm = FakeLLM([RuntimeError("model file is corrupt")])
    described = describe_catalog(small_catalog, None, None, llm)
    assert described.unified[0].source == "template"
    assert "model file is corrupt" in described.unified[0].fallback_reason
    assert llm.calls == 1  # not retried for every item
    assert all(g.source == "template" for g in described.unified)
