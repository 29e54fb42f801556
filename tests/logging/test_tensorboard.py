"""Event files of a trained run hold the documented tags (read back with TensorBoard's own reader)."""

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from moe_tf.logging.tensorboard import heatmap_image


@pytest.fixture(scope="module")
def events(trained_run):
    run_dir, _ = trained_run
    acc = EventAccumulator(f"{run_dir}/logs", size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    return acc


def test_scalar_tags(events):
    tags = set(events.Tags()["tensors"])
    expected = {"train/loss", "train/learning_rate", "train/examples_per_sec", "train/weights/digit",
                "train/digit/loss", "train/digit/accuracy", "train/digit/top5_accuracy", "train/high/accuracy",
                "eval/loss", "eval/digit/loss", "eval/digit/accuracy", "eval/high/accuracy",
                "gates/digit/entropy", "gates/high/entropy", "gates/digit/expert_0", "gates/digit/expert_2",
                "test/digit/accuracy", "config", "gates/table"}
    assert expected <= tags, expected - tags


def test_values_are_real(events):
    import tensorflow as tf

    def values(tag):
        return [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]

    steps = [e.step for e in events.Tensors("eval/digit/accuracy")]
    assert steps == [19, 38]
    weights = values("train/weights/high")
    assert weights and all(w == pytest.approx(0.5) for w in weights)
    entropy = values("gates/digit/entropy")
    assert all(0.0 <= h <= np.log(3) + 1e-6 for h in entropy)
    mean_weights = [values(f"gates/digit/expert_{i}")[-1] for i in range(3)]
    assert sum(mean_weights) == pytest.approx(1.0, abs=1e-4)
    config_text = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "architecture: mmoe" in config_text


def test_gate_heatmap_image(events):
    (tag,) = [t for t in events.Tags()["tensors"] if t == "gates/heatmap"]
    proto = events.Tensors(tag)[-1].tensor_proto
    width, height = int(proto.string_val[0]), int(proto.string_val[1])
    assert (height, width) == (2 * 24, 3 * 24)  # rows: tasks, columns: experts


def test_heatmap_colours():
    img = heatmap_image(np.array([[0.0, 1.0]]), cell=2)
    assert img.shape == (1, 2, 4, 3) and img.dtype == np.uint8
    assert img[0, 0, 0].tolist() == [68, 1, 84] and img[0, 0, 3].tolist() == [253, 231, 37]
