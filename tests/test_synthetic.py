import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from fuserec.data import load_catalog
from fuserec.data.synthetic import (
    SOUND_STYLES,
    VISUAL_STYLES,
    DemoCatalogSpec,
    generate_demo_catalog,
    load_truth,
)


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    spec = DemoCatalogSpec(n_items=24, n_users=12, seed=3)
    a = generate_demo_catalog(tmp_path / "a", spec, progress=False)
    b = generate_demo_catalog(tmp_path / "b", spec, progress=False)
    c = generate_demo_catalog(tmp_path / "c", DemoCatalogSpec(n_items=24, n_users=12, seed=4),
                              progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_catalog_is_ordinary_files_in_the_documented_format(tmp_path):
    spec = DemoCatalogSpec(n_items=30, n_users=15, seed=1)
    root = generate_demo_catalog(tmp_path, spec, progress=False)
    items = pd.read_csv(root / "items.csv")
    assert {"id", "title", "description", "images", "audio", "attr_price"} <= set(items.columns)
    truth = load_truth(root)
    first = items[~items["id"].isin(truth["spoken"])].iloc[0]
    img = Image.open(root / first["images"].split("|")[0])
    assert img.size == (224, 224)
    audio, sr = sf.read(root / first["audio"])
    assert sr == 22_050 and 1.5 < len(audio) / sr < 2.5
    assert len(truth["items"]) == 30 and len(truth["users"]) == 15
    assert truth["values"]["visual_style"] == VISUAL_STYLES
    assert truth["values"]["sound_style"] == SOUND_STYLES


def test_interactions_follow_the_hidden_taste(tmp_path):
    spec = DemoCatalogSpec(n_items=120, n_users=40, seed=2, inject_errors=False)
    root = generate_demo_catalog(tmp_path, spec, progress=False)
    truth = load_truth(root)
    log = pd.read_csv(root / "interactions.csv")
    spoken = set(truth["spoken"])
    matches, spoken_topic = [], []
    for row in log.itertuples():
        item = np.array(truth["items"][row.item_id])
        pref = np.array(truth["users"][row.user_id]["prefers"])
        if row.item_id in spoken:
            spoken_topic.append(item[2] == pref[2])
        else:
            matches.append(item == pref)
    share = np.mean(matches, axis=0)
    assert np.all(share > 0.3), share  # vs 1/6 for random choice
    if shutil.which("espeak-ng"):  # without it the catalog has no spoken episodes
        assert spoken_topic and np.mean(spoken_topic) > 0.5  # chosen for its topic


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng is not installed (scripts/test.sh installs it)")
def test_spoken_episodes_have_a_narrated_clip_and_no_picture(tmp_path):
    spec = DemoCatalogSpec(n_items=30, n_users=10, seed=1, inject_errors=False)
    root = generate_demo_catalog(tmp_path, spec, progress=False)
    truth = load_truth(root)
    items = pd.read_csv(root / "items.csv", keep_default_na=False).set_index("id")
    assert 2 <= len(truth["spoken"]) <= 15  # about spoken_share of the items
    for item_id in truth["spoken"]:
        row = items.loc[item_id]
        assert row["images"] == "" and truth["items"][item_id][:2] == [-1, -1]
        audio, sr = sf.read(root / row["audio"])
        assert len(audio) / sr > 3.0 and np.abs(audio).max() > 0.05  # seconds of speech
    none = generate_demo_catalog(tmp_path / "none", DemoCatalogSpec(
        n_items=10, n_users=5, seed=1, spoken_share=0.0, inject_errors=False), progress=False)
    assert load_truth(none)["spoken"] == []


def test_injected_errors_are_reported_and_good_records_survive(tmp_path):
    spec = DemoCatalogSpec(n_items=20, n_users=10, seed=5, inject_errors=True)
    root = generate_demo_catalog(tmp_path, spec, progress=False)
    catalog, report = load_catalog(root, progress=False)
    assert len(catalog.items) == 20 + 3  # 20 good items and 3 whose broken media was dropped
    assert report.n_rejected == 3  # the duplicate id and two interactions with unknown ids
    assert report.n_dropped_media == 3
    broken = catalog.items.set_index("id")
    assert broken.loc["broken_image", "images"] == []
    assert broken.loc["broken_audio", "audio"] == []
