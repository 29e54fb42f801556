"""moe_tf.layers in plain Keras models: trained with fit, auxiliary losses through add_loss, gate weights, and a
`.keras` file that loads in a fresh process with identical outputs."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import moe_tf.layers as moe_layers
from tests.conftest import REPO


def two_tasks(n=2400, seed=0):
    """Two binary tasks on 8 features: a linear one and a product (a task a shared linear model cannot fit)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, {
        "sum": (x[:, 0] + x[:, 1] > 0).astype("float32")[:, None],
        "product": (x[:, 2] * x[:, 3] > 0).astype("float32")[:, None],
    }


def keras_model(block, stem=None, width=8):
    inputs = keras.Input((width,))
    features = block(stem(inputs) if stem is not None else inputs)
    if isinstance(features, tuple):
        features = features[0]
    outputs = {t: keras.layers.Dense(1, activation="sigmoid", name=t)(features[t]) for t in ("sum", "product")}
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "block",
    [
        lambda: moe_layers.MMoE(["sum", "product"], num_experts=4, expert_units=[32]),
        lambda: moe_layers.PLE(["sum", "product"], num_experts=2, expert_units=[32], levels=2),
    ],
    ids=["mmoe", "ple"],
)
def test_a_block_learns_two_tasks_with_fit(block):
    keras.utils.set_random_seed(0)
    x, y = two_tasks()
    model = keras_model(block())
    model.compile(
        keras.optimizers.Adam(1e-2),
        {t: "binary_crossentropy" for t in y},
        metrics={t: ["accuracy"] for t in y},
    )
    before = model.evaluate(x[2000:], {t: v[2000:] for t, v in y.items()}, verbose=0, return_dict=True)
    model.fit(x[:2000], {t: v[:2000] for t, v in y.items()}, epochs=10, batch_size=64, verbose=0)
    after = model.evaluate(x[2000:], {t: v[2000:] for t, v in y.items()}, verbose=0, return_dict=True)
    assert after["sum_accuracy"] > 0.93 and after["product_accuracy"] > 0.88, after
    assert after["product_accuracy"] > before["product_accuracy"] + 0.25


def test_gates_add_their_auxiliary_losses_in_training_only():
    x, _ = two_tasks(64)
    dense = keras_model(moe_layers.MMoE(["sum", "product"]))
    dense(x, training=True)
    assert dense.losses == []  # softmax without z-loss: nothing to add
    for gate in ({"type": "noisy_top_k", "k": 2}, "switch", {"type": "softmax", "z_loss": 0.01}):
        block = moe_layers.MMoE(["sum", "product"], gate=gate)
        model = keras_model(block)
        model(x, training=False)
        assert model.losses == [], gate  # an evaluation's loss is the tasks' alone
        keras.utils.set_random_seed(3)
        model(x, training=True)
        keras.utils.set_random_seed(3)
        _, routes = block.block(x, training=True)  # the same draw: the same auxiliary terms
        expected = sum(float(v) for route in routes.values() for v in route["aux"].values())
        assert len(model.losses) == 1 and expected > 0, gate
        np.testing.assert_allclose(float(model.losses[0]), expected, rtol=1e-5)


BLOCKS = {
    "mixture": lambda gate: moe_layers.MixtureOfExperts(
        ["a", "b"], 3, [8, 6], gate, task_experts=1, levels=3, activation="gelu", dropout=0.1, l2=1e-4
    ),
    "mmoe": lambda gate: moe_layers.MMoE(["a", "b", "c"], 5, [6], gate, l2=1e-3, return_gate_weights=True),
    "omoe": lambda gate: moe_layers.OMoE(["a", "b"], 3, [6], gate, activation="tanh"),
    "cgc": lambda gate: moe_layers.CGC(["a", "b"], 3, [6], gate, task_experts=2),
    "ple": lambda gate: moe_layers.PLE(["a", "b"], 2, [6], gate, task_experts=2, levels=3),
}
GATES = ["softmax", {"type": "softmax", "temperature": 2.0}, {"type": "noisy_top_k", "k": 1}, "switch", "expert_choice"]


