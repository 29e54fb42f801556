"""Batch normalisation in the training loop: moving statistics move in training only and agree across replicas,
synchronised batch norm equals one device, scales and offsets stay out of weight decay, XLA under `mirrored`,
mixed precision, and an exact resume with the weight average."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.errors import ConfigError
from moe_tf.models.normalization import moving_statistics, norm_layers, norm_parameters
from moe_tf.testing.configs import tiny_dict
from tests.conftest import multi_dict, straight_and_resumed
from tests.training.test_trainer import make_trainer, one_step, step_losses

RESNET = {"type": "resnet", "widths": [4, 8], "blocks": 1}


def bn_config(stem=None, **sections):
    """The tiny digits config with a residual stem (or `stem`)."""
    data = tiny_dict(**sections)
    data["model"]["stem"] = dict(stem or RESNET)
    return validate_config(data)


def values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


def test_moving_statistics_move_in_training_and_not_in_evaluation():
    trainer, data = make_trainer(bn_config(), tf.distribute.get_strategy())
    stats = moving_statistics(trainer.model)
    assert len(stats) == 2 * len(norm_layers(trainer.model)) == 2 * 6  # stem, 2 blocks × 2, 1 projection
    before = values(stats)
    trainer.evaluate(data.eval_dataset("eval", 64))
    for a, b in zip(before, values(stats)):
        np.testing.assert_array_equal(a, b)
    step_losses(trainer, data, 2)
    moved = [not np.allclose(a, b) for a, b in zip(before, values(stats))]
    assert all(moved), moved


def test_batch_norm_scales_and_offsets_are_left_out_of_weight_decay():
    config = bn_config(training={"optimizer": {"type": "adamw", "weight_decay": 0.01}})
    trainer, _ = make_trainer(config, tf.distribute.get_strategy())
    optimizer = trainer.optimizer
    params = norm_parameters(trainer.model)
    assert len(params) == 12 and not any(optimizer._use_weight_decay(v) for v in params)
    kernels = [v for v in trainer.model.trainable_variables if v.path.endswith("kernel")]
    assert kernels and all(optimizer._use_weight_decay(v) for v in kernels)


def test_the_conv_stems_batch_norm_takes_its_settings():
    stem = {"type": "conv", "filters": [8, 8], "batch_norm": {"momentum": 0.9, "epsilon": 1e-5}}
    trainer, _ = make_trainer(bn_config(stem), tf.distribute.get_strategy())
    layers = norm_layers(trainer.model)
    assert [(layer.momentum, layer.epsilon) for layer in layers] == [(0.9, 1e-5)] * 2
    convs = [v.path for v in trainer.model.trainable_variables if "/conv_" in v.path]
    assert convs and not any(p.endswith("bias") for p in convs)  # the batch norm's offset replaces the bias


def replica_values(variable) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variable.value.values]


def test_under_mirrored_every_replica_holds_the_same_moving_statistics(mirrored):
    config = bn_config()
    default, data = make_trainer(config, tf.distribute.get_strategy())
    other, _ = make_trainer(config, mirrored, default.model.get_weights())
    one_step(default, data)
    one_step(other, data)
    for variable in moving_statistics(other.model):
        copies = replica_values(variable)
        np.testing.assert_allclose(copies[0], copies[1], rtol=1e-6, atol=1e-7, err_msg=variable.path)
    # After one step from the same weights, the first layer's moving mean is the mean of the replicas' batch means:
    # that of the global batch, as on one device (its variance is the mean of the replicas' variances).
    first_mean = moving_statistics(default.model)[0]
    np.testing.assert_allclose(moving_statistics(other.model)[0].numpy(), first_mean.numpy(), rtol=1e-5, atol=1e-6)


def test_synchronized_batch_norm_under_mirrored_equals_one_device(mirrored):
    config = bn_config({**RESNET, "batch_norm": {"synchronized": True}})
    default, data = make_trainer(config, tf.distribute.get_strategy())
    other, _ = make_trainer(config, mirrored, default.model.get_weights())
    # Same global batches, normalised over the whole batch on both: equal losses and statistics (float32 sums in
    # another order: 1e-5).
    np.testing.assert_allclose(step_losses(default, data, 4), step_losses(other, data, 4), atol=1e-5)
    for a, b in zip(moving_statistics(default.model), moving_statistics(other.model)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


def test_batch_norm_compiles_with_xla_under_mirrored_unless_synchronized(mirrored):
    trainer, data = make_trainer(bn_config(training={"jit_compile": True}), mirrored)
    assert isinstance(trainer.compiled.forward_backward, tf.types.experimental.PolymorphicFunction)
    losses = step_losses(trainer, data, 2)
    assert np.isfinite(losses).all()
    copies = replica_values(moving_statistics(trainer.model)[-1])
    np.testing.assert_allclose(copies[0], copies[1], rtol=1e-6)
    synced = bn_config({**RESNET, "batch_norm": {"synchronized": True}}, training={"jit_compile": True})
    trainer, _ = make_trainer(synced, mirrored)
    assert not isinstance(trainer.compiled.forward_backward, tf.types.experimental.PolymorphicFunction)


def test_batch_norm_under_mixed_float16_keeps_float32_statistics():
    trainer, data = make_trainer(bn_config(training={"mixed_precision": "mixed_float16"}), tf.distribute.get_strategy())
    try:
        losses = step_losses(trainer, data, 2)
        stats = moving_statistics(trainer.model)
        assert np.isfinite(losses).all() and all(v.dtype == "float32" for v in stats)
        assert all(np.isfinite(v.numpy()).all() for v in stats)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_run_with_batch_norm_and_the_weight_average_resumes_exactly(tmp_path, capsys):
    config = tmp_path / "bn.yaml"
    data = tiny_dict(training={"ema_momentum": 0.9, "log_every": 5})
    data["model"]["stem"] = RESNET
    config.write_text(yaml.safe_dump(data))
    straight, resumed = straight_and_resumed(capsys, config, tmp_path, 12)
    moving = [n for n in straight if "moving_mean" in n]
    assert moving and sorted(straight) == sorted(resumed)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    averages = {}
    for run in ("straight", "resumed"):
        reader = tf.train.load_checkpoint(str(tmp_path / run / "checkpoints"))
        names = [n for n in reader.get_variable_to_shape_map() if n.startswith("average/")]
        averages[run] = {n: reader.get_tensor(n) for n in names}
    assert any("moving_variance" in n for n in averages["straight"])  # the average holds the statistics too
    assert sorted(averages["straight"]) == sorted(averages["resumed"])
    for name, value in averages["straight"].items():
        np.testing.assert_array_equal(value, averages["resumed"][name], err_msg=name)


def test_synchronized_batch_norm_in_a_run_with_several_sources_is_refused(tabular_npz):
    data = multi_dict(tabular_npz)
    data["model"]["stems"] = {"image": {**RESNET, "batch_norm": {"synchronized": True}}}
    with pytest.raises(ConfigError, match=r"model.stems.image.batch_norm.synchronized: not in a run with several"):
        build_components(validate_config(data), training=False)


def test_a_step_the_guard_skips_leaves_the_moving_statistics_as_they_were():
    """An infinite kernel in the stem's first convolution: its batch norm's batch moments are non-finite, the step is
    skipped, and every moving statistic keeps its value (one NaN would stay in them for good)."""
    trainer, data = make_trainer(bn_config(), tf.distribute.get_strategy())
    stats = moving_statistics(trainer.model)
    before = values(stats)
    kernel = next(v for v in trainer.model.trainable_variables if v.path.endswith("stem/conv/kernel"))
    kernel.assign(np.full(kernel.shape, np.inf, np.float32))
    one_step(trainer, data)
    assert int(trainer.read_and_reset_sums()["nonfinite"]) == 1
    for a, v in zip(before, stats):
        np.testing.assert_array_equal(a, v.numpy(), err_msg=v.path)
