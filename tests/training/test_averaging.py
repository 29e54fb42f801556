"""`training.ema_momentum`: the averages follow the weights step by step under every in-process strategy, a skipped
(non-finite) step leaves them alone, evaluation during training, the test split, `evaluate`, the export and
`--init-from` use them, and a resumed run continues them exactly."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.components import build_components, restore_components
from moe_tf.errors import ConfigError
from moe_tf.run import evaluate, train
from moe_tf.training.averaging import short_run_warning
from moe_tf.training.checkpoints import VALUE_SUFFIX, averaged_paths, checkpoint_key, find_checkpoint, model_variables
from moe_tf.training.hooks import TrainerHooks
from moe_tf.training.init_from import read_checkpoint
from moe_tf.training.optimizer import tf_variable
from tests.conftest import run_main, tiny_config, tiny_dict
from tests.training.test_nonfinite import outlier_config, outlier_npz  # noqa: F401 (a fixture)
from tests.training.test_trainer import _weights

MOMENTUM = 0.8


def ema_config(**training):
    return tiny_config(training={"ema_momentum": MOMENTUM, **training})


def local(variable, strategy):
    """Each replica's copy of a (Keras or TensorFlow) variable, as numpy arrays."""
    return [np.asarray(v.numpy(), np.float64) for v in strategy.experimental_local_results(tf_variable(variable))]


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_averages_follow_the_weights_step_by_step(strategy, mirrored):
    strategy = mirrored if strategy == "mirrored" else tf.distribute.get_strategy()
    config = ema_config()
    keras.utils.set_random_seed(config.experiment.seed)
    parts = build_components(config, strategy)
    trainer, average = parts.trainer(), parts.average
    dataset = parts.data.train_dataset(64, 0, 10)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    expected = {}
    for step in range(5):
        trainer.train_chunk(iterator, tf.constant(1))
        for path, variable in average.variables.items():
            w = local(variable, strategy)[0]
            expected[path] = w if step == 0 else MOMENTUM * expected[path] + (1 - MOMENTUM) * w
    assert int(average.updates.numpy()) == 5
    assert len(average.averages) == len(parts.model.trainable_variables) > 10
    moved = 0
    for path, variable in average.variables.items():
        copies = local(average.averages[path], strategy)
        assert len(copies) == strategy.num_replicas_in_sync
        for copy in copies:  # every replica holds the same average
            np.testing.assert_allclose(copy, expected[path], rtol=1e-5, atol=1e-7, err_msg=path)
        moved += not np.allclose(copies[0], local(variable, strategy)[0])
    assert moved > len(average.variables) // 2  # the average lags the weights: it is not a copy of them


def test_swapped_holds_the_averages_and_gives_the_weights_back_even_on_an_error():
    parts = build_components(ema_config())
    average = parts.average
    for avg in average.averages.values():
        avg.assign(tf.fill(avg.shape, 0.25))
    before = {p: v.numpy().copy() for p, v in average.variables.items()}
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped():
            assert all(np.all(v.numpy() == 0.25) for v in average.variables.values())
            raise RuntimeError("inside")
    for path, variable in average.variables.items():
        np.testing.assert_array_equal(variable.numpy(), before[path], err_msg=path)
        assert np.all(average.averages[path].numpy() == 0.25)


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_a_skipped_step_does_not_move_the_averages(outlier_npz, mirrored, strategy):  # noqa: F811
    strategy = mirrored if strategy == "mirrored" else tf.distribute.get_strategy()
    config = outlier_config(outlier_npz, "skip", ema_momentum=0.5)
    keras.utils.set_random_seed(config.experiment.seed)
    parts = build_components(config, strategy)
    trainer = parts.trainer()
    steps = trainer.fit(TrainerHooks())
    assert int(trainer.guard.total.numpy()) == 1
    assert int(parts.average.updates.numpy()) == steps - 1  # counted steps, less the one skipped
    for avg in parts.average.averages.values():
        for copy in local(avg, strategy):
            assert np.all(np.isfinite(copy))


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """A tiny run with moving averages and early stopping: (run_dir, metrics)."""
    run_dir = str(tmp_path_factory.mktemp("runs") / "ema")
    config = ema_config(early_stopping={"monitor": "eval/digit/accuracy", "patience": 3})
    return run_dir, train(config, run_dir)


def raw_model(run_dir):
    """The run's model with the raw weights of its best checkpoint (not the averages)."""
    parts, _ = restore_components(run_dir)
    tf.train.Checkpoint(model=model_variables(parts.model)).restore(find_checkpoint(run_dir)).expect_partial()
    return parts


