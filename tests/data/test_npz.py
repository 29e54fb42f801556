"""The `npz` source: users' own arrays, their specs and splits, and a clear error for every bad file."""

import numpy as np
import pytest

from moe_tf.config.loader import validate_config
from moe_tf.data.base import FeatureSpec
from moe_tf.data.npz import NpzSource
from moe_tf.errors import ConfigError, DataError
from tests.conftest import multi_dict


def load(path, **kw):
    cfg = NpzSource.Config(path=str(path), **{"features": ["x"], "labels": ["y"], **kw})
    return NpzSource(cfg, seed=3, name="mine").load()


def test_numeric_and_image_features_with_class_and_value_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x=rng.integers(0, 9, (50, 2, 3)),
        img=rng.integers(0, 255, (50, 4, 4)),
        y=np.arange(50) % 3,
        t=rng.normal(size=50),
    )
    data = load(
        tmp_path / "d.npz",
        features=["x", "img"],
        labels=["y", "t"],
        modality={"img": "image"},
        eval_fraction=0.2,
        test_fraction=0.2,
    )
    assert data.features == {
        "x": FeatureSpec("float32", (2, 3), "numeric"),
        "img": FeatureSpec("uint8", (4, 4, 1), "image"),
    }
    assert data.sizes == {"eval": 10, "test": 10, "train": 30}
    assert (data.labels["y"].num_classes, data.labels["y"].kind, data.labels["t"].kind) == (3, "class", "value")
    x, y = data.arrays["train"]
    assert x["x"].dtype == np.float32 and x["img"].dtype == np.uint8 and y["t"].dtype == np.float32
    seen = np.concatenate([data.arrays[r][1]["y"] for r in ("train", "eval", "test")])
    assert sorted(seen.tolist()) == sorted((np.arange(50) % 3).tolist())  # every example in exactly one split


@pytest.mark.parametrize(
    "arrays, kw, message",
    [
        ({"x": np.zeros((4, 2))}, {}, r"no array 'y' \(data.sources.mine.labels\[0\]\); the file has: x"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3, int)}, {}, "arrays have different lengths: x 4, y 3"),
        (
            {"x": np.array([[0, 1], [np.nan, 2], [3, np.inf], [1, 1]]), "y": np.zeros(4, int)},
            {},
            r"feature 'x' has 2 NaN or infinite values in 2 examples \(first: example 1\)",
        ),
        (
            {"x": np.array(["a", "b"]), "y": np.zeros(2, int)},
            {},
            "feature 'x' has dtype <U1; expected integers or floats",
        ),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 1, -2, 1])}, {}, "label 'y' has value -2"),
        ({"x": np.zeros((4, 2)), "y": np.zeros((4, 2), int)}, {}, r"label 'y' must have shape \[N\]"),
        (
            {"x": np.full((4, 3, 3), 300), "y": np.zeros(4, int)},
            {"modality": {"x": "image"}},
            "image feature 'x' must be integers 0-255",
        ),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, arrays, kw, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message) as e:
        load(tmp_path / "d.npz", **kw)
    assert str(tmp_path / "d.npz") in str(e.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match=r"npz file not found: .*nope.npz \(data.sources.mine.path\)"):
        load(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read .*bad.npz as .npz"):
        load(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2, int))
    with pytest.raises(DataError, match="cannot read .*obj.npz as .npz: .*allow_pickle"):
        load(tmp_path / "obj.npz")  # pickled objects are never loaded


def test_config_checks_names():
    with pytest.raises(ConfigError, match=r"data.sources.tab.features: feature '2x' is not an identifier"):
        validate_config(multi_dict("t.npz", data={"sources": {"tab": {"features": ["2x"]}}}))
    with pytest.raises(ConfigError, match=r"tasks\[2\].label_map: a regression task reads its targets as they are"):
        raw = multi_dict("t.npz")
        raw["tasks"][2]["label_map"] = [0, 1]
        validate_config(raw)


def test_float_labels_need_a_regression_task(tabular_npz):
    from moe_tf.data import build_task_data

    raw = multi_dict(tabular_npz)
    raw["tasks"][2]["type"] = "classification"
    del raw["tasks"][2]["metrics"]
    with pytest.raises(ConfigError, match=r"tasks\[2\].type: label 'score' of 'tab' holds float targets"):
        build_task_data(validate_config(raw))


def test_sample_weights_from_a_key(tmp_path):
    i = np.arange(20)
    np.savez(tmp_path / "w.npz", x=np.stack([i, -i], 1).astype(float), y=(i * 7) % 3, w=1.5 * i)
    data = load(tmp_path / "w.npz", weights={"y": "w"}, eval_fraction=0.0, test_fraction=0.25)
    assert data.sample_weights == {"y": "y__weight"} and data.labels["y__weight"].kind == "weight"
    x, y = data.arrays["train"]
    assert y["y__weight"].dtype == np.float32 and sorted(y["y__weight"].tolist()) != [1.5 * k for k in range(15)]
    # each example keeps its own label and weight: x holds the example's index
    held = np.concatenate([data.arrays[role][0]["x"][:, 0] for role in ("train", "test")]).astype(int)
    assert len(x["x"]) == 15 and sorted(held.tolist()) == list(range(20))
    for role in ("train", "test"):
        xs, ys = data.arrays[role]
        index = xs["x"][:, 0].astype(int)
        np.testing.assert_array_equal(xs["x"][:, 1], -index)
        np.testing.assert_array_equal(ys["y"], (index * 7) % 3)
        np.testing.assert_array_equal(ys["y__weight"], 1.5 * index)
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 2)), y=np.zeros(3, int), w=np.array([1.0, -1.0, 2.0]))
    with pytest.raises(
        DataError,
        match=r"bad\.npz: sample weights 'w' has -1\.0 at example 1; weights are finite "
        "and >= 0",
    ):
        load(tmp_path / "bad.npz", weights={"y": "w"})
    np.savez(tmp_path / "short.npz", x=np.zeros((3, 2)), y=np.zeros(3, int), w=np.ones(2))
    with pytest.raises(DataError, match="arrays have different lengths: x 3, y 3, w 2"):
        load(tmp_path / "short.npz", weights={"y": "w"})
    with pytest.raises(DataError, match=r"no array 'v' \(data\.sources\.mine\.weights\.y\)"):
        load(tmp_path / "short.npz", weights={"y": "v"})
    with pytest.raises(ValueError, match=r"weights\.z: not one of the labels \['y'\]"):
        load(tmp_path / "w.npz", weights={"z": "w"})
