"""Faithful by construction: the facts a language model is given, and a checker of its answer.

:class:`Facts` lists what is known about one item or user (own text, image labels and
colours, transcript or sound words, attributes; for a user, their own words and the items
they chose), each :class:`Fact` tagged with its modality. The prompts hand these facts to the
model and ask it to restate them; :func:`check_sentences` then rejects every sentence with a
content word or number the facts do not support. Support is decided on word stems (a few
suffix rules), a small synonym table, and a short list of framing words any restatement needs
("picture", "sound", "likes", ...). :func:`coverage` measures the other side: the share of
the facts an answer mentions, and whether it mentions every fact of the main modality.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[A-Za-z]+(?:'[A-Za-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*$")
# sentences, and clauses a ";" joins (small models chain claims that way)
_SENTENCE = re.compile(r"(?<=[.!?])[\"')]*\s+(?=\S)|;\s*")

# function words: never a claim
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words("""
a an the and or but nor so yet if then than that this these those there here it its it's
is are was were be been being am do does did done has have had having can could will would
shall should may might must of in on at by for with without from to into onto over under
about above below between among through during before after up down out off as such both
each every all any some no not only own same other another more most less least very too
also just even still again ever i me my we our us you your he him his she her they them
their theirs who whom whose which what when where why how while whether one ones
something someone anything everything nothing thing things way ways lot lots
welcome hello back today
""")

#: words a restatement needs whatever the facts are (framing, not claims)
FRAMING = _words("""
item items catalog entry picture pictures image images photo photos photograph sound sounds
audio clip clips recording text title titled called named name description describe
describes described feature features featured featuring show shows showing shown depict
depicts include includes including contain contains containing offer offers cover covers
covering present presents mention mentions look looks looking like likes liked appear
appears seem seems mostly mainly main colour colours color colors coloured tone tones hear
heard listen spoken speak speaks say says said talk talks word words user users person
people enjoy enjoys enjoyed love loves prefer prefers preferred interest interests interested
favourite favorite taste tastes choose chooses chose chosen pick picks picked kind kinds type
types topic topics theme themes subject especially particular particularly mix combination
set range plus along together fact facts note notes also well use uses used using
tell tells told
""")

#: a few synonyms (each word maps to a canonical stem shared with its partners)
SYNONYMS: dict[str, str] = {
    "image": "picture", "photo": "picture", "photograph": "picture", "illustration": "picture",
    "color": "colour", "colored": "colour", "gray": "grey", "tune": "music", "song": "music",
    "melody": "music", "musical": "music", "voice": "speech", "spoken": "speech",
    "narrated": "speech", "narration": "speech", "talk": "speech", "speaker": "speech",
    "rapid": "fast", "quick": "fast", "big": "large", "huge": "large", "tiny": "small",
    "little": "small", "cost": "price", "costs": "price", "priced": "price", "bpm": "beat",
    "tempo": "beat", "dish": "food", "meal": "food", "movie": "film", "cooking": "cook",
    "cookery": "cook", "hike": "hik", "hiking": "hik", "garden": "garden", "gardening": "garden",
    "programming": "program", "code": "program", "coding": "program", "footballer": "football",
    "soccer": "football", "stars": "star", "astronomical": "astronomy", "loud": "loud",
}

_NUMBER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "twelve": "12", "twenty": "20",
                 "hundred": "100"}


def _strip(w: str) -> str:
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""),
                         ("s", ""), ("ly", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            w = w[: len(w) - len(suffix)] + repl
            break
    return w.removesuffix("e") if len(w) > 3 else w


def stem(word: str) -> str:
    """A crude stem: lower case, synonyms to their canonical word, then a few suffixes."""
    w = word.lower().removesuffix("'s").removesuffix("'")
    if w in SYNONYMS:
        return _strip(SYNONYMS[w])
    w = _strip(w)
    return _strip(SYNONYMS[w]) if w in SYNONYMS else w


_FREE_STEMS = frozenset(stem(w) for w in STOPWORDS | FRAMING)


def _number(token: str) -> str:
    """A number in one canonical spelling: ``12.50`` -> ``12.5``, ``1,200`` -> ``1200``."""
    t = token.replace(",", "")
    try:
        value = float(t)
    except ValueError:
        return t
    return str(int(value)) if value == int(value) else f"{value:g}"


def tokens(text: str) -> list[str]:
    """Words and numbers of ``text`` (hyphenated words split into their parts)."""
    return _TOKEN.findall(text.replace("-", " ").replace("/", " "))


def _free(word: str) -> bool:
    """Whether a word makes no claim: a number, stopword, framing word or one of their forms."""
    low = word.lower()
    return bool(_NUMBER.match(word)) or low in STOPWORDS or low in FRAMING \
        or low in _NUMBER_WORDS or stem(low) in _FREE_STEMS


def content_stems(text: str) -> set[str]:
    """Stems of the content words (no stopwords, no framing words, no numbers)."""
    return {stem(t) for t in tokens(text) if not _free(t)}


def numbers(text: str) -> set[str]:
    """Numbers in ``text`` (digits and a few number words), canonical."""
    out = {_number(t) for t in tokens(text) if _NUMBER.match(t)}
    out |= {_NUMBER_WORDS[t.lower()] for t in tokens(text) if t.lower() in _NUMBER_WORDS}
    return out


@dataclass(frozen=True)
class Fact:
    """One fact: its modality (``text``, ``image``, ``audio``, ``attributes``, ``history``),
    its kind (``title``, ``phrase``, ``label``, ``colour``, ``transcript``, ``sound``, ...)
    and its words."""

    modality: str
    kind: str
    text: str


@dataclass
class Facts:
    """The facts about one item or user; ``support`` holds further words that may be said
    (e.g. the rendered view words: brightness, format) but need not be."""

    facts: list[Fact] = field(default_factory=list)
    main: str | None = None
    support: str = ""

    def __post_init__(self) -> None:
        text = " ".join([f.text for f in self.facts] + [self.support])
        self._stems = {stem(t) for t in tokens(text) if not _NUMBER.match(t)}
        self._numbers = numbers(text)

    def of(self, modality: str) -> list[Fact]:
        return [f for f in self.facts if f.modality == modality]

    def supports_word(self, word: str) -> bool:
        s = stem(word)
        if s in self._stems:
            return True
        # derived forms the suffix rules miss (colourful ~ colour) share a long prefix
        return len(s) >= 5 and any(len(f) >= 5 and (s.startswith(f) or f.startswith(s))
                                   and abs(len(s) - len(f)) <= 4 for f in self._stems)

    def unsupported(self, sentence: str) -> list[str]:
        """Content words and numbers of ``sentence`` that these facts do not support."""
        bad = [w for w in tokens(sentence) if not _free(w) and not self.supports_word(w)]
        bad += [n for n in numbers(sentence) if n not in self._numbers]
        return bad

    def to_json(self) -> dict[str, Any]:
        return {"main": self.main, "support": self.support,
                "facts": [[f.modality, f.kind, f.text] for f in self.facts]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Facts:
        return cls([Fact(*f) for f in obj.get("facts", [])], obj.get("main"),
                   obj.get("support", ""))


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, cut at ``;`` too (a decimal point ends none)."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


@dataclass
class Verdict:
    """The checker's view of one answer: the kept sentences and the rejected ones with the
    words that made them unsupported."""

    kept: list[str]
    rejected: list[tuple[str, list[str]]]

    @property
    def text(self) -> str:
        return " ".join(self.kept)

    def reason(self) -> str:
        return "; ".join(f"{s[:60]!r} unsupported: {', '.join(sorted(set(w)))}"
                         for s, w in self.rejected)


def check_sentences(text: str, facts: Facts) -> Verdict:
    """Keep the sentences of ``text`` whose content words and numbers ``facts`` support."""
    kept, rejected = [], []
    for sentence in split_sentences(text):
        bad = facts.unsupported(sentence)
        if bad:
            rejected.append((sentence, bad))
        else:
            kept.append(sentence)
    return Verdict(kept, rejected)


def clauses(text: str) -> list[str]:
    """A text cut into fact-sized clauses (sentences, then ``;`` and ``:``), dropping those
    without content words."""
    parts = re.split(r"(?<=[.!?;:])\s+|;\s*|:\s+", text)
    return [p.strip(" .;:") for p in parts if content_stems(p)]


def mentions(text_stems: set[str], text_numbers: set[str], fact: Fact) -> bool:
    """Whether a text (by its stems and numbers) mentions ``fact``: a third of the fact's
    content stems (at least one), or its number."""
    wanted = content_stems(fact.text)
    nums = numbers(fact.text)
    if not wanted:
        return bool(nums & text_numbers) if nums else True
    hit = sum(w in text_stems or any(len(w) >= 5 and len(t) >= 5 and
                                     (t.startswith(w) or w.startswith(t)) for t in text_stems)
              for w in wanted)
    return hit >= max(1, math.ceil(len(wanted) / 3)) or bool(nums and nums & text_numbers)


@dataclass
class Coverage:
    """How many facts a text mentions, and whether it mentions all of the main modality's."""

    mentioned: int
    total: int
    main_complete: bool | None

    @property
    def share(self) -> float:
        return self.mentioned / self.total if self.total else 1.0


