"""Checked, cached, batched generation: prompts in, texts (LLM or template) out.

:func:`generate_checked_many` looks every prompt up in the :class:`TextCache` (by the hash of
the prompt, for this backend, model and prompt version), sends the rest to the backend in
batches while a :class:`Budget` lasts, and judges each answer: :func:`check_text` (empty,
degenerate) and, given the prompt's :class:`~fuserec.describe.faithful.Facts`, the
faithfulness checker, which drops every unsupported sentence. An answer with nothing left
falls back to the template text, and the reason is recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fuserec.describe.cache import TextCache
from fuserec.describe.faithful import Facts, check_sentences, coverage
from fuserec.describe.llm import LLMBackend, LLMError, Messages, check_text, clean_text, grounding
from fuserec.describe.prompts import PROMPT_VERSION
from fuserec.encode.hashing import text_hash


@dataclass
class GeneratedText:
    """One generated text and where it came from (``"llm"`` or ``"template"``).

    For answers judged against facts: ``sentences`` (in the cleaned answer), ``rejected``
    (of them, unsupported), ``coverage`` (share of facts the kept text mentions) and
    ``main_complete`` (every fact of the main modality mentioned).
    """

    text: str
    source: str
    backend: str | None = None
    fallback_reason: str | None = None
    sentences: int = 0
    rejected: int = 0
    coverage: float | None = None
    main_complete: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "source": self.source, "backend": self.backend,
                "fallback_reason": self.fallback_reason, "sentences": self.sentences,
                "rejected": self.rejected, "coverage": self.coverage,
                "main_complete": self.main_complete}


@dataclass
class Request:
    """One prompt, the template text to fall back on, and the facts to check against."""

    messages: Messages
    fallback: str
    facts: Facts | None = None


@dataclass
class Budget:
    """Seconds of generation allowed (None: unlimited) and spent so far."""

    seconds: float | None = None
    spent: float = 0.0

    @property
    def exhausted(self) -> bool:
        return self.seconds is not None and self.spent >= self.seconds


def judge(raw: str, request: Request, backend: str, min_grounding: float = 0.2
          ) -> GeneratedText:
    """The text to keep from ``raw`` (or the fallback, with the reason)."""
    text = clean_text(raw)
    reason = check_text(text)
    if reason is not None:
        return GeneratedText(request.fallback, "template", backend,
                             f"{reason} answer: {raw[:80]!r}")
    if request.facts is None:
        score = grounding(text, request.messages)
        if score < min_grounding:
            return GeneratedText(request.fallback, "template", backend,
                                 f"ungrounded ({score:.2f} of its words in the prompt) "
                                 f"answer: {raw[:80]!r}")
        return GeneratedText(text, "llm", backend)
    verdict = check_sentences(text, request.facts)
    n = len(verdict.kept) + len(verdict.rejected)
    kept = verdict.text
    if not verdict.kept or check_text(kept) is not None:
        return GeneratedText(request.fallback, "template", backend,
                             f"unsupported: {verdict.reason() or check_text(kept)}",
                             n, len(verdict.rejected))
    cov = coverage(kept, request.facts)
    return GeneratedText(kept, "llm", backend, None, n, len(verdict.rejected),
                         round(cov.share, 4), cov.main_complete)


def _answers(llm: LLMBackend, batch: list[Messages], max_tokens: int | None
             ) -> list[str | LLMError]:
    """Answers of one batch; a backend without batching fails prompt by prompt."""
    if type(llm).chat_batch is LLMBackend.chat_batch:
        out: list[str | LLMError] = []
        for messages in batch:
            try:
                out.append(llm.chat(messages, max_tokens))
            except LLMError as exc:
                out.append(exc)
        return out
    try:
        return list(llm.chat_batch(batch, max_tokens))
    except LLMError as exc:
        return [exc] * len(batch)


def generate_checked_many(llm: LLMBackend | None, requests: Sequence[Request],
                          cache: TextCache | None = None, max_tokens: int | None = None,
                          budget: Budget | None = None, batch_size: int | None = None,
                          min_grounding: float = 0.2,
                          on_batch: Callable[[int, int], None] | None = None
                          ) -> list[GeneratedText]:
    """One :class:`GeneratedText` per request, in order (see the module docstring).

    Raises whatever the backend raises other than :class:`LLMError` (a model that cannot
    load); answers generated before that are cached already.
    """
    if llm is None:
        return [GeneratedText(r.fallback, "template") for r in requests]
    version = f"{llm.identity()}|prompts{PROMPT_VERSION}|max{max_tokens or llm.max_tokens}"
    keys = [text_hash(json.dumps(list(r.messages), sort_keys=True)) for r in requests]
    raws: dict[str, str | LLMError] = {}
    if cache is not None:
        raws.update({k: str(v.get("raw", ""))
                     for k, v in cache.get_many(llm.name, version, keys).items()})
    first = {k: r for k, r in zip(keys, requests, strict=True) if k not in raws}
    todo = list(first)
    size = batch_size or int(getattr(llm, "batch_size", 8))
    budget = budget or Budget()
    for start in range(0, len(todo), size):
        if budget.exhausted:
            break
        chunk = todo[start:start + size]
        t0 = time.perf_counter()
        try:
            answers = _answers(llm, [first[k].messages for k in chunk], max_tokens)
        finally:
            budget.spent += time.perf_counter() - t0
        fresh = {k: a for k, a in zip(chunk, answers, strict=True) if isinstance(a, str)}
        if cache is not None:
            cache.put_many(llm.name, version, {k: {"raw": a} for k, a in fresh.items()})
        raws.update(zip(chunk, answers, strict=True))
        if on_batch is not None:
            on_batch(min(start + size, len(todo)), len(todo))
    out = []
    for key, request in zip(keys, requests, strict=True):
        raw = raws.get(key)
        if raw is None:
            out.append(GeneratedText(request.fallback, "template", llm.name,
                                     f"LLM time budget of {budget.seconds:g} s spent"))
        elif isinstance(raw, LLMError):
            out.append(GeneratedText(request.fallback, "template", llm.name,
                                     f"backend error: {raw}"))
        else:
            out.append(judge(raw, request, llm.name, min_grounding))
    return out


def generate_checked(llm: LLMBackend | None, messages: Messages, fallback: str,
                     cache: TextCache | None = None, max_tokens: int | None = None,
                     min_grounding: float = 0.2, facts: Facts | None = None) -> GeneratedText:
    """One prompt through :func:`generate_checked_many`."""
    return generate_checked_many(llm, [Request(messages, fallback, facts)], cache, max_tokens,
                                 min_grounding=min_grounding)[0]


__all__ = ["Budget", "GeneratedText", "Request", "generate_checked", "generate_checked_many",
           "judge"]
