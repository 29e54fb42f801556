"""Sparse gates and dispatch: the slots, exact top-k weights, routed-only compute, capacity overflow, and each
auxiliary loss against its formula on hand-computed numbers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from moe_tf.models import routing
from moe_tf.models.gates.expert_choice import ExpertChoiceGate
from moe_tf.models.gates.noisy_top_k import NoisyTopKGate
from moe_tf.models.gates.softmax import SoftmaxGate
from moe_tf.models.gates.switch import SwitchGate, balance_loss
from moe_tf.models.mixture import ExpertLevel


def x_of(n, d=6, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(n, d)), tf.float32)


def set_router(gate, x, bias):
    """Router logits = bias for every example (kernel zeroed)."""
    gate(x)
    gate.logits.kernel.assign(tf.zeros_like(gate.logits.kernel))
    gate.logits.bias.assign(tf.constant(bias, tf.float32))


def test_token_choice_slots_first_choices_first_and_overflow_dropped():
    indices = tf.constant([[0, 1], [0, 2], [0, 1]])
    weights = tf.constant([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1]])
    slot_example, slot_weight, kept = routing.token_choice_slots(indices, weights, num_experts=3, slots=2)
    # Expert 0 takes examples 0 and 1 (first choices); example 2's first choice overflows. Second choices follow.
    np.testing.assert_array_equal(slot_example.numpy(), [[0, 1], [0, 2], [1, 3]])  # 3 = empty slot
    np.testing.assert_allclose(slot_weight.numpy(), [[0.6, 0.7], [0.4, 0.1], [0.3, 0.0]])
    np.testing.assert_array_equal(kept.numpy(), [[True, True], [True, True], [False, True]])


def test_capacity_formula():
    assert int(routing.capacity(100, 2, 16, 1.25)) == math.ceil(1.25 * 100 * 2 / 16)
    assert int(routing.capacity(4, 2, 2, 8.0)) == 4  # never more than the batch
    assert int(routing.capacity(1, 1, 16, 1.0)) == 1  # at least one


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_gives_exactly_k_weights_summing_to_one(k):
    gate = NoisyTopKGate(4, k=k)
    for training in (False, True):
        w = gate(x_of(32), training=training)["weights"].numpy()
        assert ((w > 0).sum(axis=1) == k).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)


def test_sparse_mixture_equals_the_dense_sum_over_chosen_experts_and_runs_only_routed_rows():
    level = ExpertLevel(
        ["a"],
        shared_experts=8,
        expert_units=[5],
        gate={"type": "noisy_top_k", "k": 2, "noise": False, "eval_capacity_factor": 2.0},
    )
    x = x_of(40)
    out, routes = level({"shared": x})
    # a fixed router, so the routing (not the initialisation) decides whether an expert overflows: none does here
    level.gates["a"].logits.kernel.assign(np.random.default_rng(1).normal(0, 0.5, (6, 8)).astype(np.float32))
    pool = level.pools["shared"]
    seen = []
    on_slots = pool.on_slots
    pool.on_slots = lambda rows, training=None: seen.append(rows.shape) or on_slots(rows, training)
    out, routes = level({"shared": x})
    pool.on_slots = on_slots
    (shape,) = seen
    assert shape == (8, 20, 6)  # [experts, capacity ceil(2.0 · 40 · 2 / 8), width]: 20 rows each, not 40
    y = pool(x).numpy()  # every expert on every example: [batch, experts, units]
    r = level.gates["a"](x)  # the same routing (no noise)
    slots, weights = r["slot_example"].numpy(), r["slot_weight"].numpy()
    expected = np.zeros((40, 5), np.float32)
    for e in range(8):
        for c in range(20):
            if slots[e, c] < 40:
                expected[slots[e, c]] += weights[e, c] * y[slots[e, c], e]
    unrouted = r["unrouted"].numpy()
    expected[unrouted] = level.skip(x).numpy()[unrouted]
    np.testing.assert_allclose(out["a"].numpy(), expected, rtol=1e-5, atol=1e-6)
    w = routes["a"]["weights"].numpy()
    assert float(routes["a"]["dropped"]) == 0 and (slots < 40).sum(axis=1).max() <= 20, (slots < 40).sum(axis=1)
    # nothing dropped: exactly the dense mixture of the chosen experts
    np.testing.assert_allclose(out["a"].numpy(), np.einsum("be,beu->bu", w, y), rtol=1e-5, atol=1e-6)
    routed = routes["a"]["routed"].numpy()
    np.testing.assert_array_equal(routed, (slots < 40).sum(axis=1))  # rows each expert ran
    assert routed.sum() + float(routes["a"]["dropped"]) == float(routes["a"]["assignments"]) == 80.0


def test_switch_capacity_overflow_is_counted_and_takes_the_skip_path():
    level = ExpertLevel(
        ["a"],
        shared_experts=4,
        expert_units=[6],
        gate={"type": "switch", "eval_capacity_factor": 1.0, "balance_loss": 0.0},
    )
    x = x_of(8)
    level({"shared": x})
    set_router(level.gates["a"], x, [10.0, 0.0, 0.0, 0.0])  # every example wants expert 0
    out, routes = level({"shared": x})
    r = routes["a"]
    assert r["routed"].numpy().tolist() == [2.0, 0.0, 0.0, 0.0]  # capacity ceil(1.0 · 8 / 4) = 2
    assert float(r["dropped"]) == 6.0
    y = level.pools["shared"](x).numpy()[:, 0]  # expert 0 on every example
    p = float(tf.nn.softmax([10.0, 0.0, 0.0, 0.0])[0])
    np.testing.assert_allclose(out["a"].numpy()[:2], p * y[:2], rtol=1e-5, atol=1e-6)  # the two it took
    np.testing.assert_allclose(out["a"].numpy()[2:], x.numpy()[2:], rtol=1e-6)  # the rest: identity skip


def test_expert_choice_each_expert_takes_its_capacity_of_most_probable_examples():
    gate = ExpertChoiceGate(4, capacity_factor=1.0)
    x = x_of(12)
    r = gate(x)
    probs = tf.nn.softmax(gate.logits(x)).numpy()
    slots = r["slot_example"].numpy()
    assert slots.shape == (4, 3)
    for e in range(4):
        assert sorted(slots[e]) == sorted(np.argsort(-probs[:, e])[:3])
        np.testing.assert_allclose(r["slot_weight"].numpy()[e], probs[slots[e], e], rtol=1e-6)
    picked = np.zeros(12, bool)
    picked[slots.ravel()] = True
    np.testing.assert_array_equal(r["unrouted"].numpy(), ~picked)
    assert float(r["dropped"]) == (~picked).sum()


def test_switch_balance_loss_formula():
    probs = tf.constant([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]])
    onehot = tf.one_hot(tf.argmax(probs, axis=1), 3)
    # f = [2, 1, 1] / 4, P = column means [0.4, 0.275, 0.325]; E · Σ f·P = 3 · (0.2 + 0.06875 + 0.08125)
    assert float(balance_loss(onehot, probs)) == pytest.approx(3 * (0.5 * 0.4 + 0.25 * 0.275 + 0.25 * 0.325))
    gate = SwitchGate(3, balance_loss=0.5)
    x = x_of(4)
    set_router(gate, x, [0.0, 0.0, 0.0])
    assert float(gate(x)["aux"]["balance"]) == pytest.approx(0.5 * 3 * (1.0 * 1 / 3))  # all to expert 0, P = 1/3


def test_importance_and_load_losses_match_cv_squared():
    gate = NoisyTopKGate(4, k=1, noise=False, importance_loss=0.1, load_loss=0.2)
    x = x_of(6)
    set_router(gate, x, [3.0, 1.0, 0.0, 0.0])
    aux = gate(x)["aux"]
    importance = np.array([6.0, 0, 0, 0])  # top-1 weights are 1 for expert 0
    cv2 = importance.var() / importance.mean() ** 2
    assert float(aux["importance"]) == pytest.approx(0.1 * cv2, rel=1e-5)
    assert float(aux["load"]) == pytest.approx(0.2 * cv2, rel=1e-5)  # without noise the load is the count


def test_noisy_load_is_the_probability_of_staying_in_the_top_k():
    gate = NoisyTopKGate(3, k=1)
    clean = tf.constant([[1.0, 0.0, -1.0]])
    noisy = tf.constant([[1.2, 0.5, -0.8]])
    std = tf.constant([[1.0, 0.5, 2.0]])
    top_values, _ = tf.math.top_k(noisy, k=2)
    load = gate._load(clean, noisy, std, top_values, None).numpy()
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    # Expert 0 is in the top 1: it stays while its noisy logit beats the 2nd largest (0.5).
    # Experts 1 and 2 are out: they need to beat the largest (1.2).
    expected = [phi((1.0 - 0.5) / 1.0), phi((0.0 - 1.2) / 0.5), phi((-1.0 - 1.2) / 2.0)]
    np.testing.assert_allclose(load, expected, rtol=1e-5)  # one example: the sum is its row


def test_z_loss_formula_on_every_gate():
    x = x_of(5)
    for gate in (
        SoftmaxGate(3, z_loss=0.01),
        SwitchGate(3, z_loss=0.01),
        ExpertChoiceGate(3, z_loss=0.01),
        NoisyTopKGate(3, k=2, z_loss=0.01),
    ):
        aux = gate(x)["aux"]
        logits = gate.logits(x).numpy()
        lse = np.log(np.exp(logits).sum(axis=1))
        assert float(aux["z_loss"]) == pytest.approx(0.01 * (lse**2).mean(), rel=1e-5)
    assert "z_loss" not in SoftmaxGate(3)(x)["aux"]


@pytest.mark.parametrize("gate", [{"type": "noisy_top_k", "k": 2}, {"type": "switch"}, {"type": "expert_choice"}])
def test_gradients_reach_gate_and_expert_variables(gate):
    level = ExpertLevel(["a", "b"], shared_experts=4, expert_units=[5], gate=gate)
    x = x_of(64)
    with tf.GradientTape() as tape:
        out, routes = level({"shared": x}, training=True)
        loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in out.values()])
        loss += tf.add_n([v for r in routes.values() for v in r["aux"].values()] or [0.0])
    grads = tape.gradient(loss, level.trainable_variables)
    assert gate["type"] != "noisy_top_k" or any("noise" in v.path for v in level.trainable_variables)
    for v, g in zip(level.trainable_variables, grads):
        if "skip" in v.path:  # only examples no expert took reach the skip projection
            continue
        assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, v.path


def test_mixed_precision_sparse_level_keeps_float32_routing():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        level = ExpertLevel(["a"], shared_experts=4, expert_units=[6], gate={"type": "noisy_top_k", "k": 2})
        out, routes = level({"shared": tf.cast(x_of(16), tf.float16)}, training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["a"].dtype == tf.float16 and routes["a"]["weights"].dtype == tf.float32
    assert np.isfinite(out["a"].numpy()).all()
