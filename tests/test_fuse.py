import numpy as np
import pytest

from fuserec.fuse import FUSERS, ModalityNormalizer, SumFusion, View, l2_normalize


def _views(rng, n=40):
    text = rng.normal(size=(n, 8)).astype(np.float32) + 3.0  # shared offset: anisotropic
    image = np.abs(rng.normal(size=(n, 20))).astype(np.float32)  # all positive, like CNN features
    audio = rng.normal(size=(n, 5)).astype(np.float32) * np.array([1, 10, 100, 1000, 1e4])
    ones = np.ones(n, bool)
    return {"text": View(text, ones), "image": View(image, ones), "audio": View(audio, ones)}


def test_fused_cosine_is_the_weighted_mean_of_per_modality_cosines():
    rng = np.random.default_rng(0)
    views = _views(rng)
    fuser = SumFusion(weights={"text": 2.0, "image": 1.0, "audio": 1.0}).fit(views)
    fused = fuser.transform(views)
    assert fused.shape == (40, 8 + 20 + 5)
    blocks = {m: fuser.normalize(m, v) for m, v in views.items()}
    expected = (2 * blocks["text"][3] @ blocks["text"][7] + blocks["image"][3] @ blocks["image"][7]
                + blocks["audio"][3] @ blocks["audio"][7]) / 4
    cos = fused[3] @ fused[7] / (np.linalg.norm(fused[3]) * np.linalg.norm(fused[7]))
    assert cos == pytest.approx(expected, abs=1e-5)
    assert np.linalg.norm(fused, axis=1) == pytest.approx(np.ones(40), abs=1e-5)


def test_centering_removes_the_shared_direction_and_zscore_equalises_units():
    rng = np.random.default_rng(1)
    views = _views(rng, n=400)
    raw = l2_normalize(views["image"].vectors)
    assert (raw @ raw.T).mean() > 0.5  # positive features all look alike before centring
    image = views["image"].vectors
    centred = ModalityNormalizer("center").fit(image).transform(image)
    assert abs((centred @ centred.T).mean()) < 0.05
    z = ModalityNormalizer("zscore").fit(views["audio"].vectors)
    standardised = (views["audio"].vectors - z.mean) * z.scale
    assert standardised.std(0) == pytest.approx(np.ones(5), rel=1e-3)


def test_missing_modality_is_a_zero_block_and_never_inflates_the_vector():
    rng = np.random.default_rng(2)
    views = _views(rng)
    present = np.ones(40, bool)
    present[5] = False
    views["image"] = View(views["image"].vectors, present)
    fuser = SumFusion().fit(views)
    fused = fuser.transform(views)
    image_block = fused[:, fuser.block_slices()["image"]]
    assert not image_block[5].any()
    assert np.linalg.norm(fused[5]) == pytest.approx(np.sqrt(2 / 3), abs=1e-5)


def test_state_round_trip_and_registry():
    rng = np.random.default_rng(3)
    views = _views(rng)
    fuser = FUSERS.create("sum", modalities=["text", "audio"]).fit(views)
    arrays, config = fuser.state()
    again = SumFusion.from_state(arrays, config)
    np.testing.assert_allclose(again.transform(views), fuser.transform(views))
    with pytest.raises(KeyError, match="unknown fuser"):
        FUSERS.create("nope")
    with pytest.raises(ValueError, match="weights"):
        SumFusion(weights={"text": -1.0})
