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
    cfg = tiny_config(
        training={"optimizer": {"schedule": {"type": "exponential", "warmup_steps": 10, "decay_steps": 20}}}
    ).training.optimizer
    schedule = build_schedule(cfg, 100)
    assert isinstance(schedule, Warmup)
    clone = Warmup.from_config(schedule.get_config())
    for step in (0, 5, 10, 30, 90):
        assert float(clone(step)) == pytest.approx(float(schedule(step)))
    assert float(schedule(4)) == pytest.approx(0.01 * 5 / 10)  # the tiny config: learning rate 0.01
    assert float(schedule(30)) == pytest.approx(0.01 * 0.5)  # 20 steps after warm-up: one decay period


def adam_reference(w, grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, decay=0.0):
    """Adam as Keras documents it (decoupled weight decay first), in float64."""
    w, m, v = np.array(w, np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        w = w - lr * decay * w
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        w = w - m * lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t) / (np.sqrt(v) + epsilon)
    return w


@pytest.mark.parametrize("kind,decay", [("adam", 0.0), ("adamw", 0.1)])
def test_adam_runs_the_fused_kernel_and_follows_the_adam_formula(kind, decay):
    opt = build_optimizer(
        tiny_config(
            training={"optimizer": {"type": kind, "learning_rate": 0.05, "weight_decay": decay}}
        ).training.optimizer,
        100,
        "float32",
    )
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 3)).astype(np.float32)
    grads = rng.normal(size=(5, 6, 3)).astype(np.float32)
    grads[2, 1:] = 0.0  # step 3's gradient arrives sparse (IndexedSlices of row 0, as an embedding's does)
    v = keras.Variable(w0)
    opt.build([v])

    @tf.function
    def step(g, sparse):
        if sparse:
            g = tf.IndexedSlices(g[:1], tf.constant([0]), tf.constant([6, 3]))
        opt.apply_gradients([(g, v)])

    for i, g in enumerate(grads):
        step(tf.constant(g), i == 2)
    np.testing.assert_allclose(
        v.numpy(), adam_reference(w0, grads.astype(np.float64), 0.05, decay=decay), rtol=1e-5, atol=1e-6
    )
    ops = {op.type for op in step.get_concrete_function(tf.constant(grads[0]), False).graph.get_operations()}
    assert "ResourceApplyAdam" in ops
    if not decay:  # (AdamW's decay is Keras' own assign_sub)
        assert "AssignSubVariableOp" not in ops  # Keras' element-wise update is not run as well


def test_fused_adam_under_a_mirrored_strategy_updates_every_replica_alike(mirrored):
    """The kernel runs on each replica's own copies of the variable and its moments (a handle taken outside the
    strategy's update call would update one copy, or fail)."""
    cfg = tiny_config(training={"optimizer": {"type": "adam", "learning_rate": 0.05}}).training.optimizer
    rng = np.random.default_rng(1)
    w0, grads = rng.normal(size=(4,)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    with mirrored.scope():
        opt = build_optimizer(cfg, 100, "float32")
        v = keras.Variable(w0)
        opt.build([v])

    @tf.function
    def step(g):
        mirrored.run(lambda: opt.apply_gradients([(g, v)]))

    for g in grads:
        step(tf.constant(g))
    copies = [c.numpy() for c in v.value.values]
    assert len(copies) == 2
    np.testing.assert_array_equal(copies[0], copies[1])
    np.testing.assert_allclose(copies[0], adam_reference(w0, grads.astype(np.float64), 0.05), rtol=1e-5, atol=1e-6)
    moments = [c.numpy() for c in opt._momentums[0].value.values]
    np.testing.assert_array_equal(moments[0], moments[1])
    assert np.abs(moments[0]).min() > 0
