"""Event files of a trained run hold the documented tags in one sub-run per split, so train, eval and test curves
overlay (read back with TensorBoard's own readers); a resumed run's purge leaves each step once."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2

from moe_tf.logging.gates import heatmap_figure
from moe_tf.logging.tensorboard import TensorBoardLogger, event_files, gate_table, purge_after


def read_scalars(log_dir) -> dict:
    """{"<sub-run>/<tag>": [(step, value), ...]} of every scalar in every event file under `log_dir` (e.g.
    "eval/digit/accuracy"), in the order written, with no de-duplication (TensorBoard's loaders would hide a repeated
    step)."""
    out = {}
    files = sorted(event_files(log_dir), key=lambda f: (f[0], os.path.getmtime(f[1])))
    for sub, path in files:
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(f"{sub}/{v.tag}" if sub else v.tag, []).append(
                        (event.step, float(tf.make_ndarray(v.tensor)))
                    )
    return out


class Events:
    """TensorBoard's reader on `<run>/logs` (the config and the HParams session) and on each split's sub-run;
    a tag is "<split>/<tag>" (a tag of the run's own directory has no prefix)."""

    def __init__(self, log_dir):
        self.runs = {}
        for sub in ("", "train", "eval", "test"):
            acc = EventAccumulator(os.path.join(log_dir, sub), size_guidance={"tensors": 0, "images": 0})
            self.runs[sub] = acc.Reload()

    def _split(self, tag):
        sub, _, rest = tag.partition("/")
        return (sub, rest) if sub in self.runs and rest else ("", tag)

    def tags(self, sub=""):
        return set(self.runs[sub].Tags()["tensors"])

    def Tensors(self, tag):
        sub, rest = self._split(tag)
        return self.runs[sub].Tensors(rest)


@pytest.fixture(scope="module")
def events(trained_run):
    return Events(f"{trained_run[0]}/logs")


def values(events, tag):
    return [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]


def test_scalar_tags(events):
    expected = {
        "": {"config", "_hparams_/session_start_info"},
        "train": {
            "loss",
            "learning_rate",
            "examples_per_sec",
            "weights/digit",
            "nonfinite_steps",
            "digit/loss",
            "digit/accuracy",
            "digit/top5_accuracy",
            "high/accuracy",
            "gates/digit/entropy",
            "gates/high/entropy",
            "gates/digit/expert_0",
            "gates/digit/expert_2",
            "grads/norm/digit",
        },
        "eval": {
            "loss",
            "digit/loss",
            "digit/accuracy",
            "high/accuracy",
            "gates/digit/weights",
            "gates/dead_experts",
            "gates/table",
            "gates/heatmap",
        },
        "test": {"loss", "digit/loss", "digit/accuracy", "high/accuracy"},
    }
    for sub, tags in expected.items():
        assert tags <= events.tags(sub), (sub, tags - events.tags(sub))
    assert not any(tag.startswith(("train/", "eval/", "test/")) for sub in expected for tag in events.tags(sub))


def test_train_eval_and_test_curves_overlay(trained_run):
    """TensorBoard (its own multiplexer, as `tensorboard --logdir runs` reads) sees one run per split of the run
    directory, holding the same tags, so one chart per tag draws the split curves over each other."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    run_dir, _ = trained_run
    multiplexer = EventMultiplexer(size_guidance={"tensors": 0})
    multiplexer.AddRunsFromDirectory(os.path.dirname(run_dir))
    multiplexer.Reload()
    runs = {name: set(tags["tensors"]) for name, tags in multiplexer.Runs().items() if name.startswith("tiny/")}
    assert {"tiny/logs", "tiny/logs/train", "tiny/logs/eval", "tiny/logs/test"} <= runs.keys(), runs.keys()
    shared = runs["tiny/logs/train"] & runs["tiny/logs/eval"] & runs["tiny/logs/test"]
    assert {"loss", "digit/loss", "digit/accuracy", "high/accuracy"} <= shared
    train_loss = [e.step for e in multiplexer.Tensors("tiny/logs/train", "loss")]
    eval_loss = [e.step for e in multiplexer.Tensors("tiny/logs/eval", "loss")]
    assert eval_loss == [19, 38] and set(eval_loss) < set(train_loss) | {19, 38}


def test_hparams_hold_every_leaf_key_of_the_config(events, trained_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.runs[""].PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.group_name == "tiny"  # the run directory's name
    config = yaml.safe_load(open(os.path.join(trained_run[0], "config.yaml")))
    hparams = start.hparams
    assert hparams["model.experts.count"].number_value == config["model"]["experts"]["count"]
    assert hparams["tasks[0].name"].string_value == "digit"
    assert hparams["training.optimizer.learning_rate"].number_value == pytest.approx(
        config["training"]["optimizer"]["learning_rate"]
    )
    assert hparams["model.trunk.units"].string_value == json.dumps(config["model"]["trunk"]["units"])
    assert len(hparams) > 80
    # the dashboard's metrics: the scalars of the session's sub-runs, e.g. the test split's, at the last step
    assert "digit/accuracy" in events.tags("test")


def test_values_are_real(events):
    steps = [e.step for e in events.Tensors("eval/digit/accuracy")]
    assert steps == [19, 38]
    weights = values(events, "train/weights/high")
    assert weights and all(w == pytest.approx(0.5) for w in weights)
    entropy = values(events, "train/gates/digit/entropy")
    assert all(0.0 <= h <= np.log(3) + 1e-6 for h in entropy)
    mean_weights = [values(events, f"train/gates/digit/expert_{i}")[-1] for i in range(3)]
    assert sum(mean_weights) == pytest.approx(1.0, abs=1e-4)
    config_text = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "type: mmoe" in config_text


def test_the_logged_test_metrics_are_the_runs(events, trained_run):
    """The test split's scalars are metrics.json's values (the test evaluation is logged once, at the last step)."""
    metrics = json.load(open(os.path.join(trained_run[0], "metrics.json")))
    assert [e.step for e in events.Tensors("test/loss")] == [metrics["step"]]
    assert values(events, "test/loss") == [pytest.approx(metrics["loss"], rel=1e-6)]
    for task, name in (("digit", "loss"), ("digit", "accuracy"), ("digit", "top5_accuracy"), ("high", "accuracy")):
        assert values(events, f"test/{task}/{name}") == [pytest.approx(metrics["tasks"][task][name], rel=1e-6)]


def test_task_gradient_telemetry(events):
    # logging.gradient_stats_every: 10 over 38 steps: measured before steps 1, 11, 21 and 31
    norms = values(events, "train/grads/norm/digit")
    assert [e.step for e in events.Tensors("train/grads/norm/digit")] == [0, 10, 20, 30]
    assert all(n > 0 for n in norms + values(events, "train/grads/norm/high"))
    cosines = values(events, "train/grads/cosine/digit__high")
    assert len(cosines) == 4 and all(-1.0 - 1e-5 <= c <= 1.0 + 1e-5 for c in cosines)
    assert len(set(np.round(cosines, 6))) > 1  # measured each time, not a constant


def test_gate_weight_histogram(events):
    """Bucket counts over [0, 1] sum to examples × experts of the eval split (180 digits in the tiny config)."""
    buckets = tf.make_ndarray(events.Tensors("eval/gates/digit/weights")[-1].tensor_proto)
    assert buckets.shape == (10, 3)
    assert buckets[0, 0] == 0.0 and buckets[-1, 1] == 1.0
    assert buckets[:, 2].sum() == 180 * 3


def test_gate_heatmap_image_and_file(events, trained_run):
    run_dir, _ = trained_run
    proto = events.Tensors("eval/gates/heatmap")[-1].tensor_proto
    width, height = int(proto.string_val[0]), int(proto.string_val[1])
    assert width >= 300 and height >= 200  # a rendered figure, not a block of 24-pixel cells
    png = tf.io.decode_png(open(os.path.join(run_dir, "gates.png"), "rb").read())
    assert png.shape[0] >= 200 and png.shape[1] >= 300


def test_heatmap_figure_is_labelled():
    fig = heatmap_figure(
        np.array([[0.25, 0.75], [1.0, 0.0]]), ["digit", "high"], ["shared_0", "shared_1"], "title", "mean gate weight"
    )
    ax, bar = fig.axes  # the heatmap and its colour bar
    assert [t.get_text() for t in ax.get_xticklabels()] == ["shared_0", "shared_1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["digit", "high"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.25", "0.75", "1.00"]
    assert ax.get_xlabel() == "expert" and bar.get_ylabel() == "mean gate weight"


def test_gate_table_marks_routed_fraction():
    gates = {"digit": {"expert_weights": [0.5, 0.5], "routed": [1.0, 0.25]}}
    table = gate_table(gates, ["e0", "e1"])
    assert table.splitlines()[0] == "| gate | e0 | e1 |"
    assert "| digit | 0.500 (1.00) | 0.500 (0.25) |" in table


def test_purge_after_keeps_each_step_once(tmp_path):
    """A run logged to step 30 (and its test split at 20) and was killed after its checkpoint at 20; the resumed
    run logs 25 and 30 again."""
    log_dir = str(tmp_path / "logs")
    first = TensorBoardLogger(log_dir)
    for step in (5, 10, 15, 20, 25, 30):
        with first.writer("train").as_default(step=step):
            tf.summary.scalar("loss", 1.0 / step)
        first.task_gradients(step, {"norm": {"a": 1.0}, "cosine": {}})
    with first.writer("test").as_default(step=20):
        tf.summary.scalar("loss", 0.5)  # an earlier attempt's test split, logged again at the end
    first.close()
    path = glob.glob(os.path.join(log_dir, "train", "events.*"))[0]
    with open(path, "rb") as f:
        head = f.read(30)
    with open(path, "ab") as f:
        f.write(head)  # a record cut short by the kill: its header and part of its data
    # 25 and 30 go; so does grads/ at 20 (measured before step 21, so logged again); the cut record and the test
    # split at 20 go too
    assert purge_after(log_dir, 20) == 2 + 3 + 1 + 1
    resumed = TensorBoardLogger(log_dir)
    for step in (20, 25, 30):
        if step > 20:
            with resumed.writer("train").as_default(step=step):
                tf.summary.scalar("loss", 2.0 / step)
        resumed.task_gradients(step, {"norm": {"a": 2.0}, "cosine": {}})
    resumed.close()
    scalars = read_scalars(log_dir)
    assert [s for s, _ in scalars["train/loss"]] == [5, 10, 15, 20, 25, 30]
    assert scalars["train/loss"][-1][1] == pytest.approx(2.0 / 30)  # the resumed run's value
    assert [s for s, _ in scalars["train/grads/norm/a"]] == [5, 10, 15, 20, 25, 30]
    assert "test/loss" not in scalars
    assert purge_after(log_dir, 1000) == 0  # nothing past the end: files untouched
