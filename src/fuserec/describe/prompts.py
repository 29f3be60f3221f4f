"""Every prompt the describe stage sends to a language model, and the template texts used when
there is no model or its answer fails the checks. Bump :data:`PROMPT_VERSION` on any change:
it is part of the LLM cache key."""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_VERSION = "2"

# Small local models stay closest to the facts when asked to rewrite notes rather than to
# "describe" (which invites invented stories); the checks in fuserec.describe.llm catch the rest.
SYSTEM = ("You write short, factual catalog texts for a recommender system. Use only the facts "
          "given. No lists, no greetings, no questions. At most three sentences.")

ITEM_PROMPT = """Rewrite these notes about one catalog item as two plain sentences. Keep the \
key words.

Notes: {text} Picture: {image}. Sound: {audio}"""

USER_PROMPT = """Rewrite these notes about one user as two plain sentences in the third person, \
saying what kinds of items they like. Keep the key words.

Notes: In their own words: {own}. Items they chose:
{items}"""

NONE = "none"


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def item_prompt(text: str, image: str, audio: str) -> list[dict[str, str]]:
    """Chat messages asking for one unified item description."""
    user = ITEM_PROMPT.format(text=_clean(text) or NONE, image=_clean(image) or NONE,
                              audio=_clean(audio) or NONE)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def user_prompt(own: str, item_texts: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages asking for a user's taste profile."""
    items = "\n".join(f"- {_clean(t)}" for t in item_texts) or "- none"
    user = USER_PROMPT.format(own=_clean(own) or NONE, items=items)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


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
