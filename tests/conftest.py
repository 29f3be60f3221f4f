"""Shared fixtures: the real encoders, each loaded once per test session.

Tests that use them should be marked ``@pytest.mark.slow``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# a wide console for CLI output checks, whether or not the runner has a terminal (pytest-xdist
# workers have none): record ids and paths must not fold across table lines
os.environ["COLUMNS"] = "200"


@pytest.fixture(scope="session")
def text_encoder():
    """The real MiniLM text encoder (default precision)."""
    from fuserec.encode import get_encoder

    return get_encoder("minilm")


@pytest.fixture(scope="session")
def image_encoder() -> Iterator:
    """The real EfficientNet-Lite0 image encoder."""
    from fuserec.encode import get_encoder

    enc = get_encoder("efficientnet-lite0")
    yield enc
    enc.close()


@pytest.fixture(scope="session")
def audio_encoder() -> Iterator:
    """The real librosa audio encoder (two worker processes)."""
    from fuserec.encode import get_encoder

    enc = get_encoder("librosa", workers=2)
    yield enc
    enc.close()


@pytest.fixture(scope="session")
def audio_describer() -> Iterator:
    """The real Whisper tiny.en (faster-whisper) + acoustic-words describer."""
    from fuserec.describe import get_describer

    d = get_describer("whisper-or-acoustic")
    yield d
    d.close()


@pytest.fixture(scope="session")
def local_llm() -> Iterator:
    """The packaged SmolLM2-135M-Instruct on CTranslate2 (int8): converted from its GGUF once
    per machine into the user cache dir (~1 min), then loaded once per session (<1 s)."""
    from fuserec.describe import get_llm

    llm = get_llm("smollm2").load()
    yield llm
    llm.close()
