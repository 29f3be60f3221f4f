"""The describe stage over a catalog: media -> words, LLM -> item descriptions and user
taste profiles, all cached by content hash; plus the folder it leaves in the artifacts.

Per item the stage produces its text views:

``own``      the item's own text fields (title, description, ...)
``image``    :class:`~fuserec.describe.image.ImageNetLabeler` words for its pictures
``audio``    transcript or acoustic words for its clips
``unified``  one description written by the LLM from the facts of the three above and the
             item's attributes (:mod:`fuserec.describe.faithful`), or the template text when
             there is no LLM, the time budget ran out, or the answer failed the checks
             (``source`` and ``fallback_reason`` record which)

Per user, a taste profile written from their own text and the items they chose in training.
Prompts go to the LLM in batches (:func:`~fuserec.describe.generate.generate_checked_many`).
The artifacts' ``describe/`` folder holds ``items.parquet``, ``users.parquet`` (texts, facts
as JSON, agreement and route per item), ``embeddings.safetensors`` and ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuserec.data import schema
from fuserec.describe.base import DescribeError, Describer, Description
from fuserec.describe.cache import TextCache
from fuserec.describe.faithful import Facts, item_facts, user_facts
from fuserec.describe.generate import Budget, GeneratedText, Request, generate_checked_many
from fuserec.describe.llm import LLMBackend
from fuserec.describe.prompts import item_prompt, item_template, user_prompt, user_template
from fuserec.encode.hashing import file_hash
from fuserec.io import write_json, write_with

MAX_PROFILE_ITEMS = 6
MAX_ITEM_CHARS = 120


def describe_files(describer: Describer, paths: Sequence[Path], cache: TextCache | None = None,
                   batch_size: int = 32) -> dict[Path, Description | DescribeError]:
    """Describe each distinct file once, reusing and filling ``cache`` (keyed by file hash)."""
    cache = cache if cache is not None else TextCache(None)
    out: dict[Path, Description | DescribeError] = {}
    keys: dict[Path, str] = {}
    for p in dict.fromkeys(paths):
        try:
            keys[p] = file_hash(p)
        except OSError as exc:
            out[p] = DescribeError(f"cannot read {p}: {exc}", p)
    found = cache.get_many(describer.name, describer.version, list(set(keys.values())))
    first_of: dict[str, Path] = {}
    for p, k in keys.items():
        if k not in found:
            first_of.setdefault(k, p)  # identical content under several paths: describe once
    todo = list(first_of.values())
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        results = describer.describe(chunk)
        fresh = {keys[p]: r.to_json() for p, r in zip(chunk, results, strict=True)
                 if isinstance(r, Description)}
        cache.put_many(describer.name, describer.version, fresh)
        found.update(fresh)
        for p, r in zip(chunk, results, strict=True):
            if isinstance(r, DescribeError):
                for q, k in keys.items():
                    if k == keys[p]:
                        out[q] = r
    for p, k in keys.items():
        if k in found:
            out[p] = Description.from_json(found[k])
    return out


def describe_media_column(frame: pd.DataFrame, root: Path, column: str, describer: Describer,
                          cache: TextCache | None = None
                          ) -> tuple[list[str], list[dict | None], list[tuple[str, str]]]:
    """Words, facts and errors ``(record id, reason)`` for one media column of a table."""
    n = len(frame)
    per_record = [schema.media_paths(v) for v in frame[column].tolist()] if column in frame \
        else [[]] * n
    root = Path(root)
    results = describe_files(describer, [root / p for ps in per_record for p in ps], cache)
    texts, facts, errors = [], [], []
    ids = [str(i) for i in frame[schema.ID]]
    for rid, ps in zip(ids, per_record, strict=True):
        words, fact = [], None
        for p in ps:
            r = results.get(root / p)
            if isinstance(r, Description):
                words.append(r.text)
                fact = fact or r.facts
            elif isinstance(r, DescribeError):
                errors.append((rid, str(r)))
        texts.append(" ".join(words))
        facts.append(fact)
    return texts, facts, errors


@dataclass
class DescribedCatalog:
    """Every text view of the items and users of one catalog."""

    item_ids: list[str]
    own: list[str]
    image: list[str]
    audio: list[str]
    unified: list[GeneratedText]
    image_facts: list[dict | None]
    audio_facts: list[dict | None]
    user_ids: list[str] = field(default_factory=list)
    user_own: list[str] = field(default_factory=list)
    profiles: list[GeneratedText] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (modality, id, reason)
    agreement: dict[str, np.ndarray] = field(default_factory=dict)  # view -> (n_items,)
    routes: list[str] | None = None
    threshold: float | None = None
    llm_seconds: float = 0.0
    item_facts: list[Facts] = field(default_factory=list)
    user_facts: list[Facts] = field(default_factory=list)
    llm_budget_s: float | None = None

    @property
    def unified_texts(self) -> list[str]:
        return [g.text for g in self.unified]

    @property
    def profile_texts(self) -> list[str]:
        return [g.text for g in self.profiles]

    def llm_counts(self) -> dict[str, int]:
        """How many descriptions/profiles came from the LLM, the template, or a fallback."""
        out = {"item_llm": 0, "item_template": 0, "item_fallback": 0,
               "user_llm": 0, "user_template": 0, "user_fallback": 0}
        for prefix, gens in (("item", self.unified), ("user", self.profiles)):
            for g in gens:
                key = "llm" if g.source == "llm" else "fallback" if g.fallback_reason \
                    else "template"
                out[f"{prefix}_{key}"] += 1
        return out

    def faithfulness(self) -> dict[str, Any]:
        """Per run: share of LLM answers kept, the checker's unsupported-sentence rates before
        and after it dropped sentences, fact coverage, and budget fallbacks."""
        out: dict[str, Any] = {}
        for prefix, gens in (("item", self.unified), ("user", self.profiles)):
            answered = [g for g in gens if g.sentences]
            kept = [g for g in gens if g.source == "llm"]
            budget = sum(bool(g.fallback_reason and "budget" in g.fallback_reason)
                         for g in gens)
            sentences = sum(g.sentences for g in answered)
            rejected = sum(g.rejected for g in answered)
            covs = [g.coverage for g in kept if g.coverage is not None]
            main = [g.main_complete for g in kept if g.main_complete is not None]
            out[prefix] = {
                "texts": len(gens), "answered": len(answered), "kept": len(kept),
                "kept_share": round(len(kept) / len(answered), 4) if answered else None,
                "budget_fallbacks": budget,
                "unsupported_rate_raw": round(rejected / sentences, 4) if sentences else None,
                # the checker dropped every sentence it judged unsupported
                "unsupported_rate_kept": 0.0 if kept else None,
                "coverage_mean": round(float(np.mean(covs)), 4) if covs else None,
                "main_modality_complete_share": round(float(np.mean(main)), 4)
                if main else None}
        return out

    def item(self, item_id: str) -> dict[str, Any]:
        """All text views of one item, its agreement scores and route."""
        i = self.item_ids.index(item_id)
        return {"id": item_id, "own": self.own[i], "image": self.image[i],
                "audio": self.audio[i], "unified": self.unified[i].to_json(),
                "agreement": {k: float(v[i]) for k, v in self.agreement.items()},
                "route": self.routes[i] if self.routes else None}


class _LLMGate:
    """Sends the records' prompts to the LLM in batches within one time budget; a backend that
    crashes (a model that cannot load) gives templates from then on, with the reason."""

    def __init__(self, llm: LLMBackend | None, budget_s: float | None,
                 cache: TextCache | None) -> None:
        self.llm, self.cache = llm, cache
        self.budget = Budget(budget_s)
        self.broken: str | None = None

    def generate(self, requests: list[Request], progress: str = "") -> list[GeneratedText]:
        if self.llm is None or not requests:
            name = self.broken and self.broken.split(":")[0]
            return [GeneratedText(r.fallback, "template", name,
                                  self.broken and f"backend failed: {self.broken}")
                    for r in requests]
        try:
            return generate_checked_many(self.llm, requests, self.cache, budget=self.budget)
        except Exception as exc:  # a local model that cannot load: templates from now on
            self.broken = f"{self.llm.name}: {type(exc).__name__}: {exc}"
            self.llm = None
            return self.generate(requests)


def _attributes(row: pd.Series, columns: Sequence[str]) -> list[tuple[str, Any]]:
    return [(c[len(schema.ATTR_PREFIX):], row[c]) for c in columns]


def describe_catalog(catalog: schema.Catalog, image_describer: Describer | None,
                     audio_describer: Describer | None, llm: LLMBackend | None = None,
                     cache: TextCache | None = None,
                     history: Mapping[str, Sequence[str]] | None = None,
                     llm_items: Collection[str] | None = None,
                     llm_users: Collection[str] | None = None,
                     llm_budget_s: float | None = None) -> DescribedCatalog:
    """Describe every item (and user, given ``history``: user id -> item ids in training).

    ``llm_items`` / ``llm_users`` restrict the LLM to those ids (None: all); everything else
    gets the template text. ``llm_budget_s`` caps total generation time: items go first, then
    users; what the budget does not reach falls back to the template, with the reason.
    """
    items = catalog.items
    ids = [str(i) for i in items[schema.ID]]
    cols = schema.text_columns(items)
    attrs = schema.attribute_columns(items)
    rows = [row for _, row in items.iterrows()]
    own = [schema.record_text(row, cols) for row in rows] if cols else [""] * len(ids)
    errors: list[tuple[str, str, str]] = []
    views: dict[str, tuple[list[str], list[dict | None]]] = {}
    for modality, column, describer in (("image", schema.IMAGES, image_describer),
                                        ("audio", schema.AUDIO, audio_describer)):
        if describer is None or column not in items:
            views[modality] = ([""] * len(ids), [None] * len(ids))
            continue
        texts, facts, errs = describe_media_column(items, catalog.root, column, describer, cache)
        views[modality] = (texts, facts)
        errors.extend((modality, rid, why) for rid, why in errs)
    (image, image_f), (audio, audio_f) = views["image"], views["audio"]
    facts = [item_facts([(c, row.get(c)) for c in cols], image_f[j], image[j], audio_f[j],
                        audio[j], _attributes(row, attrs)) for j, row in enumerate(rows)]
    gate = _LLMGate(llm, llm_budget_s, cache)
    unified = _generate(gate, ids, llm_items, [
        Request(item_prompt(f), item_template(t, im, au), f)
        for f, t, im, au in zip(facts, own, image, audio, strict=True)])
    out = DescribedCatalog(ids, own, image, audio, unified, image_f, audio_f, errors=errors,
                           item_facts=facts, llm_budget_s=llm_budget_s)
    if history is not None:
        users = catalog.users
        ucols = schema.text_columns(users)
        out.user_ids = [str(u) for u in users[schema.ID]]
        out.user_own = [schema.record_text(r, ucols) for _, r in users.iterrows()] if ucols \
            else [""] * len(out.user_ids)
        pos = {iid: j for j, iid in enumerate(ids)}
        title = cols[0] if cols else None
        requests = []
        for uid, mine in zip(out.user_ids, out.user_own, strict=True):
            picked = [pos[i] for i in history.get(uid, []) if i in pos][:MAX_PROFILE_ITEMS]
            chosen = [own[j][:MAX_ITEM_CHARS] for j in picked]
            titles = [(str(rows[j].get(title) or "") if title else own[j][:60],
                       own[j][:MAX_ITEM_CHARS]) for j in picked]
            f = user_facts(mine, titles)
            out.user_facts.append(f)
            requests.append(Request(user_prompt(f), user_template(mine, chosen), f))
        out.profiles = _generate(gate, out.user_ids, llm_users, requests)
    out.llm_seconds = round(gate.budget.spent, 2)
    return out


def _generate(gate: _LLMGate, ids: Sequence[str], allowed: Collection[str] | None,
              requests: list[Request]) -> list[GeneratedText]:
    """LLM texts for the allowed ids (all when None), templates for the others."""
    chosen = [j for j, rid in enumerate(ids) if allowed is None or rid in allowed]
    out = [GeneratedText(r.fallback, "template") for r in requests]
    for j, g in zip(chosen, gate.generate([requests[j] for j in chosen]), strict=True):
        out[j] = g
    return out


# --- the artifact folder --------------------------------------------------------------------

def save_described(folder: Path, described: DescribedCatalog,
                   embeddings: Mapping[str, np.ndarray] | None = None,
                   summary: Mapping[str, Any] | None = None) -> Path:
    """Write ``described`` (and optional embedding arrays) into ``folder`` atomically."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(described.item_ids)
    items = pd.DataFrame({
        "id": described.item_ids, "own": described.own, "image": described.image,
        "audio": described.audio, "unified": described.unified_texts,
        "unified_source": [g.source for g in described.unified],
        "unified_backend": [g.backend or "" for g in described.unified],
        "fallback_reason": [g.fallback_reason or "" for g in described.unified],
        "image_facts": [json.dumps(f) if f else "" for f in described.image_facts],
        "audio_facts": [json.dumps(f) if f else "" for f in described.audio_facts],
        "route": described.routes or [""] * n,
    })
    for view, scores in described.agreement.items():
        items[f"agreement_{view}"] = np.asarray(scores, np.float32)
    users = pd.DataFrame({
        "id": described.user_ids, "own": described.user_own, "profile": described.profile_texts,
        "profile_source": [g.source for g in described.profiles],
        "fallback_reason": [g.fallback_reason or "" for g in described.profiles],
    })
    for name, frame in (("items", items), ("users", users)):
        write_with(folder / f"{name}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    if embeddings:
        arrays = {k: np.ascontiguousarray(v) for k, v in embeddings.items()}
        write_with(folder / "embeddings.safetensors", lambda tmp: save_file(arrays, str(tmp)))
    write_json(folder / "summary.json", {
        "threshold": described.threshold, "llm": described.llm_counts(),
        "llm_seconds": described.llm_seconds,
        "routes": {r: (described.routes or []).count(r) for r in ("text", "feature")},
        "errors": [list(e) for e in described.errors], **(summary or {})})
    return folder


def load_described(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``(items, users, summary)`` of a ``describe/`` artifact folder."""
    folder = Path(folder)
    if not (folder / "items.parquet").exists():
        raise FileNotFoundError(f"{folder} has no describe output (items.parquet)")
    summary = json.loads((folder / "summary.json").read_text()) \
        if (folder / "summary.json").exists() else {}
    return pd.read_parquet(folder / "items.parquet"), pd.read_parquet(folder / "users.parquet"), \
        summary
