"""Encoder throughput: fuserec's encoders against straightforward baselines.

    .venv/bin/python benchmarks/encoder_throughput.py [--n-texts 512 --n-images 128
        --n-clips 64 --repeats 3 --json results.json]

Generates its own inputs in a temp dir (varied sentences, 256x256 PIL drawings saved as JPEG
and PNG, 3 s synthesized WAV clips), then measures in one run:

* text: fuserec ``minilm`` (default precision and fp32) vs ``SentenceTransformer(path).encode``
  with its defaults;
* image: fuserec ``efficientnet-lite0`` (batched, threaded decode) vs a naive loop (open one
  image, preprocess, run the model on a batch of one, under ``torch.no_grad``);
* audio: fuserec ``librosa`` (shared STFT, process pool) vs a naive sequential loop computing
  the same features with one librosa call per feature straight from the waveform.

Each measurement is repeated ``--repeats`` times, alternating contender and baseline to share
out machine noise; the medians are reported. Model loading and warm-up are excluded from the
throughput and reported separately. Also reported: agreement (minimum cosine) of the outputs.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

# -- inputs ------------------------------------------------------------------------------

SUBJECTS = ["a sleepy cat", "the old fisherman", "my neighbour's dog", "a small startup",
            "the city orchestra", "a red bicycle", "this vintage lamp", "the hiking boots",
            "a cast-iron skillet", "the jazz quartet", "an indie video game", "the wool scarf"]
VERBS = ["sleeps on", "repairs", "sings about", "sells", "photographs", "is perfect for",
         "was designed for", "reminds me of", "outperforms", "pairs nicely with"]
OBJECTS = ["a sunny balcony", "quarterly earnings", "rainy autumn evenings",
           "the mountain trail near the lake", "children and adults alike",
           "a cozy living room with wooden floors and large windows",
           "long road trips", "the latest smartphone", "late-night study sessions"]
EXTRAS = ["Highly recommended.", "Ships in two days.", "Limited edition, hand made in Portugal.",
          "Five stars from over three thousand verified buyers who loved the colour and fit.",
          "", "Not for everyone.", "Machine washable at 30 degrees."]


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        clauses = [f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} "
                   f"{rng.choice(OBJECTS)}." for _ in range(rng.choice([1, 1, 2, 3, 5]))]
        out.append(" ".join(clauses + [rng.choice(EXTRAS)]).strip())
    return out


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        bg = tuple(rng.randrange(256) for _ in range(3))
        img = Image.new("RGB", (256, 256), bg)
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randrange(3, 12)):
            x0, y0 = rng.randrange(200), rng.randrange(200)
            box = (x0, y0, x0 + rng.randrange(20, 120), y0 + rng.randrange(20, 120))
            colour = tuple(rng.randrange(256) for _ in range(3))
            getattr(draw, rng.choice(["ellipse", "rectangle"]))(box, fill=colour)
            draw.line((rng.randrange(256), rng.randrange(256), rng.randrange(256),
                       rng.randrange(256)), fill=colour, width=rng.randrange(1, 8))
        path = folder / (f"img{i:04d}.jpg" if i % 2 == 0 else f"img{i:04d}.png")
        img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
        paths.append(path)
    return paths


def make_clips(folder: Path, n: int, seconds: float = 3.0, sr: int = 22_050, seed: int = 0
               ) -> list[Path]:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f0 = rng.uniform(80, 1000)
        y = sum(rng.uniform(0.05, 0.4) / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 5))
        beat = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.95).astype(float)
        y = y + rng.uniform(0, 0.2) * rng.standard_normal(t.size) * beat
        y = y + rng.uniform(0, 0.05) * rng.standard_normal(t.size)
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, (0.8 * y / max(1e-6, np.abs(y).max())).astype(np.float32), sr)
        paths.append(path)
    return paths


# -- helpers -----------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(1).min())


def race(n: int, repeats: int, contenders: dict[str, Callable[[], np.ndarray]]
         ) -> dict[str, dict]:
    """Alternate the contenders ``repeats`` times; median items/s and the last outputs."""
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            dt, out = timed(fn)
            rates[name].append(n / dt)
            outputs[name] = np.asarray(out)
    return {k: {"per_s": statistics.median(v), "runs_per_s": [round(x, 2) for x in v],
                "output": outputs[k]} for k, v in rates.items()}


# -- the three benchmarks ----------------------------------------------------------------

def bench_text(n: int, repeats: int) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from fuserec.encode import get_encoder
    from fuserec.encode.text import default_model_path

    texts = make_texts(n)
    path = str(default_model_path())
    load_st, st = timed(lambda: SentenceTransformer(path, device="cpu"))
    load_fr, fr = timed(lambda: get_encoder("minilm"))
    load_fp, fp = timed(lambda: get_encoder("minilm", precision="fp32"))
    warm = texts[:64]
    st.encode(warm)
    fr.encode(warm)
    fp.encode(warm)
    res = race(n, repeats, {
        "sentence-transformers": lambda: st.encode(texts),
        f"fuserec minilm ({fr.precision})": lambda: fr.encode(texts),
        "fuserec minilm (fp32)": lambda: fp.encode(texts),
    })
    base = res["sentence-transformers"]
    rows = []
    for name, r in res.items():
        rows.append({"name": name, "per_s": r["per_s"], "runs_per_s": r["runs_per_s"],
                     "ratio": r["per_s"] / base["per_s"],
                     "min_cos_vs_baseline": min_cosine(r["output"], base["output"])})
    return {"unit": "texts", "n": n, "torch_threads": torch.get_num_threads(),
            "load_s": {"sentence-transformers": load_st, "fuserec": load_fr,
                       "fuserec fp32": load_fp},
            "rows": rows}


def bench_image(n: int, repeats: int, folder: Path) -> dict:
    import torch

    from fuserec.encode import get_encoder
    from fuserec.encode.image import default_weights_path, load_image

    paths = make_images(folder, n)
    load_fr, fr = timed(lambda: get_encoder("efficientnet-lite0"))
    load_fp, fp = timed(lambda: get_encoder("efficientnet-lite0", precision="fp32"))

    def load_naive():
        from efficientnet_lite_pytorch import EfficientNet

        m = EfficientNet.from_name("efficientnet-lite0")
        m.load_state_dict(torch.load(default_weights_path(), map_location="cpu",
                                     weights_only=True))
        return m.eval()

    load_nv, naive_model = timed(load_naive)

    def naive() -> np.ndarray:
        out = []
        with torch.no_grad():
            for p in paths:
                x = torch.from_numpy(load_image(p)).unsqueeze(0)
                out.append(naive_model.extract_features(x).mean(dim=(2, 3))[0].numpy())
        return np.stack(out)

    fr.encode(paths[:8])
    fp.encode(paths[:8])
    naive_model.extract_features(torch.from_numpy(load_image(paths[0])).unsqueeze(0))
    res = race(n, repeats, {"naive loop (batch of 1)": naive,
                            f"fuserec batched ({fr.precision}, bs {fr.default_batch_size})":
                            lambda: fr.encode(paths),
                            f"fuserec batched (fp32, bs {fp.default_batch_size})":
                            lambda: fp.encode(paths)})
    base = res["naive loop (batch of 1)"]
    rows = [{"name": k, "per_s": r["per_s"], "runs_per_s": r["runs_per_s"],
             "ratio": r["per_s"] / base["per_s"],
             "min_cos_vs_baseline": min_cosine(r["output"], base["output"])}
            for k, r in res.items()]
    fr.close()
    fp.close()
    return {"unit": "images", "n": n, "torch_threads": torch.get_num_threads(),
            "load_s": {"fuserec": load_fr, "fuserec fp32": load_fp, "naive": load_nv},
            "rows": rows}


def naive_clip(path: Path) -> np.ndarray:
    """The same descriptor, the obvious way: one librosa call per feature from the waveform."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "estimate tuning from empty frequency set"
        return _naive_clip(path)


