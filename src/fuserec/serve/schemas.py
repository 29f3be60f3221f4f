"""Request and response models of the HTTP API (they also make the OpenAPI docs at /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    """Every error: a message a person can act on, and the HTTP status."""

    error: str = Field(examples=["there is no item with id 'item_9999'"])
    status: int = Field(examples=[404])


class ItemOut(BaseModel):
    """An item of the catalog; media are URLs served by this app under ``/media/``."""

    id: str
    title: str
    text: str = Field(description="The item's text fields joined, as the text encoder saw them.")
    fields: dict[str, Any] = Field(default_factory=dict, description="Text fields by column.")
    attributes: dict[str, Any] = Field(default_factory=dict,
                                       description="Attributes (``attr_`` columns, prefix "
                                                   "dropped); filter on them with ``filter``.")
    images: list[str] = Field(default_factory=list)
    audio: list[str] = Field(default_factory=list)


class LikedItem(BaseModel):
    id: str
    title: str
    similarity: float = Field(description="Cosine between this liked item and the recommended one.")


class Explanation(BaseModel):
    """Why an item was recommended."""

    modalities: dict[str, float] = Field(
        description="Each modality's additive contribution to the content similarity of the "
                    "user and the item (they sum to it, up to a tiny popularity tie-break).")
    because_you_liked: list[LikedItem] = Field(
        description="The user's items nearest to the recommended one.")
    text: str = Field(description="The recommended item's text.")
    model: str | None = Field(None, description="The model that ranked the item, when it is "
                              "not the content similarity itself (chosen on validation).")
    members: dict[str, float] | None = Field(
        None, description="For a blend: each member's weighted, per-user standardised score "
                          "of the item (their sum is the blend's score).")


class ScoredItem(BaseModel):
    item: ItemOut
    score: float
    explanation: Explanation | None = None


class RecommendationsOut(BaseModel):
    user_id: str
    k: int
    diversity: float
    filters: list[str]
    results: list[ScoredItem]


class SimilarOut(BaseModel):
    item: ItemOut
    results: list[ScoredItem]


class SearchOut(BaseModel):
    query: dict[str, Any] = Field(description="What was searched: the text and/or the file's "
                                              "modality and name.")
    results: list[ScoredItem]


class UserOut(BaseModel):
    id: str
    text: str = ""
    images: list[str] = Field(default_factory=list)
    audio: list[str] = Field(default_factory=list)
    n_interactions: int = 0
    n_feedback: int = 0
    in_catalog: bool = True


class UserDetailOut(UserOut):
    liked: list[ItemOut] = Field(default_factory=list, description="Some of the user's items.")


class ItemsPage(BaseModel):
    total: int
    offset: int
    items: list[ItemOut]


class UsersPage(BaseModel):
    total: int
    offset: int
    users: list[UserOut]


class FeedbackIn(BaseModel):
    """One interaction: the user liked / bought / watched ``item_id``."""

    item_id: str = Field(min_length=1, max_length=256, examples=["item_0003"])
    weight: float = Field(1.0, gt=0, le=100, strict=True,
                          description="Strength of the interaction: a JSON number (booleans "
                                      "and strings are refused).")


class FeedbackOut(BaseModel):
    user_id: str
    item_id: str
    n_feedback: int = Field(description="Feedback interactions recorded for this user so far.")
    new_user: bool = Field(description="True when this feedback created the user.")


class HealthOut(BaseModel):
    status: str
    items: int
    users: int
    model: str = Field(description="The model that ranks recommendations (chosen on "
                       "validation by `fuserec run`).")
    content_model: str = Field("content-cosine", description="The content model behind the "
                               "index, search, similar items and explanations.")
    index: dict[str, Any]
    modalities: list[str]
    attributes: list[str]
    text_fields: list[str]
    write_requires_token: bool
    reads_require_token: bool = Field(
        False, description="True when user listings, user details and per-user "
                           "recommendations need the token too (the server has a token and "
                           "was not started with public reads).")
    limits: dict[str, Any]


class AttributeOut(BaseModel):
    """One attribute of the catalog, for building filter controls."""

    name: str = Field(description="The attribute's name (``attr_`` prefix dropped).")
    kind: str = Field(description="``number`` (filter with a range) or ``text`` (a value).")
    min: float | None = Field(None, description="Smallest value (numbers only).")
    max: float | None = Field(None, description="Largest value (numbers only).")
    values: list[str] = Field(default_factory=list,
                              description="Distinct values, most frequent first (text only; "
                                          "at most 100).")
    present: int = Field(description="Items that have a value.")


class PopularOut(BaseModel):
    """Items by popularity (the score is the item's interaction weight)."""

    results: list[ScoredItem]


class FeedbackRemovedOut(BaseModel):
    """What ``DELETE /users/{id}/feedback/{item_id}`` undid."""

    user_id: str
    item_id: str
    removed_weight: float = Field(description="The feedback weight the user had on the item, "
                                              "now removed.")
    n_feedback: int = Field(description="Feedback interactions the user has left.")


class StatsOut(BaseModel):
    """What the server has recommended since it started (memory only, not persisted)."""

    answers: int = Field(description="Recommendation answers given since the server started.")
    recommended: int = Field(description="Items recommended in those answers, in total.")
    distinct_items: int = Field(description="Distinct items among them.")
    most_recommended: list[ScoredItem] = Field(
        description="The items recommended most often; the score is how often. Empty before "
                    "the first recommendation.")
