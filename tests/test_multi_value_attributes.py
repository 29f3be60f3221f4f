"""Text attributes that list several values (``Action|Comedy``, a film's genres): filters
match any of them, and ``GET /attributes`` offers each value once (the page's facet)."""

from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient

from fuserec.index.filters import parse_filter, parse_filters
from fuserec.serve import create_app
from fuserec.serve.state import ServingState


def test_equality_matches_any_of_several_values():
    items = pd.DataFrame({"attr_genre": ["Action|Comedy", "Comedy", "Drama", "", None,
                                         "Action|Comedy|Drama"]})
    assert parse_filter("genre==Comedy").mask(items).tolist() == \
        [True, True, False, False, False, True]
    assert parse_filter("genre!=Comedy").mask(items).tolist() == \
        [False, False, True, False, False, False]
    assert parse_filter("genre==Action|Comedy").mask(items).tolist() == \
        [True, False, False, False, False, False]  # the whole value still matches itself
    assert parse_filter("genre==Act").mask(items).tolist() == [False] * 6  # no substrings


def test_attributes_offer_each_value_and_filters_use_them(tmp_path):
    from serve_helpers import build_fake_artifacts

    artifacts = build_fake_artifacts(tmp_path / "run", n_items=24, n_users=8)
    state = ServingState.from_folder(artifacts)
    genres = ["rock|jazz", "jazz", "folk|rock|jazz"]
    state.items["attr_genre"] = [genres[i % 3] for i in range(state.n_items)]
    state.attribute_columns.append("attr_genre")
    with TestClient(create_app(state=state, token="")) as c:
        facet = next(a for a in c.get("/attributes").json() if a["name"] == "genre")
        assert facet["kind"] == "text" and facet["values"] == ["jazz", "rock", "folk"]
        listed = c.get("/items", params={"filter": "genre==rock", "limit": 200}).json()
        assert listed["total"] == len(state.allow_mask(parse_filters(["genre==rock"])).nonzero()[0])
        assert {i % 3 for i in range(state.n_items)
                if state.item_ids[i] in {x["id"] for x in listed["items"]}} == {0, 2}
