"""The non-finite guard: a real NaN/Inf (an outlier regression target whose squared error overflows float32) under
each guard action, each in-process strategy, each weighting and mixed precision. The update of that step is never
applied, nothing non-finite reaches the weights, and `stop` names the task and the step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.training.hooks import TrainerHooks
from moe_tf.training.nonfinite import NonfiniteError
from tests.conftest import tiny_dict

OUTLIER = 1e30  # finite, but its square (the loss) is +inf in float32


def write_outlier_npz(path, n=256, seed=0, outliers=(11,)):
    """Features `x`, a binary `kind` and a regression `score` whose rows `outliers` hold OUTLIER."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, 4)).astype(np.float32)
    kind = (x[:, 0] > 0).astype(np.int64)
    score = (x[:, 1] - 0.5 * x[:, 2]).astype(np.float32)
    score[list(outliers)] = OUTLIER
    np.savez(path, x=x, kind=kind, score=score)
    return str(path)


@pytest.fixture(scope="module")
def outlier_npz(tmp_path_factory):
    return write_outlier_npz(tmp_path_factory.mktemp("data") / "outlier.npz")


def outlier_config(npz, action="skip", weighting="fixed", **training):
    raw = tiny_dict(
        data={
            "sources": {
                "tab": {
                    "type": "npz",
                    "path": npz,
                    "features": ["x"],
                    "labels": ["kind", "score"],
                    "eval_fraction": 0.0,
                    "test_fraction": 0.1,
                }
            }
        },
        model={
            "stems": {"numeric": {"type": "dense", "units": [16]}},
            "trunk": {"units": [16]},
            "experts": {"count": 2, "units": [8]},
            "tower": {"units": [8]},
        },
        training={
            "batch_size": 32,
            "log_every": 1,
            "epochs": 1,
            "nonfinite": {"action": action},
            "weighting": {"type": weighting},
            "optimizer": {"learning_rate": 0.01},
            **training,
        },
    )
    raw["data"].pop("shuffle_buffer", None)
    raw["tasks"] = [
        {"name": "kind", "dataset": "tab", "label": "kind", "type": "binary"},
        {"name": "score", "dataset": "tab", "label": "score", "type": "regression"},
    ]
    return validate_config(raw)


class Recorder(TrainerHooks):
    def __init__(self):
        self.reports, self.learning_rates = [], []

    def on_train_log(self, step, summary):
        self.learning_rates.append(summary["learning_rate"])
        assert np.isfinite(summary["loss"]), "a skipped step's statistics reached the log"

    def on_nonfinite(self, step, report):
        self.reports.append((step, report))


def build(config, strategy):
    keras.utils.set_random_seed(config.experiment.seed)
    parts = build_components(config, strategy)
    return parts, parts.trainer()


def finite_weights(parts):
    return all(np.all(np.isfinite(w)) for w in parts.model.get_weights())


STRATEGIES = ["default", "one_device", "mirrored"]


def strategy_named(name, mirrored):
    return {
        "default": tf.distribute.get_strategy(),
        "one_device": tf.distribute.OneDeviceStrategy("/cpu:0"),
        "mirrored": mirrored,
    }[name]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("action", ["skip", "reduce_lr"])
def test_a_nonfinite_step_is_skipped_and_counted(outlier_npz, mirrored, strategy, action):
    config = outlier_config(outlier_npz, action)
    parts, trainer = build(config, strategy_named(strategy, mirrored))
    hooks = Recorder()
    steps = trainer.fit(hooks)
    assert steps == parts.data.steps_per_epoch(32)  # a skipped step still counts as a step
    assert int(parts.optimizer.iterations.numpy()) == steps
    assert int(trainer.guard.total.numpy()) == 1  # the outlier is in one batch of the epoch
    [(step, report)] = hooks.reports
    assert report["count"] == 1 and "task 'score' is +inf" in report["what"]
    assert finite_weights(parts)
    if action == "reduce_lr":
        assert float(trainer.guard.lr_scale.numpy()) == pytest.approx(0.5)
        assert hooks.learning_rates[-1] == pytest.approx(0.5 * hooks.learning_rates[0])
    else:
        assert hooks.learning_rates[-1] == pytest.approx(hooks.learning_rates[0])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stop_names_the_task_and_step_and_applies_nothing(outlier_npz, mirrored, strategy):
    config = outlier_config(outlier_npz, "stop")
    parts, trainer = build(config, strategy_named(strategy, mirrored))
    with pytest.raises(NonfiniteError, match=r"at step \d+ the loss of task 'score' is \+inf") as error:
        trainer.fit(TrainerHooks())
    bad_step = error.value.step
    assert "no checkpoint was written yet" in str(error.value)
    assert int(parts.optimizer.iterations.numpy()) == bad_step  # stopped right after that step
    if strategy != "default":
        assert finite_weights(parts)
        return
    # The weights are those of the same run stopped one step earlier: the bad step's update was not applied.
    before = outlier_config(outlier_npz, "stop", steps=bad_step - 1, epochs=1)
    clean, clean_trainer = build(before, tf.distribute.get_strategy())
    clean_trainer.fit(TrainerHooks())
    for a, b in zip(parts.model.get_weights(), clean.model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("weighting", ["uncertainty", "dwa", "rlw", "famo", "pcgrad", "mgda", "cagrad", "gradnorm"])
def test_every_weighting_keeps_its_state_finite(outlier_npz, weighting):
    config = outlier_config(outlier_npz, "skip", weighting)
    parts, trainer = build(config, tf.distribute.get_strategy())
    trainer.fit(TrainerHooks())
    assert int(trainer.guard.total.numpy()) == 1
    assert finite_weights(parts)
    for name, variable in parts.weighting.state().items():
        assert np.all(np.isfinite(np.asarray(variable.numpy()))), (weighting, name)


def test_mixed_float16_counts_nonfinite_losses_not_overflows(outlier_npz):
    config = outlier_config(outlier_npz, "skip", mixed_precision="mixed_float16")
    try:
        parts, trainer = build(config, tf.distribute.get_strategy())
        trainer.fit(TrainerHooks())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert int(trainer.guard.total.numpy()) == 1  # the loss scale's own overflow skips are not counted
    assert int(parts.optimizer.iterations.numpy()) == parts.data.steps_per_epoch(32)
    assert finite_weights(parts)


def test_max_consecutive_ends_a_diverged_run(outlier_npz):
    config = outlier_config(
        outlier_npz,
        "skip",
        nonfinite={"action": "skip", "max_consecutive": 3},
        optimizer={"learning_rate": 1e30, "type": "sgd"},
    )
    parts, trainer = build(config, tf.distribute.get_strategy())
    with pytest.raises(NonfiniteError, match=r"3 non-finite steps in a row"):
        trainer.fit(TrainerHooks())
    assert finite_weights(parts)
