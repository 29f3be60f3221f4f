"""Metrics with hand-computed answers, splits, MMR, the evaluation study and its report."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fuserec.data.adapters.base import Dataset
from fuserec.data.splits import (
    global_time_split,
    leave_last_out,
    published_split,
    split_interactions,
)
from fuserec.evaluate.metrics import (
    all_metrics,
    catalog_coverage,
    exposure_gini,
    gini,
    hit_rate_at_k,
    intra_list_diversity,
    item_popularity,
    mean_popularity,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)
from fuserec.evaluate.study import (
    StudyConfig,
    StudyData,
    ablation_subsets,
    activity_groups,
    cold_item_split,
    fingerprint_catalog,
    run_study,
)
from fuserec.evaluate.study_report import render_study
from fuserec.fuse.base import View
from fuserec.models.content import ContentCosine
from fuserec.models.rerank import mmr

# -- accuracy metrics: one small example, every answer computed by hand ---------------------------
# user A: top-3 = [3, 1, 7], relevant {1, 4}: one hit at rank 2 (item 4 sits at rank 4)
# user B: top-3 = [2, 5, 0], relevant {0}: one hit at rank 3
# user C: top-3 = [6, 8, 9], relevant {5}: no hit
# user D: no relevant items: skipped by every accuracy metric
RANKED = np.array([[3, 1, 7, 4], [2, 5, 0, 4], [6, 8, 9, 2], [0, 1, 2, 3]])
RELEVANT = [{1, 4}, {0}, {5}, set()]


def test_precision_mrr_hit_rate_hand_computed():
    assert precision_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert mrr_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert hit_rate_at_k(RANKED, RELEVANT, 3) == pytest.approx(2 / 3)
    # at k=1 nobody hits
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0
    assert mrr_at_k(RANKED, RELEVANT, 1) == 0.0
    # at k=4 user A also finds item 4: precision 2/4
    assert precision_at_k(RANKED, RELEVANT, 4) == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)


def test_recall_ndcg_hand_computed_on_the_same_example():
    assert recall_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 / 2 + 1 + 0) / 3)
    ndcg_a = (1 / np.log2(3)) / (1 + 1 / np.log2(3))  # hit at rank 2, ideal = 2 hits
    ndcg_b = (1 / np.log2(4)) / 1.0  # hit at rank 3, ideal = 1 hit
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx((ndcg_a + ndcg_b + 0) / 3)


def test_padding_is_never_a_hit():
    ranked = np.array([[5, -1, -1]])
    assert precision_at_k(ranked, [{5}], 3) == pytest.approx(1 / 3)
    assert mrr_at_k(ranked, [{5}], 3) == 1.0


def test_coverage_and_exposure_gini_hand_computed():
    ranked = np.array([[0, 1], [0, 2]])
    assert catalog_coverage(ranked, 4, 2) == pytest.approx(3 / 4)
    assert catalog_coverage(ranked, 4, 1) == pytest.approx(1 / 4)
    # exposure counts [2, 1, 1, 0] -> sorted [0, 1, 1, 2]; Σ(2i - n - 1)x = -1 + 1 + 6 = 6
    assert exposure_gini(ranked, 4, 2) == pytest.approx(6 / (4 * 4))


def test_gini_extremes():
    assert gini(np.array([3, 3, 3])) == 0.0
    assert gini(np.array([0, 0, 5])) == pytest.approx(2 / 3)
    assert gini(np.zeros(4)) == 0.0


def test_intra_list_diversity_hand_computed():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ranked = np.array([[0, 1], [0, 2], [2, -1]])
    # list 1: cos 0 -> distance 1; list 2: cos 1/√2; list 3 has one item and is skipped
    expected = (1.0 + (1 - 1 / np.sqrt(2))) / 2
    assert intra_list_diversity(ranked, vectors, 2) == pytest.approx(expected)
    assert intra_list_diversity(np.array([[0, 0]]), vectors, 2) == pytest.approx(0.0)


def test_novelty_and_popularity_hand_computed():
    # 4 users; item 0 seen by 2 users (p = 1/2), item 1 by 1 (1/4), item 2 by none (counts as 1)
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                                   np.float32))
    pop = item_popularity(train)
    np.testing.assert_allclose(pop, [0.5, 0.25, 0.0, 0.25])
    ranked = np.array([[0, 1], [0, 2]])
    # self-information: item 0 -> 1 bit, item 1 -> 2 bits, item 2 -> log2(4) = 2 bits
    assert novelty(ranked, pop, 4, 2) == pytest.approx((1 + 2 + 1 + 2) / 4)
    assert mean_popularity(ranked, pop, 2) == pytest.approx((0.5 + 0.25 + 0.5 + 0.0) / 4)


def test_all_metrics_names_every_metric_at_every_k():
    train = sp.csr_matrix(np.ones((4, 10), np.float32))
    out = all_metrics(RANKED, RELEVANT, [1, 3], n_items=10, train=train,
                      vectors=np.eye(10))
    for k in (1, 3):
        for name in ("recall", "ndcg", "precision", "mrr", "hit_rate", "coverage",
                     "exposure_gini", "diversity", "novelty", "popularity"):
            assert f"{name}@{k}" in out
    assert out["mrr@3"] == pytest.approx(mrr_at_k(RANKED, RELEVANT, 3))


# -- reference check: an independent implementation agrees to 1e-6 ------------------------------


def _random_rankings(seed: int = 3, n_users: int = 60, n_items: int = 80, k: int = 20):
    rng = np.random.default_rng(seed)
    ranked = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    relevant = [set(rng.choice(n_items, rng.integers(1, 12), replace=False).tolist())
                for _ in range(n_users)]
    return ranked, relevant, n_items


def test_accuracy_metrics_agree_with_trec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    ranked, relevant, _ = _random_rankings()
    for k in (1, 5, 10, 20):
        qrels = {f"u{u}": {f"i{i}": 1 for i in rel} for u, rel in enumerate(relevant)}
        # the run holds exactly the top k, with distinct descending scores (no tie-breaking)
        run = {f"u{u}": {f"i{i}": float(k - r) for r, i in enumerate(row[:k])}
               for u, row in enumerate(ranked)}
        measures = {f"recall_{k}", f"ndcg_cut_{k}", f"P_{k}", "recip_rank", f"success_{k}"}
        per_user = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)

        def mean(measure: str, per_user: dict = per_user) -> float:
            return float(np.mean([per_user[f"u{u}"][measure] for u in range(len(ranked))]))

        assert recall_at_k(ranked, relevant, k) == pytest.approx(mean(f"recall_{k}"), abs=1e-6)
        assert ndcg_at_k(ranked, relevant, k) == pytest.approx(mean(f"ndcg_cut_{k}"), abs=1e-6)
        assert precision_at_k(ranked, relevant, k) == pytest.approx(mean(f"P_{k}"), abs=1e-6)
        assert mrr_at_k(ranked, relevant, k) == pytest.approx(mean("recip_rank"), abs=1e-6)
        assert hit_rate_at_k(ranked, relevant, k) == pytest.approx(mean(f"success_{k}"),
                                                                  abs=1e-6)


def test_ndcg_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    ranked, relevant, n_items = _random_rankings(seed=5)
    y_true = np.zeros((len(ranked), n_items))
    y_score = np.zeros((len(ranked), n_items))
    for u, (row, rel) in enumerate(zip(ranked, relevant, strict=True)):
        y_true[u, list(rel)] = 1
        y_score[u, row] = np.arange(len(row), 0, -1)  # ranked items above everything else
    for k in (5, 10, 20):
        expected = metrics.ndcg_score(y_true, y_score, k=k)
        assert ndcg_at_k(ranked, relevant, k) == pytest.approx(expected, abs=1e-6)


# -- splits --------------------------------------------------------------------------------------


def _log() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "b", "b", "c"],
        "item_id": ["x", "y", "z", "w", "x", "y", "x"],
        "timestamp": [4, 1, 3, 2, 10, 20, 5],
    })


def test_leave_last_out_takes_each_users_latest():
    out = leave_last_out(_log(), n_test=1, n_validation=1)
    got = dict(zip(zip(out.user_id, out.item_id, strict=True), out.split, strict=True))
    assert got[("a", "x")] == "test" and got[("a", "z")] == "validation"
    assert got[("a", "y")] == got[("a", "w")] == "train"
    # b has two: last to test, one stays in train (min_train=1), so no validation
    assert got[("b", "y")] == "test" and got[("b", "x")] == "train"
    assert got[("c", "x")] == "train"  # a single interaction never leaves train


def test_global_time_split_cuts_at_one_moment():
    out = global_time_split(_log(), test_fraction=0.3)
    # sorted times 1 2 3 4 5 10 20: the cut sits at the value at position floor(7 * 0.7) = 4 -> 5
    assert set(out.loc[out.timestamp >= 5, "split"]) == {"test"}
    assert set(out.loc[out.timestamp < 5, "split"]) == {"train"}
    with pytest.raises(ValueError, match="timestamp"):
        global_time_split(_log().drop(columns="timestamp"))


def test_published_split_is_taken_as_given():
    log = _log().assign(split=["train", "valid", "test", "train", "TRAIN", "test", "val"])
    out = published_split(log)
    assert list(out.split) == ["train", "validation", "test", "train", "train", "test",
                               "validation"]
    with pytest.raises(ValueError, match="unknown split labels"):
        published_split(log.assign(split="holdout"))
    with pytest.raises(ValueError, match="unknown split"):
        split_interactions(log, "sideways")


# -- MMR: one implementation for recommend, the study and the API -------------------------------


def test_mmr_is_shared_with_the_server():
    from fuserec.serve import state

    assert state.mmr is mmr


def test_mmr_hand_computed():
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    cand, rel = np.array([0, 1, 2]), np.array([1.0, 0.95, 0.5])
    # λ=0.5, after picking 0: item 1 -> 0.5*0.9 - 0.5*1 = -0.05; item 2 -> 0.5*0 - 0.5*0 = 0
    picked, scores = mmr(cand, rel, vectors, 2, 0.5)
    assert picked.tolist() == [0, 2]
    np.testing.assert_allclose(scores, [1.0, 0.5])
    assert mmr(cand, rel, vectors, 3, 0.0)[0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        mmr(cand, rel, vectors, 2, 1.5)


def test_batched_mmr_picks_what_per_row_mmr_picks():
    from fuserec.models.rerank import mmr_batch

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    cand = np.stack([rng.permutation(200)[:30] for _ in range(70)])
    rel = rng.random((70, 30)).astype(np.float32)
    cand[0, 5:] = -1  # padding
    rel[1, 3:] = -np.inf  # excluded
    rel[2] = 0.5  # all tied
    for lam in (0.0, 0.4, 1.0):
        items, scores = mmr_batch(cand, rel, vectors, 8, lam, chunk=16)
        for u in range(len(cand)):
            picked, s = mmr(cand[u], rel[u], vectors, 8, lam)
            assert items[u, :len(picked)].tolist() == picked.tolist()
            assert (items[u, len(picked):] == -1).all()
            np.testing.assert_allclose(scores[u, :len(picked)], s)


def _toy(n_users: int = 40, n_items: int = 60, seed: int = 0) -> tuple[Dataset, dict]:
    """Items in 4 taste clusters visible (noisily) in two views; users like one cluster."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 4, n_items)
    centres = rng.normal(size=(4, 16))
    text = centres[cluster] + 0.8 * rng.normal(size=(n_items, 16))
    image = centres[cluster] @ rng.normal(size=(16, 12)) + 0.8 * rng.normal(size=(n_items, 12))
    taste = rng.integers(0, 4, n_users)
    rows, cols = [], []
    for u in range(n_users):
        liked = np.flatnonzero(cluster == taste[u])
        extra = rng.choice(n_items, 2, replace=False)
        chosen = np.unique(np.concatenate([rng.choice(liked, min(len(liked), 3 + u % 8),
                                                      replace=False), extra]))
        rows += [u] * len(chosen)
        cols += chosen.tolist()
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    # hold out one interaction per user with at least 3
    train, test = m.tolil(), sp.lil_matrix(m.shape, dtype=np.float32)
    for u in range(n_users):
        items = m[u].indices
        if len(items) >= 3:
            j = items[rng.integers(len(items))]
            train[u, j] = 0
            test[u, j] = 1
    train, test = sp.csr_matrix(train), sp.csr_matrix(test)
    train.eliminate_zeros()
    views = {"text": View(text.astype(np.float32), np.ones(n_items, bool)),
             "image": View(image.astype(np.float32), np.ones(n_items, bool))}
    return Dataset("toy", train, None, test, views), views


