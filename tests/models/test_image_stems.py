"""The residual stem and the Keras Applications stem: their layouts, training, export and serving of raw uint8 images,
frozen and partly trained backbones, weights from a file, and the errors a user meets."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.components import build_components, restore_components
from moe_tf.config.loader import validate_config
from moe_tf.errors import ConfigError
from moe_tf.models.normalization import moving_statistics
from moe_tf.testing.configs import tiny_dict
from tests.conftest import run_fresh_python, run_main
from tests.training.test_trainer import make_trainer, step_losses

MOBILENET = {"type": "keras_applications", "name": "MobileNetV3Small", "resize": [32, 32]}


def stem_dict(stem, **sections) -> dict:
    data = tiny_dict(**sections)
    data["model"]["stem"] = dict(stem)
    return data


def stem_of(model):
    return model.backbones["shared"].encoders["image"].stem


def test_the_residual_stem_builds_the_cifar_resnet_layout():
    config = validate_config(stem_dict({"type": "resnet", "blocks": [3, 3, 3]}))  # ResNet-20's 19 conv layers
    parts = build_components(config, training=False)
    stem = stem_of(parts.model)
    assert [b.name for b in stem.stages][::3] == ["stage0_block0", "stage1_block0", "stage2_block0"]
    assert [(b.filters, b.stride, b.project) for b in stem.stages[::3]] == [
        (16, 1, False),
        (32, 2, True),
        (64, 2, True),
    ]
    convs = [v for v in stem.trainable_variables if v.path.endswith("kernel") and "proj" not in v.path]
    assert len(convs) == 19
    # The 8×8 digits: 8 → 4 → 2 after the two stride-2 stages; pooled to the last width.
    out = stem(tf.zeros((2, 8, 8, 1)), training=False)
    assert out.shape == (2, 64)
    # zero_init_residual: each block's last scale starts at 0 (the block starts as the identity plus shortcut)
    assert all(not np.any(b.bn2.gamma.numpy()) for b in stem.stages)


@pytest.mark.parametrize(
    "stem, message",
    [
        ({"type": "resnet", "widths": [16, 32], "blocks": [1, 2, 3]}, r"blocks: one positive count, or one per stage"),
        ({"type": "resnet", "blocks": 0}, r"blocks: one positive count"),
        ({"type": "keras_applications", "name": "MobileNetV3Smal"}, r"not a Keras Applications .*MobileNetV3Small"),
        ({"type": "keras_applications", "name": "ResNet50"}, r"ResNet50 does not take \[8, 8, 3\] inputs.*resize"),
        ({**MOBILENET, "trainable": 0}, r"trainable.*positive count"),
        ({**MOBILENET, "weights": "/nowhere/m.weights.h5"}, r"model.stem.weights: no file '/nowhere/m.weights.h5'"),
    ],
)
def test_image_stem_config_errors(stem, message, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(stem_dict(stem)))
    code, _, err = run_main(capsys, "train", "--config", path, "--output-dir", tmp_path / "run")
    assert code != 0 and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_imagenet_weights_offline_fail_fast_with_a_clear_error(tmp_path, monkeypatch):
    import urllib.error

    from keras.src.backend import config as keras_config

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras"))  # an empty cache
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", offline)
    config = validate_config(stem_dict({**MOBILENET, "weights": "imagenet"}))
    parts = build_components(config, training=False)
    with pytest.raises(ConfigError) as e:
        parts.model.load_pretrained()
    message = str(e.value)
    assert "imagenet: the ImageNet weights of MobileNetV3Small are not in Keras' cache" in message
    assert str(tmp_path / "keras" / "models") in message and "weights: null" in message


def test_a_weights_file_loads_into_the_backbone(tmp_path):
    reference = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    path = str(tmp_path / "mobilenet.weights.h5")
    reference.save_weights(path)
    config = validate_config(stem_dict({**MOBILENET, "weights": path}))
    parts = build_components(config, training=False)
    assert parts.model.load_pretrained() == [f"MobileNetV3Small: weights from {path}"]
    backbone = stem_of(parts.model).backbone
    for a, b in zip(reference.weights, backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_frozen_backbone_keeps_its_weights_and_statistics_while_the_rest_trains():
    trainer, data = make_trainer(
        validate_config(stem_dict({**MOBILENET, "trainable": False})), tf.distribute.get_strategy()
    )
    backbone = stem_of(trainer.model).backbone
    assert not backbone.trainable_weights
    frozen = [np.array(v.numpy()) for v in backbone.weights]
    rest = [np.array(v.numpy()) for v in trainer.model.trainable_variables]
    step_losses(trainer, data, 2)
    for before, v in zip(frozen, backbone.weights):
        np.testing.assert_array_equal(before, v.numpy(), err_msg=v.path)
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(rest, trainer.model.trainable_variables))


def test_the_last_n_layers_train_and_their_batch_norms_stay_frozen():
    trainer, data = make_trainer(
        validate_config(stem_dict({**MOBILENET, "trainable": 6})), tf.distribute.get_strategy()
    )
    backbone = stem_of(trainer.model).backbone
    last = backbone.layers[-6:]
    trained = {id(v) for v in backbone.trainable_weights}
    assert trained == {
        id(v) for layer in last if not isinstance(layer, keras.layers.BatchNormalization) for v in layer.weights
    }
    assert trained and all(not layer.trainable for layer in backbone.layers[:-6])
    stats = [np.array(v.numpy()) for v in moving_statistics(trainer.model)]
    step_losses(trainer, data, 2)
    for before, v in zip(stats, moving_statistics(trainer.model)):
        np.testing.assert_array_equal(before, v.numpy(), err_msg=v.path)


FRESH = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "moe_tf" not in sys.modules
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = m.signatures["serving_default"](image=tf.constant(x))
print(json.dumps({"digit": out["digit"].numpy().tolist(), "dtype": str(x.dtype)}))
"""


