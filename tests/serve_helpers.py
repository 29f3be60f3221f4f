"""Small, fast stand-ins for the real encoders and an artifact folder built with them.

The fakes are registered in the encoder registry under ``test-*`` names, so the pipeline writes
them into the manifest and the server loads them by name, exactly as it loads the real ones.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from rich.console import Console

from fuserec.data.synthetic import DemoCatalogSpec
from fuserec.encode import ENCODERS, EncodeError, Encoder

FAKE_ENCODERS = {"text": "test-words", "image": "test-pixels", "audio": "test-tones"}


class WordsEncoder(Encoder):
    """Hashed bag of words (so a query sharing an item's words lands near it)."""

    name, modality, dim = "test-words", "text", 64

    def encode(self, inputs: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        out = np.zeros((len(inputs), self.dim), np.float32)
        for row, text in enumerate(inputs):
            for word in re.findall(r"[a-z]+", str(text).lower()):
                h = zlib.crc32(word.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return out


class PixelsEncoder(Encoder):
    """A 4x4 grey thumbnail plus the mean colour."""

    name, modality, dim = "test-pixels", "image", 19

    def encode(self, inputs: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        out = []
        for path in inputs:
            try:
                with Image.open(path) as im:
                    rgb = np.asarray(im.convert("RGB").resize((4, 4)), np.float32) / 255.0
            except Exception as exc:
                raise EncodeError(f"cannot read image: {exc}", path) from None
            out.append(np.concatenate([rgb.mean(2).ravel(), rgb.reshape(-1, 3).mean(0)]))
        return np.asarray(out, np.float32).reshape(len(inputs), self.dim)


class TonesEncoder(Encoder):
    """Energy in eight frequency bands."""

    name, modality, dim = "test-tones", "audio", 8

    def encode(self, inputs: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        out = []
        for path in inputs:
            try:
                y, sr = sf.read(str(path), dtype="float32", always_2d=True)
            except Exception as exc:
                raise EncodeError(f"cannot read audio: {exc}", path) from None
            spec = np.abs(np.fft.rfft(y.mean(1)[: sr * 2]))
            bands = np.array_split(spec, self.dim)
            out.append(np.log1p([b.sum() for b in bands]))
        return np.asarray(out, np.float32).reshape(len(inputs), self.dim)


for _cls in (WordsEncoder, PixelsEncoder, TonesEncoder):
    if _cls.name not in ENCODERS:
        ENCODERS.register(_cls.name)(_cls)


def build_fake_artifacts(out: Path, n_items: int = 36, n_users: int = 14) -> Path:
    """Run the real pipeline on a small demo catalog with the fake encoders; return artifacts/."""
    from fuserec.pipeline import PipelineConfig, run_demo

    spec = DemoCatalogSpec(n_items=n_items, n_users=n_users, seed=3, inject_errors=False)
    config = PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False)
    run_demo(out, spec, config, Console(quiet=True))
    return out / "artifacts"


def single_image_item(state) -> int:
    """Position of an item with exactly one image and one audio clip."""
    for pos in range(state.n_items):
        media = state.item_media[pos]
        if len(media["images"]) == 1 and len(media["audio"]) == 1:
            return pos
    raise AssertionError("no item with one image and one clip")


def start_server(app, seconds: float = 30.0):
    """Serve ``app`` with uvicorn on a free loopback port in a daemon thread; return
    ``(url, server, thread)`` once ``/health`` answers (RuntimeError if it never does).
    Stop it with ``server.should_exit = True; thread.join()``."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, server, thread
        except httpx.HTTPError:
            time.sleep(0.1)
    server.should_exit = True
    raise RuntimeError("uvicorn did not start")