def test_recommend_with_diversity_reranks_and_raises_diversity():
    ds, views = _toy()
    model = ContentCosine().fit(ds.train, views)
    users = np.arange(ds.n_users)
    plain, _ = model.recommend(users, k=5)
    same, _ = model.recommend(users, k=5, diversity=0.0)
    np.testing.assert_array_equal(plain, same)
    diverse, _ = model.recommend(users, k=5, diversity=0.8)
    assert diverse.shape == plain.shape
    seen = ds.train
    for u in users:  # still never recommends a seen item
        assert not set(diverse[u].tolist()) & set(seen[u].indices.tolist())
    vecs = model.item_vectors()
    assert intra_list_diversity(diverse, vecs, 5) > intra_list_diversity(plain, vecs, 5)


# -- the study and its report --------------------------------------------------------------------


def test_activity_groups_and_cold_item_split():
    train = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], np.float32))
    labels, cuts = activity_groups(train, np.arange(3))
    assert labels.tolist() == ["cold", "medium", "heavy"]
    assert cuts[0] < cuts[1]
    test = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], np.float32))
    warm, cold_test, cold = cold_item_split(train, None, test, 0.5, 0)
    assert len(cold) == 1 and cold[0] in (1, 2)
    assert warm[:, cold].nnz == 0  # held out of training entirely
    assert cold_test[:, cold].nnz == (train + test)[:, cold].nnz  # all their interactions
    assert ablation_subsets(["text", "image", "audio"])[-1] == ("text", "image", "audio")
    assert len(ablation_subsets(["text", "image", "audio"])) == 7