def test_an_applications_stem_trains_exports_and_serves_uint8_images(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(stem_dict({**MOBILENET, "weights": None}, training={"steps": 2})))
    run_dir = tmp_path / "run"
    code, out, err = run_main(capsys, "train", "--config", path, "--output-dir", run_dir)
    assert code == 0, err[-3000:]
    parts, _ = restore_components(str(run_dir))
    inputs, _, _ = next(iter(parts.data.eval_dataset("test", 8)))
    assert inputs["image"].dtype == tf.uint8
    np.save(tmp_path / "x.npy", inputs["image"].numpy())
    logits = parts.model(inputs, training=False)["outputs"]["digit"].numpy()
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    got = run_fresh_python(FRESH, run_dir / "export", tmp_path / "x.npy", cwd=tmp_path)
    assert got["dtype"] == "uint8"
    np.testing.assert_allclose(got["digit"], expected, rtol=1e-4, atol=1e-6)


def test_a_weights_file_of_another_network_is_a_clear_error(tmp_path):
    other = keras.applications.MobileNetV3Large(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = str(tmp_path / "large.weights.h5")
    other.save_weights(path)
    parts = build_components(validate_config(stem_dict({**MOBILENET, "weights": path})), training=False)
    with pytest.raises(ConfigError, match=r"weights: '.*large.weights.h5' does not load into MobileNetV3Small"):
        parts.model.load_pretrained()


def test_model_l2_reaches_the_backbones_kernels():
    config = validate_config(stem_dict(MOBILENET, model={"l2": 1e-4}))
    parts = build_components(config, training=False)
    backbone = stem_of(parts.model).backbone
    kernels = [v for v in backbone.trainable_weights if v.path.endswith("kernel")]
    assert any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in backbone.layers)
    assert len(backbone.losses) == len(kernels) > 0


def test_a_backbones_variable_paths_do_not_depend_on_what_the_process_built_before():
    """EfficientNet's input Normalization layer has no name of its own; Keras would number it by the models the
    process made before, and a checkpoint or --init-from would miss it."""
    stem = {"type": "keras_applications", "name": "EfficientNetB0", "resize": [32, 32]}
    paths = []
    for _ in range(2):
        parts = build_components(validate_config(stem_dict(stem)), training=False)
        paths.append(sorted(v.path for v in parts.model.weights))
    assert paths[0] == paths[1]
    assert any("/normalization/" in p for p in paths[0])
