"""`moe-tf export RUN --format tflite`: each quantisation mode writes a .tflite whose task signatures the LiteRT
interpreter runs; float32 matches the SavedModel to float rounding, int8 stays close and is reported;
compression.json holds each mode's sizes and per-task test metrics."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from sklearn.datasets import load_digits

from moe_tf.cli import main
from moe_tf.run import export


@pytest.fixture(scope="module")
def tflite_dir(trained_run, tmp_path_factory):
    """float32, int8, dynamic-range and float16 exports of the session's tiny digits run, through the CLI."""
    out = str(tmp_path_factory.mktemp("tflite"))
    for mode in ("none", "int8", "dynamic", "float16"):
        assert main(["export", trained_run[0], "--format", "tflite", "--quantize", mode, "--output", out]) == 0
    return out


@pytest.fixture(scope="module")
def saved_model(trained_run, tmp_path_factory):
    return tf.saved_model.load(export(trained_run[0], str(tmp_path_factory.mktemp("sm") / "export")))


def digits(n=40):
    images = load_digits().images[:n]
    return (images * 255 / 16).astype(np.uint8)[..., None]


def test_float_tflite_matches_the_saved_model(tflite_dir, saved_model):
    runner = Interpreter(model_path=os.path.join(tflite_dir, "none.tflite")).get_signature_runner("task_digit")
    x = digits()
    lite = runner(image=x)
    ref = saved_model.signatures["task_digit"](image=tf.constant(x))
    np.testing.assert_allclose(lite["probabilities"], ref["probabilities"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(lite["class_id"], ref["class_id"].numpy())


def test_int8_is_smaller_and_close(tflite_dir, saved_model):
    interpreter = Interpreter(model_path=os.path.join(tflite_dir, "int8.tflite"))
    assert set(interpreter.get_signature_list()) == {"task_digit", "task_high"}
    x = digits(200)
    lite = interpreter.get_signature_runner("task_high")(image=x)["probabilities"]
    ref = saved_model.signatures["task_high"](image=tf.constant(x))["probabilities"].numpy()
    assert np.mean(np.argmax(lite, -1) == np.argmax(ref, -1)) > 0.9  # quantised: close, not equal
    assert not np.allclose(lite, ref, atol=1e-5)
    # weights and activations are int8 tensors in the file
    assert any(d["dtype"] == np.int8 for d in interpreter.get_tensor_details())
    assert os.path.getsize(os.path.join(tflite_dir, "int8.tflite")) < os.path.getsize(
        os.path.join(tflite_dir, "none.tflite")
    )


def test_compression_json_reports_each_mode(tflite_dir, trained_run):
    report = json.load(open(os.path.join(tflite_dir, "compression.json")))
    assert report.keys() == {"none", "int8", "dynamic", "float16"}
    none, int8 = report["none"], report["int8"]
    assert none["bytes"] == os.path.getsize(os.path.join(tflite_dir, "none.tflite")) == int8["float_tflite_bytes"]
    assert int8["size_ratio_to_float"] == pytest.approx(none["bytes"] / int8["bytes"])
    for task in ("digit", "high"):
        assert none["tasks"][task]["metric"] == "accuracy" and none["tasks"][task]["examples"] == 359
        assert none["tasks"][task]["tflite"] == pytest.approx(none["tasks"][task]["saved_model"], abs=1e-9)
        assert none["tasks"][task]["max_abs_diff"] < 1e-5
        assert abs(int8["tasks"][task]["delta"]) < 0.05 and int8["tasks"][task]["max_abs_diff"] > 1e-5
    # the SavedModel's accuracy is the run's own test accuracy (same checkpoint, same split)
    for task, metrics in trained_run[1]["tasks"].items():
        assert none["tasks"][task]["saved_model"] == pytest.approx(metrics["accuracy"], abs=1e-6)


@pytest.mark.parametrize("mode, weight_type", [("dynamic", np.int8), ("float16", np.float16)])
def test_weight_only_modes_store_weights_in_their_type_and_keep_float_inputs(
    tflite_dir, saved_model, mode, weight_type
):
    """dynamic: int8 weights; float16: float16 weights; both keep the model's inputs and float32 outputs and stay
    within quantisation error of the SavedModel."""
    interpreter = Interpreter(model_path=os.path.join(tflite_dir, f"{mode}.tflite"))
    assert set(interpreter.get_signature_list()) == {"task_digit", "task_high"}
    types = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert weight_type in types
    assert (np.int8 in types) == (mode == "dynamic") and (np.float16 in types) == (mode == "float16")
    runner = interpreter.get_signature_runner("task_digit")
    assert runner.get_input_details()["image"]["dtype"] == np.uint8
    assert runner.get_output_details()["probabilities"]["dtype"] == np.float32
    x = digits(200)
    lite = runner(image=x)["probabilities"]
    ref = saved_model.signatures["task_digit"](image=tf.constant(x))["probabilities"].numpy()
    assert np.abs(lite - ref).max() < (0.05 if mode == "dynamic" else 0.005)
    assert np.mean(np.argmax(lite, -1) == np.argmax(ref, -1)) > 0.95
    assert not np.array_equal(lite, ref)  # quantised weights: not the float model
    # smaller than float32 (by less than the 4x or 2x of the weights alone: the graph and signatures are not)
    assert os.path.getsize(os.path.join(tflite_dir, f"{mode}.tflite")) < 0.85 * os.path.getsize(
        os.path.join(tflite_dir, "none.tflite")
    )


def test_a_text_model_is_refused_before_anything_is_written(reviews_tsv, tmp_path):
    from moe_tf.components import build_components
    from moe_tf.config.loader import validate_config
    from moe_tf.errors import MoeTfError
    from moe_tf.export.tflite import export_tflite
    from tests.conftest import text_dict

    parts = build_components(validate_config(text_dict(reviews_tsv)), training=False)
    with pytest.raises(
        MoeTfError,
        match=r"--format tflite: the text input\(s\) \['text'\] need TensorFlow's "
        r"string ops.*serve this model from its SavedModel",
    ):
        export_tflite(parts, str(tmp_path / "out"), "none")
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--format", "tflite", "--quantize", "int4"], "--quantize int4: expected one of none, dynamic, float16, int8"),
        (["--quantize", "int8"], "--quantize applies to --format tflite"),
    ],
)
def test_bad_export_options(trained_run, capsys, argv, message):
    assert main(["export", trained_run[0], *argv]) == 2
    assert message in capsys.readouterr().err
