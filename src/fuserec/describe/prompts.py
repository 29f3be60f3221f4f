"""Every prompt the describe stage sends to a language model, and the template texts used when
there is no model or its answer fails the checks. Bump :data:`PROMPT_VERSION` on any change:
it is part of the LLM cache key."""

from __future__ import annotations

from collections.abc import Sequence

from fuserec.describe.faithful import Facts

PROMPT_VERSION = "3"

# Faithful by construction: the model gets the facts as a list and is asked to restate them,
# not to "describe" (which invites invented stories); fuserec.describe.faithful then rejects
# every sentence the facts do not support.
SYSTEM = "Restate the given facts in plain sentences. Add nothing that is not in the facts."

ITEM_PROMPT = """Facts about one catalog item:
{facts}"""

USER_PROMPT = """Facts about one user:
{facts}"""

# one worked example per kind: a small model copies the shape of an answer far more reliably
# than it follows instructions (the example's own words are not in any real item's facts, so
# a copied word is caught by the checker)
ITEM_EXAMPLE = ("""- title: The calm harbour
- text: A guide about sailing small boats, with notes on the wind
- picture looks like: canoe or dock
- picture colours: blue, white
- sound: music or tones
- sound tempo: 90 beats per minute
- attributes: price 12.5; year 2011""",
                "The calm harbour is a guide about sailing small boats, with notes on the "
                "wind. Its picture looks like a canoe or a dock in blue and white, and its "
                "sound is music at 90 beats per minute.")
USER_EXAMPLE = ("""- in their own words: I spend my weekends on sailing and anything about the wind
- items they chose: The calm harbour; The quick canoe; The windy coast""",
                "This user likes sailing and the wind. They chose The calm harbour, The quick "
                "canoe and The windy coast.")

NONE = "none"
#: how facts are introduced in a prompt, by modality and kind
_LINES = {"title": "title", "phrase": "text", "label": "picture looks like",
          "colour": "picture colours", "transcript": "spoken words", "sound": "sound",
          "tempo": "sound tempo", "own": "in their own words", "history": "items they chose"}


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def fact_lines(facts: Facts) -> str:
    """The facts as prompt lines, one per kind (``kind: a; b``), in fact order."""
    lines: dict[str, list[str]] = {}
    for f in facts.facts:
        key = "history" if f.modality == "history" else \
            f.kind if f.modality != "attributes" else "attributes"
        lines.setdefault(key, []).append(_clean(f.text))
    joiner = {"colour": ", ", "label": " or "}
    return "\n".join(f"- {_LINES.get(k, k)}: {joiner.get(k, '; ').join(v)}"
                     for k, v in lines.items()) or f"- {NONE}"


def _chat(template: str, example: tuple[str, str], facts: Facts) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": template.format(facts=example[0])},
            {"role": "assistant", "content": example[1]},
            {"role": "user", "content": template.format(facts=fact_lines(facts))}]


def item_prompt(facts: Facts) -> list[dict[str, str]]:
    """Chat messages asking to restate an item's facts (after one worked example)."""
    return _chat(ITEM_PROMPT, ITEM_EXAMPLE, facts)


def user_prompt(facts: Facts) -> list[dict[str, str]]:
    """Chat messages asking to restate a user's facts as a taste profile."""
    return _chat(USER_PROMPT, USER_EXAMPLE, facts)


def item_template(text: str, image: str, audio: str) -> str:
    """The unified description without a model: the item's own text, then its views' words."""
    parts = [_clean(text)]
    if _clean(image):
        parts.append(f"Picture: {_clean(image)}")
    if _clean(audio):
        parts.append(f"Sound: {_clean(audio)}")
    return " ".join(p if p.endswith((".", "!", "?", '"')) else p + "." for p in parts if p)


def user_template(own: str, item_texts: Sequence[str]) -> str:
    """The taste profile without a model: the user's own words, then what they chose."""
    parts = []
    if _clean(own):
        parts.append(f"In their words: {_clean(own)}")
    if item_texts:
        parts.append("Likes items such as: " + " | ".join(_clean(t) for t in item_texts))
    return " ".join(parts) or "A user with no content and no history yet."
