"""The builder and every registered component, parametrised over the registries."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.config.loader import validate_config
from moe_tf.data import build_task_data
from moe_tf.models import build_model
from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.models.gates import GATES
from moe_tf.models.layers import DenseStack, ExpertPool
from moe_tf.models.stems import STEMS
from tests.conftest import tiny_config, tiny_dict


@pytest.fixture(scope="module")
def data():
    return build_task_data(tiny_config())


# what a stem needs besides its type to take the 8×8 digits (small where the defaults are large)
STEM_ARGS = {
    "keras_applications": {"name": "MobileNetV3Small", "resize": [32, 32]},
    "resnet": {"widths": [4, 8], "blocks": 1},
}


def images(n, seed=0):
    return {"image": np.random.default_rng(seed).integers(0, 255, (n, 8, 8, 1)).astype(np.uint8)}


@pytest.mark.parametrize("architecture", ARCHITECTURES.keys())
@pytest.mark.parametrize("stem", STEMS.keys())
def test_outputs_per_task(data, architecture, stem):
    raw = tiny_dict(model={"architecture": architecture})
    raw["model"]["stem"] = {"type": stem, **STEM_ARGS.get(stem, {})}
    config = validate_config(raw)
    model = build_model(config.model, data)
    out = model({"image": np.zeros((5, 8, 8, 1), np.uint8)})
    assert out["outputs"]["digit"].shape == (5, 10)
    assert out["outputs"]["high"].shape == (5, 1)
    if architecture in ("shared_bottom", "single_task"):
        assert out["gates"] == {} and model.task_gates() == {}
    else:
        for gate in model.task_gates().values():
            g = out["gates"][gate]["weights"].numpy()
            assert g.shape == (5, len(model.mixture.expert_names()[gate]))
            np.testing.assert_allclose(g.sum(-1), 1.0, rtol=1e-5)


def test_tasks_get_different_gates(data):
    model = build_model(tiny_config().model, data)
    gates = model(images(4))["gates"]
    assert not np.allclose(gates["digit"]["weights"].numpy(), gates["high"]["weights"].numpy())


def _round_trip(layer, x, part=lambda y: y):
    y = part(layer(x))
    clone = layer.__class__.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(part(clone(x))), keras.ops.convert_to_numpy(y), rtol=1e-6)


@pytest.mark.parametrize("gate", GATES.keys())
def test_gate_config_round_trip(gate):
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    _round_trip(GATES.get(gate)(num_experts=3, name="g"), x, lambda r: r["weights"])


@pytest.mark.parametrize("stem", STEMS.keys())
def test_stem_config_round_trip(stem):
    cls = STEMS.get(stem)
    if "categorical" in cls.modalities:  # the tabular stem: its inputs are part of its config
        categorical = {"dtype": "string", "shape": [], "modality": "categorical", "options": {"table_size": 9}}
        numeric = {"dtype": "float32", "shape": [3], "modality": "numeric"}
        x = {"c": np.array([0, 8], np.int32), "n": np.ones((2, 3), np.float32)}
        _round_trip(cls(inputs={"c": categorical, "n": numeric}, interaction="cross", name="s"), x)
        return
    x = (
        np.array([[3, 4, 5, 0, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0, 0, 0]], np.int32)
        if "text" in cls.modalities
        else np.ones((2, 8, 8, 1), np.float32)
    )
    args = {"application" if k == "name" else k: v for k, v in STEM_ARGS.get(stem, {}).items()}
    _round_trip(cls(name="s", **args), x)


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


def test_model_config_round_trip_and_saving(data, tmp_path):
    model = build_model(tiny_config().model, data)
    x = images(3)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x)["outputs"]["digit"].numpy(), model(x)["outputs"]["digit"].numpy(), rtol=1e-6)


def test_each_expert_is_initialised_like_a_dense_layer_alone():
    # Keras' glorot_uniform on [experts, in, out] would divide the variance by the number of experts.
    fan_in, fan_out, experts = 200, 100, 16
    pool = ExpertPool(experts, [fan_out])
    pool.build((None, fan_in))
    kernel = pool.kernels[0].numpy()  # [experts, in, out]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(kernel).max() <= limit * (1 + 1e-6)  # float32 rounding of the bound
    assert kernel.var() == pytest.approx(limit**2 / 3, rel=0.05)  # uniform(-l, l) has variance l² / 3
    dense = keras.layers.Dense(fan_out)
    dense.build((None, fan_in))
    assert kernel[0].var() == pytest.approx(dense.kernel.numpy().var(), rel=0.1)


def test_variable_groups_split_shared_and_task_variables(data):
    model = build_model(tiny_config().model, data)
    shared, own = model.variable_groups()
    paths = lambda vs: sorted(v.path.split("/", 1)[1] for v in vs)  # noqa: E731
    assert all(
        p.startswith(("backbone/encoder_image/", "backbone/trunk/", "mixture/level_0/experts_shared/"))
        for p in paths(shared)
    )
    for task in ("digit", "high"):
        assert paths(own[task]) == sorted(
            [
                f"tower_{task}/dense_0/kernel",
                f"tower_{task}/dense_0/bias",
                f"head_{task}/kernel",
                f"head_{task}/bias",
                f"mixture/level_0/gate_{task}/logits/kernel",
                f"mixture/level_0/gate_{task}/logits/bias",
            ]
        )
    assert len(shared) + sum(len(v) for v in own.values()) == len(model.trainable_variables)
    sb = build_model(validate_config(tiny_dict(model={"architecture": "shared_bottom"})).model, data)
    shared, own = sb.variable_groups()
    assert any("mixture/shared" in v.path for v in shared) and all(len(v) == 4 for v in own.values())


def test_a_stem_that_cannot_take_the_modality_is_a_clear_error(data):
    from moe_tf.errors import ConfigError

    raw = tiny_dict()
    raw["model"]["stems"] = {"imagee": {"type": "dense"}}
    with pytest.raises(ConfigError, match="model.stems.imagee: not a feature, source or modality of this run"):
        build_model(validate_config(raw).model, data)


def test_sources_with_one_feature_name_share_its_input_and_stem(tmp_path):
    from moe_tf.errors import ConfigError

    two = tiny_dict(data={"sources": {"more": {"type": "digits", "test_fraction": 0.5}}})
    two["tasks"][1]["dataset"] = "more"
    data = build_task_data(validate_config(two))
    assert list(data.features) == ["image"] and data.multi_source
    model = build_model(validate_config(two).model, data)
    assert list(model.encoders) == ["image"]  # one input, one stem, for both sources
    np.savez(tmp_path / "small.npz", image=np.zeros((20, 4, 4), np.uint8), y=np.arange(20) % 2)
    clash = tiny_dict(
        data={
            "sources": {
                "small": {
                    "type": "npz",
                    "path": str(tmp_path / "small.npz"),
                    "features": ["image"],
                    "labels": ["y"],
                    "modality": {"image": "image"},
                }
            }
        }
    )
    clash["tasks"][1] = {"name": "y", "dataset": "small", "label": "y", "type": "binary"}
    with pytest.raises(
        ConfigError,
        match=r"data.sources.small: feature 'image' \(uint8 \[4, 4, 1\], image\) differs "
        r"from the feature 'image' of data.sources.digits \(uint8 \[8, 8, 1\]",
    ):
        build_task_data(validate_config(clash))


def test_string_features_get_a_string_signature_and_the_bag_stem_by_default():
    from moe_tf.data.base import FeatureSpec
    from moe_tf.errors import ConfigError
    from moe_tf.export.saved_model import signature_specs
    from moe_tf.models.builder import resolve_stems

    text = FeatureSpec("string", (), "text")
    (spec,) = signature_specs({"review": text}, ["review"])[0].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None] and spec.name == "review"
    assert text.zeros(2).numpy().tolist() == [b"", b""]
    stems = resolve_stems(tiny_config().model, {"review": text}, {"reviews": ["review"]})
    assert stems["review"].type == "bag"  # model.stem (conv) does not take text: the modality's default does
    with pytest.raises(ConfigError, match=r"model\.stems\.text: stem 'conv' does not take text inputs"):
        resolve_stems(
            validate_config(tiny_dict(model={"stems": {"text": {"type": "conv"}}})).model,
            {"review": text},
            {"reviews": ["review"]},
        )


def test_a_config_that_names_no_stem_gets_each_modality_default(tabular_npz):
    from moe_tf.models.stems.conv import ConvStem
    from moe_tf.models.stems.dense import DenseStem
    from tests.conftest import multi_dict

    raw = multi_dict(tabular_npz)
    del raw["model"]["stem"], raw["model"]["stems"]
    config = validate_config(raw)
    model = build_model(config.model, build_task_data(config))
    assert isinstance(model.encoders["image"].stem, ConvStem) and model.encoders["image"].stem.filters == [32, 64]
    assert isinstance(model.encoders["x"].stem, DenseStem) and model.encoders["x"].stem.units == [128]
    assert model.get_config()["stems"] == {
        "image": {
            "type": "conv",
            "filters": None,
            "layers": None,
            "kernel_size": 3,
            "batch_norm": False,
            "flatten": True,
        },
        "x": {"type": "dense", "units": [128]},
    }


def test_the_model_rebuilds_from_its_keras_config_with_typed_configs_inside():
    """Layers take config objects from the builder and plain mappings from Keras' `from_config`: both build the same
    model (same variables; same outputs once the weights are copied)."""
    from moe_tf.config.schema import ModelConfig
    from moe_tf.models.builder import example_inputs
    from moe_tf.models.multitask import MultiTaskModel

    config = validate_config(tiny_dict(model={"gate": {"type": "noisy_top_k", "k": 2}}))
    data = build_task_data(config)
    model = build_model(config.model, data)
    assert type(model.config) is ModelConfig and model.config.gate.k == 2
    rebuilt = MultiTaskModel.from_config(model.get_config())
    inputs = example_inputs(data.features, batch=3)
    rebuilt(inputs, training=False)
    assert rebuilt.config == model.config and type(rebuilt.mixture.gate_config) is type(model.mixture.gate_config)
    assert [v.path for v in rebuilt.weights] == [v.path for v in model.weights]
    rebuilt.set_weights(model.get_weights())
    for task, logits in model(inputs, training=False)["outputs"].items():
        np.testing.assert_allclose(rebuilt(inputs, training=False)["outputs"][task], logits, rtol=1e-6)


@pytest.mark.parametrize("activation", ["gelu", "silu", "tanh", "elu"])
def test_model_activation_reaches_the_trunk_experts_and_towers(data, activation):
    """`model.activation` is what the trunk, every expert and the towers apply: each against numpy's formula on
    the layer's own weights."""
    from tests.models.test_architectures import np_activation, np_experts

    model = build_model(tiny_config(model={"activation": activation}).model, data)
    rng = np.random.default_rng(1)

    def np_stack(stack, h):
        for layer in stack.dense_layers:
            h = np_activation(activation, h @ layer.kernel.numpy() + layer.bias.numpy())
        return h

    pool = model.mixture.levels[0].pools["shared"]
    for layer, reference, width in (
        (model.backbones["shared"].trunk, np_stack, None),
        (pool, lambda p, h: np_experts(p, h, activation), pool.kernels[0].shape[1]),
        (model.towers["digit"], np_stack, None),
    ):
        width = width or layer.dense_layers[0].kernel.shape[0]
        x = rng.normal(0, 2, (5, width)).astype(np.float32)
        np.testing.assert_allclose(
            layer(x).numpy(), reference(layer, x.astype(np.float64)), rtol=1e-4, atol=1e-5, err_msg=layer.name
        )


@pytest.mark.parametrize("normalize", [True, False])
def test_normalize_numeric_standardises_with_the_training_rows_or_passes_through(tabular_npz, normalize):
    """normalize_numeric true: the model's first step on a numeric input is (x - mean) / sqrt(var + 1e-6) with
    numpy's statistics of the training split; false: the raw values, and no statistics in the model."""
    from tests.conftest import multi_dict

    raw = multi_dict(tabular_npz, model={"normalize_numeric": normalize})
    del raw["data"]["sources"]["digits"]
    raw["tasks"] = raw["tasks"][1:]
    config = validate_config(raw)
    data = build_task_data(config)
    model = build_model(config.model, data)
    train_x = np.concatenate([x["x"] for x, _ in data.sources["tab"].splits["train"].batch(1000).as_numpy_iterator()])
    assert train_x.shape == (420, 6)
    x = np.random.default_rng(2).normal(2.0, 3.0, (4, 6)).astype(np.float32)
    got = model.encoders["x"].preprocess(x).numpy()
    if normalize:
        mean, var = train_x.astype(np.float64).mean(0), train_x.astype(np.float64).var(0)
        np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-6), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, x)
        assert not model.encoders["x"].preprocess.weights
