"""Optimizer keys do what they say: weight decay for every type, the warm-up schedule's config round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.training.optimizer import Warmup, build_optimizer, build_schedule
from tests.conftest import tiny_config


def one_step(optimizer_cfg):
    opt = build_optimizer(tiny_config(training={"optimizer": optimizer_cfg}).training.optimizer, 100, "float32")
    v = keras.Variable(np.ones(4, np.float32))
    opt.build([v])
    opt.apply_gradients([(tf.zeros(4), v)])  # a zero gradient: only weight decay moves the weight
    return opt, float(v.numpy()[0])


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd", "rmsprop"])
def test_weight_decay_does_what_it_says_for_every_optimizer(kind):
    opt, w = one_step({"type": kind, "learning_rate": 0.1, "weight_decay": 0.5})
    assert w == pytest.approx(1.0 - 0.1 * 0.5)  # decoupled: w ← w − lr · wd · w
    opt, w = one_step({"type": kind, "learning_rate": 0.1, "weight_decay": 0.0})
    assert w == pytest.approx(1.0)  # 0 is none (adamw once turned 0 into 0.004)


def test_warmup_schedule_round_trips_through_its_config():
    cfg = tiny_config(training={"optimizer": {"schedule": {"type": "exponential", "warmup_steps": 10,
                                                           "decay_steps": 20}}}).training.optimizer
    schedule = build_schedule(cfg, 100)
    assert isinstance(schedule, Warmup)
    clone = Warmup.from_config(schedule.get_config())
    for step in (0, 5, 10, 30, 90):
        assert float(clone(step)) == pytest.approx(float(schedule(step)))
    assert float(schedule(4)) == pytest.approx(0.01 * 5 / 10)  # the tiny config: learning rate 0.01
    assert float(schedule(30)) == pytest.approx(0.01 * 0.5)  # 20 steps after warm-up: one decay period
