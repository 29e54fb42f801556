"""Weightings own the backward pass. The formulas on hand-made inputs (PCGrad, CAGrad, MGDA's min-norm, GradNorm,
DWA, FAMO, uncertainty on a toy regression); every method equal under `default` and `mirrored`; mixed_float16 loss
scaling; missing labels; every state variable checkpointed; configs a method cannot train are refused."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.errors import ConfigError
from moe_tf.training.weightings import WEIGHTINGS
from moe_tf.training.weightings.base import StepContext
from moe_tf.training.weightings.cagrad import cagrad_direction
from moe_tf.training.weightings.mgda import min_norm_weights
from moe_tf.training.weightings.pcgrad import project_conflicts
from tests.conftest import multi_dict, tiny_config, tiny_dict
from tests.training.test_trainer import make_trainer

TASKS = [SimpleNamespace(name="a", kind="classification"), SimpleNamespace(name="b", kind="regression")]


def standalone(kind, **params):
    """A weighting over tasks a (classification) and b (regression), α = 1, without a model."""
    cls = WEIGHTINGS.get(kind)
    return cls({"a": 1.0, "b": 1.0}, cls.Config(type=kind, **params), 0, TASKS, 4)


def held_variables(obj) -> list:
    """Every keras.Variable an object of moe_tf holds, directly or in its moe_tf parts (e.g. its Adam)."""
    out = []
    for value in vars(obj).values():
        if isinstance(value, keras.Variable):
            out.append(value)
        elif type(value).__module__.startswith("moe_tf"):
            out += held_variables(value)
    return out


def context(step=0):
    return StepContext(step=tf.constant(step, tf.int64), loss_scale=1.0, all_reduce=lambda x: x)


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
    # seed 4: the tasks' gradients on the first batch conflict (cosine −0.19; with the default seed 7 they agree)
    config = tiny_config(
        experiment={"seed": 4},
        training={"weighting": {"type": "pcgrad"}, "optimizer": {"type": "sgd", "momentum": 0.0, "learning_rate": 0.1}},
    )
    trainer, data = make_trainer(config, tf.distribute.get_strategy())
    inputs, labels, weights = next(iter(data.train_dataset(64, 0, 1)))
    groups = trainer.groups
    with tf.GradientTape(persistent=True) as tape:
        from moe_tf.training.objectives import batch_stats

        _, losses = batch_stats(data.tasks, trainer.model(inputs, training=True), labels, weights)
        scaled = {t: trainer.weighting.task_weights[t] * loss for t, loss in losses.items()}
    flat = np.stack(
        [
            np.concatenate([tape.gradient(scaled[t], v).numpy().ravel() for v in groups.shared])
            for t in ("digit", "high")
        ]
    )
    seed = tf.constant([config.experiment.seed, 0], tf.int64)
    order = tf.argsort(tf.random.stateless_uniform([2, 2], seed), axis=1).numpy()
    expected = _numpy_pcgrad(flat, order)
    conflicts = flat[0] @ flat[1] < 0
    before = np.concatenate([v.numpy().ravel() for v in groups.shared])
    one_batch = iter(trainer.strategy.experimental_distribute_dataset(data.train_dataset(64, 0, 1)))
    trainer.train_chunk(one_batch, tf.constant(1))
    after = np.concatenate([v.numpy().ravel() for v in groups.shared])
    np.testing.assert_allclose((before - after) / 0.1, expected, rtol=2e-3, atol=1e-6)
    assert conflicts, flat[0] @ flat[1]  # (seeded) the tasks' gradients conflict on this batch: a projection ran,
    assert not np.allclose(expected, flat.sum(0), rtol=1e-3)  # so the update is not the plain sum


METHODS = [{"type": k} for k in WEIGHTINGS.keys()] + [{"type": "mgda", "upper_bound": True}]


def single_step_losses(trainer, data, steps):
    """Losses of `steps` single steps (the multi-step graph is checked across strategies in test_trainer)."""
    dataset = data.train_dataset(trainer.global_batch_size, 0, steps)
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    out = []
    for _ in range(steps):
        weights = trainer.train_chunk(iterator, tf.constant(1)).numpy()
        sums = trainer.read_and_reset_sums()
        task_loss = sum(float(s["loss_sum"]) / max(float(s["count"]), 1) for s in sums["stats"]["tasks"].values())
        out.append((float(sums["loss"]), task_loss, *weights))
    return np.array(out)  # [steps, (weighted loss, Σ_t L_t, w_1 … w_T)]


@pytest.mark.parametrize("weighting", METHODS, ids=lambda w: w["type"] + ("_ub" if w.get("upper_bound") else ""))
def test_every_weighting_matches_under_mirrored(weighting, mirrored):
    # `high` has labels on 6 of the 10 digits only: missing labels in every batch
    raw = tiny_dict(training={"weighting": weighting, "optimizer": {"learning_rate": 0.02}})
    raw["tasks"][1]["label_map"] = {0: 0, 1: 0, 2: 0, 5: 1, 6: 1, 7: 1}
    config = validate_config(raw)
    default, data = make_trainer(config, tf.distribute.get_strategy())
    initial = [w.copy() for w in default.model.get_weights()]
    replicated, _ = make_trainer(config, mirrored, initial)
    a, b = single_step_losses(default, data, 5), single_step_losses(replicated, data, 5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # losses and task weights, step by step
    # 3e-5 after 5 steps at lr 0.02: oneDNN's kernels sum a 64-row batch and two 32-row halves in different orders
    # (a real difference in what is summed moves the variables by ~lr = 2e-2).
    for wa, wb in zip(default.model.get_weights(), replicated.model.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=3e-5)
    for name, var in default.weighting.state().items():
        np.testing.assert_allclose(var.numpy(), replicated.weighting.state()[name].numpy(), rtol=1e-4, atol=1e-6)
    moved = [np.abs(w0 - w1).max() for w0, w1 in zip(initial, default.model.get_weights())]
    assert min(moved) > 0 or weighting["type"] == "mgda"  # every variable trained (MGDA may zero a task's share)
    assert np.mean([m > 0 for m in moved]) > 0.9


def test_pcgrad_trains_differently_from_fixed():
    fixed, data = make_trainer(tiny_config(), tf.distribute.get_strategy())
    pcgrad, _ = make_trainer(
        tiny_config(training={"weighting": {"type": "pcgrad"}}), tf.distribute.get_strategy(), fixed.model.get_weights()
    )
    single_step_losses(fixed, data, 9)  # (the multi-step graph is covered by test_trainer)
    single_step_losses(pcgrad, data, 9)
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
        one_batch = iter(strategy.experimental_distribute_dataset(data.train_dataset(32, 0, 1)))
        trainer.train_chunk(one_batch, tf.constant(1))
        sums = trainer.read_and_reset_sums()
        assert float(sums["loss"]) == pytest.approx(1.0 * hand_kind + 0.5 * hand_score, rel=1e-5)
        assert float(sums["stats"]["tasks"]["kind"]["count"]) == labelled.sum()


@pytest.mark.parametrize(
    "weighting",
    [{"type": "pcgrad"}, {"type": "famo"}, {"type": "gradnorm"}, {"type": "mgda", "upper_bound": True}],
    ids=["pcgrad", "famo", "gradnorm", "mgda_ub"],
)
def test_mixed_float16_loss_scaling_under_mirrored_matches_default(weighting, mirrored):
    # (`fixed`, one scaled objective, is covered under mixed precision by the trainer's tests.) The loss scale
    # applies to whatever the weighting differentiates; gradient pieces are unscaled before surgery and state
    # updates; the LossScaleOptimizer unscales the combined gradients, which are already summed across replicas
    # (so every replica agrees on their finiteness).
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        config = tiny_config(training={"mixed_precision": "mixed_float16", "weighting": weighting})
        default, data = make_trainer(config, tf.distribute.get_strategy())
        replicated, _ = make_trainer(config, mirrored, default.model.get_weights())
        a, b = single_step_losses(default, data, 4), single_step_losses(replicated, data, 4)
        assert np.all(np.isfinite(a))
        # MGDA-UB's weights are a ratio of float16 gradients' dot products, which amplifies the float16 rounding
        # differences of one 64-row batch vs two 32-row halves (measured: 2.4 % after 3 steps with oneDNN's
        # kernels); an unscaling or reduction mistake is off by the loss scale (2^15) or a factor of 2.
        rtol = 5e-2 if weighting.get("upper_bound") else 5e-3
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-4)
        assert float(default.optimizer.dynamic_scale.numpy()) == float(replicated.optimizer.dynamic_scale.numpy())
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ---- formulas on hand-made inputs ---------------------------------------------------------------------------


def test_mgda_min_norm_on_known_vectors():
    def solve(vectors):
        g = np.array(vectors, np.float32)
        return min_norm_weights(tf.constant(g @ g.T)).numpy()

    np.testing.assert_allclose(solve([[1, 0], [0, 1]]), [0.5, 0.5], atol=1e-5)
    np.testing.assert_allclose(solve([[1, 1], [1, -1]]), [0.5, 0.5], atol=1e-5)  # min-norm point (1, 0)
    np.testing.assert_allclose(solve([[1, 0], [2, 0]]), [1.0, 0.0], atol=1e-5)  # the shorter vector itself
    # three vectors: the min-norm point of the triangle (1,0),(0,1),(-1,-1)... contains the origin: norm 0
    lam = solve([[1, 0], [0, 1], [-1, -1]])
    np.testing.assert_allclose(lam, [1 / 3, 1 / 3, 1 / 3], atol=1e-4)
    # against a brute-force search over the simplex
    g = np.array([[3.0, 1.0, 0.0], [-1.0, 2.0, 0.5], [0.5, -2.0, 1.0]], np.float32)
    lam = min_norm_weights(tf.constant(g @ g.T)).numpy()
    grid = [(i / 200, j / 200) for i in range(201) for j in range(201 - i)]
    best = min(np.linalg.norm(a * g[0] + b * g[1] + (1 - a - b) * g[2]) for a, b in grid)
    assert np.linalg.norm(lam @ g) <= best + 1e-3 and lam.min() >= 0 and lam.sum() == pytest.approx(1, abs=1e-5)


def test_cagrad_on_conflicting_2d_gradients_matches_its_formula():
    g = np.array([[1.0, 0.0], [-0.5, 1.0]], np.float32)  # g1 · g2 < 0
    c = 0.5
    d, _ = cagrad_direction(tf.constant(g), c, iterations=200)
    g0 = g.mean(0)
    ws = np.linspace(0, 1, 100001)
    gw = ws[:, None] * g[0] + (1 - ws[:, None]) * g[1]
    objective = gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw, axis=1)
    best = gw[np.argmin(objective)]
    expected = (g0 + c * np.linalg.norm(g0) / np.linalg.norm(best) * best) / (1 + c * c)
    np.testing.assert_allclose(d.numpy(), expected, rtol=2e-3, atol=2e-4)
    # CAGrad's guarantee: both tasks still improve (d · g_t > 0) although their gradients conflict
    assert (g @ d.numpy()).min() > 0
    # c = 0 is gradient descent on the average loss
    np.testing.assert_allclose(cagrad_direction(tf.constant(g), 0.0)[0].numpy(), g0, rtol=1e-5)


def test_gradnorm_weights_sum_to_the_task_count_and_favour_the_harder_task():
    w = standalone("gradnorm", alpha=1.5, learning_rate=0.05)
    present = tf.ones(2)
    w.update(tf.constant([1.0, 1.0]), tf.constant([1.0, 1.0]), present, tf.constant(True))  # L(0)
    for _ in range(20):  # task a's loss falls slowly, b's fast: a is the harder task
        w.update(tf.constant([1.0, 1.0]), tf.constant([0.9, 0.3]), present, tf.constant(True))
    weights = w.w.numpy()
    assert weights.sum() == pytest.approx(2.0, abs=1e-5)
    assert weights[0] > 1.2 and weights[1] < 0.8
    # one step by hand: rates (0.9, 0.3) → relative (1.5, 0.5), targets Ḡ·r^1.5 = (1.84, 0.35) against G = (1, 1):
    # ∂/∂w = sign(G − target)·|∇| = (−1, +1); Adam's second step (the first, at L(0), had a zero gradient) moves
    # each weight by lr · (0.1 / (1 − 0.9²)) / sqrt(0.001 / (1 − 0.999²)) against the sign; the sum stays 2
    first = standalone("gradnorm", alpha=1.5, learning_rate=0.05)
    first.update(tf.constant([1.0, 1.0]), tf.constant([1.0, 1.0]), present, tf.constant(True))  # L(0)
    np.testing.assert_allclose(first.w.numpy(), [1.0, 1.0], atol=1e-6)  # rates 1: G is its target
    first.update(tf.constant([1.0, 1.0]), tf.constant([0.9, 0.3]), present, tf.constant(True))
    move = 0.05 * (0.1 / (1 - 0.9**2)) / np.sqrt(0.001 / (1 - 0.999**2))
    np.testing.assert_allclose(first.w.numpy(), [1 + move, 1 - move], atol=1e-5)
    # equal training rates and gradient norms: the weights stay put
    even = standalone("gradnorm")
    for _ in range(5):
        even.update(tf.constant([1.0, 1.0]), tf.constant([0.5, 0.5]), present, tf.constant(True))
    np.testing.assert_allclose(even.w.numpy(), [1.0, 1.0], atol=1e-6)
    # a task without labels is left out of the update
    absent = standalone("gradnorm")
    absent.update(tf.constant([1.0, 0.0]), tf.constant([1.0, 0.0]), tf.constant([1.0, 0.0]), tf.constant(True))
    assert absent.initial.numpy()[1] == 0.0


def test_rlw_draws_fresh_weights_each_step_distributed_as_t_times_a_softmax_of_normals():
    """RLW's weights against a numpy Monte Carlo of T · softmax(z), z ~ N(0, I): over 2000 steps the same mean,
    spread and quantiles; each step's objective weighs the losses with that step's draw; a step draws the same
    weights every time (replicas, resume), another seed another sequence; outside training the weights are α."""
    w = standalone("rlw")
    draws = np.stack([w.weight_vector(tf.constant(s, tf.int64)).numpy() for s in range(2000)])  # [steps, 2]
    z = np.random.default_rng(0).normal(size=(200_000, 2))
    reference = 2 * np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(draws.sum(1), 2.0, rtol=1e-6)
    assert draws[:, 0].mean() == pytest.approx(1.0, abs=0.04)  # standard error 0.013
    assert draws[:, 0].std() == pytest.approx(reference[:, 0].std(), rel=0.06)  # 0.52; standard error 1.6%
    np.testing.assert_allclose(
        np.quantile(draws[:, 0], [0.1, 0.5, 0.9]), np.quantile(reference[:, 0], [0.1, 0.5, 0.9]), atol=0.05
    )
    np.testing.assert_array_equal(w.weight_vector(tf.constant(17, tf.int64)).numpy(), draws[17])
    other = WEIGHTINGS.get("rlw")({"a": 1.0, "b": 1.0}, WEIGHTINGS.get("rlw").Config(type="rlw"), 1, TASKS, 4)
    assert not np.allclose(other.weight_vector(tf.constant(17, tf.int64)).numpy(), draws[17], atol=1e-3)
    np.testing.assert_array_equal(w.weight_vector().numpy(), [1.0, 1.0])
    losses = {"a": tf.constant(1.0), "b": tf.constant(3.0)}
    presence = {"a": tf.constant(1.0), "b": tf.constant(1.0)}
    for step in (3, 4):
        out = w.objectives(losses, presence, None, lambda x: x, context(step))
        assert float(out["total"]) == pytest.approx(draws[step] @ [1.0, 3.0], rel=1e-6)
    assert abs(draws[3, 0] - draws[4, 0]) > 1e-3


def test_dwa_weights_from_a_loss_history():
    w = standalone("dwa", temperature=2.0, window=2)
    present = tf.ones(2)
    history = [(1.0, 2.0), (3.0, 2.0), (0.5, 1.5), (0.5, 1.5)]  # windows of 2 steps: means (2, 2) and (.5, 1.5)
    for step, losses in enumerate(history):
        np.testing.assert_allclose(w.weight_vector().numpy(), [1.0, 1.0])  # fewer than two windows yet
        w.observe(tf.constant(losses), present, tf.constant(True), context(step))
    r = np.array([0.5 / 2.0, 1.5 / 2.0])
    expected = 2 * np.exp(r / 2.0) / np.exp(r / 2.0).sum()
    np.testing.assert_allclose(w.weight_vector().numpy(), expected, rtol=1e-5)
    assert expected[1] > expected[0]  # b's loss fell less: it gets more weight


def test_famo_weights_and_logit_update_from_a_loss_history():
    w = standalone("famo", learning_rate=0.1, weight_decay=0.0)
    losses = tf.constant([2.0, 0.5])
    # equal logits: w_t ∝ 1 / L_t, summing to the task count
    weights = w.famo_weights(losses, tf.ones(2)).numpy()
    np.testing.assert_allclose(weights, 2 * np.array([1 / 2.0, 1 / 0.5]) / (1 / 2.0 + 1 / 0.5), rtol=1e-6)
    # a's log-loss falls by log 2 each step, b's by log 1.1: b improves slower and gains weight
    for step, (la, lb) in enumerate([(2.0, 0.5), (1.0, 0.5 / 1.1), (0.5, 0.5 / 1.21), (0.25, 0.5 / 1.331)]):
        w.observe(tf.constant([la, lb]), tf.ones(2), tf.constant(True), context(step))
    z = tf.nn.softmax(w.logits).numpy()
    assert z[1] > z[0]
    # the first Adam step moves each logit by the learning rate, in the direction of −(∂z/∂ξ)ᵀ δ
    fresh = standalone("famo", learning_rate=0.1, weight_decay=0.0)
    fresh.observe(tf.constant([2.0, 0.5]), tf.ones(2), tf.constant(True), context(0))
    fresh.observe(tf.constant([1.0, 0.45]), tf.ones(2), tf.constant(True), context(1))
    np.testing.assert_allclose(fresh.logits.numpy(), [-0.1, 0.1], atol=1e-6)
    # a non-finite step leaves the state alone
    before = fresh.logits.numpy().copy()
    fresh.observe(tf.constant([np.nan, 0.4]), tf.ones(2), tf.constant(False), context(2))
    np.testing.assert_array_equal(fresh.logits.numpy(), before)


def test_uncertainty_weights_move_toward_the_inverse_noise_ratio(tmp_path):
    # Two regression targets of the same function with noise std 0.2 and 1.0: at the optimum the weight
    # 1/2 · exp(−s_t) is 1 / (2 σ_t²), so the low-noise task should end with far more weight (ratio → 25).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 4)).astype(np.float32)
    f = x @ np.array([1.0, -1.0, 0.5, 0.0], np.float32)
    np.savez(
        tmp_path / "noise.npz",
        x=x,
        clean=(f + rng.normal(0, 0.2, 1200)).astype(np.float32),
        noisy=(f + rng.normal(0, 1.0, 1200)).astype(np.float32),
    )
    raw = {
        "experiment": {"seed": 3},
        "data": {
            "sources": {
                "t": {
                    "type": "npz",
                    "path": str(tmp_path / "noise.npz"),
                    "features": ["x"],
                    "labels": ["clean", "noisy"],
                }
            }
        },
        "tasks": [
            {"name": "clean", "dataset": "t", "label": "clean", "type": "regression", "metrics": ["mse"]},
            {"name": "noisy", "dataset": "t", "label": "noisy", "type": "regression", "metrics": ["mse"]},
        ],
        "model": {
            "architecture": "shared_bottom",
            "stems": {"numeric": {"type": "dense", "units": [16]}},
            "trunk": {"units": [16]},
            "experts": {"count": 1, "units": [16]},
            "tower": {"units": [8]},
        },
        "training": {
            "steps": 300,
            "batch_size": 64,
            "optimizer": {"learning_rate": 0.05},
            "weighting": {"type": "uncertainty"},
        },
        "logging": {"progress": "none"},
    }
    parts = build_components(validate_config(raw))
    trainer = parts.trainer()
    single_step_losses(trainer, parts.data, 300)
    w = parts.weighting.weight_vector().numpy()
    assert w[0] / w[1] == pytest.approx(25.0, rel=0.25), w  # 300 steps from s = 0: 21 here
    # each weight is near 1 / (2 · its task's loss), the optimum of c·exp(−s)·L + s/2 (within 10% here)
    ev = trainer.evaluate(parts.data.eval_dataset("eval", 64))["tasks"]
    assert w[0] == pytest.approx(1 / (2 * ev["clean"]["loss"]), rel=0.15)
    assert w[1] == pytest.approx(1 / (2 * ev["noisy"]["loss"]), rel=0.15)


# ---- what a method holds, and what it refuses --------------------------------------------------------------


@pytest.mark.parametrize("kind", WEIGHTINGS.keys())
def test_every_state_variable_is_checkpointed(kind, tmp_path):
    w = standalone(kind)
    held = {id(v) for v in held_variables(w)}
    state = w.state()
    stateless = kind in ("fixed", "rlw", "pcgrad", "cagrad")
    assert (not held) if stateless else (held and held <= {id(v) for v in state.values()})
    if not state:
        return
    ckpt = tf.train.Checkpoint(weighting=state)
    path = ckpt.save(str(tmp_path / "w"))
    saved = {k: v.numpy().copy() for k, v in state.items()}
    for v in state.values():
        v.assign(tf.ones_like(v.value) * 7)
    ckpt.restore(path).assert_existing_objects_matched()
    for k, v in state.items():
        np.testing.assert_array_equal(v.numpy(), saved[k])


@pytest.mark.parametrize(
    "weighting, model, message",
    [
        ({"type": "pcgrad"}, {"architecture": "single_task"}, "shares none"),
        ({"type": "gradnorm"}, {"architecture": "single_task"}, "shares none"),
        ({"type": "mgda", "upper_bound": True}, {"experts": {"input": "raw"}}, "upper_bound: false"),
    ],
)
def test_a_method_the_model_cannot_support_is_a_config_error(weighting, model, message):
    with pytest.raises(ConfigError, match=message):
        build_components(tiny_config(training={"weighting": weighting}, model=model), training=False)


def test_bad_weighting_parameters_are_config_errors():
    with pytest.raises(ConfigError, match=r"training\.weighting\.window: expected 'epoch' or an int >= 1, got 0"):
        validate_config(tiny_dict(training={"weighting": {"type": "dwa", "window": 0}}))
    with pytest.raises(ConfigError, match=r"training\.weighting\.c: expected number < 1\.0, got 1\.5"):
        validate_config(tiny_dict(training={"weighting": {"type": "cagrad", "c": 1.5}}))
    with pytest.raises(ConfigError, match=r"training\.weighting\.lr: unknown key; known keys: learning_rate"):
        validate_config(tiny_dict(training={"weighting": {"type": "famo", "lr": 0.1}}))
