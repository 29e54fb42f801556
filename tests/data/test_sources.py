"""Every data source, with real local data where this machine has it and TFDS mocked (nothing downloads)."""

import os

import numpy as np
import pytest

from moe_tf.data.base import FeatureSpec
from moe_tf.data.digits import DigitsSource
from moe_tf.data.idx import IdxSource, read_idx
from moe_tf.data.tfds import TfdsSource
from moe_tf.errors import DataError
from moe_tf.testing.files import write_idx
from tests.conftest import FASHION_DIR


def test_digits_splits_are_disjoint_and_complete():
    data = DigitsSource(DigitsSource.Config(eval_fraction=0.1, test_fraction=0.2), seed=1).load()
    assert data.sizes == {"eval": 180, "test": 359, "train": 1258}
    assert data.features == {"image": FeatureSpec("uint8", (8, 8, 1), "image")}
    images = {role: x["image"] for role, (x, _) in data.arrays.items()}
    assert images["train"].dtype == np.uint8 and images["train"].max() == 255
    flat = {role: {x.tobytes() for x in imgs} for role, imgs in images.items()}
    assert not flat["train"] & flat["test"]  # no test image leaks into training (duplicates aside)
    assert data.labels["label"].num_classes == 10
    x, labels = next(iter(data.splits["train"]))
    assert x["image"].shape == (8, 8, 1) and int(labels["label"]) in range(10)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_reads_local_files(tmp_path, suffix):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 10)):
        write_idx(str(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}"), rng.integers(0, 255, (n, 6, 5), np.uint8))
        write_idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}"), (np.arange(n) % 3).astype(np.uint8))
    data = IdxSource(IdxSource.Config(path=str(tmp_path), eval_fraction=0.2), seed=0).load()
    assert data.sizes == {"eval": 10, "train": 40, "test": 10}
    assert data.features["image"].shape == (6, 5, 1)
    assert data.labels["label"].class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(data.arrays["test"][1]["label"], np.arange(10) % 3)


def test_idx_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="IDX directory not found: /nonexistent"):
        IdxSource(IdxSource.Config(path="/nonexistent"), seed=0).load()
    with pytest.raises(DataError, match=f"IDX file not found: {tmp_path}/train-images-idx3-ubyte"):
        IdxSource(IdxSource.Config(path=str(tmp_path)), seed=0).load()
    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(DataError, match="truncated IDX file"):
        read_idx(str(bad))
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(str(bad))


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="apt-get install dataset-fashion-mnist")
def test_idx_reads_debian_fashion_mnist():
    data = IdxSource(IdxSource.Config(path=FASHION_DIR, eval_fraction=0.1), seed=0).load()
    assert data.sizes == {"eval": 6000, "train": 54000, "test": 10000}
    assert data.features["image"] == FeatureSpec("uint8", (28, 28, 1), "image")
    assert data.labels["label"].class_names[9] == "Ankle boot"
    counts = np.bincount(data.arrays["test"][1]["label"])
    assert counts.tolist() == [1000] * 10


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_tfds_with_mock_data(name, shape, tfds_online):
    import tensorflow_datasets as tfds

    cfg = TfdsSource.Config(name=name, train_split="train", eval_split="test[:50%]", test_split="test[50%:]")
    with tfds.testing.mock_data(num_examples=12):
        data = TfdsSource(cfg, seed=0).load()
        x, labels = next(iter(data.splits["train"]))
    assert data.features["image"].shape == shape
    assert x["image"].shape == shape and x["image"].dtype.name == "uint8"
    assert data.labels["label"].num_classes == 10
    assert 0 <= int(labels["label"]) < 10


def test_tfds_failure_is_a_clear_error(tmp_path):
    cfg = TfdsSource.Config(name="mnist", data_dir=str(tmp_path), download=False)
    with pytest.raises(DataError, match="cannot load TFDS data set 'mnist'.*Offline"):
        TfdsSource(cfg, seed=0).load()
