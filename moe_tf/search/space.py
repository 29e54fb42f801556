"""A search space file: which config keys a search varies and over what, what it optimises, and how.

```yaml
metric: eval/digit/accuracy          # or `metrics: [eval/a/accuracy, eval/b/accuracy]`: one objective per task
direction: maximize                  # default: minimize for loss/logloss/mae/mse/rmse, else maximize
sampler: {type: tpe, startup_trials: 10}             # tpe | random
pruner: {type: median, startup_trials: 5, warmup_steps: 0}   # median | hyperband | none
enqueue:                             # trials to run first, in order (e.g. the shipped values)
  - {training.optimizer.learning_rate: 0.01}
params:                              # any config key, in --set syntax
  model.experts.count: {int: [2, 16]}
  training.optimizer.learning_rate: {float: [1.0e-4, 1.0e-2], log: true}
  model.gate.type: {choice: [softmax, noisy_top_k]}
```

`parse_space` checks it against the schema: each parameter's bounds and choices are set into the base config and
validated, so a key the schema does not have or a value it refuses is an error naming the space file and the key.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from moe_tf.config.loader import read_yaml, set_value, validate_config
from moe_tf.config.schema import lower_is_better
from moe_tf.errors import ConfigError

Int, Float = int, float  # the parameter models' fields `int` and `float` hide the builtins in their bodies


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class IntParam(Strict):
    int: list[Int] = Field(min_length=2, max_length=2)
    step: Int = Field(1, ge=1)
    log: bool = False

    def check(self):
        low, high = self.int
        if low > high:
            raise ValueError(f"int: the low bound {low} is above the high bound {high}")
        if self.log and low < 1:
            raise ValueError(f"int: log: true needs a low bound >= 1, got {low}")
        return [low, high]

    def suggest(self, trial, name):
        return trial.suggest_int(name, *self.int, step=self.step, log=self.log)


class FloatParam(Strict):
    model_config = ConfigDict(extra="forbid", strict=False)  # YAML reads 1e-4 (no dot) as text

    float: list[Float] = Field(min_length=2, max_length=2)
    log: bool = False
    step: Float | None = Field(None, gt=0)

    def check(self):
        low, high = self.float
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"float: expected finite bounds [low, high] with low <= high, got {[low, high]}")
        if self.log and low <= 0:
            raise ValueError(f"float: log: true needs a low bound > 0, got {low}")
        if self.log and self.step is not None:
            raise ValueError("float: step and log: true exclude each other (Optuna samples one or the other)")
        return [low, high]

    def suggest(self, trial, name):
        return trial.suggest_float(name, *self.float, log=self.log, step=self.step)


class ChoiceParam(Strict):
    choice: list[Any] = Field(min_length=1)

    def check(self):
        for value in self.choice:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ValueError(
                    f"choice: Optuna stores choices of null, bool, int, float or str; got {value!r} "
                    "(choose among names or numbers, and set lists through several keys)"
                )
        return self.choice

    def suggest(self, trial, name):
        return trial.suggest_categorical(name, self.choice)


class SamplerSpec(Strict):
    type: Literal["tpe", "random"] = "tpe"
    startup_trials: int = Field(10, ge=0, description="tpe: random trials before TPE models the results")


class PrunerSpec(Strict):
    type: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = Field(5, ge=0, description="median: trials finished before any is pruned")
    warmup_steps: int = Field(0, ge=0, description="median: training steps before a trial can be pruned")
    min_resource: int = Field(1, ge=1, description="hyperband: training steps a trial gets at least")
    reduction_factor: int = Field(3, ge=2, description="hyperband: the fraction of trials promoted is 1/this")


class SpaceSpec(Strict):
    metric: str | None = None
    metrics: list[str] | None = Field(None, min_length=2)
    direction: Literal["maximize", "minimize"] | None = None
    directions: list[Literal["maximize", "minimize"]] | None = None
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec | None = None
    enqueue: list[dict[str, Any]] = []
    params: dict[str, dict[str, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_kind_of_objective(self):
        if self.metric is not None and self.metrics is not None:
            raise ValueError("give `metric` (one objective) or `metrics` (one per task, a Pareto front), not both")
        if self.direction is not None and self.metrics is not None:
            raise ValueError("with `metrics`, give `directions` (one per metric), not `direction`")
        if self.directions is not None and self.metrics is None:
            raise ValueError("`directions` goes with `metrics`; with one `metric`, give `direction`")
        return self


class Space:
    """A validated search space. `objectives`: [(metric, direction)]; `params`: {key: IntParam|FloatParam|...}."""

    def __init__(self, spec: SpaceSpec, path: str, objectives: list[tuple[str, str]], params: dict):
        self.spec = spec
        self.path = path
        self.params = params
        self.objectives = objectives
        self.sampler = spec.sampler
        self.pruner = spec.pruner or PrunerSpec(type="none" if self.multi_objective else "median")
        self.enqueue = spec.enqueue

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def suggest(self, trial) -> dict:
        """{key: value} for one trial."""
        return {key: param.suggest(trial, key) for key, param in self.params.items()}

    def as_dict(self) -> dict:
        return self.spec.model_dump(exclude_none=True)


def parse_space(path: str, base: dict) -> Space:
    """Reads and checks the space file at `path` against `base` (the resolved config mapping the trials start
    from). Raises ConfigError naming the file and each bad entry."""
    raw = read_yaml(path)
    try:
        spec = SpaceSpec.model_validate(raw)
    except ValidationError as e:
        lines = [f"{_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in e.errors()]
        raise ConfigError(f"{path}: " + ("\n  ".join([""] + lines) if len(lines) > 1 else lines[0])) from None
    errors = []
    config = validate_config(copy.deepcopy(base))  # the caller names the config file if this fails
    known = config.monitor_names()
    metrics = spec.metrics or [spec.metric or config.training.early_stopping.monitor or known[2]]
    directions = spec.directions or [spec.direction] * len(metrics)
    if len(directions) != len(metrics):
        errors.append(f"directions: {len(directions)} given for {len(metrics)} metrics")
    for name in metrics:
        if name not in known:
            errors.append(f"metric {name!r}: not an eval metric of this config; known: {', '.join(known)}")
    objectives = [(m, d or ("minimize" if lower_is_better(m) else "maximize")) for m, d in zip(metrics, directions)]
    if len(objectives) > 1 and spec.pruner is not None and spec.pruner.type != "none":
        errors.append("pruner: Optuna prunes single-objective studies only; remove it or set type: none")
    params = {}
    for key, raw_param in spec.params.items():
        try:
            params[key] = param = _parse_param(raw_param)
            values = param.check()
        except ValueError as e:
            errors.append(f"params.{key}: {e}")
            continue
        errors += _check_values(base, key, values)
    for i, trial in enumerate(spec.enqueue):
        unknown = sorted(set(trial) - set(spec.params))
        if unknown:
            errors.append(f"enqueue[{i}]: {unknown} not in params (an enqueued trial sets searched keys only)")
        for key, value in trial.items():
            if key in spec.params and not unknown:
                errors += [e.replace(f"params.{key}", f"enqueue[{i}].{key}") for e in _check_values(base, key, [value])]
    if errors:
        raise ConfigError(f"{path}: " + ("\n  ".join([""] + errors) if len(errors) > 1 else errors[0]))
    return Space(spec, path, objectives, params)


PARAM_KINDS = {"int": IntParam, "float": FloatParam, "choice": ChoiceParam}


def _parse_param(raw: dict):
    kinds = [kind for kind in PARAM_KINDS if kind in raw]
    if len(kinds) != 1:
        raise ValueError(f"expected one of int: [low, high], float: [low, high] or choice: [values], got {raw!r}")
    try:
        return PARAM_KINDS[kinds[0]].model_validate(raw)
    except ValidationError as e:
        raise ValueError(
            "; ".join(f"{_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in e.errors())
        ) from None


def _check_values(base: dict, key: str, values) -> list[str]:
    """Errors for the values of `key` the schema refuses (each set alone into the base config)."""
    errors = []
    for value in values:
        data = copy.deepcopy(base)
        try:
            set_value(data, key, value, origin=f"params.{key}:")
            validate_config(data)
        except ConfigError as e:
            message = str(e).replace(f"params.{key}: {key}: ", f"params.{key}: ")
            if not message.startswith(f"params.{key}"):
                message = f"params.{key} = {value!r}: {message}"
            errors.append(message.replace("\n", "; "))
            break  # one message per key
    return errors


def _location(loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"