def coverage(text: str, facts: Facts, modalities: Iterable[str] | None = None) -> Coverage:
    """Share of ``facts`` (of the given modalities, default all) that ``text`` mentions."""
    stems, nums = content_stems(text), numbers(text)
    wanted = set(modalities) if modalities is not None else None
    pool = [f for f in facts.facts if wanted is None or f.modality in wanted]
    hits = [mentions(stems, nums, f) for f in pool]
    main = [mentions(stems, nums, f) for f in facts.of(facts.main)] if facts.main else []
    return Coverage(sum(hits), len(pool), all(main) if main else None)


# --- building facts -------------------------------------------------------------------------

def image_facts(facts: dict[str, Any] | None, labels: int = 2, colours: int = 3) -> list[Fact]:
    """The labels and colours of a described picture."""
    if not facts:
        return []
    out = [Fact("image", "label", str(e["label"])) for e in facts.get("labels", [])[:labels]]
    out += [Fact("image", "colour", str(c)) for c in list(facts.get("colours", {}))[:colours]]
    return out


def audio_facts(facts: dict[str, Any] | None, words: str = "") -> list[Fact]:
    """The transcript's clauses of a spoken clip, or the kind and tempo of other sound."""
    if not facts:
        return []
    if facts.get("kind") == "speech" and facts.get("transcript"):
        return [Fact("audio", "transcript", c) for c in clauses(str(facts["transcript"]))]
    out = []
    kind = re.search(r"without words: ([^;]+);", words)
    if kind:
        out.append(Fact("audio", "sound", kind.group(1).strip()))
    if "tempo_bpm" in facts:
        out.append(Fact("audio", "tempo", f"{float(facts['tempo_bpm']):.0f} beats per minute"))
    return out


