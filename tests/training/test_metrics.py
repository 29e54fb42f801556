"""Metrics from additive sums equal scikit-learn's on the same predictions, alone and summed over batches and
replicas (an evaluation under `default` and under `mirrored`)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.config.schema import METRICS_BY_TYPE, lower_is_better
from moe_tf.data.tasks import TaskInfo
from moe_tf.testing.files import write_census_csv
from moe_tf.training.metrics import METRICS, group_auc, metric_sums, metric_values
from tests.conftest import census_dict


def task(kind, metrics, classes=2):
    return TaskInfo("t", kind, classes, [], 1.0, "crossentropy", metrics, "s", "y", None, [], num_thresholds=4000)


def sums_over_batches(t, logits, target, batches=3):
    """Sums of `metric_sums` over a few batches (as steps and replicas add them), with the loss sums."""
    total = {}
    for part_logits, part_target in zip(np.array_split(logits, batches), np.array_split(target, batches)):
        z = tf.constant(part_logits, tf.float32)
        y = tf.constant(part_target, tf.float32 if t.kind == "regression" else tf.int64)
        mask = tf.ones([len(part_target)])
        if t.kind == "binary":
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y, tf.float32), logits=z[:, 0])
        elif t.kind == "classification":
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)
        else:
            loss = tf.square(z[:, 0] - y)
        y = tf.cast(y, tf.float32) if t.kind != "classification" else y
        sums = {"loss_sum": tf.reduce_sum(loss), "count": tf.reduce_sum(mask), **metric_sums(t, z, y, mask)}
        for k, v in sums.items():
            total[k] = total.get(k, 0.0) + v.numpy().astype(np.float64)
    return total


def test_the_schema_lists_every_metric_the_step_computes():
    assert {kind: sorted(names) for kind, names in METRICS_BY_TYPE.items()} == {
        kind: sorted(names) for kind, names in METRICS.items()
    }
    assert lower_is_better("eval/income/logloss") and lower_is_better("rmse") and not lower_is_better("eval/a/auc")


@pytest.mark.parametrize("rate", [0.5, 0.06])
def test_binary_metrics_equal_scikit_learn(rate):
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < rate).astype(np.int64)
    logits = (rng.normal(size=3000) + 1.5 * y - 2.0 * (rate < 0.5))[:, None]
    names = METRICS_BY_TYPE["binary"]
    got = metric_values(task("binary", names), sums_over_batches(task("binary", names), logits, y))
    p = 1 / (1 + np.exp(-logits[:, 0]))
    predicted = (p > 0.5).astype(int)
    expected = {
        "accuracy": sk.accuracy_score(y, predicted),
        "auc": sk.roc_auc_score(y, p),
        "pr_auc": sk.average_precision_score(y, p),
        "logloss": sk.log_loss(y, p),
        "precision": sk.precision_score(y, predicted, zero_division=0),
        "recall": sk.recall_score(y, predicted),
        "f1": sk.f1_score(y, predicted),
        "positive_rate": y.mean(),
        "mean_prediction": p.mean(),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-3), name
    assert got["loss"] == pytest.approx(expected["logloss"], abs=1e-5)


def test_classification_and_regression_metrics_equal_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 500)
    y[y == 3] = 2  # class 3 never true; predicted sometimes (scikit-learn counts it)
    logits = rng.normal(size=(500, 4)) + 2.0 * np.eye(4)[y]
    t = task("classification", METRICS_BY_TYPE["classification"], classes=4)
    got = metric_values(t, sums_over_batches(t, logits, y))
    assert got["macro_f1"] == pytest.approx(sk.f1_score(y, logits.argmax(-1), average="macro"), abs=1e-6)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, logits.argmax(-1)), abs=1e-6)
    assert got["logloss"] == pytest.approx(sk.log_loss(y, tf.nn.softmax(logits).numpy(), labels=range(4)), abs=1e-4)

    target = rng.normal(3.0, 2.0, 400)
    prediction = target + rng.normal(0, 0.7, 400)
    t = task("regression", METRICS_BY_TYPE["regression"], classes=1)
    got = metric_values(t, sums_over_batches(t, prediction[:, None], target))
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(target, prediction), abs=1e-4)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(target, prediction)), abs=1e-4)
    assert got["r2"] == pytest.approx(sk.r2_score(target, prediction), abs=1e-4)


def test_group_auc_weighs_each_groups_auc_by_its_size_and_skips_one_class_groups():
    groups = np.array([7, 7, 7, 7, 3, 3, 3, 9, 9])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.5, 0.2, 0.3, 0.9])
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1])  # group 9 has one class: left out
    expected = (
        sk.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) * 4 + sk.roc_auc_score([1, 0, 0], [0.5, 0.5, 0.2]) * 3
    ) / 7
    assert group_auc(groups, scores, labels) == pytest.approx(expected)


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_an_evaluation_equals_scikit_learn_on_the_models_predictions(tmp_path, mirrored, strategy_name):
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=3000))
    data["tasks"][0].update(metrics=["auc", "pr_auc", "logloss", "f1", "gauc"], group_by="user")
    config = validate_config(data)
    strategy = mirrored if strategy_name == "mirrored" else tf.distribute.get_strategy()
    parts = build_components(config, strategy, training=False)
    with strategy.scope():  # weights that rank the examples unlike a fresh model's
        for v in parts.model.trainable_variables:
            v.assign(tf.random.stateless_normal(v.shape, [1, 2], stddev=0.3))
    got = parts.evaluate("test")["tasks"]["bought"]
    labels, probabilities = [], []
    for x, y, _w in parts.data.eval_dataset("test", 64):
        z = parts.model(x, training=False)["outputs"]["bought"][:, 0]
        labels.append(y["bought"].numpy())
        probabilities.append(tf.sigmoid(z).numpy())
    y, p = np.concatenate(labels), np.concatenate(probabilities)
    assert len(y) == 600 and 0.05 < y.mean() < 0.95
    assert got["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-3)
    assert got["pr_auc"] == pytest.approx(sk.average_precision_score(y, p), abs=1e-3)
    assert got["logloss"] == pytest.approx(sk.log_loss(y, p), abs=1e-3)
    assert got["f1"] == pytest.approx(sk.f1_score(y, (p > 0.5).astype(int)), abs=1e-3)
    users = parts.data.sources["census"].arrays["test"][0]["user"]
    total = weight = 0.0
    for user in set(users.tolist()):
        mine = users == user
        if 0 < y[mine].sum() < mine.sum():
            total += sk.roc_auc_score(y[mine], p[mine]) * mine.sum()
            weight += mine.sum()
    assert weight > 300 and got["gauc"] == pytest.approx(total / weight, abs=1e-6)
