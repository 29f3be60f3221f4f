"""A fixed-length acoustic descriptor computed with librosa (no learned model).

Each clip is loaded mono at 22,050 Hz (the first 30 s; resampled with soxr), then one STFT
(n_fft 2048, hop 512) is shared by every spectral feature. The vector (``DIM`` = 220 float32
values, in this order) holds, as mean and standard deviation over frames unless noted:

====================  ====  ======================================================
log-mel               128   64 mel bands, power in dB (``power_to_db``, ref 1, top 80 dB)
MFCC                  40    20 coefficients from that log-mel
chroma                24    12 pitch classes (``chroma_stft``)
spectral centroid     2     in kHz
spectral bandwidth    2     in kHz
spectral rolloff      2     85 % rolloff, in kHz
spectral flatness     2
spectral contrast     14    7 bands
zero-crossing rate    2
RMS energy            2     frame RMS of the waveform
onset strength        1     mean of the onset envelope (from the log-mel)
tempo                 1     global tempo estimate in BPM / 100
====================  ====  ======================================================

The features live on very different scales; standardise per dimension before comparing
vectors (the fusion stage does). Frequencies are in kHz and tempo in hundreds of BPM only to
keep magnitudes moderate.

Batches of clips are decoded and analysed in a process pool (``workers``), which is ~2x
faster than one process on two cores because most of the work holds the GIL. The pool also
contains native crashes (see :mod:`fuserec.workers`): a clip whose analysis kills its worker
is reported as an error naming the file and the signal, and the other clips are still encoded.

numba compiles librosa's kernels for a portable x86-64 level (:mod:`fuserec.portable`), which
leaves the descriptor's values as they were.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from fuserec.encode.base import (
    ENCODERS,
    EncodedBatch,
    Encoder,
    collect_batches,
    default_threads,
)
from fuserec.workers import CrashIsolatingPool, WorkerCrash

SAMPLE_RATE = 22_050
MAX_SECONDS = 30.0
N_FFT = 2048
HOP = 512
N_MELS = 64
N_MFCC = 20
N_CHROMA = 12
N_CONTRAST_BANDS = 6  # librosa returns n_bands + 1 rows

FEATURE_SIZES: dict[str, int] = {
    "logmel": 2 * N_MELS,
    "mfcc": 2 * N_MFCC,
    "chroma": 2 * N_CHROMA,
    "centroid": 2,
    "bandwidth": 2,
    "rolloff": 2,
    "flatness": 2,
    "contrast": 2 * (N_CONTRAST_BANDS + 1),
    "zcr": 2,
    "rms": 2,
    "onset": 1,
    "tempo": 1,
}
DIM = sum(FEATURE_SIZES.values())  # 220


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float = MAX_SECONDS
               ) -> np.ndarray:
    """Mono float32 waveform at ``sr`` Hz, at most ``max_seconds`` long."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, _ = librosa.load(path, sr=sr, mono=True, duration=max_seconds, res_type="soxr_hq")
    if y.size == 0:
        raise ValueError("no audio samples")
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y)
    return y.astype(np.float32, copy=False)


def _stats(x: np.ndarray) -> list[np.ndarray]:
    return [x.mean(axis=-1), x.std(axis=-1)]


