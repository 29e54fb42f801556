import glob
import os

import pytest
import yaml

from moe_tf.config.loader import apply_override, load_config, validate_config
from moe_tf.errors import ConfigError
from tests.conftest import REPO, tiny_dict


def errors_of(data) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate_config(data)
    return str(e.value).splitlines()


def test_wrong_type_names_path_and_bound():
    data = tiny_dict(model={"experts": {"count": "four"}})
    assert errors_of(data) == ["model.experts.count: expected int >= 1, got 'four'"]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("steps_per_execution", 0, "training.steps_per_execution: expected 'auto' or int >= 1, got 0"),
        ("steps_per_execution", "many", "training.steps_per_execution: expected 'auto' or int >= 1, got 'many'"),
        ("jit_compile", "fast", "training.jit_compile: expected 'auto', true or false, got 'fast'"),
    ],
)
def test_auto_or_value_fields(key, value, message):
    assert errors_of(tiny_dict(training={key: value})) == [message]
    assert validate_config(tiny_dict(training={key: "auto"})).training.model_dump()[key] == "auto"


def test_validator_messages_are_not_doubled():
    errors = errors_of(tiny_dict(model={"trunk": {"units": [0]}}))
    assert errors == ["model.trunk.units: every width must be >= 1, got [0]"]


def test_num_classes_checked_per_task_index():
    data = tiny_dict()
    data["tasks"][1] = {"name": "high", "dataset": "digits", "num_classes": 0}
    assert "tasks[1].num_classes: expected int >= 2, got 0" in errors_of(data)


def test_unknown_key_suggests_the_right_one():
    data = tiny_dict(training={"batch_sise": 8})
    (line,) = errors_of(data)
    assert line.startswith("training.batch_sise: unknown key (did you mean 'batch_size'?)")


def test_unknown_key_inside_a_registry_typed_choice():
    data = tiny_dict(data={"sources": {"digits": {"type": "digits", "test_fracton": 0.1}}})
    (line,) = errors_of(data)
    assert line.startswith("data.sources.digits.test_fracton: unknown key (did you mean 'test_fraction'?)")


def test_unknown_type_lists_known():
    data = tiny_dict(model={"stem": {"type": "vit"}})
    (line,) = errors_of(data)
    assert line.startswith("model.stem.type: unknown type 'vit'") and "'conv'" in line and "'dense'" in line


def test_several_errors_reported_together():
    data = tiny_dict(training={"strategy": "gpu", "epochs": 0})
    lines = errors_of(data)
    assert any(line.startswith("training.strategy: expected one of") for line in lines)
    assert "training.epochs: expected int >= 1, got 0" in lines


def test_cross_field_checks():
    data = tiny_dict(training={"early_stopping": {"monitor": "eval/digit/acc"}})
    (line,) = errors_of(data)
    assert line.startswith("training.early_stopping.monitor: unknown metric 'eval/digit/acc'; known: eval/loss")
    data = tiny_dict()
    data["tasks"][1]["name"] = "digit"
    assert "tasks[1].name: duplicate task name 'digit'" in errors_of(data)
    data = tiny_dict()
    data["tasks"][0]["dataset"] = "mnist"
    assert any(e.startswith("tasks[0].dataset: unknown dataset 'mnist'") for e in errors_of(data))


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_dict()))
    (tmp_path / "child.yaml").write_text("base: base.yaml\nmodel: {experts: {count: 6}}\n")
    config = load_config(
        str(tmp_path / "child.yaml"),
        [
            "training.epochs=9",
            "tasks[1].weight=0.25",
            "tasks.digit.weight=2",
            "model.trunk.units=[8, 8]",
            "training.mixed_precision=mixed_bfloat16",
        ],
    )
    assert config.model.experts.count == 6
    assert config.model.stem.filters == [8]  # inherited
    assert config.training.epochs == 9 and isinstance(config.training.epochs, int)
    assert config.task("high").weight == 0.25 and config.task("digit").weight == 2.0
    assert config.model.trunk.units == [8, 8]
    assert config.training.mixed_precision == "mixed_bfloat16"


def test_a_base_mapping_of_another_type_is_replaced_not_merged(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_dict()))  # stem: {type: conv, filters: [8]}
    (tmp_path / "child.yaml").write_text("base: base.yaml\nmodel: {stem: {type: resnet, blocks: 1}}\n")
    (tmp_path / "same.yaml").write_text("base: base.yaml\nmodel: {stem: {type: conv, batch_norm: true}}\n")
    stem = load_config(str(tmp_path / "child.yaml")).model.stem
    assert stem.type == "resnet" and stem.blocks == 1 and not hasattr(stem, "filters")
    stem = load_config(str(tmp_path / "same.yaml")).model.stem
    assert stem.filters == [8] and stem.batch_norm is True  # the same type merges
    # settings every type shares (the optimizer's, the schedule's) still merge across a change of type
    (tmp_path / "sgd.yaml").write_text("base: base.yaml\ntraining: {optimizer: {type: sgd}}\n")
    optimizer = load_config(str(tmp_path / "sgd.yaml")).training.optimizer
    assert optimizer.type == "sgd" and optimizer.learning_rate == 0.01  # the base's rate


def test_override_errors():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override({}, "training.epochs")
    with pytest.raises(ConfigError, match="no entry named 'nope'"):
        apply_override(tiny_dict(), "tasks.nope.weight=1")
    with pytest.raises(ConfigError, match="index 5 out of range"):
        apply_override(tiny_dict(), "tasks[5].weight=1")
    with pytest.raises(
        ConfigError, match=r"'type:adam' without a value; YAML needs a space after ':' \(e\.g\. \{type: adam\}\)"
    ):
        apply_override(tiny_dict(), "training.optimizer={type:adam}")
    with pytest.raises(ConfigError, match="'k:2' without a value"):
        apply_override(tiny_dict(), "model.gate={type: noisy_top_k, k:2}")
    data = tiny_dict()
    apply_override(data, "data.sources.digits.path=http://host:80/x")  # a ':' inside a plain value is fine
    assert data["data"]["sources"]["digits"]["path"] == "http://host:80/x"


def test_missing_and_circular_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular base"):
        load_config(str(tmp_path / "a.yaml"))
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(tmp_path / "bad.yaml"))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml"))), ids=os.path.basename)
def test_every_shipped_config_validates_and_says_how_to_run(path):
    config = load_config(path)
    assert config.tasks
    first_line = open(path).readline()
    assert first_line.startswith("#") and "--config configs/" + os.path.basename(path) in first_line


def test_values_are_not_coerced_across_types():
    # strict as documented: no "5" for an int, no true for a number; an int where a float is expected is fine
    assert errors_of(tiny_dict(training={"epochs": "5"})) == ["training.epochs: expected int >= 1, got '5'"]
    assert errors_of(tiny_dict(training={"epochs": True})) == ["training.epochs: expected int >= 1, got True"]
    assert errors_of(tiny_dict(model={"dropout": True})) == ["model.dropout: expected number >= 0.0, got True"]
    assert errors_of(tiny_dict(logging={"tensorboard": 1})) == ["logging.tensorboard: expected true or false, got 1"]
    config = validate_config(tiny_dict(training={"optimizer": {"learning_rate": 1}}))
    assert config.training.optimizer.learning_rate == 1


def test_resolved_config_round_trips_through_yaml():
    from moe_tf.config.loader import to_yaml

    data = tiny_dict()
    data["tasks"][1]["label_map"] = {5: 1, 6: 1, 0: 0}
    config = validate_config(data)
    assert validate_config(yaml.safe_load(to_yaml(config))) == config
