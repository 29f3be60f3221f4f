"""The OpenAI-compatible backend against a real HTTP server on loopback: a small FastAPI app
speaking ``/v1/chat/completions``, served by uvicorn in a thread. Covers answers, timeouts,
rate limits (429, with and without ``Retry-After``), server errors and malformed answers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from fuserec.describe import LLMError, OpenAIEndpointLLM, generate_checked
from fuserec.describe.faithful import item_facts
from fuserec.describe.prompts import item_prompt

#: what the server does next: a queue of behaviours, then "ok" for ever
SCRIPT: list[str] = []
SEEN: list[dict[str, Any]] = []


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        body = await request.json()
        SEEN.append({"body": body, "auth": request.headers.get("authorization"),
                     "at": time.monotonic()})
        what = SCRIPT.pop(0) if SCRIPT else "ok"
        if what == "slow":
            await asyncio.sleep(1.5)
        if what == "429":
            return JSONResponse({"error": {"message": "rate limited"}}, status_code=429)
        if what == "429-retry-after":
            return JSONResponse({"error": "slow down"}, status_code=429,
                                headers={"Retry-After": "0.3"})
        if what == "500":
            return JSONResponse({"error": "boom"}, status_code=500)
        if what == "400":
            return JSONResponse({"error": "bad request"}, status_code=400)
        if what == "not-json":
            return PlainTextResponse("<html>gateway</html>")
        if what == "no-choices":
            return JSONResponse({"choices": []})
        if what == "no-message":
            return JSONResponse({"choices": [{"text": "old completions shape"}]})
        title = next(line for line in body["messages"][-1]["content"].splitlines()
                     if line.startswith("- title: "))[len("- title: "):]
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                 "role": "assistant",
                                 "content": f"{title} is an item with a picture."}}]})

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(), log_level="error", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(autouse=True)
def _reset() -> None:
    SCRIPT.clear()
    SEEN.clear()


FACTS = item_facts([("title", "The bold pasta")])


def test_answers_are_checked_like_any_backend(server):
    llm = OpenAIEndpointLLM(server, model="tiny", api_key="k", retries=0)
    out = generate_checked(llm, item_prompt(FACTS), "template", facts=FACTS)
    assert out.source == "llm" and out.text == "The bold pasta is an item with a picture."
    body = SEEN[0]["body"]
    assert SEEN[0]["auth"] == "Bearer k" and body["model"] == "tiny"
    assert body["temperature"] == 0.0 and body["messages"][0]["role"] == "system"


def test_rate_limits_and_server_errors_are_retried_with_backoff(server):
    SCRIPT.extend(["429", "500", "429"])
    llm = OpenAIEndpointLLM(server, retries=3, backoff=0.05)
    assert llm.chat(item_prompt(FACTS)).startswith("The bold pasta")
    assert len(SEEN) == 4
    gaps = [b["at"] - a["at"] for a, b in zip(SEEN, SEEN[1:], strict=False)]
    assert gaps[1] >= 0.09 and gaps[2] >= 0.19  # 0.05, 0.1, 0.2: exponential


def test_retry_after_is_honoured(server):
    SCRIPT.append("429-retry-after")
    llm = OpenAIEndpointLLM(server, retries=1, backoff=0.01)
    assert llm.chat(item_prompt(FACTS)).startswith("The bold pasta")
    assert SEEN[1]["at"] - SEEN[0]["at"] >= 0.28


def test_rate_limit_that_never_ends_falls_back_to_the_template(server):
    SCRIPT.extend(["429"] * 5)
    llm = OpenAIEndpointLLM(server, retries=2, backoff=0.01)
    out = generate_checked(llm, item_prompt(FACTS), "template", facts=FACTS)
    assert out.source == "template" and "429" in out.fallback_reason and len(SEEN) == 3


def test_a_client_error_is_not_retried(server):
    SCRIPT.append("400")
    with pytest.raises(LLMError, match="400"):
        OpenAIEndpointLLM(server, retries=3, backoff=0.01).chat(item_prompt(FACTS))
    assert len(SEEN) == 1


def test_timeouts_are_retried_then_reported(server):
    SCRIPT.append("slow")
    llm = OpenAIEndpointLLM(server, retries=1, timeout=0.5, backoff=0.01)
    assert llm.chat(item_prompt(FACTS)).startswith("The bold pasta")  # the retry is answered
    SCRIPT.extend(["slow", "slow"])
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="(?i)timed? ?out"):
        llm.chat(item_prompt(FACTS))
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("what", ["not-json", "no-choices", "no-message"])
def test_malformed_answers_fall_back_with_the_reason(server, what):
    SCRIPT.append(what)
    llm = OpenAIEndpointLLM(server, retries=2, backoff=0.01)
    out = generate_checked(llm, item_prompt(FACTS), "template", facts=FACTS)
    assert out.source == "template" and "malformed" in out.fallback_reason
    assert len(SEEN) == 1  # a malformed answer is not asked again
