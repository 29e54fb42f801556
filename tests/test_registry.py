import pytest

from moe_tf.errors import ConfigError
from moe_tf.registry import Registry


def test_duplicate_key_raises():
    reg = Registry("gate")
    reg.register("softmax")(object)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("softmax")(object)


def test_unknown_key_lists_known_and_suggests():
    reg = Registry("gate")
    reg.register("softmax")(int)
    reg.register("noisy_top_k")(float)
    with pytest.raises(ConfigError) as e:
        reg.get("softmx", "model.gate.type")
    assert str(e.value) == (
        "model.gate.type: unknown gate 'softmx' (did you mean 'softmax'?); known: noisy_top_k, softmax"
    )
    assert reg.get("softmax") is int