def item_facts(fields: Sequence[tuple[str, str]], image: dict[str, Any] | None = None,
               image_words: str = "", audio: dict[str, Any] | None = None,
               audio_words: str = "", attributes: Sequence[tuple[str, Any]] = ()) -> Facts:
    """The facts of one item: its text fields ``(column, value)`` (the first is its title
    when the column says so), the described picture and clip, and its attributes."""
    facts: list[Fact] = []
    for column, value in fields:
        value = " ".join(str(value or "").split())
        if not value:
            continue
        if column.lower() in ("title", "name"):
            facts.append(Fact("text", "title", value))
        else:
            facts += [Fact("text", "phrase", c) for c in clauses(value)]
    facts += image_facts(image)
    facts += audio_facts(audio, audio_words)
    for name, value in attributes:
        if value is not None and str(value).strip() and str(value) != "nan":
            facts.append(Fact("attributes", name, f"{name} {value}"))
    spoken = any(f.kind == "transcript" for f in facts)
    main = "audio" if spoken else "text" if any(f.modality == "text" for f in facts) \
        else "image" if any(f.modality == "image" for f in facts) else None
    # rendered view words (brightness, format, loudness) may be restated; they are no facts
    return Facts(facts, main, " ".join([image_words, audio_words]))


def user_facts(own: str, chosen: Sequence[tuple[str, str]]) -> Facts:
    """The facts of one user: their own words and the items they chose ``(title, text)``."""
    facts = [Fact("text", "own", c) for c in clauses(own)]
    facts += [Fact("history", "title", title) for title, _ in chosen if title.strip()]
    return Facts(facts, "history" if chosen else "text" if own.strip() else None,
                 " ".join(text for _, text in chosen))


__all__ = ["FRAMING", "STOPWORDS", "SYNONYMS", "Coverage", "Fact", "Facts", "Verdict",
           "audio_facts", "check_sentences", "clauses", "content_stems", "coverage",
           "image_facts", "item_facts", "mentions", "numbers", "split_sentences", "stem",
           "tokens", "user_facts"]
