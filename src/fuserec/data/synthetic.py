"""A generated demo catalog with a hidden taste structure: the pipeline's oracle.

Every item carries three independent hidden factors, each visible through one modality only:

* a visual style (colour + pattern) drawn into its image,
* a sound style (drone, beeps, drums, chords, sweeps, plucks) synthesised into its audio clip,
* a topic (cooking, hiking, ...) written into its title and description.

A share of the items are spoken episodes instead (when espeak-ng is installed): no picture, a
short title, and a narrated clip whose words restate and extend the topic. Their audio features
only say "speech", so their topic is best read from the transcript: these are the items whose
generated text views agree with their own text, and the consistency router's text path.

Every user prefers one value of each factor, with personal weights, plus a little taste for
popular items (a spoken episode matches on its topic only, weighted as two factors).
Interactions are sampled with probability ``exp(beta * match score)``. So each single modality
explains only part of a user's choices and fusing the three views should measurably beat any
one of them: the demo checks exactly that. The hidden factors are written
to ``truth.json`` beside the catalog for tests and curious readers; the pipeline never reads it.

The catalog is ordinary files (JPEG/PNG images, WAV clips, CSV tables) and doubles as the
documented example of the input format. With ``inject_errors=True`` a few deliberately broken
records are added (a corrupt image, a truncated WAV, a duplicate id, interactions with unknown
ids) so that validation has something to report; every good record still goes through.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image, ImageDraw
from rich.progress import Progress

from fuserec.io import write_json, write_text

SAMPLE_RATE = 22_050
IMAGE_SIZE = 224

VISUAL_STYLES = ["red discs", "blue stripes", "green checkerboard", "yellow triangles",
                 "purple polka dots", "grey rings"]
SOUND_STYLES = ["low drone", "high beeps", "drum hits", "warm chords", "rising sweeps",
                "plucked strings"]
TOPICS = {
    "cooking": (["recipe", "kitchen", "chef", "pasta", "spices", "baking", "soup", "dinner"],
                ["slow-cooked stews", "fresh bread from the oven", "knife skills for beginners",
                 "a spicy curry", "homemade pasta dough", "seasonal vegetables"]),
    "hiking": (["trail", "mountain", "summit", "backpack", "forest path", "ridge", "campfire"],
               ["a long walk above the tree line", "packing light for a weekend trek",
                "sunrise from the summit", "crossing alpine streams", "reading a trail map"]),
    "astronomy": (["telescope", "galaxy", "planet", "nebula", "comet", "orbit", "star chart"],
                  ["the rings of Saturn", "a night under dark skies", "how stars are born",
                   "tracking the moons of Jupiter", "a meteor shower in August"]),
    "football": (["match", "goal", "striker", "stadium", "league", "penalty", "midfield"],
                 ["a last-minute winning goal", "tactics of a pressing midfield",
                  "the derby that decided the title", "training with the youth team"]),
    "gardening": (["garden", "roses", "seedlings", "compost", "greenhouse", "tulips", "soil"],
                  ["planting bulbs in autumn", "keeping tomatoes healthy", "a balcony herb box",
                   "pruning fruit trees", "attracting bees with wildflowers"]),
    "programming": (["code", "compiler", "algorithm", "database", "debugger", "software"],
                    ["writing a parser from scratch", "speeding up a slow query",
                     "testing a web service", "refactoring legacy code", "a tour of data types"]),
}
ADJECTIVES = ["quiet", "bright", "gentle", "bold", "simple", "curious", "classic", "fresh",
              "little", "grand", "honest", "vivid"]
FILLERS = ["A short piece", "An episode", "A collection", "A story", "A guide", "A feature"]


@dataclass
class DemoCatalogSpec:
    """Sizes and knobs of the generated catalog (defaults: the demo's)."""

    n_items: int = 300
    n_users: int = 200
    seed: int = 7
    beta: float = 2.2
    min_interactions: int = 8
    max_interactions: int = 36
    user_text_share: float = 0.5
    user_image_share: float = 0.25
    spoken_share: float = 0.2
    inject_errors: bool = True


def generate_demo_catalog(out: Path, spec: DemoCatalogSpec | None = None,
                          progress: bool = True) -> Path:
    """Write the demo catalog under ``out`` and return ``out``.

    Files: ``items.csv``, ``users.csv``, ``interactions.csv``, ``images/``, ``audio/``,
    ``truth.json`` (the hidden factors) and ``README.md`` (the format, in words).
    Deterministic for a given spec: the same seed writes the same files.
    """
    spec = spec or DemoCatalogSpec()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    n_vis, n_snd, n_top = len(VISUAL_STYLES), len(SOUND_STYLES), len(TOPICS)
    topics = list(TOPICS)

    item_factors = np.stack([rng.integers(0, n, spec.n_items) for n in (n_vis, n_snd, n_top)], 1)
    quality = rng.normal(0.0, 0.5, spec.n_items)
    item_ids = [f"item_{j:04d}" for j in range(spec.n_items)]
    spoken = _spoken_items(spec, rng)
    item_factors[spoken, :2] = -1  # a spoken episode has no visual or sound style

    items = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating items", total=spec.n_items)
        for j, item_id in enumerate(item_ids):
            vis, snd, top = (int(v) for v in item_factors[j])
            irng = np.random.default_rng([spec.seed, j])
            if spoken[j]:
                items.append(_spoken_item(out, item_id, topics[top], irng))
                bar.advance(task)
                continue
            ext = "png" if j % 5 == 0 else "jpg"
            image_paths = [f"images/{item_id}.{ext}"]
            _draw_style(vis, irng).save(out / image_paths[0], quality=90)
            if j % 10 == 3:  # some items have a second picture of the same style
                image_paths.append(f"images/{item_id}_b.jpg")
                _draw_style(vis, irng).save(out / image_paths[1], quality=90)
            audio_path = f"audio/{item_id}.wav"
            sf.write(out / audio_path, _synth_style(snd, irng), SAMPLE_RATE, subtype="PCM_16")
            title, description = _write_text(topics[top], irng)
            items.append({
                "id": item_id, "title": title, "description": description,
                "images": "|".join(image_paths), "audio": audio_path,
                "attr_price": round(float(irng.uniform(2, 60)), 2),
                "attr_year": int(irng.integers(1990, 2026)),
            })
            bar.advance(task)

    user_ids = [f"user_{i:04d}" for i in range(spec.n_users)]
    prefs = np.stack([rng.integers(0, n, spec.n_users) for n in (n_vis, n_snd, n_top)], 1)
    weights = rng.uniform(0.6, 1.4, (spec.n_users, 3))
    users, interactions = [], []
    for i, user_id in enumerate(user_ids):
        urng = np.random.default_rng([spec.seed, 10_000 + i])
        row = {"id": user_id, "bio": "", "images": ""}
        if urng.random() < spec.user_text_share:
            row["bio"] = _write_bio(topics[prefs[i, 2]], urng)
        if urng.random() < spec.user_image_share:
            path = f"images/{user_id}_avatar.jpg"
            _draw_style(int(prefs[i, 0]), urng).save(out / path, quality=90)
            row["images"] = path
        users.append(row)
        match = (item_factors == prefs[i]).astype(float) @ weights[i]
        match[spoken] *= 2.0
        logits = spec.beta * match + quality
        p = np.exp(logits - logits.max())
        p /= p.sum()
        n = int(urng.integers(spec.min_interactions, spec.max_interactions + 1))
        chosen = urng.choice(spec.n_items, size=min(n, spec.n_items), replace=False, p=p)
        for rank, j in enumerate(chosen):
            interactions.append({"user_id": user_id, "item_id": item_ids[j], "weight": 1.0,
                                 "timestamp": 1_700_000_000 + 3600 * rank + i})

    if spec.inject_errors:
        _inject_errors(out, items, interactions)

    pd.DataFrame(items).to_csv(out / "items.csv", index=False)
    pd.DataFrame(users).to_csv(out / "users.csv", index=False)
    pd.DataFrame(interactions).to_csv(out / "interactions.csv", index=False)
    truth = {
        "factors": ["visual_style", "sound_style", "topic"],
        "values": {"visual_style": VISUAL_STYLES, "sound_style": SOUND_STYLES, "topic": topics},
        "items": {iid: item_factors[j].tolist() for j, iid in enumerate(item_ids)},
        "spoken": [iid for j, iid in enumerate(item_ids) if spoken[j]],
        "users": {uid: {"prefers": prefs[i].tolist(), "weights": weights[i].round(3).tolist()}
                  for i, uid in enumerate(user_ids)},
        "spec": spec.__dict__,
    }
    write_json(out / "truth.json", truth)
    write_text(out / "README.md", _FORMAT_README)
    return out


def load_truth(catalog_dir: Path) -> dict:
    """The hidden factors written by :func:`generate_demo_catalog`."""
    return json.loads((Path(catalog_dir) / "truth.json").read_text())


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 25) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _draw_style(style: int, rng: np.random.Generator) -> Image.Image:
    """One image of a visual style, with random layout, sizes and colour jitter."""
    s = IMAGE_SIZE
    bg = _jitter((235, 235, 228), rng, 15)
    img = Image.new("RGB", (s, s), bg)
    d = ImageDraw.Draw(img)
    if style == 0:  # red discs
        for _ in range(int(rng.integers(2, 6))):
            r = int(rng.integers(18, 60))
            x, y = (int(v) for v in rng.integers(0, s, 2))
            d.ellipse([x - r, y - r, x + r, y + r], fill=_jitter((215, 40, 35), rng))
    elif style == 1:  # blue stripes
        width = int(rng.integers(10, 26))
        color = _jitter((30, 70, 200), rng)
        slope = int(rng.integers(-60, 61))
        for k in range(-s, 2 * s, 2 * width):
            d.polygon([(k, 0), (k + width, 0), (k + width + slope, s), (k + slope, s)], fill=color)
    elif style == 2:  # green checkerboard
        cell = int(rng.integers(16, 40))
        color = _jitter((40, 150, 60), rng)
        for y in range(0, s, cell):
            for x in range(0, s, cell):
                if (x // cell + y // cell) % 2 == 0:
                    d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=color)
    elif style == 3:  # yellow triangles
        for _ in range(int(rng.integers(2, 6))):
            x, y = (int(v) for v in rng.integers(20, s - 20, 2))
            r = int(rng.integers(20, 55))
            color = _jitter((240, 200, 30), rng)
            d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=color)
    elif style == 4:  # purple polka dots
        step = int(rng.integers(18, 34))
        r = max(3, step // 4)
        color = _jitter((130, 50, 170), rng)
        off = int(rng.integers(0, step))
        for y in range(off, s, step):
            for x in range(off, s, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=color)
    else:  # grey rings
        cx, cy = (int(v) for v in rng.integers(60, s - 60, 2))
        gap = int(rng.integers(8, 16))
        color = _jitter((70, 70, 70), rng, 20)
        for r in range(s, 0, -gap):
            d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=max(2, gap // 3))
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (s, s, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _synth_style(style: int, rng: np.random.Generator) -> np.ndarray:
    """About two seconds of one sound style, with random pitch, rate and level."""
    dur = float(rng.uniform(1.6, 2.4))
    t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
    y = np.zeros_like(t)
    if style == 0:  # low drone
        f = rng.uniform(70, 130)
        y = np.sin(2 * np.pi * f * t) * (0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.3, 1) * t))
        y += 0.3 * np.sin(2 * np.pi * 2 * f * t)
    elif style == 1:  # high beeps
        f, rate = rng.uniform(1500, 2600), rng.uniform(6, 10)
        gate = (np.mod(t * rate, 1.0) < 0.35).astype(float)
        y = gate * np.sin(2 * np.pi * f * t)
    elif style == 2:  # drum hits: decaying noise bursts
        rate = rng.uniform(2, 4)
        phase = np.mod(t * rate, 1.0) / rate
        y = rng.normal(0, 1, t.size) * np.exp(-phase * rng.uniform(25, 45))
        y += np.sin(2 * np.pi * 60 * t) * np.exp(-phase * 20)
    elif style == 3:  # warm chords: a sustained major triad with harmonics
        f = rng.uniform(220, 420)
        for ratio in (1.0, 1.26, 1.5):
            for h, a in ((1, 1.0), (2, 0.4), (3, 0.2)):
                y += a * np.sin(2 * np.pi * f * ratio * h * t)
    elif style == 4:  # rising sweeps
        period = rng.uniform(0.4, 0.8)
        phase = np.mod(t, period) / period
        f0, f1 = rng.uniform(200, 400), rng.uniform(3000, 5000)
        inst = f0 * (f1 / f0) ** phase
        y = np.sin(2 * np.pi * np.cumsum(inst) / SAMPLE_RATE)
    else:  # plucked strings (Karplus-Strong)
        rate = rng.uniform(2.5, 4.5)
        n_hit = int(np.ceil(dur * rate))
        for k in range(n_hit):
            f = rng.uniform(200, 800)
            start = int(k / rate * SAMPLE_RATE)
            y[start:] += _pluck(f, t.size - start, rng)
    y = y / (np.abs(y).max() + 1e-9) * rng.uniform(0.3, 0.8)
    y += rng.normal(0, 0.01, t.size)
    return y.astype(np.float32)


def _pluck(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    period = max(2, int(SAMPLE_RATE / freq))
    buf = rng.uniform(-1, 1, period)
    reps = int(np.ceil(n / period))
    out = np.empty(reps * period)
    for r in range(reps):  # one averaging pass per period keeps this vectorised
        out[r * period:(r + 1) * period] = buf
        buf = 0.996 * 0.5 * (buf + np.roll(buf, -1))
    return out[:n]


def _write_text(topic: str, rng: np.random.Generator) -> tuple[str, str]:
    nouns, phrases = TOPICS[topic]
    adj = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
    noun = nouns[int(rng.integers(len(nouns)))]
    title = f"The {adj} {noun}"
    picks = rng.choice(len(phrases), 2, replace=False)
    other = nouns[int(rng.integers(len(nouns)))]
    filler = FILLERS[int(rng.integers(len(FILLERS)))]
    description = (f"{filler} about {phrases[picks[0]]}, with notes on the {other}. "
                   f"Also: {phrases[picks[1]]}.")
    return title, description


def _spoken_items(spec: DemoCatalogSpec, rng: np.random.Generator) -> np.ndarray:
    """Which items are spoken episodes (none when espeak-ng is missing: nothing can speak)."""
    mask = rng.random(spec.n_items) < spec.spoken_share
    if mask.any() and shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed: the demo catalog has no spoken episodes")
        return np.zeros(spec.n_items, bool)
    return mask


def _spoken_item(out: Path, item_id: str, topic: str, rng: np.random.Generator) -> dict:
    """A spoken episode: a short title and a narrated WAV about the topic, no picture."""
    nouns, phrases = TOPICS[topic]
    adj = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
    title = f"The {adj} {nouns[int(rng.integers(len(nouns)))]}"
    picks = rng.choice(len(phrases), 2, replace=False)
    extra = rng.choice(len(nouns), 2, replace=False)
    script = (f"Welcome back. Today we talk about {phrases[picks[0]]}. "
              f"We cover the {nouns[extra[0]]} and the {nouns[extra[1]]}, "
              f"and then {phrases[picks[1]]}.")
    audio_path = f"audio/{item_id}.wav"
    _speak(script, out / audio_path)
    return {"id": item_id, "title": title, "description": "A spoken episode.", "images": "",
            "audio": audio_path, "attr_price": round(float(rng.uniform(2, 60)), 2),
            "attr_year": int(rng.integers(1990, 2026))}


def _speak(text: str, path: Path) -> None:
    """Synthesise ``text`` with espeak-ng into a 16-bit WAV at ``path`` (atomic)."""
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=path.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(tmp_path), text],
                       check=True, capture_output=True, timeout=60)
        tmp_path.replace(path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_bio(topic: str, rng: np.random.Generator) -> str:
    nouns, phrases = TOPICS[topic]
    noun = nouns[int(rng.integers(len(nouns)))]
    phrase = phrases[int(rng.integers(len(phrases)))]
    return f"I spend my weekends on {phrase} and anything about the {noun}."


def _inject_errors(out: Path, items: list[dict], interactions: list[dict]) -> None:
    """Append deliberately broken records so the demo's validation has something to show."""
    (out / "images" / "broken_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    wav = out / "audio" / "broken_truncated.wav"
    sf.write(wav, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    wav.write_bytes(wav.read_bytes()[:2000])
    base = {"attr_price": 1.0, "attr_year": 2000}
    items.append({"id": "broken_image", "title": "An item whose picture is corrupt",
                  "description": "Its text is fine, so it stays; the image is dropped.",
                  "images": "images/broken_corrupt.jpg", "audio": "", **base})
    items.append({"id": "broken_audio", "title": "An item whose clip is cut short",
                  "description": "The WAV header promises more than the file holds.",
                  "images": "", "audio": "audio/broken_truncated.wav", **base})
    items.append({"id": "broken_escape", "title": "An item pointing outside the catalog",
                  "description": "Its image path climbs out of the catalog root.",
                  "images": "../outside.jpg", "audio": "", **base})
    dup = dict(items[0])
    dup["title"] = "A second record with an id already used"
    items.append(dup)
    interactions.append({"user_id": "user_0000", "item_id": "item_missing", "weight": 1.0,
                         "timestamp": 1_700_000_000})
    interactions.append({"user_id": "user_missing", "item_id": "item_0000", "weight": 1.0,
                         "timestamp": 1_700_000_000})


_FORMAT_README = """# The demo catalog (generated)

This folder is the input format fuserec reads, written by `fuserec demo`.

* `items.csv`: `id`, text columns (`title`, `description`), `images` and `audio` (paths
  relative to this folder, several separated by `|`), attributes as `attr_<name>` columns.
* `users.csv`: `id`, the user's own text (`bio`) and `images`, all optional.
* `interactions.csv`: `user_id`, `item_id`, `weight`, `timestamp`.
* `truth.json`: the hidden factors every item and user was generated from (not read by the
  pipeline).

A few records are broken on purpose (`broken_*` ids, a duplicate id, unknown ids in
interactions) to show that validation reports them and every good record goes on.
"""