def test_fingerprint_changes_with_the_data_only():
    log = _log()
    items = pd.DataFrame({"id": ["x", "y"], "title": ["a", "b"], "images": [["p.png"], []]})
    a = fingerprint_catalog(log, items)
    assert a == fingerprint_catalog(log.copy(), items.copy())
    changed = log.copy()
    changed.loc[0, "timestamp"] = 99
    assert fingerprint_catalog(changed, items)["combined"] != a["combined"]
    assert fingerprint_catalog(log, items.assign(title=["a", "c"]))["items"] != a["items"]


@pytest.fixture(scope="module")
def toy_study() -> dict:
    ds, _ = _toy()
    config = StudyConfig(ks=(5, 10), models=("popularity", "item-knn", "content-cosine"),
                         lambdas=(0.0, 0.5), cold_item_fraction=0.2)
    return run_study(StudyData(ds, fingerprint={"combined": "f" * 64}, split={"method": "given"}),
                     config)


def test_study_covers_every_section(toy_study):
    s = toy_study
    assert set(s["models"]) == {"popularity", "item-knn", "content-cosine"}
    m = s["models"]["content-cosine"]["metrics"]
    assert {"ndcg@5", "ndcg@10", "diversity@5", "novelty@10", "exposure_gini@5"} <= set(m)
    assert set(s["ablation"]) == {"text", "image", "text + image"}
    assert [p["lambda"] for p in s["tradeoff"]["content-cosine"]] == [0.0, 0.5]
    assert set(s["groups"]["rows"]["popularity"]) <= {"cold", "medium", "heavy"}
    assert s["cold_items"]["items"] >= 1 and "content-cosine" in s["cold_items"]["rows"]
    # tuned on a validation split carved from train; the chosen value is one of the grid
    assert "item-knn" in s["tuning"]
    assert s["tuning"]["item-knn"]["params"]["neighbors"] in (20, 50, 100, 200)
    assert "carved" in s["split"]["validation"]
    # the content model clearly beats popularity on this clustered toy
    assert m["ndcg@10"] > s["models"]["popularity"]["metrics"]["ndcg@10"]
    json.dumps(s)  # JSON-able


