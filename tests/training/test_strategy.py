"""Strategy construction: what can run here runs; what cannot (TPU, bad TF_CONFIG) fails with a clear error."""

import pytest
import tensorflow as tf

from moe_tf.errors import MoeTfError
from moe_tf.training.strategy import build_strategy, is_chief
from tests.conftest import tiny_config


def training(**kw):
    return tiny_config(training=kw).training


def test_default_one_device_and_mirrored():
    assert build_strategy(training()).num_replicas_in_sync == 1
    one = build_strategy(training(strategy="one_device", devices=["/cpu:1"]))
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    mirrored = build_strategy(training(strategy="mirrored", devices=["/cpu:0", "/cpu:1"], logical_cpus=2))
    assert mirrored.num_replicas_in_sync == 2
    assert is_chief(mirrored)


def test_logical_cpus_cannot_change_after_start():
    with pytest.raises(MoeTfError, match="training.logical_cpus=3: TensorFlow already started with 2 CPU"):
        build_strategy(training(logical_cpus=3))


@pytest.mark.parametrize(
    "value,message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", "TF_CONFIG is not valid"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
            "task.index 3 is not a valid index",
        ),
    ],
)
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(MoeTfError, match=message):
        build_strategy(training(strategy="multi_worker"))


def test_tpu_without_a_tpu_is_a_clear_error():
    with pytest.raises(MoeTfError, match="training.strategy=tpu: no TPU could be reached"):
        build_strategy(training(strategy="tpu"))
