"""A search space file is checked against the schema before any trial: each mistake is one line naming the file
and the entry."""

import glob
import os
import shlex

import pytest
import yaml

from moe_tf.config.loader import resolve_config_dict
from moe_tf.errors import ConfigError
from moe_tf.search.space import parse_space
from tests.conftest import REPO, tiny_dict


def space_error(tmp_path, space: dict) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(ConfigError) as e:
        parse_space(str(path), tiny_dict())
    return str(e.value)


LR = {"training.optimizer.learning_rate": {"float": [1e-4, 1e-2], "log": True}}


def test_a_valid_space(tmp_path):
    path = tmp_path / "space.yaml"
    # as a user writes it: 1e-4 without a dot is text to YAML
    path.write_text(
        "params:\n  training.optimizer.learning_rate: {float: [1e-4, 1e-2], log: true}\n"
        "  model.experts.count: {int: [2, 6]}\n  model.gate.type: {choice: [softmax, noisy_top_k]}\n"
        "metric: eval/digit/loss\n"
    )
    space = parse_space(str(path), tiny_dict())
    assert space.objectives == [("eval/digit/loss", "minimize")]
    assert space.pruner.type == "median" and space.sampler.type == "tpe"
    assert space.params["training.optimizer.learning_rate"].float == [1e-4, 1e-2]
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump({"params": LR, "metrics": ["eval/digit/accuracy", "eval/high/accuracy"]}))
    space = parse_space(str(two), tiny_dict())
    assert space.objectives == [("eval/digit/accuracy", "maximize"), ("eval/high/accuracy", "maximize")]
    assert space.multi_objective and space.pruner.type == "none"


@pytest.mark.parametrize(
    "space, expected",
    [
        ({"params": {"model.expertz.count": {"int": [2, 4]}}}, "params.model.expertz.count"),
        ({"params": {"model.experts.count": {"int": [0, 4]}}}, "model.experts.count"),
        (
            {"params": {"model.experts.count": {"int": [6, 2]}}},
            "params.model.experts.count: int: the low bound 6 is above",
        ),
        (
            {"params": {"model.experts.count": {"int": [2]}}},
            "params.model.experts.count: int: List should have at least 2",
        ),
        ({"params": {"model.experts.count": {"range": [2, 4]}}}, "params.model.experts.count: expected one of int"),
        ({"params": {"model.experts.count": {"int": [2, 4], "lo": 1}}}, "params.model.experts.count: lo: Extra inputs"),
        (
            {"params": {"training.optimizer.learning_rate": {"float": [0.0, 0.1], "log": True}}},
            "log: true needs a low bound > 0",
        ),
        ({"params": {"model.gate.type": {"choice": ["softmax", "sparkly"]}}}, "params.model.gate.type"),
        ({"params": {"model.trunk.units": {"choice": [[32], [64]]}}}, "choice: Optuna stores choices of null"),
        ({"params": LR, "metric": "eval/digit/f1"}, "metric 'eval/digit/f1': not an eval metric of this config"),
        (
            {"params": LR, "metric": "eval/digit/loss", "metrics": ["eval/loss", "eval/digit/loss"]},
            "give `metric` (one objective) or `metrics`",
        ),
        (
            {"params": LR, "metrics": ["eval/loss", "eval/digit/loss"], "pruner": {"type": "median"}},
            "pruner: Optuna prunes single-objective studies only",
        ),
        (
            {"params": LR, "metrics": ["eval/loss", "eval/digit/loss"], "directions": ["minimize"]},
            "directions: 1 given for 2 metrics",
        ),
        ({"params": LR, "enqueue": [{"model.experts.count": 3}]}, "enqueue[0]: ['model.experts.count'] not in params"),
        (
            {"params": LR, "enqueue": [{"training.optimizer.learning_rate": -1.0}]},
            "enqueue[0].training.optimizer.learning_rate",
        ),
        ({"params": LR, "sampler": {"type": "grid"}}, "sampler.type"),
        ({"params": {}}, "params: Dictionary should have at least 1 item"),
        ({"metric": "eval/loss"}, "params: Field required"),
        ({"params": LR, "direction": "up"}, "direction"),
    ],
)
def test_bad_spaces_name_the_file_and_the_entry(tmp_path, space, expected):
    message = space_error(tmp_path, space)
    assert message.startswith(str(tmp_path / "space.yaml")), message
    assert expected in message, message
    assert "Traceback" not in message and "pydantic" not in message.lower(), message


def test_a_bad_value_inside_the_bounds_fails_the_trial_not_the_search(tmp_path):
    """Bounds are checked one at a time against the base config; combinations (top-k above the expert count) are
    the trial's to fail, as Optuna's own examples do."""
    path = tmp_path / "space.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "params": {
                    "model.experts.count": {"int": [1, 4]},
                    "model.gate.type": {"choice": ["softmax", "noisy_top_k"]},
                }
            }
        )
    )
    assert parse_space(str(path), tiny_dict(model={"gate": {"type": "softmax"}})).params.keys() == {
        "model.experts.count",
        "model.gate.type",
    }


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(REPO, "configs", "search", "*.yaml"))), ids=os.path.basename
)
def test_shipped_spaces_fit_their_configs(path):
    """Each shipped space opens with the command that runs it; its --config and --set resolve, and the space checks
    out against that config."""
    command = shlex.split(open(path).readline().removeprefix("#"))
    assert command[:2] == ["moe-tf", "search"] and command[command.index("--space") + 1] == os.path.relpath(path, REPO)
    config = command[command.index("--config") + 1]
    overrides = [command[i + 1] for i, word in enumerate(command) if word == "--set"]
    space = parse_space(path, resolve_config_dict(os.path.join(REPO, config), overrides))
    assert len(space.params) >= 3 and space.enqueue
