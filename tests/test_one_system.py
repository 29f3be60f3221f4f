"""One system: `fuserec run` trains the candidates, selects on validation, and serving ranks
with the chosen model (feedback folded in, new items from content)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from rich.console import Console

from fuserec.artifacts import load_artifacts
from fuserec.data.adapters.base import Dataset
from fuserec.data.synthetic import DemoCatalogSpec
from fuserec.evaluate.selection import AUTO_CANDIDATES, select_models
from fuserec.models import EASE
from fuserec.pipeline import PipelineConfig, run_demo
from fuserec.serve.state import ServingState
from serve_helpers import FAKE_ENCODERS

SPEC = DemoCatalogSpec(n_items=40, n_users=24, seed=5, inject_errors=False)


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("auto")
    results = run_demo(out, SPEC, PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False),
                       Console(quiet=True))
    return out, results


@pytest.fixture(scope="module")
def ease_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ease")
    config = PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False,
                            models=("content-cosine", "ease"))
    results = run_demo(out, SPEC, config, Console(quiet=True))
    return out, results


def test_every_candidate_is_reported_and_the_best_on_validation_is_served(auto_run):
    out, results = auto_run
    models = results["models"]
    assert set(models) == set(AUTO_CANDIDATES)
    ran = {n: m for n, m in models.items() if "skipped" not in m}
    assert len(ran) >= 8, models
    for m in ran.values():
        assert set(m["validation"]) >= {"ndcg@10", "recall@10"}
        assert set(m["test"]) >= {"ndcg@10", "recall@10"}
    best = max(ran, key=lambda n: ran[n]["validation"]["ndcg@10"])
    assert results["served"]["name"] == best
    assert results["served"]["test"] == ran[best]["test"]
    # the grids were searched on validation and recorded
    assert len(ran["ease"]["searched"]) == 4
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["served"]["name"] == best and "views" in on_disk and "validation" in on_disk
    assert "## Models" in (out / "report.md").read_text()
    art = load_artifacts(out / "artifacts")
    assert art.ranker.name == best
    assert art.manifest["served"] == best


def test_serving_ranks_with_the_chosen_model(ease_run):
    out, results = ease_run
    assert set(results["models"]) == {"content-cosine", "ease"}
    art = load_artifacts(out / "artifacts")
    if results["served"]["name"] != "ease":
        pytest.skip("content-cosine won on this catalog's validation split")
    state = ServingState(art, index_kind="exact")
    ease = art.served
    assert isinstance(ease, EASE) and state.ranker is ease
    user = state.users["id"].iloc[0]
    row = state.user_row[user]
    expected = ease.score(np.array([row]))[0].astype(np.float64)
    expected[state.seen_positions(user)] = -np.inf
    got = state.recommend(user, k=5)
    assert [r["pos"] for r in got] == list(np.argsort(-expected, kind="stable")[:5])
    np.testing.assert_allclose([r["score"] for r in got], np.sort(expected)[::-1][:5],
                               rtol=1e-5)

    # feedback is folded in from the updated history, no retraining
    pick = got[0]["pos"]
    state.add_feedback(user, state.item_ids[pick])
    history = ease.interactions[row].toarray()
    history[0, pick] += 1.0
    refolded = ease.score_history(sp.csr_matrix(history))[0].astype(np.float64)
    refolded[state.seen_positions(user)] = -np.inf
    after = state.recommend(user, k=5)
    assert pick not in [r["pos"] for r in after]
    assert [r["pos"] for r in after] == list(np.argsort(-refolded, kind="stable")[:5])

    # a brand-new user, known only by one feedback event
    state.add_feedback("newcomer", state.item_ids[pick])
    onehot = sp.csr_matrix(([1.0], ([0], [pick])), shape=(1, state.n_items))
    fresh = ease.score_history(onehot)[0].astype(np.float64)
    fresh[pick] = -np.inf
    assert [r["pos"] for r in state.recommend("newcomer", k=3)] == \
        list(np.argsort(-fresh, kind="stable")[:3])

    explanation = state.recommend(user, k=1, explain=True)[0]["explanation"]
    assert explanation["model"] == "ease" and explanation["because_you_liked"]


def test_a_blend_explains_each_members_share(auto_run):
    out, _ = auto_run
    art = load_artifacts(out / "artifacts")
    if art.ranker.name != "blend":
        pytest.skip(f"{art.ranker.name} won on this catalog's validation split")
    state = ServingState(art, index_kind="exact")
    user = state.users["id"].iloc[0]
    rec = state.recommend(user, k=1, explain=True)[0]
    members = rec["explanation"]["members"]
    assert set(members) == set(art.ranker.member_weights())
    assert sum(members.values()) == pytest.approx(rec["score"], rel=1e-4, abs=1e-4)


def _random_dataset(with_content: bool) -> Dataset:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 25)) < 0.25).astype(np.float32)
    m = sp.csr_matrix(dense)
    rows, cols = m.nonzero()
    order = rng.permutation(len(rows))
    parts = np.array_split(order, [int(0.7 * len(order)), int(0.85 * len(order))])

    def sub(idx):
        return sp.csr_matrix((np.ones(len(idx), np.float32), (rows[idx], cols[idx])),
                             shape=m.shape)

    features = {}
    if with_content:
        from fuserec.fuse.base import View

        features = {"text": View(rng.normal(size=(25, 8)).astype(np.float32),
                                 np.ones(25, bool))}
    return Dataset("random", sub(parts[0]), sub(parts[1]), sub(parts[2]), features)


def test_candidates_that_cannot_run_are_skipped_with_a_reason():
    logged: list[str] = []
    selection = select_models(_random_dataset(with_content=False),
                              ("content-cosine", "ease", "blend", "mmease"), log=logged.append)
    assert selection.get("content-cosine").skipped.startswith("needs item content")
    assert selection.get("blend").skipped and selection.get("mmease").skipped
    assert selection.chosen.name == "ease"
    assert any("content-cosine: skipped (needs item content" in line for line in logged)


def test_unknown_models_are_refused_by_the_cli(tmp_path):
    from typer.testing import CliRunner

    from fuserec.cli import app

    result = CliRunner().invoke(app, ["run", str(tmp_path), "--model", "nope"])
    assert result.exit_code != 0 and "unknown model 'nope'" in result.output


def test_a_given_split_is_kept_and_validation_carved_from_its_train_rows(tmp_path):
    import pandas as pd

    from fuserec.data.synthetic import generate_demo_catalog
    from fuserec.pipeline import run_pipeline

    root = generate_demo_catalog(tmp_path / "cat", DemoCatalogSpec(n_items=40, n_users=20,
                                                                   seed=2, inject_errors=False),
                                 progress=False)
    inter = pd.read_csv(root / "interactions.csv")
    inter["split"] = np.where(np.random.default_rng(0).random(len(inter)) < 0.2, "test",
                              "train")
    inter.to_csv(root / "interactions.csv", index=False)
    results = run_pipeline(root, tmp_path / "out", PipelineConfig(
        encoders=dict(FAKE_ENCODERS), progress=False, models=("content-cosine", "ease")),
        Console(quiet=True))
    counts = results["counts"]
    assert counts["test"] == int((inter["split"] == "test").sum())  # test rows as given
    assert counts["validation"] > 0
    assert counts["train"] + counts["validation"] == int((inter["split"] == "train").sum())
    assert results["served"]["name"] in ("content-cosine", "ease")


def test_artifact_folders_are_swapped_in_whole_and_mixed_folders_refused(auto_run, tmp_path):
    import shutil

    from fuserec.io import staged_folder

    out, _ = auto_run
    target = tmp_path / "artifacts"
    shutil.copytree(out / "artifacts", target)
    # a failed write leaves the folder as it was, and no staging folder behind
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "manifest.json").write_text("{}")
        raise RuntimeError("killed half-way")
    assert load_artifacts(target).manifest == load_artifacts(out / "artifacts").manifest
    assert [p.name for p in tmp_path.iterdir()] == ["artifacts"]
    # a folder whose tables come from another run is refused whole, naming the mismatch
    other = tmp_path / "other"
    run_demo(other, DemoCatalogSpec(n_items=30, n_users=24, seed=5, inject_errors=False),
             PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False,
                            models=("content-cosine",)), Console(quiet=True))
    shutil.copy(other / "artifacts" / "items.parquet", target / "items.parquet")
    with pytest.raises(ValueError, match="not a consistent artifact folder"):
        load_artifacts(target)


_RUN_IN_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from rich.console import Console
from serve_helpers import FAKE_ENCODERS
from fuserec.data.synthetic import DemoCatalogSpec
from fuserec.pipeline import PipelineConfig, run_demo
run_demo({out!r}, DemoCatalogSpec(n_items={n}, n_users=24, seed=5, inject_errors=False),
         PipelineConfig(encoders=dict(FAKE_ENCODERS), progress=False), Console(quiet=True))
"""


@pytest.mark.slow
def test_kill_9_while_rewriting_artifacts_leaves_a_loadable_folder(tmp_path):
    """`fuserec run` killed at random points while it rewrites an existing artifact folder:
    afterwards the folder loads whole (the old run or the new one), never a mix."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tests = str(Path(__file__).parent)
    out = tmp_path / "run"

    def start(n: int) -> subprocess.Popen:
        code = _RUN_IN_CHILD.format(tests=tests, out=str(out), n=n)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    assert start(30).wait(timeout=300) == 0
    rng = np.random.default_rng(0)
    written = {30}  # each run writes its own catalog size, so a mix would show
    for attempt in range(4):
        n = 40 + attempt
        proc = start(n)
        time.sleep(float(rng.uniform(2.0, 8.0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        written.add(n)
        art = load_artifacts(out / "artifacts")  # raises on a mixed folder
        assert len(art.items) in written and len(art.model.item_vectors()) == len(art.items)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".artifacts.")]
    start(30).wait(timeout=300)
    assert not [p for p in out.iterdir() if p.name.startswith(".artifacts.")], leftovers
    assert os.path.isdir(out / "artifacts")
