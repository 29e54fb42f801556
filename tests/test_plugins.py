"""Adding a component is one class plus one registration: a data source, a stem, a gate, an architecture and a
weighting defined here, in the test, and registered into the project's registries, are valid config choices and
train end to end, with no other file touched."""

from typing import Literal

import keras
import numpy as np
import pytest
from keras import ops
from pydantic import Field

from moe_tf.components import build_components
from moe_tf.config.base import StrictModel
from moe_tf.config.loader import validate_config
from moe_tf.data.base import DataSource, FeatureSpec, LabelInfo, from_arrays, split_arrays
from moe_tf.models.architectures.base import UngatedArchitecture
from moe_tf.models.gates.base import Gate, GateConfig
from moe_tf.models.layers import DenseStack
from moe_tf.registry import ARCHITECTURES, DATASETS, GATES, STEMS, WEIGHTINGS
from moe_tf.run import train
from moe_tf.training.weightings.base import LossWeighting


class Blobs(DataSource):
    """Two Gaussian blobs in 4 dimensions: label `side` (which blob), label `sign` (the sign of the first feature)."""

    class Config(StrictModel):
        type: Literal["test_blobs"] = "test_blobs"
        size: int = Field(400, ge=10)

    def load(self):
        rng = np.random.default_rng(self.seed)
        side = rng.integers(0, 2, self.config.size)
        x = rng.normal(size=(self.config.size, 4)).astype(np.float32) + 2.0 * side[:, None]
        labels = {"side": side, "sign": (x[:, 0] > 0).astype(np.int64)}
        arrays = split_arrays({"x": x}, labels, {"eval": 0.2, "test": 0.2, "train": 0.0}, self.seed)
        info = {"side": LabelInfo(2, ["left", "right"]), "sign": LabelInfo(2, ["negative", "positive"])}
        return from_arrays(arrays, info, {"x": FeatureSpec("float32", (4,), "numeric")})


class Affine(keras.layers.Layer):
    """A numeric stem: one dense layer of `width`."""

    modalities = ("numeric",)

    class Config(StrictModel):
        type: Literal["test_affine"] = "test_affine"
        width: int = Field(8, ge=1)

    def __init__(self, width=8, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(width, name="dense")

    def call(self, x, training=None):
        return self.dense(x)


class Uniform(Gate):
    """Every expert weighs 1 / experts (its logits are computed and ignored, so the gate has variables)."""

    class Config(GateConfig):
        type: Literal["test_uniform"] = "test_uniform"

    def call(self, x, training=None):
        logits = self.logits(x)
        return {"weights": ops.ones_like(logits) / self.num_experts, "aux": self.aux_losses(logits)}


class Bottom(UngatedArchitecture):
    """One shared DenseStack, read by every task."""

    class Config(StrictModel):
        type: Literal["test_bottom"] = "test_bottom"

    def __init__(self, task_names, experts, **kwargs):
        super().__init__(task_names, experts, **kwargs)
        self.shared = DenseStack(self.experts_config.units, self.activation, self.dropout, self.l2, name="shared")

    def call(self, x, training=None, representation=False):
        h = self.shared(x, training=training)
        return ({t: h for t in self.task_names}, {}, h) if representation else ({t: h for t in self.task_names}, {})

    def has_representation(self):
        return True

    def task_variables(self, name):
        return []


class Scaled(LossWeighting):
    """Every task weight times `factor`."""

    class Config(StrictModel):
        type: Literal["test_scaled"] = "test_scaled"
        factor: float = Field(2.0, gt=0.0)

    def weight_vector(self, step=None):
        return self.alpha * self.config.factor


PLUGINS = [
    (DATASETS, "test_blobs", Blobs),
    (STEMS, "test_affine", Affine),
    (GATES, "test_uniform", Uniform),
    (ARCHITECTURES, "test_bottom", Bottom),
    (WEIGHTINGS, "test_scaled", Scaled),
]


@pytest.fixture(scope="module", autouse=True)
def registered():
    for registry, key, component in PLUGINS:
        registry.register(key)(component)  # the one registration each
    yield
    for registry, key, _ in PLUGINS:
        registry._items.pop(key)


def plugin_config(architecture: dict) -> dict:
    return {
        "experiment": {"name": "plugins", "seed": 3},
        "data": {"sources": {"blobs": {"type": "test_blobs", "size": 300}}},
        "tasks": [
            {"name": "side", "dataset": "blobs", "label": "side"},
            {"name": "sign", "dataset": "blobs", "label": "sign", "weight": 0.5},
        ],
        "model": {
            "architecture": architecture,
            "stems": {"numeric": {"type": "test_affine", "width": 6}},
            "experts": {"count": 3, "units": [8]},
            "gate": {"type": "test_uniform"},
            "tower": {"units": [4]},
        },
        "training": {"steps": 6, "batch_size": 32, "log_every": 3, "weighting": {"type": "test_scaled", "factor": 3.0}},
        "logging": {"progress": "none", "tensorboard": False},
    }


def test_unknown_plugin_parameters_fail_with_their_path():
    data = plugin_config("mmoe")
    data["training"]["weighting"]["factr"] = 1.0
    with pytest.raises(Exception, match=r"training\.weighting\.factr: unknown key \(did you mean 'factor'\?\)"):
        validate_config(data)


def test_plugins_train_end_to_end(tmp_path):
    config = validate_config(plugin_config("mmoe"))
    assert type(config.model.gate) is Uniform.Config and config.training.weighting.factor == 3.0
    parts = build_components(config)
    assert type(parts.weighting) is Scaled and type(parts.model.encoders["x"].stem) is Affine
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    gates = parts.model({"x": x}, training=False)["gates"]
    for routing in gates.values():  # the test gate routes: uniform weights over the 3 experts
        np.testing.assert_allclose(np.asarray(routing["weights"]), np.full((5, 3), 1 / 3), rtol=1e-6)
    iterator = iter(parts.data.train_dataset(32, start_step=0, total_steps=1))
    weights = parts.trainer().train_chunk(iterator, keras.ops.convert_to_tensor(1)).numpy()
    np.testing.assert_allclose(weights, [3.0, 1.5])  # the test weighting: factor × the task weights (1, 0.5)

    metrics = train(config, str(tmp_path / "mmoe"))
    assert metrics["step"] == 6 and set(metrics["tasks"]) == {"side", "sign"}
    assert 0.0 <= metrics["tasks"]["side"]["accuracy"] <= 1.0


def test_plugin_architecture_is_ungated_by_its_class(tmp_path):
    config = validate_config(plugin_config("test_bottom"))
    metrics = train(config, str(tmp_path / "bottom"))
    assert metrics["step"] == 6
    raw = plugin_config("test_bottom")
    raw["model"]["experts"]["input"] = "raw"
    with pytest.raises(Exception, match="test_bottom architecture has no experts"):
        validate_config(raw)
