"""Image -> text: EfficientNet-Lite0's top ImageNet labels by name plus plain visual facts.

The 1,000 ImageNet class names are read from the data files the ``timm`` wheel ships
(``timm/data/_info/imagenet_synsets.txt`` gives the class order, ``imagenet_synset_to_lemma.txt``
the names). The files are located with :func:`importlib.util.find_spec`, which does not import
timm (its import needs torchvision), so nothing but two text files is read and nothing is
downloaded. Any other file with one ``synset<TAB>names`` line per class can be passed instead.

Visual facts are measured on a 64x64 thumbnail: the dominant colour names (share of pixels per
named hue, with black / grey / white for unsaturated pixels), brightness (mean luminance),
colourfulness (mean saturation) and orientation (aspect ratio of the full image).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fuserec.describe.base import DESCRIBERS, DescribeError, Describer, Description
from fuserec.encode.base import Encoder, file_identity
from fuserec.encode.cache import EmbeddingCache
from fuserec.encode.hashing import file_hash

SYNSETS_FILE = "imagenet_synsets.txt"
LEMMAS_FILE = "imagenet_synset_to_lemma.txt"


def _timm_info_dir() -> Path:
    spec = importlib.util.find_spec("timm")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the ImageNet class names come from the timm wheel's data files: "
                                "pip install --no-deps timm")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"


@lru_cache(maxsize=4)
def imagenet_class_names(info_dir: str | None = None) -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in model output order (first lemma of each synset)."""
    folder = Path(info_dir) if info_dir else _timm_info_dir()
    synsets = [s.strip() for s in (folder / SYNSETS_FILE).read_text().splitlines() if s.strip()]
    lemmas: dict[str, str] = {}
    for line in (folder / LEMMAS_FILE).read_text().splitlines():
        syn, _, names = line.partition("\t")
        lemmas[syn.strip()] = names.split(",")[0].strip()
    names = tuple(lemmas.get(s, s) for s in synsets)
    if len(names) != 1000:
        raise ValueError(f"expected 1000 ImageNet classes in {folder}, found {len(names)}")
    return names


# --- visual facts ---------------------------------------------------------------------------

HUES: tuple[tuple[float, str], ...] = (  # upper bound of each hue band in degrees
    (15, "red"), (40, "orange"), (68, "yellow"), (160, "green"), (195, "teal"),
    (255, "blue"), (290, "purple"), (335, "pink"), (360, "red"),
)


def _colour_names(rgb: np.ndarray) -> np.ndarray:
    """A colour name per pixel for an ``(n, 3)`` float array in [0, 1]."""
    mx, mn = rgb.max(1), rgb.min(1)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.maximum(mx, 1e-6), 0.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    d = np.maximum(delta, 1e-6)
    hue = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    hue = hue * 60.0
    names = np.empty(len(rgb), dtype=object)
    bounds = np.array([h for h, _ in HUES])
    band = np.searchsorted(bounds, hue, side="right").clip(0, len(HUES) - 1)
    names[:] = [HUES[i][1] for i in band]
    brown = (hue >= 10) & (hue < 45) & (mx < 0.6) & (sat > 0.25)
    names[brown] = "brown"
    grey = sat < 0.18
    names[grey & (mx < 0.25)] = "black"
    names[grey & (mx >= 0.25) & (mx < 0.8)] = "grey"
    names[grey & (mx >= 0.8)] = "white"
    names[(mx < 0.12)] = "black"
    return names


def visual_facts(path: str | Path) -> dict[str, Any]:
    """Dominant colours, brightness, colourfulness and orientation of one image."""
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        img.draft("RGB", (128, 128))
        small = img.convert("RGB").resize((64, 64))
    rgb = np.asarray(small, dtype=np.float32).reshape(-1, 3) / 255.0
    names = _colour_names(rgb)
    values, counts = np.unique(names.astype(str), return_counts=True)
    order = np.argsort(-counts)
    shares = {str(values[i]): round(float(counts[i]) / len(names), 3) for i in order}
    luminance = float((rgb @ np.array([0.299, 0.587, 0.114], np.float32)).mean())
    mx, mn = rgb.max(1), rgb.min(1)
    saturation = float(np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0).mean())
    ratio = width / max(height, 1)
    return {
        "colours": {k: v for k, v in shares.items() if v >= 0.08} or dict(list(shares.items())[:1]),
        "brightness": round(luminance, 3),
        "colourfulness": round(saturation, 3),
        "orientation": "landscape" if ratio > 1.1 else "portrait" if ratio < 0.9 else "square",
        "size": [int(width), int(height)],
    }


def _brightness_word(v: float) -> str:
    return "dark" if v < 0.3 else "dim" if v < 0.45 else "bright" if v > 0.7 else "medium-bright"


