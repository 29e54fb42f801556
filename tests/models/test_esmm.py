"""Entire-space multi-task tasks (`product_of`, ESMM): the product's logit and gradients by hand, the config checks,
and a run from YAML whose export serves every task with the product equal to its factors' product."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.config.loader import validate_config
from moe_tf.data.synthetic_ctr_cvr import generate
from moe_tf.errors import ConfigError
from moe_tf.models.layers import product_logits
from tests.conftest import REPO, run_main


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_the_product_logit_and_its_gradients_by_hand():
    a = tf.Variable([[0.3], [-2.0], [4.0], [-30.0]])
    b = tf.Variable([[1.2], [0.5], [-1.0], [2.0]])
    y = tf.constant([1.0, 0.0, 1.0, 0.0])
    with tf.GradientTape() as tape:
        z = product_logits([a, b])[:, 0]
        loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z))
    ga, gb = tape.gradient(loss, [a, b])
    pa, pb = sigmoid(a.numpy()[:, 0].astype(np.float64)), sigmoid(b.numpy()[:, 0].astype(np.float64))
    p = pa * pb
    np.testing.assert_allclose(sigmoid(z.numpy().astype(np.float64)), p, rtol=1e-5)
    # d/da of -(y log p + (1 - y) log(1 - p)) with p = σ(a)σ(b): dp/da = p (1 - σ(a))
    dl_dp = -(y.numpy() / p) + (1 - y.numpy()) / (1 - p)
    np.testing.assert_allclose(ga.numpy()[:, 0], dl_dp * p * (1 - pa), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gb.numpy()[:, 0], dl_dp * p * (1 - pb), rtol=1e-4, atol=1e-7)
    assert np.isfinite(product_logits([tf.constant([[50.0]]), tf.constant([[50.0]])]).numpy()).all()


def esmm_dict(**tasks_changes):
    config = yaml.safe_load(open(f"{REPO}/configs/esmm_synthetic.yaml"))
    config["data"]["sources"]["impressions"]["size"] = 3000
    config["training"] = {"epochs": 2, "batch_size": 256, "log_every": 5}
    config["logging"] = {"progress": "lines"}
    return config


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t[2].update(product_of=["ctr", "nope"]), r"tasks\[2\]\.product_of\[1\]: no task 'nope'"),
        (lambda t: t[2].update(product_of=["ctr", "ctcvr"]), r"product_of\[1\]: task 'ctcvr' cannot be a factor"),
        (lambda t: t[1].update(type="regression", metrics=["mae"]), r"product_of\[1\]: 'cvr' is a regression task"),
        (lambda t: t[2].update(type="classification", metrics=None), r"tasks\[2\]\.type: a product_of task is binary"),
        (lambda t: t[2].update(product_of=["ctr"]), r"product_of"),
    ],
)
def test_bad_products_are_config_errors(change, message):
    config = esmm_dict()
    change(config["tasks"])
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_a_factors_weight_defaults_to_zero():
    config = validate_config(esmm_dict())
    assert {t.name: t.weight for t in config.tasks} == {"ctr": 1.0, "cvr": 0.0, "ctcvr": 1.0}


def test_esmm_from_yaml_serves_every_task_with_the_product(tmp_path, capsys):
    (tmp_path / "esmm.yaml").write_text(yaml.safe_dump(esmm_dict()))
    code, out, err = run_main(capsys, "train", "--config", tmp_path / "esmm.yaml", "--output-dir", tmp_path / "run")
    assert code == 0, err[-3000:]
    assert "cvr (binary on impressions, 2 classes, factor of ctcvr, no loss of its own)" in err
    features, _ = generate(50, 2000, 1000, 8, 8, -3.0, -1.0, seed=9)
    served = tf.saved_model.load(str(tmp_path / "run" / "export")).signatures["serving_default"](
        user=tf.constant(features["user"]), item=tf.constant(features["item"]), context=tf.constant(features["context"])
    )
    ctr, cvr, ctcvr = (served[t].numpy()[:, 1] for t in ("ctr", "cvr", "ctcvr"))
    np.testing.assert_allclose(ctcvr, ctr * cvr, rtol=1e-4, atol=1e-7)
    assert cvr.std() > 1e-3  # the factor without a loss of its own still learned something per impression
