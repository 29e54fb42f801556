"""Every architecture, and the sparse gates, from YAML to a few training steps under `default` and `mirrored`,
to an export that serves predictions and gate weights; the `moe-tf gates` report on a sparse run."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf import cli
from moe_tf.components import build_components
from moe_tf.config.loader import load_config, validate_config
from moe_tf.data import build_task_data
from moe_tf.errors import ConfigError
from moe_tf.export.saved_model import export_model
from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.training.hooks import TrainerHooks
from tests.conftest import tiny_config, tiny_dict

SPARSE = ["noisy_top_k", "switch", "expert_choice"]
# Under default: every architecture, and sparse routing to experts that read the raw inputs.
COMBOS = [(a, "softmax", "trunk") for a in ARCHITECTURES.keys()] + [("mmoe", "noisy_top_k", "raw")]
# Under mirrored: every sparse gate (CGC's task gates see two expert groups) and the per-task backbones.
MIRRORED = [
    ("single_task", "softmax", "trunk"),
    ("cgc", "noisy_top_k", "trunk"),
    ("mmoe", "switch", "trunk"),
    ("mmoe", "expert_choice", "trunk"),
]


class Capture(TrainerHooks):
    def __init__(self):
        self.logs = []

    def on_train_log(self, step, summary):
        self.logs.append(summary)


@pytest.fixture(scope="module")
def data():
    return build_task_data(tiny_config())


def config_for(architecture, gate, expert_input="trunk", **training):
    return tiny_config(
        model={"architecture": {"type": architecture}, "gate": {"type": gate}, "experts": {"input": expert_input}},
        training={"steps": 3, "log_every": 3, **training},
    )


@pytest.mark.parametrize(
    "architecture,gate,expert_input,strategy", [(*c, "default") for c in COMBOS] + [(*c, "mirrored") for c in MIRRORED]
)
def test_trains_under_each_strategy(data, mirrored, architecture, gate, expert_input, strategy):
    config = config_for(architecture, gate, expert_input)
    parts = build_components(config, mirrored if strategy == "mirrored" else None, data=data)
    before = [v.numpy().copy() for v in parts.model.trainable_variables]
    hooks = Capture()
    assert parts.trainer().fit(hooks) == 3
    (summary,) = hooks.logs
    assert np.isfinite(summary["loss"])
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, parts.model.trainable_variables)]
    assert sum(changed) >= 0.9 * len(changed)  # (a skip projection no example needed may stay unchanged)
    gates = summary["gates"]
    if architecture in ("single_task", "shared_bottom"):
        assert gates == {}
        return
    names = {"omoe": {"shared"}, "ple": {"digit", "high", "level0_digit", "level0_high", "level0_shared"}}
    assert set(gates) == names.get(architecture, {"digit", "high"})
    for g in gates.values():
        if gate in ("softmax", "noisy_top_k"):  # (switch and expert choice weigh by the chosen probabilities)
            assert sum(g["expert_weights"]) == pytest.approx(1.0, abs=1e-5)
        if gate in SPARSE:
            assert 0.0 <= g["dropped"] <= 1.0 and len(g["routed"]) == len(g["expert_weights"])
    if gate == "noisy_top_k":  # w · CV² of per-expert sums: 0 when balanced, at most w · (E - 1) (its exact value:
        # tests/models/test_routing.py)
        assert {"importance", "load"} <= set(gates["digit"]["aux"])
        assert 0.0 < gates["digit"]["aux"]["importance"] <= 0.01 * (3 - 1)
        assert 0.0 < gates["digit"]["aux"]["load"] <= 0.01 * (3 - 1)
    if gate == "switch":
        assert 0.0 < gates["digit"]["aux"]["balance"] <= 0.01 * 3  # α · E · Σ f·P, and Σ f·P <= 1


def test_single_task_shares_nothing_between_tasks(data):
    model = build_components(config_for("single_task", "softmax"), data=data, training=False).model
    shared, own = model.variable_groups()
    assert shared == []
    assert all(any("backbone_" + t in v.path for v in own[t]) for t in ("digit", "high"))
    x = {"image": tf.constant(np.random.default_rng(1).integers(0, 17, (8, 8, 8, 1)), tf.uint8)}
    with tf.GradientTape(persistent=True) as tape:
        out = model(x, training=True)["outputs"]
        digit = tf.reduce_mean(tf.square(out["digit"]))
        both = digit + tf.reduce_mean(tf.square(out["high"]))
    for a, b in zip(tape.gradient(digit, own["digit"]), tape.gradient(both, own["digit"])):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # the other task's loss does not reach digit's network


def test_cgc_task_experts_belong_to_their_task(data):
    model = build_components(config_for("cgc", "softmax"), data=data, training=False).model
    shared, own = model.variable_groups()
    assert any("experts_digit" in v.path for v in own["digit"])
    assert not any("experts_high" in v.path for v in own["digit"])
    assert any("experts_shared" in v.path for v in shared)
    names = model.mixture.expert_names()
    assert names["digit"] == ["shared_0", "shared_1", "shared_2", "digit_0", "high_0"]
    w = model({"image": np.zeros((3, 8, 8, 1), np.uint8)})["gates"]["digit"]["weights"].numpy()
    assert (w[:, 4] == 0).all() and np.allclose(w.sum(axis=1), 1.0)  # digit's gate never picks high's expert


def test_raw_input_experts_are_whole_networks_and_see_only_their_rows(data):
    """LibMTL-style MMoE: each expert has its own stem and trunk on the raw image; gates read the flat pixels."""
    config = config_for("mmoe", "noisy_top_k", "raw")
    config.model.gate.k, config.model.gate.eval_capacity_factor = 1, 1.0
    model = build_components(config, data=data, training=False).model
    assert model.backbones == {} and len(model.all_backbones()) == 3
    assert model.gate_input.width == 64  # 8 × 8 × 1 pixels
    shared, own = model.variable_groups()
    assert all(any(f"backbone_{e}/" in v.path for v in shared) for e in range(3))
    x = {"image": tf.constant(np.random.default_rng(3).integers(0, 17, (24, 8, 8, 1)), tf.uint8)}
    pool = model.mixture.levels[0].pools["shared"]
    seen = []
    for bb in pool.backbones:
        bb.call = lambda inputs, training=None, _c=bb.call: (
            seen.append(inputs["image"].shape[0]) or _c(inputs, training)
        )
    out = model(x, training=False)
    for bb in pool.backbones:
        del bb.call
    # each of the two task gates fills ceil(1.0 · 24 · 1 / 3) = 8 slots per expert; an expert runs once on both
    # gates' slots side by side: 16 rows, not the 24 of the batch (and not once per gate)
    assert len(model.mixture.levels[0].gates) == 2 and seen == [16, 16, 16]
    w = out["gates"]["digit"]["weights"].numpy()
    assert ((w > 0).sum(axis=1) == 1).all()
    dense = np.einsum("be,beu->bu", w, pool(x).numpy())  # every expert on every example, mixed by the weights
    level, gx = model.mixture.levels[0], model.gate_input(x)
    mixed, _ = level({"shared": x}, gate_inputs={"shared": gx})
    unrouted = level.gates["digit"](gx)["unrouted"].numpy()  # dropped by capacity: the skip projection instead
    expected = np.where(unrouted[:, None], level.skip(gx).numpy(), dense)
    np.testing.assert_allclose(mixed["digit"].numpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="model.experts.input: 'raw' makes each expert a whole network"):
        tiny_config(model={"architecture": "shared_bottom", "experts": {"input": "raw"}})


def test_top_k_larger_than_the_experts_is_a_config_error_naming_both_fields():
    with pytest.raises(
        ConfigError,
        match=r"model.gate.k: 5 is more than the 3 experts a gate chooses among "
        r"\(model.experts.count\)",
    ):
        tiny_config(model={"gate": {"type": "noisy_top_k", "k": 5}})
    with pytest.raises(
        ConfigError,
        match=r"model.gate.k: 6 is more than the 4 experts .*"
        r"model.experts.count \+ model.architecture.task_experts",
    ):
        tiny_config(model={"architecture": {"type": "cgc", "task_experts": 1}, "gate": {"type": "noisy_top_k", "k": 6}})


def test_architecture_shorthand_and_unknown_names():
    assert tiny_config(model={"architecture": "ple"}).model.architecture.levels == 2
    with pytest.raises(ConfigError, match="model.architecture.type: unknown type 'mmo'"):
        tiny_config(model={"architecture": "mmo"})


def test_export_serves_predictions_and_gate_weights(data, tmp_path):
    config = config_for("cgc", "noisy_top_k")
    parts = build_components(config, data=data, training=False)
    path = export_model(parts.model, config, data, str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    x = {"image": tf.constant(np.random.default_rng(0).integers(0, 17, (6, 8, 8, 1)), tf.uint8)}
    gates = loaded.signatures["gates"](**x)
    expected = parts.model(x, training=False)["gates"]
    for task in ("digit", "high"):
        w = gates[task].numpy()
        assert ((w > 0).sum(axis=1) == 2).all() and np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(w, expected[task]["weights"].numpy(), rtol=1e-5, atol=1e-6)
    probs = loaded.signatures["serving_default"](**x)["digit"].numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    meta = json.load(open(os.path.join(path, "moe_tf_export.json")))
    assert meta["experts"]["digit"] == ["shared_0", "shared_1", "shared_2", "digit_0", "high_0"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "architecture,gate",
    [("single_task", "softmax"), ("shared_bottom", "softmax"), ("omoe", "switch"), ("ple", "expert_choice")],
)
def test_every_architecture_exports_and_serves(data, tmp_path, architecture, gate):
    """(MMoE with softmax is exported by the session's trained run, CGC with top-k above, CGC with switch by the
    CLI run below.)"""
    parts = build_components(config_for(architecture, gate), data=data, training=False)
    path = export_model(parts.model, parts.config, data, str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    x = {"image": tf.constant(np.random.default_rng(0).integers(0, 17, (5, 8, 8, 1)), tf.uint8)}
    logits = parts.model(x, training=False)["outputs"]["digit"]
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](**x)["digit"].numpy(), tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6
    )
    assert ("gates" in loaded.signatures) == (architecture not in ("single_task", "shared_bottom"))


def test_conv_stem_layers_lenet_style(data):
    stem = {
        "type": "conv",
        "layers": [
            {"filters": 4, "kernel_size": 3, "padding": "valid", "pool": 2},
            {"filters": 6, "kernel_size": 2, "stride": 1, "padding": "valid", "pool": 1, "pool_type": "avg"},
        ],
    }
    raw = tiny_dict()
    raw["model"]["stem"] = stem
    config = validate_config(raw)
    model = build_components(config, data=data, training=False).model
    conv = model.encoders["image"].stem
    # 8×8 → valid 3×3 → 6×6 → pool 2 → 3×3 → valid 2×2 → 2×2 × 6 filters, flattened
    assert conv(tf.zeros((1, 8, 8, 1))).shape == (1, 24)
    bad = {
        "type": "conv",
        "layers": [
            {"filters": 4, "kernel_size": 5, "padding": "valid"},
            {"filters": 4, "kernel_size": 5, "padding": "valid"},
        ],
    }
    raw["model"]["stem"] = bad
    with pytest.raises(ConfigError, match=r"model.stem.layers\[1\]: a 5×5 'valid' convolution does not fit the 8×8"):
        build_components(validate_config(raw), data=data, training=False)
    # Fits only without pooling: 8 → 6 → pool 3 → 1 → pool 1 → a third 3×3 no longer fits.
    raw["model"]["stem"] = {"type": "conv", "layers": [{"filters": 4, "padding": "valid"}] * 3}
    with pytest.raises(ConfigError, match=r"model.stem.layers\[2\]: a 3×3 'valid' convolution does not fit the 8×8"):
        build_components(validate_config(raw), data=data, training=False)
    with pytest.raises(ConfigError, match="give either `filters`"):
        tiny_config(model={"stem": {"type": "conv", "filters": [4], "layers": [{"filters": 4}]}})


def test_sparse_run_from_yaml_through_the_cli(tmp_path, capsys):
    raw = tiny_dict(
        model={"architecture": {"type": "cgc", "task_experts": 1}, "gate": {"type": "switch"}},
        training={"steps": 6, "eval_every": 3, "log_every": 3},
        logging={"dead_expert_patience": 1, "dead_expert_threshold": 0.99},
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert load_config(str(tmp_path / "c.yaml")) == validate_config(raw)
    run_dir = str(tmp_path / "run")
    assert (
        cli.main(
            ["train", "--config", str(tmp_path / "c.yaml"), "--output-dir", run_dir, "--set", "logging.progress=lines"]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "model: cgc with switch gates" in err
    assert re.search(r"step 3 .* dropped \d+\.\d%", err)  # the progress line shows capacity drops
    assert "warning: expert shared_0 is dead" in err  # threshold 0.99: every expert counts as unused
    assert os.path.getsize(os.path.join(run_dir, "gates.png")) > 10_000
    assert cli.main(["gates", run_dir, "--split", "eval"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("task: class") and "digit: 0" in out and "high: 1" in out
    rows = list(csv_rows(os.path.join(run_dir, "gates_eval.csv")))
    assert rows[0] == ["task", "class", "examples", "shared_0", "shared_1", "shared_2", "digit_0", "high_0"]
    assert sum(int(r[2]) for r in rows[1:] if r[0] == "digit") == 180  # every eval example, once per task
    for r in rows[1:]:
        weights = [float(w) for w in r[3:]]
        assert 0.0 <= sum(weights) <= 1.0 + 1e-6  # switch: the chosen expert's probability
    # each row is the mean, over the eval examples of that true class, of the weights of the gate the task reads
    from moe_tf.components import restore_components

    parts, _ = restore_components(run_dir)
    weights, labels = {"digit": [], "high": []}, {"digit": [], "high": []}
    for x, y, _ in parts.data.eval_dataset("eval", 64):
        gates = parts.model(x, training=False)["gates"]
        for task in weights:
            weights[task].append(gates[task]["weights"].numpy())
            labels[task].append(y[task].numpy())
    expected = {}
    for task in weights:
        w, y = np.concatenate(weights[task]), np.concatenate(labels[task])
        for c in np.unique(y[y >= 0]):
            expected[(task, str(c))] = (int((y == c).sum()), w[y == c].mean(0))
    assert {(r[0], r[1]) for r in rows[1:]} == set(expected)
    for r in rows[1:]:
        n, mean = expected[(r[0], r[1])]
        assert int(r[2]) == n
        np.testing.assert_allclose([float(v) for v in r[3:]], mean, atol=2e-6, err_msg=str(r[:2]))
    assert len({tuple(np.round(mean, 3)) for _, mean in expected.values()}) > 1  # classes are routed differently


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.reader(f)


# ---- PLE's wiring between levels, by hand in numpy ----------------------------------------------------------------


def np_activation(name, x):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":  # exact: x Φ(x)
        from math import erf

        return x * 0.5 * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
    raise ValueError(name)


def np_experts(pool, x, activation):
    """Every expert of an ExpertPool on x [batch, d] → [batch, experts, units], layer by layer."""
    h = np.repeat(x[:, None, :], pool.num_experts, axis=1)
    for kernel, bias in zip(pool.kernels, pool.biases):
        h = np_activation(activation, np.einsum("bei,eio->beo", h, kernel.numpy()) + bias.numpy()[None])
    return h


def np_softmax_gate(gate, x):
    logits = x @ gate.logits.kernel.numpy() + gate.logits.bias.numpy()
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_ple_levels_are_wired_as_in_the_paper():
    """A 2-level PLE (tasks a, b; 2 shared experts and 1 per task; tanh) against numpy: level 0's task experts and
    gates read the input; its shared gate mixes every expert of the level into the next level's shared input; level
    1's task experts and gate read their task's level-0 output, its shared experts the shared one; no shared gate
    at the top (Tang et al., RecSys 2020, section 4.3)."""
    from moe_tf.models.architectures.ple import PLE

    ple = PLE(
        task_names=["a", "b"],
        experts={"count": 2, "units": [5, 4]},
        gate={"type": "softmax"},
        levels=2,
        task_experts=1,
        activation="tanh",
    )
    x = np.random.default_rng(0).normal(size=(6, 7)).astype(np.float32)
    features, routes = ple(x)
    for variable in ple.trainable_variables:  # non-zero biases, so a bias wired to the wrong place shows
        variable.assign(np.random.default_rng(len(variable.path)).normal(0, 0.5, variable.shape))
    features, routes = ple(x)

    inputs = {"shared": x.astype(np.float64), "a": x.astype(np.float64), "b": x.astype(np.float64)}
    for i, level in enumerate(ple.levels):
        ys = {g: np_experts(level.pools[g], inputs[g], "tanh") for g in ("shared", "a", "b")}
        out = {}
        for t in ("a", "b"):
            w = np_softmax_gate(level.gates[t], inputs[t])  # over [shared_0, shared_1, t_0]
            out[t] = np.einsum("be,beu->bu", w, np.concatenate([ys["shared"], ys[t]], axis=1))
        if i == 0:
            assert set(level.gates) == {"a", "b", "shared"}
            w = np_softmax_gate(level.gates["shared"], inputs["shared"])  # over every expert of the level
            out["shared"] = np.einsum("be,beu->bu", w, np.concatenate([ys["shared"], ys["a"], ys["b"]], axis=1))
            np.testing.assert_allclose(routes["level0_shared"]["weights"].numpy(), w, rtol=1e-5, atol=1e-6)
        else:
            assert set(level.gates) == {"a", "b"}
        inputs = out
    for t in ("a", "b"):
        np.testing.assert_allclose(features[t].numpy(), inputs[t], rtol=1e-5, atol=1e-6, err_msg=t)
