"""Checks on media files: path safety, size, format and full decoding of images and audio.

Every check raises :class:`MediaError` with a reason a person can read; nothing here aborts a
whole catalog, the caller drops the one bad path.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from fuserec.data.schema import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from fuserec.data.validate import ValidationLimits

#: PIL format names accepted for each allowed image extension family.
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"})

_AUDIO_BLOCK_FRAMES = 1 << 16


class MediaError(Exception):
    """A media file failed a check; ``str(error)`` is the human-readable reason."""


def resolve_media(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; raise :class:`MediaError` if unsafe or missing.

    Rejects absolute paths, paths that leave the root through ``..`` and symlinks whose target
    lies outside the root.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise MediaError("empty media path")
    relative = relative.strip()
    if (
        os.path.isabs(relative)
        or relative.startswith(("/", "\\"))
        or (len(relative) > 1 and relative[1] == ":")
    ):
        raise MediaError("path is absolute; media paths must be relative to the catalog root")
    if "\x00" in relative:
        raise MediaError("path contains a NUL character")
    root_resolved = Path(root).resolve()
    candidate = Path(root) / relative
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops and the like
        raise MediaError(f"path cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root_resolved):
        if candidate.is_symlink() or any(p.is_symlink() for p in candidate.parents):
            raise MediaError("path escapes the catalog root (through a symlink)")
        raise MediaError("path escapes the catalog root")
    if not resolved.exists():
        raise MediaError("file not found")
    if not resolved.is_file():
        raise MediaError("not a regular file")
    return resolved


def _check_file(path: Path, limits: ValidationLimits, kind: str, allowed: frozenset[str]) -> int:
    """Shared checks: extension, existence, zero size, size limit. Returns the size in bytes."""
    ext = path.suffix.lower()
    if ext not in allowed:
        shown = f"'{ext}'" if ext else "no extension"
        raise MediaError(
            f"unsupported {kind} format ({shown}); supported: {', '.join(sorted(allowed))}"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError("file not found") from None
    except OSError as exc:
        raise MediaError(f"file cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise MediaError("zero-byte file")
    if size > limits.max_file_bytes:
        raise MediaError(
            f"file is {size} bytes, over the limit of {limits.max_file_bytes} bytes"
        )
    return size


def check_image(path: Path, limits: ValidationLimits) -> None:
    """Check that ``path`` is a complete, decodable image within the pixel limit.

    The header's width*height is compared to ``limits.max_image_pixels`` before any decoding;
    PIL's own decompression-bomb warning is turned into an error for this call only.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    path = Path(path)
    _check_file(path, limits, "image", IMAGE_EXTENSIONS)
    saved_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with Image.open(path) as im:
                    fmt = im.format
                    width, height = im.size
                    if fmt not in IMAGE_FORMATS:
                        raise MediaError(
                            f"image format {fmt} is not allowed; allowed: "
                            f"{', '.join(sorted(IMAGE_FORMATS - {'MPO'}))}"
                        )
                    pixels = width * height
                    if pixels > limits.max_image_pixels:
                        raise MediaError(
                            f"image is {width}x{height} = {pixels} pixels, over the limit of "
                            f"{limits.max_image_pixels} (possible decompression bomb)"
                        )
                    if pixels == 0:
                        raise MediaError("image has zero width or height")
                    im.verify()
                with Image.open(path) as im:
                    im.load()
            except MediaError:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise MediaError(f"image is a decompression bomb (PIL: {exc})") from None
            except UnidentifiedImageError:
                raise MediaError(
                    "file is not a readable image (PIL cannot identify it; corrupt or wrong "
                    "format)"
                ) from None
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
                raise MediaError(f"image is truncated or corrupt (PIL: {exc})") from None
            except MemoryError:
                raise MediaError("image is too large to decode (out of memory)") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated


def wav_truncation(path: Path) -> str | None:
    """Parse the RIFF chunks of a WAV file; return a reason if the file is truncated or broken.

    libsndfile reads short files without complaint, so the declared ``data`` chunk size is
    compared with the bytes actually present.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(12)
        if len(header) < 12:
            return f"WAV is truncated: only {len(header)} bytes, no complete RIFF header"
        riff, _, wave = struct.unpack("<4sI4s", header)
        if riff in (b"RF64", b"BW64"):
            return None  # 64-bit sizes live in a ds64 chunk; libsndfile checks these itself
        if riff != b"RIFF" or wave != b"WAVE":
            return "not a valid WAV file (missing RIFF/WAVE header)"
        offset = 12
        seen_fmt = False
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                if seen_fmt:
                    return "WAV is truncated: no data chunk found"
                return "WAV is truncated or malformed: no fmt chunk found"
            chunk_id, chunk_size = struct.unpack("<4sI", chunk)
            body = offset + 8
            if chunk_id == b"data":
                present = size - body
                if chunk_size in (0, 0xFFFFFFFF):
                    return None  # streamed WAV with unknown length; frame count decides
                if present < chunk_size:
                    return (
                        f"WAV is truncated: header declares {chunk_size} data bytes, "
                        f"file has {present}"
                    )
                return None
            if chunk_id == b"fmt ":
                seen_fmt = True
            next_offset = body + chunk_size + (chunk_size & 1)
            if next_offset > size:
                name = chunk_id.decode("latin-1").strip() or "?"
                return (
                    f"WAV is truncated: '{name}' chunk declares {chunk_size} bytes, "
                    f"file has {size - body}"
                )
            fh.seek(next_offset)
            offset = next_offset


def check_audio(path: Path, limits: ValidationLimits) -> None:
    """Check that ``path`` is complete, decodable audio with samples and within the duration."""
    import soundfile as sf

    path = Path(path)
    _check_file(path, limits, "audio", AUDIO_EXTENSIONS)
    if path.suffix.lower() == ".wav":
        try:
            reason = wav_truncation(path)
        except OSError as exc:
            raise MediaError(f"file cannot be read ({exc.strerror or exc})") from None
        if reason:
            raise MediaError(reason)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise MediaError(f"audio cannot be opened (soundfile: {_short(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise MediaError("audio has no samples (zero frames)")
    seconds = info.frames / info.samplerate
    if seconds > limits.max_audio_seconds:
        raise MediaError(
            f"audio is {seconds:.1f} s long, over the limit of {limits.max_audio_seconds:g} s"
        )
    read = 0
    try:
        with sf.SoundFile(str(path)) as snd:
            while True:
                block = snd.read(_AUDIO_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                read += len(block)
    except Exception as exc:
        raise MediaError(f"audio is truncated or corrupt (soundfile: {_short(exc)})") from None
    if read == 0:
        raise MediaError("audio has no samples (zero frames decoded)")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text[:300] or type(exc).__name__