def _colourfulness_word(s: float) -> str:
    return "muted" if s < 0.2 else "vivid" if s > 0.5 else "moderately colourful"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def render_image_text(labels: list[tuple[str, float]], facts: dict[str, Any]) -> str:
    """The image's words: what it looks like, then its colours, light and shape."""
    parts = []
    if labels:
        named = [f"{_article(n)} {n}" for n, _ in labels]
        looks = named[0] if len(named) == 1 else ", ".join(named[:-1]) + f" or {named[-1]}"
        parts.append(f"A picture that looks like {looks}")
    colours = list(facts.get("colours", {}))[:3]
    if colours:
        listed = colours[0] if len(colours) == 1 \
            else ", ".join(colours[:-1]) + f" and {colours[-1]}"
        parts.append(f"mostly {listed}")
    if "brightness" in facts:
        parts.append(f"{_brightness_word(facts['brightness'])} and "
                     f"{_colourfulness_word(facts.get('colourfulness', 0.0))}")
    if "orientation" in facts:
        parts.append(f"{facts['orientation']} format")
    return "; ".join(parts) + "." if parts else ""


@DESCRIBERS.register("imagenet-labels")
class ImageNetLabeler(Describer):
    """Top-k ImageNet labels of EfficientNet-Lite0 plus visual facts, rendered as words.

    Args:
        encoder: an :class:`~fuserec.encode.EfficientNetLiteEncoder` to share (one is built
            when None).
        embedding_cache: pooled image features are looked up here by file hash (and stored),
            so an image the encode stage has seen is not run through the network again.
        top_k: labels kept at most; labels after the first need ``min_prob``.
        min_prob: softmax probability a second or later label needs to be named.
        info_dir: folder with the two ImageNet name files (default: the timm wheel's).
    """

    modality = "image"
    render_version = "1"

    def __init__(self, encoder: Encoder | None = None,
                 embedding_cache: EmbeddingCache | None = None, top_k: int = 3,
                 min_prob: float = 0.05, info_dir: str | None = None,
                 name: str = "imagenet-labels") -> None:
        self.name = name
        self._encoder = encoder
        self.embedding_cache = embedding_cache
        self.top_k = top_k
        self.min_prob = min_prob
        self.info_dir = info_dir
        self.class_names = imagenet_class_names(info_dir)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from fuserec.encode import get_encoder

            self._encoder = get_encoder("efficientnet-lite0")
        return self._encoder

    def model_identity(self) -> str:
        folder = Path(self.info_dir) if self.info_dir else _timm_info_dir()
        return (f"{self.encoder.version}|names:{file_identity(folder / LEMMAS_FILE)}"
                f"|top{self.top_k}|p{self.min_prob:g}")

    def labels_from_logits(self, logits: np.ndarray) -> list[tuple[str, float]]:
        """Top labels ``(name, probability)`` of one logit row."""
        z = np.asarray(logits, np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p)[: self.top_k]
        return [(self.class_names[i], round(float(p[i]), 4)) for rank, i in enumerate(order)
                if rank == 0 or p[i] >= self.min_prob]

    def features(self, paths: Sequence[str | Path]) -> list[np.ndarray | DescribeError]:
        """Pooled features per path, from the embedding cache where possible."""
        enc = self.encoder
        out: list[np.ndarray | DescribeError | None] = [None] * len(paths)
        keys: list[str | None] = []
        for i, p in enumerate(paths):
            try:
                keys.append(file_hash(p))
            except OSError as exc:
                keys.append(None)
                out[i] = DescribeError(f"cannot read {p}: {exc}", p)
        cache = self.embedding_cache
        found = cache.get_many(enc, [k for k in keys if k]) if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k and k not in found]
        if todo:
            for batch in enc.encode_batches([paths[i] for i in todo]):
                if batch.indices and cache is not None:
                    cache.put_many(enc, [keys[todo[j]] for j in batch.indices], batch.vectors)
                for j, vec in zip(batch.indices, batch.vectors, strict=True):
                    found[keys[todo[j]]] = vec
                for j, reason in batch.errors:
                    out[todo[j]] = DescribeError(reason, paths[todo[j]])
        for i, k in enumerate(keys):
            if out[i] is None:
                out[i] = found[k] if k in found else DescribeError("not encoded", paths[i])
        return out  # type: ignore[return-value]

    def describe(self, paths: Sequence[str | Path]) -> list[Description | DescribeError]:
        feats = self.features(paths)
        good = [i for i, f in enumerate(feats) if isinstance(f, np.ndarray)]
        logits = self.encoder.classify(np.stack([feats[i] for i in good])) if good else None
        out: list[Description | DescribeError] = []
        row_of = {i: r for r, i in enumerate(good)}
        for i, p in enumerate(paths):
            if not isinstance(feats[i], np.ndarray):
                out.append(feats[i])  # type: ignore[arg-type]
                continue
            labels = self.labels_from_logits(logits[row_of[i]])
            try:
                facts = visual_facts(p)
            except Exception as exc:  # decoded for features, so this is rare
                out.append(DescribeError(f"cannot read {p}: {exc}", p))
                continue
            facts["labels"] = [{"label": n, "p": q} for n, q in labels]
            out.append(Description(render_image_text(labels, facts), facts))
        return out