def descriptor(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The ``DIM``-long descriptor of a waveform, computing the STFT once."""
    import librosa

    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = mag**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS)
    logmel = librosa.power_to_db(mel)
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT, hop_length=HOP)
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr)
    bandwidth = librosa.feature.spectral_bandwidth(S=mag, sr=sr)
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr)
    flatness = librosa.feature.spectral_flatness(S=mag)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_bands=N_CONTRAST_BANDS)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)
    onset = librosa.onset.onset_strength(S=logmel, sr=sr, hop_length=HOP)
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)
    return _assemble(logmel, mfcc, chroma, centroid, bandwidth, rolloff, flatness, contrast,
                     zcr, rms, onset, tempo)


def _assemble(logmel, mfcc, chroma, centroid, bandwidth, rolloff, flatness, contrast, zcr, rms,
              onset, tempo) -> np.ndarray:
    parts = [*_stats(logmel), *_stats(mfcc), *_stats(chroma),
             *_stats(centroid / 1000.0), *_stats(bandwidth / 1000.0), *_stats(rolloff / 1000.0),
             *_stats(flatness), *_stats(contrast), *_stats(zcr), *_stats(rms),
             np.atleast_1d(onset.mean()), np.atleast_1d(np.asarray(tempo).ravel()[0] / 100.0)]
    vec = np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)
    if vec.shape != (DIM,):  # pragma: no cover - guards the documented layout
        raise AssertionError(f"descriptor has {vec.shape[0]} values, expected {DIM}")
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)


def clip_features(path: str) -> tuple[np.ndarray | None, str | None]:
    """Descriptor of one file as ``(vector, None)``, or ``(None, reason)`` when it fails.

    Errors are returned rather than raised so they cross process boundaries intact.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "estimate tuning from empty frequency set"
            return descriptor(load_audio(path)), None
    except Exception as exc:  # decoding failures come in many types
        return None, f"cannot decode audio {path}: {type(exc).__name__}: {exc}"


def _init_worker() -> None:
    # one BLAS/numba thread per worker process: the pool provides the parallelism
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


@ENCODERS.register("librosa")
class LibrosaAudioEncoder(Encoder):
    """Audio encoder: the 220-d librosa descriptor described in this module.

    Args:
        workers: worker processes; all available cores when None. 0 analyses in this process
            (no crash containment).
        start_method: how workers start, ``"fork"`` (default) or ``"spawn"`` (inside processes
            that must not fork, such as Ray actors).
    """

    modality = "audio"
    default_batch_size = 16
    preprocess_version = "1"
    dim = DIM
    #: per-file analysis ``path -> (vector, None) | (None, reason)``; runs in the workers
    analyse = staticmethod(clip_features)

    def __init__(self, workers: int | None = None, start_method: str | None = None,
                 name: str = "librosa") -> None:
        self.name = name
        self.start_method = start_method
        self.workers = default_threads() if workers is None else workers
        self._pool: CrashIsolatingPool | None = None

    def model_identity(self) -> str:
        import librosa

        return (f"librosa{librosa.__version__}|sr{SAMPLE_RATE}|max{MAX_SECONDS:g}s|fft{N_FFT}"
                f"|hop{HOP}|mel{N_MELS}|mfcc{N_MFCC}|dim{DIM}")

    def encode(self, inputs: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        """Descriptors ``(n, 220)`` for audio files; EncodeError on an undecodable file."""
        return collect_batches(self, self.encode_batches(inputs, batch_size), inputs)

    def encode_batches(self, inputs: Sequence[str | Path], batch_size: int | None = None
                       ) -> Iterator[EncodedBatch]:
        """Analyse clips (in worker processes for larger inputs), yielding one result per batch."""
        bs = batch_size or self.default_batch_size
        paths = [str(p) for p in inputs]
        if not paths:
            return
        if self.workers >= 1:
            results = self._executor().imap(self.analyse, paths)
        else:
            results = map(self.analyse, paths)
        good: list[int] = []
        vecs: list[np.ndarray] = []
        errors: list[tuple[int, str]] = []
        for i, result in enumerate(results):
            if isinstance(result, WorkerCrash):
                result = None, f"cannot analyse audio {paths[i]}: {result.reason}"
            vec, reason = result
            if vec is None:
                errors.append((i, reason or "unknown error"))
            else:
                good.append(i)
                vecs.append(vec)
            if len(good) + len(errors) == bs or i == len(paths) - 1:
                matrix = np.stack(vecs) if vecs else np.zeros((0, DIM), np.float32)
                yield EncodedBatch(good, matrix, errors)
                good, vecs, errors = [], [], []

    def _executor(self) -> CrashIsolatingPool:
        if self._pool is None:
            self._pool = CrashIsolatingPool(self.workers, initializer=_init_worker,
                                            start_method=self.start_method)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self) -> None:  # best effort; workers also exit with their parent
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.close()
