"""The describer interface and registry: one modality in, one short text per input out.

A :class:`Describer` turns media file paths (``modality`` ``"image"`` or ``"audio"``) into
:class:`Description` records: the words (``text``) and the structured facts behind them
(``facts``, JSON-serialisable), so a person can see why an item was described that way. Its
:attr:`Describer.version` fingerprints the model and the rendering, and is the cache key
together with the file's content hash (see :mod:`fuserec.describe.cache`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fuserec.registry import Registry

DescribedModality = Literal["image", "audio"]


class DescribeError(Exception):
    """An input could not be described; ``input`` names it."""

    def __init__(self, message: str, input: str | Path | None = None) -> None:
        super().__init__(message)
        self.input = None if input is None else str(input)


@dataclass
class Description:
    """The text view of one media file and the facts it was rendered from."""

    text: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "facts": self.facts}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Description:
        return cls(str(obj.get("text", "")), dict(obj.get("facts") or {}))


class Describer(ABC):
    """Maps media files of one modality to :class:`Description` records."""

    name: str
    modality: DescribedModality
    #: bump when the rendering of words changes
    render_version: str = "1"

    @property
    def version(self) -> str:
        """Fingerprint of name, model identity and rendering: the cache key for texts."""
        return f"{self.name}|{self.model_identity()}|render{self.render_version}"

    def model_identity(self) -> str:
        """Identity of the model weights and settings (override)."""
        return type(self).__qualname__

    @abstractmethod
    def describe(self, paths: Sequence[str | Path]) -> list[Description | DescribeError]:
        """One :class:`Description` per path, or a :class:`DescribeError` for a bad file."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models or worker pools (optional)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


DESCRIBERS: Registry[Describer] = Registry("describer")

DEFAULT_DESCRIBERS: dict[str, str] = {"image": "imagenet-labels", "audio": "whisper-or-acoustic"}


def _load_builtin() -> None:
    from fuserec.describe import audio, image  # noqa: F401  (registers the describers)


def get_describer(name: str, **kwargs: Any) -> Describer:
    """Build the describer registered as ``name`` (e.g. ``"imagenet-labels"``)."""
    _load_builtin()
    return DESCRIBERS.create(name, **kwargs)