def test_evaluation_the_test_split_evaluate_and_the_export_use_the_averages(ema_run):
    run_dir, metrics = ema_run
    again = evaluate(run_dir, "test")  # rebuilt from config.yaml: the checkpoint's averages
    for task, m in metrics["tasks"].items():
        assert again["tasks"][task]["loss"] == pytest.approx(m["loss"], rel=1e-6), task
    best = evaluate(run_dir, "eval")  # early stopping chose this checkpoint by the averages' evaluation
    assert best["step"] == metrics["eval"]["step"]
    assert best["tasks"]["digit"]["loss"] == pytest.approx(metrics["eval"]["tasks"]["digit"]["loss"], rel=1e-6)
    raw = raw_model(run_dir).evaluate("test")
    assert abs(raw["tasks"]["digit"]["loss"] - metrics["tasks"]["digit"]["loss"]) > 1e-4  # not the raw weights
    parts, _ = restore_components(run_dir)
    inputs, _, _ = next(iter(parts.data.eval_dataset("test", 16)))
    logits = parts.model(inputs, training=False)["outputs"]["digit"].numpy()
    served = tf.saved_model.load(f"{run_dir}/export").signatures["serving_default"](image=inputs["image"])
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(served["digit"].numpy(), expected, rtol=1e-4, atol=1e-6)


def test_init_from_starts_from_the_averages(ema_run):
    run_dir, _ = ema_run
    path = find_checkpoint(run_dir)
    values, _ = read_checkpoint(path)
    reader = tf.train.load_checkpoint(path)
    key = next(k for k in reader.get_variable_to_shape_map() if k.startswith("average/") and "head_digit" in k)
    name = checkpoint_key(key[len("average/") : -len(VALUE_SUFFIX)])
    np.testing.assert_array_equal(values[name], reader.get_tensor(key))
    assert not np.array_equal(values[name], reader.get_tensor(key.replace("average/", "model/", 1)))


def test_a_resumed_run_continues_the_averages_exactly(tmp_path):
    def config(steps):
        return ema_config(steps=steps, checkpoint_every=10, eval_every=10)

    train(config(30), str(tmp_path / "straight"), export=False)
    train(config(20), str(tmp_path / "resumed"), export=False)
    train(config(30), str(tmp_path / "resumed"), resume=True, export=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    straight = tf.train.load_checkpoint(str(tmp_path / "straight" / "checkpoints"))
    resumed = tf.train.load_checkpoint(str(tmp_path / "resumed" / "checkpoints"))
    averages = sorted(k for k in resumed.get_variable_to_shape_map() if k.startswith("average"))
    assert len(averages) > 10
    for name in averages:
        a[name], b[name] = straight.get_tensor(name), resumed.get_tensor(name)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_turning_averages_on_at_resume_is_a_clear_error(trained_run, tmp_path, capsys):
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_run[0], run_dir)
    code, _, err = run_main(
        capsys,
        "train",
        "--config",
        f"{run_dir}/config.yaml",
        "--output-dir",
        run_dir,
        "--resume",
        "--set",
        "training.ema_momentum=0.9",
        "--set",
        "training.epochs=3",
    )
    assert code == 1 and "Traceback" not in err
    assert "training.ema_momentum changed" in err


@pytest.mark.parametrize("value", [1.0, 0.0, -0.5, "high"])
def test_a_bad_momentum_names_the_key(value):
    with pytest.raises(ConfigError, match=r"training\.ema_momentum"):
        tiny_config(training={"ema_momentum": value})


def test_without_averages_nothing_is_averaged(trained_run, ema_run):
    parts = build_components(tiny_config())
    assert parts.average is None and parts.trainer().average is None
    assert averaged_paths(find_checkpoint(trained_run[0])) == set()
    model = build_components(ema_config(), training=False).model
    trainable = {p for p, v in model_variables(model).items() if v.trainable}
    assert averaged_paths(find_checkpoint(ema_run[0])) == trainable  # every trainable variable, nothing else


def test_a_run_too_short_for_its_momentum_is_warned(tmp_path, capsys):
    """The first step copies the weights: 0.995 over 20 steps keeps 90% of them in the average."""
    assert short_run_warning(0.995, 2000) is None  # 0.995^2000 < 0.01%
    assert short_run_warning(0.9, 30) is None  # 4%
    warning = short_run_warning(0.995, 120)
    assert "averages over about 200 steps, and this run trains 120" in warning and "holds 55%" in warning
    suggested = float(warning.split("e.g. to ")[1].split(")")[0])
    assert 0.95 < suggested < 0.995 and suggested**120 <= 0.01
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_dict(training={"ema_momentum": 0.995, "steps": 20})))
    code, _, err = run_main(
        capsys,
        "train",
        "--config",
        tmp_path / "c.yaml",
        "--output-dir",
        tmp_path / "run",
        "--no-export",
        "--set",
        "logging.progress=lines",
    )
    assert code == 0, err
    assert "warning: training.ema_momentum 0.995 averages over about 200 steps, and this run trains 20" in err
