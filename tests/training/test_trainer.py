"""The distributed loop: learning, equivalence across strategies, mixed precision, early stopping. (Exact resume after
a kill: tests/training/test_signals.py.)"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components
from moe_tf.run import evaluate, train
from moe_tf.training.hooks import TrainerHooks
from moe_tf.training.replicas import resolve_jit_compile, single_device
from tests.conftest import tiny_config


def make_trainer(config, strategy, initial_weights=None):
    # seeded as a run is, so a test's initial weights do not depend on which tests ran before it
    keras.utils.set_random_seed(config.experiment.seed)
    parts = build_components(config, strategy, initial_weights=initial_weights)
    return parts.trainer(), parts.data


def step_losses(trainer, data, steps):
    dataset = data.train_dataset(trainer.global_batch_size, 0, 3 * data.steps_per_epoch(trainer.global_batch_size))
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    losses = []
    for i in range(steps):
        if i % 2:  # one-step and two-step calls of the multi-step (steps_per_execution) graph
            trainer.train_chunk(iterator, tf.constant(1))
            losses.append(float(trainer.read_and_reset_sums()["loss"]))
        else:
            trainer.train_chunk(iterator, tf.constant(2))
            sums = trainer.read_and_reset_sums()
            assert sums["steps"] == 2
            losses.append(float(sums["loss"]) / 2)
    return losses


def one_step(trainer, data) -> None:
    """Exactly one training step, on the first global batch."""
    batches = data.train_dataset(trainer.global_batch_size, 0, 1)
    trainer.train_chunk(iter(trainer.strategy.experimental_distribute_dataset(batches)), tf.constant(1))


def test_a_few_steps_reduce_the_loss():
    config = tiny_config()
    trainer, data = make_trainer(config, tf.distribute.get_strategy())
    before = trainer.evaluate(data.eval_dataset("eval", 64))
    step_losses(trainer, data, 19)  # one epoch
    after = trainer.evaluate(data.eval_dataset("eval", 64))
    assert after["loss"] < 0.9 * before["loss"]
    assert after["tasks"]["digit"]["accuracy"] > before["tasks"]["digit"]["accuracy"]


def test_xla_step_matches_the_graph_step_on_one_device_and_on_two(mirrored):
    """The whole-step XLA path (one device) against the graph step, and the split XLA path (two replicas) against
    the whole-step one (without XLA, test_weightings checks mirrored for every weighting).

    SGD: with XLA the default strategy compiles the whole step and mirrored only each replica's forward/backward, so
    the fusions differ and float sums are reordered; Adam divides by the root of tiny second moments and amplified
    that noise past 1e-5 in full CI runs (3.6e-4 on the loss after 6 steps; the whole-step path drifted from the
    graph path by 1.4e-4 relative), SGD keeps it at rounding level."""
    sgd = {"type": "sgd", "learning_rate": 0.1}
    plain, data = make_trainer(
        tiny_config(training={"jit_compile": False, "optimizer": sgd}), tf.distribute.get_strategy()
    )
    config = tiny_config(training={"jit_compile": True, "optimizer": sgd})
    xla, _ = make_trainer(config, tf.distribute.get_strategy(), plain.model.get_weights())
    assert mirrored.num_replicas_in_sync == 2
    split, _ = make_trainer(config, mirrored, plain.model.get_weights())
    assert xla.jit_compile and not plain.jit_compile
    a, b, c = (step_losses(t, data, 6) for t in (plain, xla, split))
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(b, c, atol=1e-5)
    assert b[-1] < b[0]
    for wb, wc in zip(xla.model.get_weights(), split.model.get_weights()):
        np.testing.assert_allclose(wb, wc, atol=1e-5)
    ea, eb, ec = (t.evaluate(data.eval_dataset("eval", 64)) for t in (plain, xla, split))
    assert ea["loss"] == pytest.approx(eb["loss"], rel=1e-4)
    assert eb["tasks"]["digit"]["accuracy"] == pytest.approx(ec["tasks"]["digit"]["accuracy"], abs=1e-6)
    assert eb["loss"] == pytest.approx(ec["loss"], abs=1e-5)  # 180 examples: a partial last batch


def test_single_device_strategies_are_recognised(mirrored):
    # Whole-step XLA relies on this; it reads the default strategy's class name, so a TensorFlow upgrade that
    # renames it must fail here.
    assert single_device(tf.distribute.get_strategy())
    assert single_device(tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert not single_device(mirrored)


def test_jit_compile_auto_follows_the_gpus():
    strategy = tf.distribute.get_strategy()
    assert resolve_jit_compile("auto", strategy) is bool(tf.config.list_logical_devices("GPU"))
    assert resolve_jit_compile(True, strategy) is True and resolve_jit_compile(False, strategy) is False


class RecordingHooks(TrainerHooks):
    def __init__(self):
        self.logs, self.checkpoints = [], []

    def on_train_log(self, step, summary):
        self.logs.append((step, summary["loss"], summary["tasks"]["digit"]["accuracy"]))

    def on_checkpoint(self, step):
        self.checkpoints.append(step)


def test_steps_per_execution_auto_trains_exactly_like_one_step_per_call():
    runs, initial = {}, None
    for spe in ("auto", 1, 4):
        config = tiny_config(training={"steps": 30, "log_every": 7, "checkpoint_every": 10, "steps_per_execution": spe})
        trainer, data = make_trainer(config, tf.distribute.get_strategy(), initial)
        initial = initial or trainer.model.get_weights()
        hooks = RecordingHooks()
        assert trainer.fit(hooks) == 30
        runs[spe] = (trainer.model.get_weights(), hooks)
    _, reference = runs[1]
    # log at every 7th step and at epoch ends (19 steps per epoch); checkpoints every 10 and at the end
    assert [s for s, _, _ in reference.logs] == [7, 14, 19, 21, 28, 30]
    assert reference.checkpoints == [10, 20, 30]
    for spe in ("auto", 4):
        weights, hooks = runs[spe]
        assert [s for s, _, _ in hooks.logs] == [s for s, _, _ in reference.logs]
        assert hooks.checkpoints == reference.checkpoints
        np.testing.assert_allclose(
            [loss for _, loss, _ in hooks.logs], [loss for _, loss, _ in reference.logs], rtol=1e-5
        )
        np.testing.assert_allclose([acc for _, _, acc in hooks.logs], [acc for _, _, acc in reference.logs], atol=1e-6)
        for a, b in zip(weights, runs[1][0]):
            np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "policy, jit_compile, weighting",
    [
        ("mixed_float16", False, "fixed"),
        ("mixed_bfloat16", False, "fixed"),
        ("mixed_float16", True, "fixed"),
        ("mixed_float16", False, "pcgrad"),
    ],
)
def test_mixed_precision_trains_with_float32_heads(policy, jit_compile, weighting):
    keras.mixed_precision.set_global_policy(policy)
    try:
        config = tiny_config(
            training={"mixed_precision": policy, "jit_compile": jit_compile, "weighting": {"type": weighting}}
        )
        trainer, data = make_trainer(config, tf.distribute.get_strategy())
        out = trainer.model({"image": np.zeros((2, 8, 8, 1), np.uint8)})
        assert out["outputs"]["digit"].dtype == tf.float32 and out["gates"]["digit"]["weights"].dtype == tf.float32
        assert trainer.model.encoders["image"].stem.compute_dtype == policy.split("_")[1]
        if policy == "mixed_float16":
            assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        losses = step_losses(trainer, data, 12)
        assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < losses[0]
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _weights(run_dir):
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
    names = sorted(
        n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/", "weighting/"))
    )
    return {n: reader.get_tensor(n) for n in names}


def test_new_run_refuses_to_overwrite(trained_run):
    from moe_tf.errors import MoeTfError

    run_dir, _ = trained_run
    with pytest.raises(MoeTfError, match="already holds a run; pass --resume"):
        train(tiny_config(), run_dir)


def reference_early_stop(evals, higher_is_better, patience, min_delta=0.0):
    """Early stopping by hand on the logged [(step, value), ...]: (best step, step training stops at or None)."""
    best_step, best, bad = None, None, 0
    for step, value in evals:
        better = best is None or (value > best + min_delta if higher_is_better else value < best - min_delta)
        if better:
            best_step, best, bad = step, value, 0
        else:
            bad += 1
            if bad == patience:
                return best_step, step
    return best_step, None


@pytest.mark.parametrize(
    "monitor, mode, higher",
    [
        ("eval/digit/accuracy", "max", True),
        ("eval/digit/accuracy", "auto", True),
        ("eval/digit/accuracy", "min", False),
        ("eval/loss", "min", False),
        ("eval/loss", "auto", False),
        ("eval/loss", "max", True),
    ],
)
def test_early_stopping_by_hand(monitor, mode, higher):
    """The rule against a hand-written sequence: improvement by more than min_delta in the monitor's direction
    (auto: a loss is minimised, an accuracy maximised) resets the count; `patience` evaluations without one stop."""
    from moe_tf.config.schema import EarlyStoppingConfig
    from moe_tf.training.early_stopping import EarlyStopping

    values = [0.50, 0.60, 0.55, 0.605, 0.45, 0.70, 0.68, 0.69, 0.30]
    early = EarlyStopping(EarlyStoppingConfig(monitor=monitor, mode=mode, patience=2, min_delta=0.01))
    got = []
    for value in values:
        summary = {"loss": value, "tasks": {"digit": {"accuracy": value}}}
        got.append(early.update(summary))
    if higher:  # 0.50 ↑, 0.60 ↑, 0.55, 0.605 (< 0.61: not by min_delta) → stop; then 0.45, 0.70 ↑, 0.68, 0.69 → stop
        expected = [
            (True, False),
            (True, False),
            (False, False),
            (False, True),
            (False, True),
            (True, False),
            (False, False),
            (False, True),
            (False, True),
        ]
    else:  # 0.50 ↓, 0.60, 0.55 → stop, 0.605, 0.45 ↓, 0.70, 0.68 → stop, 0.69, 0.30 ↓
        expected = [
            (True, False),
            (False, False),
            (False, True),
            (False, True),
            (True, False),
            (False, False),
            (False, True),
            (False, True),
            (True, False),
        ]
    assert got == expected
    assert early.best_value == pytest.approx(0.70 if higher else 0.30)


def early_stopping_config(monitor, mode="auto", restore_best=True, **training):
    """Evaluations every 4 steps (19 per epoch, 4 evaluations per epoch) for at most 10 epochs, patience 2."""
    return tiny_config(
        training={
            "epochs": 10,
            "evals_per_epoch": 4,
            **training,
            "early_stopping": {"monitor": monitor, "mode": mode, "patience": 2, "restore_best": restore_best},
        }
    )


@pytest.fixture(scope="module")
def stopped_on_accuracy(tmp_path_factory):
    """A run early-stopped on eval/high/accuracy (mode auto: maximised): (run dir, metrics)."""
    run_dir = str(tmp_path_factory.mktemp("runs") / "es")
    return run_dir, train(early_stopping_config("eval/high/accuracy"), run_dir, export=False)


def check_early_stop(run_dir, metrics, monitor, higher, restore_best):
    """The step training stopped at and the best checkpoint's step are those early stopping by hand gives on the
    evaluations the run logged; the test metrics are the best weights' (restore_best) or the last ones'. Returns
    (best step, stop step)."""
    from tests.logging.test_tensorboard import read_scalars

    evals = read_scalars(os.path.join(run_dir, "logs"))[monitor]
    best_step, stop_step = reference_early_stop(evals, higher, patience=2)
    assert stop_step is not None and stop_step < 190, evals  # it did stop early
    assert best_step < stop_step - 4, evals  # the best weights are not the last ones
    assert metrics["step"] == stop_step and [s for s, _ in evals][-1] == stop_step
    best = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints", "best"))
    assert best.endswith(f"ckpt-{best_step}")
    at_best, at_last = evaluate(run_dir, "test", "best"), evaluate(run_dir, "test", "latest")
    assert at_best["step"] == best_step and at_last["step"] == stop_step
    used, other = (at_best, at_last) if restore_best else (at_last, at_best)
    assert metrics["loss"] == pytest.approx(used["loss"], rel=1e-6)
    assert abs(metrics["loss"] - other["loss"]) > 1e-3
    return best_step, stop_step


def test_early_stopping_maximises_an_accuracy_and_restores_the_best_weights(stopped_on_accuracy):
    check_early_stop(*stopped_on_accuracy, "eval/high/accuracy", higher=True, restore_best=True)


def test_early_stopping_minimises_in_mode_min_and_can_keep_the_last_weights(tmp_path):
    """mode min on a metric auto would maximise (top-5 accuracy drops early in this run); restore_best false."""
    run_dir = str(tmp_path / "es")
    metrics = train(
        early_stopping_config("eval/digit/top5_accuracy", mode="min", restore_best=False), run_dir, export=False
    )
    check_early_stop(run_dir, metrics, "eval/digit/top5_accuracy", higher=False, restore_best=False)


def test_early_stopping_continues_across_a_resume_in_the_middle_of_patience(stopped_on_accuracy, tmp_path):
    """Stopped one evaluation after the best (one bad evaluation of patience 2 spent) and resumed: training stops at
    the next evaluation, with the same best checkpoint and test metrics, as the run that was never interrupted (a
    fresh count would stop an evaluation later; a fresh best would take the first evaluation after the resume)."""
    from tests.logging.test_tensorboard import read_scalars

    straight, metrics = stopped_on_accuracy
    evals = read_scalars(os.path.join(straight, "logs"))["eval/high/accuracy"]
    best_step, stop_step = reference_early_stop(evals, True, patience=2)
    assert stop_step - best_step == 8  # two evaluations after the best: a resume between them is possible
    resumed = str(tmp_path / "resumed")
    train(early_stopping_config("eval/high/accuracy", steps=best_step + 4), resumed, export=False)
    again = train(early_stopping_config("eval/high/accuracy"), resumed, resume=True, export=False)
    assert again["step"] == stop_step
    assert tf.train.latest_checkpoint(os.path.join(resumed, "checkpoints", "best")).endswith(f"ckpt-{best_step}")
    assert again["loss"] == pytest.approx(metrics["loss"], rel=1e-6)


def test_trained_run_writes_everything(trained_run):
    run_dir, metrics = trained_run
    for name in ("config.yaml", "metrics.json", "checkpoints/checkpoint", "export/saved_model.pb"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    saved = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert saved["split"] == "test" and saved["step"] == 38 and saved["examples_per_sec"] > 0
    assert set(saved["tasks"]) == {"digit", "high"}
    assert saved["tasks"]["digit"]["accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert saved["tasks"]["high"]["accuracy"] > 0.6


def test_a_checkpoint_of_another_model_is_refused_not_half_restored(trained_run):
    from moe_tf.components import build_components
    from moe_tf.errors import MoeTfError
    from moe_tf.training.checkpoints import Checkpointer, restore_for_inference

    run_dir, _ = trained_run  # an MMoE; rebuild it as CGC, whose variables the checkpoint does not have
    other = build_components(tiny_config(model={"architecture": "cgc"}), training=False).model
    with pytest.raises(MoeTfError, match="does not match the model and optimizer built from the config"):
        restore_for_inference(run_dir, other)
    with pytest.raises(MoeTfError, match="does not match the model and optimizer built from the config"):
        Checkpointer(run_dir, True, 3, model=other).restore_latest()


def test_task_gradient_stats_equal_a_hand_computation(mirrored):
    # Under mirrored the per-task gradients are summed across replicas before norms and cosines are taken.
    from moe_tf.training.objectives import batch_stats

    trainer, data = make_trainer(tiny_config(logging={"gradient_stats_every": 1}), mirrored)
    inputs, labels, weights = next(iter(data.train_dataset(64, 0, 1)))
    with tf.GradientTape(persistent=True) as tape:
        _, losses = batch_stats(data.tasks, trainer.model(inputs, training=False), labels, weights)
    grads = np.stack(
        [
            np.concatenate([tape.gradient(losses[t], v).numpy().ravel() for v in trainer.groups.shared])
            for t in ("digit", "high")
        ]
    )
    norms = np.linalg.norm(grads, axis=1)
    iterator = iter(mirrored.experimental_distribute_dataset(data.train_dataset(64, 0, 1)))
    _, measured_norms, cosine = trainer.train_step_with_gradient_stats(iterator)
    np.testing.assert_allclose(measured_norms.numpy(), norms, rtol=1e-4)
    np.testing.assert_allclose(cosine.numpy()[0, 1], grads[0] @ grads[1] / norms.prod(), rtol=1e-4, atol=1e-6)