def test_render_study_writes_a_self_contained_page(toy_study, tmp_path):
    page = render_study(toy_study, tmp_path)
    text = page.read_text()
    assert "src=\"data:image/png;base64," in text
    assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 5
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("Model comparison", "Accuracy vs diversity", "Accuracy by user activity",
                    "Cold items", "Modality ablation", "Reproduce"):
        assert heading in text
    assert "f" * 16 in text  # the data fingerprint
    md = (tmp_path / "report.md").read_text()
    assert "| model | Recall@5 |" in md and "![Model comparison](plots/models.png)" in md
    assert (tmp_path / "plots" / "tradeoff.png").stat().st_size > 1000
    assert json.loads((tmp_path / "study.json").read_text())["dataset"] == "toy"


def test_report_command_on_fake_artifacts(tmp_path):
    from typer.testing import CliRunner

    from fuserec.cli import app
    from serve_helpers import build_fake_artifacts

    artifacts = build_fake_artifacts(tmp_path / "run", n_items=36, n_users=14)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "--artifacts", str(artifacts), "--out", str(out),
                                      "--model", "popularity", "--model", "content-cosine",
                                      "--k", "5", "--lambdas", "0,0.5"])
    assert result.exit_code == 0, result.output
    study = json.loads((out / "study.json").read_text())
    assert study["split"]["method"] == "given"
    assert len(study["fingerprint"]["combined"]) == 64
    assert (out / "report.html").exists() and (out / "report.md").exists()
    # another split of the same artifacts
    result = CliRunner().invoke(app, ["report", "--artifacts", str(artifacts), "--out",
                                      str(tmp_path / "r2"), "--split", "leave-last-out",
                                      "--model", "popularity", "--no-tune", "--k", "5",
                                      "--lambdas", "0", "--cold-items", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r2" / "study.json").read_text())["split"]["method"] == \
        "leave-last-out"


@pytest.mark.slow
def test_report_on_real_demo_artifacts(tmp_path):
    """The demo with the real encoders, then ``fuserec report`` on its artifacts."""
    from typer.testing import CliRunner

    from fuserec.cli import app

    runner = CliRunner()
    run = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--items", "60",
                              "--users", "30", "--no-progress",
                              "--llm-budget", "20"])
    assert run.exit_code == 0, run.output
    result = runner.invoke(app, ["report", "--artifacts", str(tmp_path / "demo" / "artifacts")])
    assert result.exit_code == 0, result.output
    study = json.loads((tmp_path / "demo" / "report" / "study.json").read_text())
    assert set(study["ablation"]) >= {"text", "image", "audio", "text + image + audio"}
    assert "content-cosine" in study["tradeoff"]


