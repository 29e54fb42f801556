"""The shipped TFDS configs (MNIST, CIFAR-10) train end to end on mocked TFDS data (nothing downloads here)."""

import pytest

from moe_tf.config.loader import load_config
from moe_tf.run import train
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["mnist_mmoe", "cifar10_shared_bottom"])
def test_tfds_config_trains_on_mock_data(name, tmp_path):
    import tensorflow_datasets as tfds

    overrides = ["training.steps=2", "training.batch_size=8", "logging.progress=none",
                 "model.stem.filters=[4]", "model.trunk.units=[8]", "model.experts.units=[8]",
                 "model.tower.units=[4]", "data.shuffle_buffer=16"]
    config = load_config(f"{REPO}/configs/{name}.yaml", overrides)
    with tfds.testing.mock_data(num_examples=40):
        metrics = train(config, str(tmp_path / name))
    assert metrics["step"] == 2
    assert set(metrics["tasks"]) == {t.name for t in config.tasks}
    assert (tmp_path / name / "export" / "saved_model.pb").exists()
