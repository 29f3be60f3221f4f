"""The seed's formula, made well defined: v = Σ_m w_m · normalize_m(e_m), ranked by cosine.

Modalities come with different dimensions (384 for text, 1280 for images, ~200 for audio), so
their raw sum is undefined, and projecting them to one common size and adding would mix
unrelated coordinates (dimension 7 of a text embedding has nothing to do with dimension 7 of an
image embedding). fuserec instead embeds every modality into its own orthogonal block of a
shared space R^(d_text + d_image + d_audio) (the direct sum) and adds there, which is the same
as concatenating the normalised blocks. Each block is centred and L2-normalised first
(:mod:`fuserec.fuse.normalize`) and scaled by ``sqrt(w_m / Σ w)``, so that for two records with
every modality present

    cos(u, v) = Σ_m (w_m / Σ w) · cos(u_m, v_m),

a weighted mean of per-modality cosines: no modality dominates because of its size or scale.
A missing modality contributes a zero block (zero similarity), and vectors are not rescaled
afterwards, so a record is never promoted for lacking a view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fuserec.fuse.base import FUSERS, Fuser, View
from fuserec.fuse.normalize import ModalityNormalizer, Mode

# Handcrafted audio descriptors mix units, so they are standardised per dimension; neural
# embeddings only need centring.
DEFAULT_MODES: dict[str, Mode] = {"text": "center", "image": "center", "audio": "zscore"}


@FUSERS.register("sum")
class SumFusion(Fuser):
    """Direct-sum fusion of normalised modality blocks (the seed's ``u = Σ`` formula)."""

    name = "sum"

    def __init__(self, modalities: Sequence[str] = ("text", "image", "audio"),
                 weights: Mapping[str, float] | None = None,
                 modes: Mapping[str, Mode] | None = None) -> None:
        self.modalities = list(modalities)
        if not self.modalities:
            raise ValueError("SumFusion needs at least one modality")
        self.weights = {m: float((weights or {}).get(m, 1.0)) for m in self.modalities}
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError(f"weights must be non-negative and not all zero: {self.weights}")
        self.modes = {m: (modes or {}).get(m, DEFAULT_MODES.get(m, "center"))
                      for m in self.modalities}
        self.normalizers: dict[str, ModalityNormalizer] = {}
        self.dims: dict[str, int] = {}

    def fit(self, item_views: Mapping[str, View]) -> SumFusion:
        missing = [m for m in self.modalities if m not in item_views]
        if missing:
            raise ValueError(f"no item view for modalities {missing}")
        for m in self.modalities:
            view = item_views[m]
            self.normalizers[m] = ModalityNormalizer(self.modes[m]).fit(view.vectors, view.present)
            self.dims[m] = int(view.vectors.shape[1])
        return self

    @property
    def dim(self) -> int:
        return sum(self.dims[m] for m in self.modalities)

    def normalize(self, modality: str, view: View) -> np.ndarray:
        return self.normalizers[modality].transform(view.vectors, view.present)

    def combine(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
        n = next(iter(blocks.values())).shape[0] if blocks else 0
        total = sum(self.weights.values())
        parts = []
        for m in self.modalities:
            block = blocks.get(m)
            if block is None:
                block = np.zeros((n, self.dims[m]), np.float32)
            parts.append(block * np.float32(np.sqrt(self.weights[m] / total)))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def block_slices(self) -> dict[str, slice]:
        """Where each modality's block sits in the fused vector (for explanations)."""
        out, start = {}, 0
        for m in self.modalities:
            out[m] = slice(start, start + self.dims[m])
            start += self.dims[m]
        return out

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {}
        for m, norm in self.normalizers.items():
            arrays[f"{m}.mean"] = norm.mean
            arrays[f"{m}.scale"] = norm.scale
        config = {"name": self.name, "modalities": self.modalities, "weights": self.weights,
                  "modes": self.modes, "dims": self.dims}
        return arrays, config

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> SumFusion:
        fuser = cls(config["modalities"], config["weights"], config["modes"])
        for m in fuser.modalities:
            fuser.normalizers[m] = ModalityNormalizer(
                fuser.modes[m], np.asarray(arrays[f"{m}.mean"]), np.asarray(arrays[f"{m}.scale"]))
            fuser.dims[m] = int(config["dims"][m])
        return fuser