def test_evaluate_command_writes_a_report(tmp_path):
    import pickle

    from typer.testing import CliRunner

    from fuserec.cli import app

    ds, views = _toy(n_users=30, n_items=40)
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "trnMat.pkl").write_bytes(pickle.dumps(sp.coo_matrix(ds.train)))
    (folder / "tstMat.pkl").write_bytes(pickle.dumps(sp.coo_matrix(ds.test)))
    np.save(folder / "image_feat.npy", views["image"].vectors)
    np.save(folder / "text_feat.npy", views["text"].vectors)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "evaluate", "--dataset", "matrices", "--data-dir", str(folder), "--model", "popularity",
        "--model", "content-cosine", "--k", "5", "--no-progress", "--report", str(out)])
    assert result.exit_code == 0, result.output
    study = json.loads((out / "study.json").read_text())
    assert set(study["models"]) == {"popularity", "content-cosine"}
    assert "diversity@5" in study["models"]["popularity"]["metrics"]
    assert study["fingerprint"]["combined"]
    assert "Model comparison" in (out / "report.html").read_text()


def test_study_without_content_views_still_reports(tmp_path):
    from dataclasses import replace

    ds, _ = _toy()
    study = run_study(StudyData(replace(ds, item_features={})),
                      StudyConfig(ks=(5,), models=("popularity", "content-cosine"),
                                  tune=False, cold_item_fraction=0.0))
    assert list(study["models"]) == ["popularity"]
    assert study["config"]["skipped_models"] == ["content-cosine"]
    assert not study["tradeoff"] and not study["ablation"]
    assert "diversity@5" not in study["models"]["popularity"]["metrics"]
    assert "Model comparison" in render_study(study, tmp_path).read_text()


def test_excluding_hides_items_without_changing_the_history_models_read():
    """At test time train + validation items are excluded, but a history-reading model (EASE)
    must still score from its training history, like the models that learned user vectors."""
    from fuserec.models import EASE

    train = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [1, 0, 1, 1, 0]],
                                   np.float32))
    model = EASE(l2=0.5).fit(train)
    before = model.score(np.arange(3))
    ids_before, _ = model.recommend([0], k=3)
    hidden = int(ids_before[0, 0])
    seen = train.tolil()
    seen[0, hidden] = 1
    ids, _ = model.recommend([0], k=3, exclude=seen.tocsr())
    np.testing.assert_array_equal(model.score(np.arange(3)), before)
    assert hidden not in ids[0] and ids[0, 0] == ids_before[0, 1]
    # nothing stays on the model: the next call excludes the training items only
    assert model.recommend([0], k=1)[0][0, 0] == hidden
    # candidates restrict the ranking, as an index list or a mask
    only, _ = model.recommend([0], k=3, candidates=[3, 4])
    assert set(only[0][only[0] >= 0].tolist()) <= {3, 4}


def test_run_model_reports_the_weights_a_blend_chose():
    from fuserec.evaluate.experiment import run_model

    ds, _ = _toy()
    ds = ds.with_validation(0.2, seed=0)
    members = [{"model": "popularity"}, {"model": "content-cosine"}]
    result = run_model(ds, "blend", (10,), {"members": members, "grid_step": 0.5})
    assert set(result["weights"]) == {"popularity", "content-cosine"}
    assert sum(result["weights"].values()) == pytest.approx(1.0)
    assert 0.0 <= result["metrics"]["recall@10"] <= 1.0
    twice = [{"model": "popularity"}, {"model": "popularity"}]
    result = run_model(ds, "blend", (10,), {"members": twice, "weights": [0.25, 0.75]})
    assert result["weights"] == {"popularity#1": 0.25, "popularity#2": 0.75}
