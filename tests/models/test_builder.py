"""The builder and every registered component, parametrised over the registries."""

import keras
import numpy as np
import pytest

from moe_tf.config.loader import validate_config
from moe_tf.data import build_task_data
from moe_tf.models import build_model
from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.models.gates import GATES
from moe_tf.models.layers import DenseStack, ExpertPool
from moe_tf.models.stems import STEMS
from tests.conftest import tiny_config, tiny_dict


@pytest.fixture(scope="module")
def tasks():
    return build_task_data(tiny_config()).tasks


@pytest.mark.parametrize("architecture", ARCHITECTURES.keys())
@pytest.mark.parametrize("stem", STEMS.keys())
def test_outputs_per_task(tasks, architecture, stem):
    data = tiny_dict(model={"architecture": architecture})
    data["model"]["stem"] = {"type": stem}
    config = validate_config(data)
    model = build_model(config.model, tasks, (8, 8, 1))
    out = model(np.zeros((5, 8, 8, 1), np.uint8))
    assert out["outputs"]["digit"].shape == (5, 10)
    assert out["outputs"]["high"].shape == (5, 1)
    if architecture == "shared_bottom":
        assert out["gates"] == {}
    else:
        for name in ("digit", "high"):
            g = out["gates"][name].numpy()
            assert g.shape == (5, 3)
            np.testing.assert_allclose(g.sum(-1), 1.0, rtol=1e-5)


def test_tasks_get_different_gates(tasks):
    model = build_model(tiny_config().model, tasks, (8, 8, 1))
    x = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 1)).astype(np.uint8)
    gates = model(x)["gates"]
    assert not np.allclose(gates["digit"].numpy(), gates["high"].numpy())


def _round_trip(layer, x):
    y = layer(x)
    clone = layer.__class__.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(y), rtol=1e-6)


@pytest.mark.parametrize("gate", GATES.keys())
def test_gate_config_round_trip(gate):
    _round_trip(GATES.get(gate)(num_experts=3, name="g"), np.ones((2, 5), np.float32))


@pytest.mark.parametrize("stem", STEMS.keys())
def test_stem_config_round_trip(stem):
    _round_trip(STEMS.get(stem)(name="s"), np.ones((2, 8, 8, 1), np.float32))


def test_layer_round_trips():
    _round_trip(DenseStack([4, 3], dropout=0.1, l2=1e-4), np.ones((2, 5), np.float32))
    _round_trip(ExpertPool(3, [4, 2]), np.ones((2, 5), np.float32))


def test_expert_pool_matches_independent_experts():
    pool = ExpertPool(2, [3])
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    y = pool(x).numpy()  # [batch, experts, units]
    k, b = (v.numpy() for v in pool.weights)
    for e in range(2):
        np.testing.assert_allclose(y[:, e], np.maximum(x @ k[e] + b[e], 0), rtol=1e-5, atol=1e-6)


def test_model_config_round_trip_and_saving(tasks, tmp_path):
    model = build_model(tiny_config().model, tasks, (8, 8, 1))
    x = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 1)).astype(np.uint8)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x)["outputs"]["digit"].numpy(), model(x)["outputs"]["digit"].numpy(),
                               rtol=1e-6)
