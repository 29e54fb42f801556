"""`training.optimizer.parts`: a part moves by its factor of the optimizer's step, and not at all while frozen."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from moe_tf.config.loader import validate_config
from moe_tf.errors import ConfigError
from moe_tf.testing.configs import tiny_dict
from tests.training.test_trainer import make_trainer, one_step, step_losses


def stems_at(parts, optimizer=None):
    return validate_config(tiny_dict(training={"optimizer": {**(optimizer or {}), "parts": parts}}))


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def test_a_part_moves_by_its_factor_of_the_optimizers_step():
    """One step from the same weights: the stems' change at factor 0.25 is a quarter of their change at factor 1,
    for Adam (whose step does not scale with the gradient) and SGD with momentum; other parts move equally."""
    for optimizer in ({"type": "adam"}, {"type": "sgd", "momentum": 0.9, "weight_decay": 0.01}):
        deltas = {}
        for scale in (1.0, 0.25):
            trainer, data = make_trainer(
                stems_at({"stems": {"learning_rate_scale": scale}}, optimizer), tf.distribute.get_strategy()
            )
            stems, trunk = trainer.model.part_variables("stems"), trainer.model.part_variables("trunk")
            before = snapshot(stems + trunk)
            one_step(trainer, data)
            deltas[scale] = [a - b for a, b in zip(snapshot(stems + trunk), before)]
        n = len(stems)
        for full, quarter in zip(deltas[1.0][:n], deltas[0.25][:n]):
            np.testing.assert_allclose(quarter, 0.25 * full, rtol=1e-4, atol=1e-7)
        for full, quarter in zip(deltas[1.0][n:], deltas[0.25][n:]):
            np.testing.assert_allclose(quarter, full, rtol=1e-5, atol=1e-7)
        assert any(np.abs(d).max() > 0 for d in deltas[1.0][:n])


def test_a_frozen_part_stays_still_for_its_steps_then_moves():
    trainer, data = make_trainer(stems_at({"stems": {"frozen_steps": 3}}), tf.distribute.get_strategy())
    stems, experts = trainer.model.part_variables("stems"), trainer.model.part_variables("experts")
    start, experts_start = snapshot(stems), snapshot(experts)
    step_losses(trainer, data, 2)  # steps 0, 1 and 2 (a two-step call, then one)
    for a, b in zip(start, snapshot(stems)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(experts_start, snapshot(experts)))
    one_step(trainer, data)  # step 3: the first one that moves them
    assert int(trainer.optimizer.iterations.numpy()) == 4
    assert all(not np.array_equal(a, b) for a, b in zip(start, snapshot(stems)))
    assert trainer.part_rates.describe() == (
        f"learning rate per part: stems ×1, still for the first 3 steps ({len(stems)} variables)"
    )


def test_a_part_the_model_does_not_train_is_a_config_error():
    config = validate_config(
        tiny_dict(model={"architecture": "shared_bottom"}, training={"optimizer": {"parts": {"gates": {}}}})
    )
    with pytest.raises(ConfigError, match=r"training.optimizer.parts.gates: this model has no trainable gates"):
        make_trainer(config, tf.distribute.get_strategy())
