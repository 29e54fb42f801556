"""Mixup: seeded draws, the mixed images and the mixed loss, runs it cannot mix, and an exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.config.loader import validate_config
from moe_tf.testing.configs import tiny_dict
from moe_tf.training.mixup import Mixup
from tests.conftest import multi_dict, run_main, straight_and_resumed
from tests.training.test_trainer import make_trainer, step_losses


def test_draws_are_seeded_by_the_step():
    mixup = Mixup(0.4, 7, ["image"])
    lam, order = mixup.draw(tf.constant(5, tf.int64), 16)
    again, same = mixup.draw(tf.constant(5, tf.int64), 16)
    assert float(lam) == float(again) and order.numpy().tolist() == same.numpy().tolist()
    assert sorted(order.numpy().tolist()) == list(range(16))
    draws = [float(mixup.draw(tf.constant(s, tf.int64), 16)[0]) for s in range(200)]
    assert all(0.0 <= d <= 1.0 for d in draws) and len(set(draws)) == 200
    # Beta(0.4, 0.4) is U-shaped: most draws near 0 or 1; its mean is 1/2
    assert np.mean([d < 0.1 or d > 0.9 for d in draws]) > 0.4 and abs(np.mean(draws) - 0.5) < 0.07


def test_the_step_mixes_images_and_losses():
    config = validate_config(tiny_dict(data={"augmentation": {"mixup": 0.4}}))
    trainer, data = make_trainer(config, tf.distribute.get_strategy())
    inputs, labels, weights = next(iter(data.train_dataset(32, 0, 1)))
    weights = trainer._global_weights(weights)
    draw = trainer.mixup.draw(trainer.optimizer.iterations, 32)
    lam, order = draw.lam.numpy(), draw.order.numpy()
    mixed = trainer.mixup.mix(inputs, draw)
    x = inputs["image"].numpy().astype(np.float32)
    np.testing.assert_allclose(mixed["image"].numpy(), lam * x + (1 - lam) * x[order], rtol=1e-6)
    logits = trainer.model(mixed, training=True)["outputs"]["digit"].numpy()  # no dropout: the step's logits
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    y, w = labels["digit"].numpy(), weights["digit"].numpy()
    ce = -log_p[np.arange(32), y]
    ce_partner = -log_p[np.arange(32), y[order]]
    expected = lam * (w * ce).sum() + (1 - lam) * (w[order] * ce_partner).sum()
    losses = trainer.forward_backward(inputs, labels, weights, draw).losses.numpy()
    assert losses[0] == pytest.approx(expected, rel=1e-5)
    assert 0.0 < lam < 1.0 and order.tolist() != list(range(32))


def test_runs_mixup_cannot_mix_are_refused(tabular_npz, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(multi_dict(tabular_npz, data={"augmentation": {"mixup": 0.2}})))
    code, _, err = run_main(capsys, "train", "--config", path, "--output-dir", tmp_path / "run")
    assert code != 0 and "Traceback" not in err
    assert "data.augmentation.mixup: mixup mixes image inputs; input" in err, err


def test_a_run_with_mixup_and_cutout_resumes_exactly(tmp_path, capsys):
    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(data={"augmentation": {"mixup": 0.3, "cutout": 3}})))
    straight, resumed = straight_and_resumed(capsys, config, tmp_path, 10)
    assert sorted(straight) == sorted(resumed)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_mixup_trains_inside_an_xla_compiled_step():
    """The draw (a gamma sample XLA has no kernel for) happens outside the compiled step."""
    config = validate_config(tiny_dict(data={"augmentation": {"mixup": 0.4}}, training={"jit_compile": True}))
    trainer, data = make_trainer(config, tf.distribute.get_strategy())
    losses = step_losses(trainer, data, 2)
    assert np.isfinite(losses).all() and int(trainer.optimizer.iterations.numpy()) == 3