@pytest.mark.parametrize("gate", GATES, ids=lambda g: g if isinstance(g, str) else "-".join(map(str, g.values())))
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_block_rebuilds_from_its_config(name, gate):
    x, _ = two_tasks(32)
    block = BLOCKS[name](gate)
    expected = block(x, training=False)
    rebuilt = type(block).from_config(block.get_config())
    rebuilt.build(x.shape)
    rebuilt.set_weights(block.get_weights())
    assert rebuilt.get_config() == block.get_config()
    for want, got in zip(keras.tree.flatten(expected), keras.tree.flatten(rebuilt(x, training=False))):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_gate_weights_output_and_method():
    x, _ = two_tasks(16)
    block = moe_layers.CGC(["sum", "product"], num_experts=2, task_experts=1, return_gate_weights=True)
    features, weights = block(x)
    assert set(features) == set(weights) == {"sum", "product"}
    assert block.expert_names() == ["shared_0", "shared_1", "sum_0", "product_0"]
    w = np.asarray(weights["sum"])
    assert w.shape == (16, 4)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert np.all(w[:, 3] == 0)  # the product task's own expert is not the sum task's to choose
    np.testing.assert_allclose(np.asarray(block.gate_weights(x)["product"]), np.asarray(weights["product"]))


def test_gate_weights_before_the_first_call():
    x, _ = two_tasks(8)
    block = moe_layers.PLE(["sum", "product"], levels=2)
    weights = block.gate_weights(x)
    assert weights["sum"].shape == (8, 4)
    assert set(block(x)) == {"sum", "product"}


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="gate 'nope'.*softmax"):
        moe_layers.MMoE(["a", "b"], gate="nope")
    with pytest.raises(ValueError, match="k: Input should be greater than or equal to 1"):
        moe_layers.MMoE(["a", "b"], gate={"type": "noisy_top_k", "k": 0})
    with pytest.raises(ValueError, match="distinct task names"):
        moe_layers.MMoE(["a", "a"])
    with pytest.raises(ValueError, match="distinct task names, got 'ctr'"):
        moe_layers.MMoE("ctr")
    with pytest.raises(ValueError, match="num_experts: expected an integer >= 1, got 2.7"):
        moe_layers.MMoE(["a", "b"], num_experts=2.7)
    with pytest.raises(ValueError, match="expert_units: expected a non-empty list"):
        moe_layers.CGC(["a", "b"], expert_units=[])
    with pytest.raises(TypeError, match="MMoE fixes levels, task_experts; use MixtureOfExperts"):
        moe_layers.MMoE(["a", "b"], levels=2, task_experts=1)
    with pytest.raises(TypeError, match="PLE fixes task_gates"):
        moe_layers.PLE(["a", "b"], task_gates=False)


LOAD_AND_PREDICT = """
import json, sys
import numpy as np, keras
import moe_tf.layers
model = keras.saving.load_model(sys.argv[1])
out = model.predict(np.load(sys.argv[2]), verbose=0)
print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))
"""


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(1)
    x, y = two_tasks(256)
    stem = moe_layers.DenseStem([16], name="stem")
    model = keras_model(moe_layers.PLE(["sum", "product"], gate={"type": "noisy_top_k", "k": 2}), stem=stem)
    model.compile("adam", {t: "binary_crossentropy" for t in y})
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x[:40])
    expected = model.predict(x[:40], verbose=0)
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(tmp_path / "model.keras"), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    for task in expected:
        np.testing.assert_allclose(np.array(loaded[task]), expected[task], rtol=1e-6, atol=1e-7)


def test_image_stems_in_a_keras_model():
    inputs = keras.Input((32, 32, 3))
    features = moe_layers.ResNetStem(widths=[8, 16], blocks=1)(inputs)
    model = keras.Model(inputs, moe_layers.MMoE(["a", "b"], expert_units=[8])(features))
    out = model(np.zeros((2, 32, 32, 3), "float32"), training=False)
    assert out["a"].shape == (2, 8)
