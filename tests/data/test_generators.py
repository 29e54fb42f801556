"""Benchmark generators: the synthetic MMoE regression (Ma et al. 2018) and Multi-MNIST-style composites."""

import numpy as np
import pytest

from moe_tf.config.loader import validate_config
from moe_tf.data import build_task_data
from moe_tf.data.multi_image import compose, place
from moe_tf.data.synthetic_mmoe import generate, task_weights
from moe_tf.errors import ConfigError


@pytest.mark.parametrize("p", [1.0, 0.9, 0.5, 0.0, -0.3])
def test_synthetic_task_weights_have_the_asked_cosine(p):
    w1, w2 = task_weights(100, p, 2.0, np.random.default_rng(0))
    assert np.dot(w1, w2) / (np.linalg.norm(w1) * np.linalg.norm(w2)) == pytest.approx(p, abs=1e-12)
    assert np.linalg.norm(w1) == pytest.approx(2.0) and np.linalg.norm(w2) == pytest.approx(2.0)


def test_synthetic_labels_follow_the_formula():
    x, y1, y2, w1, w2 = generate(500, 20, 0.7, 5, 1.0, 0.0, seed=3)
    rng = np.random.default_rng(3)
    task_weights(20, 0.7, 1.0, rng)  # the same draws, in the same order
    alpha, beta = rng.normal(size=5), rng.normal(size=5)
    z = x.astype(np.float64) @ w1
    np.testing.assert_allclose(y1, z + np.sin(alpha * z[:, None] + beta).sum(1), rtol=1e-4, atol=1e-4)
    assert np.dot(w1, w2) / (np.linalg.norm(w1) * np.linalg.norm(w2)) == pytest.approx(0.7)
    assert x.shape == (500, 20) and abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05


def test_label_correlation_falls_with_the_task_correlation():
    corr = {p: np.corrcoef(*generate(4000, 100, p, 10, 1.0, 0.1, seed=1)[1:3])[0, 1] for p in (1.0, 0.9, 0.5, 0.0)}
    assert corr[1.0] > 0.99  # the same function, up to the noise
    assert corr[1.0] > corr[0.9] > corr[0.5] and abs(corr[0.0]) < 0.1


def synthetic_config(**source):
    return validate_config(
        {
            "data": {"sources": {"syn": {"type": "synthetic_mmoe", "size": 1200, "dim": 16, **source}}},
            "tasks": [
                {"name": "a", "dataset": "syn", "label": "y1", "type": "regression"},
                {"name": "b", "dataset": "syn", "label": "y2", "type": "regression"},
            ],
        }
    )


def test_synthetic_source_is_deterministic_by_seed():
    one = build_task_data(synthetic_config(seed=5)).sources["syn"].arrays["train"]
    two = build_task_data(synthetic_config(seed=5)).sources["syn"].arrays["train"]
    other = build_task_data(synthetic_config(seed=6)).sources["syn"].arrays["train"]
    np.testing.assert_array_equal(one[0]["x"], two[0]["x"])
    np.testing.assert_array_equal(one[1]["y2"], two[1]["y2"])
    assert not np.allclose(one[0]["x"][:10], other[0]["x"][:10])
    data = build_task_data(synthetic_config(seed=5))
    assert data.sources["syn"].sizes == {"eval": 100, "test": 100, "train": 1000}
    assert data.features["x"].shape == (16,) and [t.kind for t in data.tasks] == ["regression", "regression"]


def test_compose_puts_each_item_in_its_corner():
    a = np.zeros((2, 4, 4, 1), np.uint8)
    a[:, 1:3, 1:3] = 100
    b = np.full((2, 4, 4, 1), 200, np.uint8)
    images, at = compose(a, b, np.random.default_rng(0), canvas=10, max_shift=2)
    assert images.shape == (2, 10, 10, 1)
    for k in range(2):
        (lr, lc), (rr, rc) = (at["left"][0][k], at["left"][1][k]), (at["right"][0][k], at["right"][1][k])
        assert 0 <= lr <= 2 and 0 <= lc <= 2 and 4 <= rr <= 6 and 4 <= rc <= 6
        np.testing.assert_array_equal(images[k, lr + 1 : lr + 3, lc + 1 : lc + 3], 100)  # the left item
        np.testing.assert_array_equal(images[k, rr : rr + 4, rc : rc + 4], 200)  # the right item
        assert set(np.unique(images[k])) == {0, 100, 200}


def multi_config(**source):
    return validate_config(
        {
            "data": {"sources": {"multi": {"type": "multi_image", "source": {"type": "digits"}, **source}}},
            "tasks": [
                {"name": "left", "dataset": "multi", "label": "left"},
                {"name": "right", "dataset": "multi", "label": "right"},
            ],
        }
    )


def test_composites_contain_both_digits():
    """Every composite is exactly the max of its two digits placed in their corners (found by search), and the
    labels are those digits' labels."""
    from sklearn.datasets import load_digits

    data = build_task_data(multi_config(seed=4))
    source = data.sources["multi"]
    assert source.features["image"].shape == (16, 16, 1) and data.tasks[0].class_names[3] == "3"
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    x, y = source.arrays["test"]
    for k in range(20):
        composite = x["image"][k]
        found = {}
        for side, offsets in (("left", range(0, 5)), ("right", range(4, 9))):
            candidates = [i for i in range(len(images)) if digits.target[i] == y[side][k]]
            found[side] = [
                (i, r, c)
                for i in candidates
                for r in offsets
                for c in offsets
                if np.all(composite[r : r + 8, c : c + 8] >= images[i])
            ]
            assert found[side], (k, side)
        at = lambda i, r, c: place(images[i][None], np.array([r]), np.array([c]), 16)[0]  # noqa: E731
        assert any(
            np.array_equal(composite, np.maximum(at(*a), at(*b)))
            for a in found["left"][:50]
            for b in found["right"][:50]
        ), k
    assert set(source.sizes) == {"train", "eval", "test"} and source.sizes["test"] == len(y["left"])
    assert np.mean(y["left"] == y["right"]) < 0.3  # partners are random, not the same digit


def test_multi_image_is_deterministic_and_validated():
    a = build_task_data(multi_config(seed=1, pairs_per_image=2)).sources["multi"]
    b = build_task_data(multi_config(seed=1, pairs_per_image=2)).sources["multi"]
    np.testing.assert_array_equal(a.arrays["train"][0]["image"], b.arrays["train"][0]["image"])
    assert a.sizes["train"] == 2 * 1258
    one = build_task_data(multi_config(seed=1)).sources["multi"]
    assert one.sizes["train"] == 1258
    for role in ("eval", "test"):  # one composite per image, the same whatever the training pairs
        np.testing.assert_array_equal(a.arrays[role][0]["image"], one.arrays[role][0]["image"])
    with pytest.raises(
        ConfigError,
        match=r"data\.sources\.multi\.source: type: expected a source type .* "
        r"got 'nope'",
    ):
        multi_config(source={"type": "nope"})
    with pytest.raises(ConfigError, match=r"data\.sources\.multi\.source: .*eval_fraction"):
        multi_config(source={"type": "digits", "eval_fraction": 2})
