"""Weightings own the backward pass: `fixed` (one pass) and PCGrad (per-task gradients reduced once, then projected),
equal under `default` and `mirrored`; losses per labelled example equal a hand computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.training.weightings import WEIGHTINGS
from moe_tf.training.weightings.pcgrad import project_conflicts
from tests.conftest import multi_dict, tiny_config
from tests.training.test_trainer import make_trainer, step_losses


def test_projection_matches_the_paper_on_two_tasks():
    grads = tf.constant([[1.0, 0.0], [-1.0, 1.0]])  # g1 · g2 = -1 < 0: they conflict
    out = project_conflicts(grads, tf.constant([[0, 1], [1, 0]])).numpy()
    np.testing.assert_allclose(out[0], [1, 0] - (-1 / 2) * np.array([-1, 1]))  # g1 - (g1·g2 / |g2|²) g2
    np.testing.assert_allclose(out[1], [-1, 1] - (-1 / 1) * np.array([1, 0]))
    agreeing = tf.constant([[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(project_conflicts(agreeing, tf.constant([[0, 1], [1, 0]])).numpy(), agreeing.numpy())


def _numpy_pcgrad(grads, order):
    out = []
    for i, g in enumerate(grads):
        g = g.copy()
        for j in order[i]:
            if j != i and g @ grads[j] < 0:
                g -= (g @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
        out.append(g)
    return np.sum(out, axis=0)


def test_pcgrad_step_applies_the_projected_sum_of_task_gradients():
    config = tiny_config(training={"weighting": {"type": "pcgrad"}, "optimizer": {"type": "sgd", "momentum": 0.0,
                                                                                   "learning_rate": 0.1}})
    trainer, data = make_trainer(config, tf.distribute.get_strategy())
    inputs, labels, weights = next(iter(data.train_dataset(64, 0, 1)))
    groups = trainer.groups
    with tf.GradientTape(persistent=True) as tape:
        from moe_tf.training.objectives import batch_stats

        _, losses = batch_stats(data.tasks, trainer.model(inputs, training=True), labels, weights)
        scaled = {t: trainer.weighting.task_weights[t] * loss for t, loss in losses.items()}
    flat = np.stack([np.concatenate([tape.gradient(scaled[t], v).numpy().ravel() for v in groups.shared])
                     for t in ("digit", "high")])
    seed = tf.constant([config.experiment.seed, 0], tf.int64)
    order = tf.argsort(tf.random.stateless_uniform([2, 2], seed), axis=1).numpy()
    expected = _numpy_pcgrad(flat, order)
    conflicts = flat[0] @ flat[1] < 0
    before = np.concatenate([v.numpy().ravel() for v in groups.shared])
    trainer.train_step(iter(trainer.strategy.experimental_distribute_dataset(data.train_dataset(64, 0, 1))))
    after = np.concatenate([v.numpy().ravel() for v in groups.shared])
    np.testing.assert_allclose((before - after) / 0.1, expected, rtol=2e-3, atol=1e-6)
    if conflicts:  # then the update differs from the plain sum of the task gradients
        assert not np.allclose(expected, flat.sum(0), rtol=1e-3)


@pytest.mark.parametrize("weighting", WEIGHTINGS.keys())
def test_every_weighting_matches_under_mirrored(weighting, mirrored):
    config = tiny_config(training={"weighting": {"type": weighting}})
    default, data = make_trainer(config, tf.distribute.get_strategy())
    replicated, _ = make_trainer(config, mirrored, default.model.get_weights())
    a, b = step_losses(default, data, 6), step_losses(replicated, data, 6)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert a[-1] < a[0]
    for wa, wb in zip(default.model.get_weights(), replicated.model.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-5)


def test_pcgrad_trains_differently_from_fixed():
    fixed, data = make_trainer(tiny_config(), tf.distribute.get_strategy())
    pcgrad, _ = make_trainer(tiny_config(training={"weighting": {"type": "pcgrad"}}), tf.distribute.get_strategy(),
                             fixed.model.get_weights())
    step_losses(fixed, data, 6)
    step_losses(pcgrad, data, 6)
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(fixed.model.get_weights(), pcgrad.model.get_weights()))


def test_masked_losses_equal_a_hand_computation(tmp_path, mirrored):
    # Half of `kind`'s labels are missing: its loss is the mean over the labelled half of the batch, and the step's
    # loss is Σ α_t L_t over the tasks with labels in the batch.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    kind = (x[:, 0] > 0).astype(np.int64)
    kind[::2] = -1
    np.savez(tmp_path / "half.npz", x=x, kind=kind, score=x[:, 1].copy())
    raw = multi_dict(tmp_path / "half.npz", training={"batch_size": 32, "weighting": {"type": "fixed"}})
    raw["data"]["sources"].pop("digits")
    raw["tasks"] = raw["tasks"][1:]
    for strategy in (tf.distribute.get_strategy(), mirrored):
        parts = build_components(validate_config(raw), strategy)
        trainer, data = parts.trainer(), parts.data
        inputs, labels, _ = next(iter(data.train_dataset(32, 0, 1)))
        out = parts.model(inputs, training=False)["outputs"]
        y, logit = labels["kind"].numpy(), out["kind"].numpy()[:, 0]
        labelled = y >= 0
        assert labelled.sum() < 32
        ce = np.log1p(np.exp(-logit)) + (1 - y) * logit  # sigmoid cross-entropy
        hand_kind = ce[labelled].mean()
        hand_score = np.mean((out["score"].numpy()[:, 0] - labels["score"].numpy()) ** 2)
        trainer.train_step(iter(strategy.experimental_distribute_dataset(data.train_dataset(32, 0, 1))))
        sums = trainer.read_and_reset_sums()
        assert float(sums["loss"]) == pytest.approx(1.0 * hand_kind + 0.5 * hand_score, rel=1e-5)
        assert float(sums["stats"]["tasks"]["kind"]["count"]) == labelled.sum()


@pytest.mark.parametrize("weighting", [w for w in WEIGHTINGS.keys() if w != "fixed"])
def test_mixed_float16_loss_scaling_under_mirrored_matches_default(weighting, mirrored):
    # (`fixed`, one scaled objective, is covered under mixed precision by the trainer's tests and under mirrored by
    # test_every_weighting_matches_under_mirrored; the per-task pieces here are the case loss scaling can break.)
    # The loss scale applies to whatever the weighting differentiates; the LossScaleOptimizer unscales the
    # combined gradients, which are already summed across replicas (so every replica agrees on their finiteness).
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        config = tiny_config(training={"mixed_precision": "mixed_float16", "weighting": {"type": weighting}})
        default, data = make_trainer(config, tf.distribute.get_strategy())
        replicated, _ = make_trainer(config, mirrored, default.model.get_weights())
        a, b = step_losses(default, data, 4), step_losses(replicated, data, 4)
        assert np.all(np.isfinite(a)) and a[-1] < a[0]
        np.testing.assert_allclose(a, b, rtol=5e-3)
        assert float(default.optimizer.dynamic_scale.numpy()) == float(replicated.optimizer.dynamic_scale.numpy())
    finally:
        keras.mixed_precision.set_global_policy("float32")
