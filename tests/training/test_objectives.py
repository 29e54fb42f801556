"""Loss and metric values against numpy on hand-made logits and labels (missing labels excluded), and a model's
evaluation of each regression loss against numpy on its own outputs."""

import numpy as np
import pytest
import tensorflow as tf

from moe_tf.data.tasks import TaskInfo
from moe_tf.training.objectives import summarize, task_stats


def task(kind, loss, metrics, units):
    return TaskInfo(
        name="t",
        kind=kind,
        num_classes=units,
        class_names=[str(i) for i in range(units)],
        weight=1.0,
        loss=loss,
        metrics=metrics,
        source="s",
        label="t",
        label_table=None,
        features=["x"],
    )


def summary_of(t, logits, labels):
    stats, _ = task_stats(t, tf.constant(logits, tf.float32), tf.constant(labels))
    return summarize({"tasks": {"t": {k: v.numpy() for k, v in stats.items()}}, "gates": {}}, [t])["tasks"]["t"]


def test_classification_loss_accuracy_and_top5_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 10))
    labels = rng.integers(0, 10, 40)
    labels[::5] = -1  # missing: left out of every value
    summary = summary_of(task("classification", "cross_entropy", ["accuracy", "top5_accuracy"], 10), logits, labels)
    kept = labels >= 0
    z, y = logits[kept], labels[kept]
    log_p = z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
    top5 = np.argsort(-z, axis=-1)[:, :5]
    assert summary["loss"] == pytest.approx(-log_p[np.arange(len(y)), y].mean(), rel=1e-5)
    assert summary["accuracy"] == pytest.approx((z.argmax(-1) == y).mean(), abs=1e-7)
    expected_top5 = np.mean([label in row for label, row in zip(y, top5)])
    assert 0.3 < expected_top5 < 0.8  # neither all nor none: the value says something
    assert summary["top5_accuracy"] == pytest.approx(expected_top5, abs=1e-7)


def test_top5_by_hand():
    """Three classes of ten: the label is 2nd, 5th and 6th most likely."""
    logits = np.array([np.arange(10.0)[::-1]] * 3)  # class 0 most likely, class 9 least
    summary = summary_of(task("classification", "cross_entropy", ["top5_accuracy"], 10), logits, np.array([1, 4, 5]))
    assert summary["top5_accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_losses_and_metrics_by_hand(loss):
    """Errors 0.5, -2, 3 and a missing target: squared 0.25, 4, 9; absolute 0.5, 2, 3; huber (delta 1) 0.125,
    1.5, 2.5."""
    outputs = np.array([[1.5], [0.0], [5.0], [7.0]])
    targets = np.array([1.0, 2.0, 2.0, np.nan], np.float32)
    summary = summary_of(task("regression", loss, ["mae", "mse"], 1), outputs, targets)
    expected = {"mse": (0.25 + 4 + 9) / 3, "mae": (0.5 + 2 + 3) / 3, "huber": (0.125 + 1.5 + 2.5) / 3}[loss]
    assert summary["loss"] == pytest.approx(expected, rel=1e-6)
    assert summary["mae"] == pytest.approx(5.5 / 3, rel=1e-6)
    assert summary["mse"] == pytest.approx(13.25 / 3, rel=1e-6)


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_a_regression_tasks_loss_is_the_configured_one(tabular_npz, loss):
    """`tasks[].loss` reaches the evaluation: the model's test loss for `score` is numpy's mae or huber of its own
    outputs against the targets (missing targets left out)."""
    from moe_tf.components import build_components
    from moe_tf.config.loader import validate_config
    from tests.conftest import multi_dict

    raw = multi_dict(tabular_npz)
    del raw["data"]["sources"]["digits"]
    raw["tasks"] = raw["tasks"][1:]
    raw["tasks"][1]["loss"] = loss
    parts = build_components(validate_config(raw), training=False)
    errors = []
    for x, y, _ in parts.data.eval_dataset("test", 64):
        score = y["score"].numpy()
        out = parts.model(x, training=False)["outputs"]["score"].numpy()[:, 0].astype(np.float64)
        errors.append((out - score)[~np.isnan(score)])
    err = np.abs(np.concatenate(errors))
    assert len(err) > 50 and (err > 1).any() and (err < 1).any()  # both branches of huber
    expected = err.mean() if loss == "mae" else np.where(err <= 1, 0.5 * err**2, err - 0.5).mean()
    summary = parts.evaluate("test")["tasks"]["score"]
    assert summary["loss"] == pytest.approx(expected, rel=1e-5)
    assert summary["mae"] == pytest.approx(err.mean(), rel=1e-5)
    assert summary["mse"] == pytest.approx((err**2).mean(), rel=1e-5)