def _naive_clip(path: Path) -> np.ndarray:
    import librosa

    from fuserec.encode import audio as A

    y, sr = librosa.load(path, sr=A.SAMPLE_RATE, mono=True, duration=A.MAX_SECONDS,
                         res_type="soxr_hq")
    kw = {"n_fft": A.N_FFT, "hop_length": A.HOP}
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=A.N_MELS,
                                                                **kw))
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=A.N_MFCC, n_mels=A.N_MELS, **kw)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, **kw)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, **kw)
    bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=sr, **kw)
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, **kw)
    flatness = librosa.feature.spectral_flatness(y=y, **kw)
    contrast = librosa.feature.spectral_contrast(y=y, sr=sr, n_bands=A.N_CONTRAST_BANDS, **kw)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=A.N_FFT, hop_length=A.HOP)
    rms = librosa.feature.rms(y=y, frame_length=A.N_FFT, hop_length=A.HOP)
    onset = librosa.onset.onset_strength(y=y, sr=sr, n_mels=A.N_MELS, **kw)
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=A.HOP)
    return A._assemble(logmel, mfcc, chroma, centroid, bandwidth, rolloff, flatness, contrast,
                       zcr, rms, onset, tempo)


def bench_audio(n: int, repeats: int, folder: Path) -> dict:
    from fuserec.encode import get_encoder

    paths = make_clips(folder, n)
    load_fr, fr = timed(lambda: get_encoder("librosa"))
    jit_s, _ = timed(lambda: naive_clip(paths[0]))  # numba JIT, paid once per process
    fr.encode(paths[:4])  # warm the worker pool
    res = race(n, repeats, {"naive sequential loop": lambda: np.stack([naive_clip(p)
                                                                       for p in paths]),
                            f"fuserec ({fr.workers} workers)": lambda: fr.encode(paths)})
    base = res["naive sequential loop"]
    rows = []
    for k, r in res.items():
        diff = np.abs(r["output"] - base["output"]) / (np.abs(base["output"]) + 1e-3)
        rows.append({"name": k, "per_s": r["per_s"], "runs_per_s": r["runs_per_s"],
                     "ratio": r["per_s"] / base["per_s"],
                     "min_cos_vs_baseline": min_cosine(r["output"], base["output"]),
                     "max_rel_diff": float(diff.max())})
    fr.close()
    return {"unit": "clips (3 s)", "n": n, "load_s": {"fuserec": load_fr, "numba_jit": jit_s},
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=512)
    parser.add_argument("--n-images", type=int, default=128)
    parser.add_argument("--n-clips", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["text", "image", "audio"], action="append")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    which = args.only or ["text", "image", "audio"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fuserec-bench-") as tmp:
        if "text" in which and args.n_texts > 0:
            console.print(f"[bold]text[/]: {args.n_texts} sentences ...")
            results["text"] = bench_text(args.n_texts, args.repeats)
        if "image" in which and args.n_images > 0:
            console.print(f"[bold]image[/]: {args.n_images} images ...")
            results["image"] = bench_image(args.n_images, args.repeats, Path(tmp) / "img")
        if "audio" in which and args.n_clips > 0:
            console.print(f"[bold]audio[/]: {args.n_clips} clips ...")
            results["audio"] = bench_audio(args.n_clips, args.repeats, Path(tmp) / "wav")

    table = Table(title=f"Encoder throughput (median of {args.repeats}, {os.cpu_count()} CPUs)")
    for col in ("modality", "implementation", "items/s", "runs", "vs baseline",
                "min cos vs baseline"):
        table.add_column(col, justify="left" if col in ("modality", "implementation")
                         else "right")
    for modality, res in results.items():
        for i, row in enumerate(res["rows"]):
            table.add_row(modality if i == 0 else "", row["name"], f"{row['per_s']:.1f}",
                          " / ".join(f"{x:.0f}" for x in row["runs_per_s"]),
                          f"{row['ratio']:.2f}x", f"{row['min_cos_vs_baseline']:.5f}")
    console.print(table)
    for modality, res in results.items():
        loads = ", ".join(f"{k} {v:.2f} s" for k, v in res["load_s"].items())
        console.print(f"{modality} load/warm-up (excluded): {loads}")
    if args.json:
        from fuserec.io import write_json

        meta = {"python": platform.python_version(), "machine": platform.machine(),
                "cpus": os.cpu_count(), "repeats": args.repeats}
        write_json(args.json, {"meta": meta, **results})
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
