"""Faithful by construction: the checker on a hand-labelled set, coverage, fact prompts, the
router without self-copies, the time budget, and the CTranslate2 backend's plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuserec.describe import Facts, GeneratedText, TextCache, describe_catalog
from fuserec.describe.ct2 import CT2LLM, convert_to_ct2, sha256_file
from fuserec.describe.faithful import (
    check_sentences,
    coverage,
    item_facts,
    split_sentences,
    stem,
    user_facts,
)
from fuserec.describe.prompts import item_prompt, user_prompt
from fuserec.fuse.base import View
from fuserec.fuse.router import agreement

LABELLED = Path(__file__).parent / "data" / "describe_labelled.json"


def test_the_checker_classifies_every_hand_labelled_sentence():
    data = json.loads(LABELLED.read_text())
    cases = data["cases"]
    assert len(cases) >= 40 and 0.3 < np.mean([c["supported"] for c in cases]) < 0.7
    wrong = []
    for case in cases:
        facts = Facts.from_json(data["facts"][case["facts"]])
        unsupported = facts.unsupported(case["sentence"])
        if (not unsupported) != case["supported"]:
            wrong.append((case["sentence"], unsupported))
    assert wrong == []


def test_stems_and_sentences():
    assert stem("tomatoes") == stem("tomato") and stem("baking") == stem("bake")
    assert stem("costs") == stem("price") and stem("colors") == stem("colour")
    assert split_sentences("It costs 12.5 here. Then more; and a clause") == \
        ["It costs 12.5 here.", "Then more", "and a clause"]


def _pasta() -> Facts:
    return item_facts([("title", "The bold pasta"),
                       ("description", "A guide about homemade pasta dough. Also: a spicy curry")],
                      {"labels": [{"label": "plate", "p": 0.6}, {"label": "pizza", "p": 0.2}],
                       "colours": {"red": 0.6, "white": 0.3}},
                      "A picture that looks like a plate or a pizza; mostly red and white.",
                      {"kind": "no speech", "tempo_bpm": 121.4},
                      "A sound without words: music or tones; tonal, around 121 beats per minute.",
                      [("price", 12.5), ("year", 2003)])


def test_item_facts_prompt_and_coverage():
    facts = _pasta()
    assert facts.main == "text"
    kinds = [(f.modality, f.kind) for f in facts.facts]
    assert ("image", "label") in kinds and ("audio", "tempo") in kinds
    prompt = item_prompt(facts)[-1]["content"]
    for words in ("The bold pasta", "plate or pizza", "red, white", "121 beats per minute",
                  "price 12.5", "music or tones"):
        assert words in prompt
    full = ("The bold pasta is a guide about homemade pasta dough and a spicy curry. Its picture "
            "looks like a red and white plate or pizza, with music at 121 beats per minute.")
    cov = coverage(full, facts)
    assert cov.main_complete and cov.share > 0.7
    assert not check_sentences(full, facts).rejected
    part = coverage("The bold pasta has a red picture.", facts)
    assert part.main_complete is False and part.share < 0.5
    spoken = item_facts([("title", "The calm trail")], None, "",
                        {"kind": "speech", "transcript": "Welcome back. Today we talk about "
                         "crossing alpine streams."}, "Spoken words: ...")
    assert spoken.main == "audio" and [f.text for f in spoken.of("audio")] == \
        ["Today we talk about crossing alpine streams"]  # the greeting is no fact


def test_user_facts_prompt():
    facts = user_facts("I bake bread", [("The bold pasta", "The bold pasta. A guide")])
    prompt = user_prompt(facts)[-1]["content"]
    assert "I bake bread" in prompt and "The bold pasta" in prompt
    assert facts.main == "history" and not facts.unsupported("They like bread and pasta.")
    assert facts.unsupported("They are a chef in Rome.") == ["chef", "Rome"]


def test_agreement_compares_generated_views_pairwise():
    own = View(np.array([[1, 0, 0], [1, 0, 0]], np.float32), np.ones(2, bool))
    image = View(np.array([[0, 1, 0], [1, 0, 0]], np.float32), np.ones(2, bool))
    audio = View(np.array([[0, 1, 0], [0, 0, 1]], np.float32), np.array([True, False]))
    scores = agreement(own, {"image": image, "audio": audio})
    # item 0: views disagree with the own text but agree with each other
    assert scores["image~audio"][0] == pytest.approx(1.0)
    assert scores["mean"][0] == pytest.approx(1 / 3)
    assert scores["mean"][1] == pytest.approx(1.0) and np.isnan(scores["image~audio"][1])
    assert set(agreement(own, {"image": image}, pairwise=False)) == {"image", "mean"}


def test_the_router_sees_llm_texts_but_never_templates_or_copies():
    from fuserec.pipeline.describe import _llm_view

    class D:
        own = ["The bold pasta. A guide about homemade pasta dough.", "Two", "Three"]
        unified = [GeneratedText("The bold pasta. A guide about homemade pasta dough. Also red.",
                                 "llm"),
                   GeneratedText("Two is a short item.", "llm"),
                   GeneratedText("Three. Picture: red.", "template")]

    view = _llm_view(View(np.ones((3, 2), np.float32), np.ones(3, bool)), D())
    assert view.present.tolist() == [False, True, False]


def test_a_spent_budget_gives_templates_and_says_so(tmp_path):
    from fuserec.data.loaders import load_catalog
    from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog

    root = generate_demo_catalog(tmp_path / "cat", DemoCatalogSpec(
        n_items=8, n_users=4, seed=3, inject_errors=False), progress=False)
    catalog, _ = load_catalog(root, progress=False)

    class Never(CT2LLM):
        def __init__(self) -> None:
            self.name, self.max_tokens, self.batch_size = "never", 8, 4

        def identity(self) -> str:
            return "never"

        def chat_batch(self, batch, max_tokens=None):
            raise AssertionError("no time was left")

    history = {u: catalog.item_ids[:2] for u in catalog.user_ids}
    d = describe_catalog(catalog, None, None, Never(), TextCache(tmp_path / "c"), history,
                         llm_budget_s=0.0)
    assert all(g.source == "template" and "budget" in g.fallback_reason
               for g in d.unified + d.profiles)
    faith = d.faithfulness()
    assert faith["item"]["budget_fallbacks"] == 8 and faith["user"]["budget_fallbacks"] == 4
    assert len(d.item_facts) == 8 and d.item_facts[0].of("text")


def test_ct2_reuses_a_converted_model_and_caches_the_shared_prompt_head(tmp_path):
    weights = tmp_path / "tiny.gguf"
    weights.write_bytes(b"not really weights")
    digest = sha256_file(weights)
    done = tmp_path / "ct2" / f"tiny-{digest[:16]}-int8"
    (done / "tokenizer").mkdir(parents=True)
    (done / "model.bin").write_bytes(b"x")
    assert convert_to_ct2(weights, tmp_path) == done  # keyed by the weights' hash: no work

    llm = CT2LLM.__new__(CT2LLM)
    head = ["<|im_start|>", *["sys"] * 20, "<|im_end|>", "<|im_start|>"]
    prompts = [[*head, "user", "a", "b"], [*head, "user", "c"]]
    # up to the start of the last turn: the system text and worked example, computed once
    assert llm._static_prefix(prompts) == head[:-1]
    assert llm._static_prefix([["<|im_start|>", "x", "y"]]) == []
