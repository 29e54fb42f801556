"""The experiment config: typed sections with defaults, and the cross-field checks in `validate()`.

Every field is documented in README.md ("Config reference"). Choices with their own parameters
(data sources, stems, gates, weightings) take their schema from the component registered under `type`.
Names of tasks, features and labels are identifiers (NAME_PATTERN): they become signature and tag names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel, one_of
from moe_tf.errors import ConfigError
from moe_tf.registry import ARCHITECTURES, DATASETS, GATES, STEMS, WEIGHTINGS

if TYPE_CHECKING:  # the Config of whichever component `type:` names: resolved at validation, so Any to mypy
    DatasetChoice: TypeAlias = Any
    StemChoice: TypeAlias = Any
    GateChoice: TypeAlias = Any
    ArchitectureChoice: TypeAlias = Any
    WeightingChoice: TypeAlias = Any
else:
    DatasetChoice, StemChoice, GateChoice, ArchitectureChoice, WeightingChoice = (
        one_of(registry) for registry in (DATASETS, STEMS, GATES, ARCHITECTURES, WEIGHTINGS)
    )

LOSSES_BY_TYPE = {"classification": ["crossentropy"], "binary": ["crossentropy"], "regression": ["mse", "mae", "huber"]}
METRICS_BY_TYPE = {  # the first is a task's default; moe_tf.training.metrics computes them
    "classification": ["accuracy", "top5_accuracy", "logloss", "macro_f1"],
    "binary": [
        "accuracy",
        "auc",
        "pr_auc",
        "logloss",
        "precision",
        "recall",
        "f1",
        "positive_rate",
        "mean_prediction",
        "gauc",
    ],
    "regression": ["mae", "mse", "rmse", "r2"],
}
LOWER_IS_BETTER = {"loss", "logloss", "mae", "mse", "rmse"}


def lower_is_better(metric: str) -> bool:
    """Whether lower values of a metric (`eval/digit/mae`, `loss`, `rmse`) are better."""
    return metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER


class ExperimentSection(StrictModel):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 42
    output_dir: str = "runs"


class AugmentationConfig(StrictModel):
    flip: Literal["none", "horizontal", "vertical", "both"] = "none"
    crop_padding: int = Field(0, ge=0)
    translate: float = Field(0.0, ge=0.0, le=0.5)
    cutout: int = Field(0, ge=0, description="side in pixels of a square zeroed at a random place per image; 0: off")
    mixup: float = Field(
        0.0, ge=0.0, description="α of mixup's Beta(α, α) mixing weight (0.2–0.4 for CIFAR; 0: off); images only"
    )

    @property
    def enabled(self) -> bool:
        """Per-example augmentation (mixup mixes batches in the training step)."""
        return self.flip != "none" or self.crop_padding > 0 or self.translate > 0 or self.cutout > 0


class SamplingConfig(StrictModel):
    type: Literal["proportional", "uniform", "temperature"] = "proportional"
    temperature: float = Field(2.0, gt=0.0)


class DataConfig(StrictModel):
    sources: dict[str, DatasetChoice] = Field(..., min_length=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    shuffle_buffer: int = Field(10_000, ge=1)
    cache: bool = True
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    sharding: Literal["auto", "files", "data"] = Field(
        "auto",
        description="multi_worker: `files` (each worker reads its own training files), `data` (each worker reads "
        "every file and keeps its part of each batch); auto: files when every source is streamed",
    )
    file_shards: int | None = Field(
        None,
        ge=1,
        description="one process: read the streamed training files as N shards, each global batch 1/N from each "
        "(the batches N multi_worker workers read); multi_worker: the number of workers",
    )


class TaskConfig(StrictModel):
    name: str = Field(..., pattern=NAME_PATTERN)
    dataset: str
    label: str = "label"
    label_map: list[int] | dict[int, int] | None = None
    type: Literal["classification", "binary", "regression"] = "classification"
    num_classes: int | None = None
    class_names: list[str] | None = None
    loss: str | None = None
    weight: float | None = Field(
        None, ge=0.0, description="α_t in the total loss; default 1, and 0 for a factor of a `product_of` task"
    )
    metrics: list[str] | None = None
    warmup_steps: int = Field(
        0, ge=0, description="ramp the task's loss from 0 to full over this many steps (a task added with --init-from)"
    )
    product_of: list[str] | None = Field(
        None,
        min_length=2,
        description="binary tasks whose probabilities multiply to this one's (ESMM: ctcvr = ctr × cvr); it has no "
        "tower of its own and trains on its own label",
    )
    group_by: str | None = Field(
        None, pattern=NAME_PATTERN, description="gauc: the input (e.g. a user id) whose values are the groups"
    )
    num_thresholds: int = Field(
        4000, ge=10, le=100_000, description="auc and pr_auc: logit bins their counts are kept in"
    )

    def resolved_loss(self) -> str:
        return self.loss or LOSSES_BY_TYPE[self.type][0]

    def resolved_metrics(self) -> list[str]:
        return list(self.metrics) if self.metrics is not None else [METRICS_BY_TYPE[self.type][0]]


class DenseStackConfig(StrictModel):
    units: list[int] = Field(default_factory=list)

    @field_validator("units")
    @classmethod
    def _positive(cls, v):
        if any(u < 1 for u in v):
            raise ValueError(f"every width must be >= 1, got {v}")
        return v


class ExpertsConfig(StrictModel):
    count: int = Field(4, ge=1)
    units: list[int] = Field(default_factory=lambda: [64], min_length=1)
    input: Literal["trunk", "raw"] = "trunk"


ModelPart = Literal["stems", "trunk", "experts", "gates"]  # what model.freeze and training.optimizer.parts name


class ModelConfig(StrictModel):
    architecture: ArchitectureChoice = Field(default_factory=lambda: ARCHITECTURES.get("mmoe").Config())
    stem: StemChoice | None = None
    stems: dict[str, StemChoice] = Field(default_factory=dict)
    fusion_units: int = Field(128, ge=1)
    normalize_numeric: bool = True
    trunk: DenseStackConfig = Field(default_factory=DenseStackConfig)
    experts: ExpertsConfig = Field(default_factory=ExpertsConfig)
    gate: GateChoice = Field(default_factory=lambda: GATES.get("softmax").Config())
    tower: DenseStackConfig = Field(default_factory=lambda: DenseStackConfig(units=[32]))
    activation: Literal["relu", "gelu", "silu", "tanh", "elu"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    l2: float = Field(0.0, ge=0.0)
    freeze: list[ModelPart] = Field(
        default_factory=list, description="parts whose variables are not trained (e.g. after --init-from)"
    )


class ScheduleConfig(StrictModel):
    type: Literal["constant", "cosine", "exponential"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    decay_steps: int | None = Field(None, ge=1)
    decay_rate: float = Field(0.5, gt=0.0, le=1.0)
    alpha: float = Field(0.0, ge=0.0, le=1.0)


class PartOptimizerConfig(StrictModel):
    """A part's own learning rate: the optimizer's times `learning_rate_scale`, and 0 for its first `frozen_steps`."""

    learning_rate_scale: float = Field(1.0, ge=0.0, description="times the optimizer's (scheduled) learning rate")
    frozen_steps: int = Field(0, ge=0, description="steps at the start in which the part does not move")


class OptimizerConfig(StrictModel):
    type: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    parts: dict[ModelPart, PartOptimizerConfig] = Field(
        default_factory=dict,
        description="per part (stems, trunk, experts, gates): a learning-rate factor and a freeze at the start, e.g. "
        "for a pretrained backbone",
    )


class EarlyStoppingConfig(StrictModel):
    monitor: str | None = None
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True


class DistillationConfig(StrictModel):
    """Knowledge distillation from a trained run (`moe-tf train --distill-from RUN` sets `teacher`)."""

    teacher: str | None = Field(
        None,
        description="a trained run directory; its model's predictions are the soft "
        "targets of the tasks it shares with this run",
    )
    temperature: float = Field(
        2.0, gt=0.0, description="softens both models' logits; the soft loss is scaled by temperature²"
    )
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the soft loss; 1 - alpha on the true labels")


class ProfileConfig(StrictModel):
    """A TensorFlow profiler trace of some training steps in the run's TensorBoard logs (`moe-tf train --profile`)."""

    start_step: int = Field(
        10,
        ge=0,
        description="the first traced step (the first steps of a run also trace and compile the step function)",
    )
    num_steps: int = Field(5, ge=1, description="how many steps the trace holds")


class NonfiniteConfig(StrictModel):
    """What a step does when a task's loss or the gradient is NaN/Inf (the update is never applied)."""

    action: Literal["skip", "reduce_lr", "stop"] = Field(
        "skip",
        description="skip: drop the update and count it; reduce_lr: also multiply the learning rate by "
        "lr_factor; stop: end the run with an error naming the task and step",
    )
    lr_factor: float = Field(0.5, gt=0.0, lt=1.0, description="reduce_lr: the learning rate's factor per skipped step")
    max_consecutive: int = Field(20, ge=1, description="skip/reduce_lr: stop after this many non-finite steps in a row")


class TrainingConfig(StrictModel):
    strategy: Literal["default", "one_device", "mirrored", "multi_worker", "tpu"] = "default"
    devices: list[str] | None = None
    tpu: str | None = None
    logical_cpus: int | None = Field(None, ge=1)
    epochs: int = Field(5, ge=1)
    steps: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    mixed_precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    ema_momentum: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description=(
            "keep an exponential moving average of the weights with this momentum (0.99: about the last 100 steps); "
            "evaluation, early stopping, test, export and predict use the average. null: off"
        ),
    )
    weighting: WeightingChoice = Field(default_factory=lambda: WEIGHTINGS.get("fixed").Config())
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    eval_every: int = Field(0, ge=0)
    evals_per_epoch: int = Field(1, ge=1, description="with eval_every 0: evaluate every ⌊steps per epoch / N⌋ steps")
    checkpoint_every: int = Field(0, ge=0)
    keep_checkpoints: int = Field(3, ge=1)
    steps_per_execution: Literal["auto"] | int = "auto"
    jit_compile: Literal["auto"] | bool = "auto"
    log_every: int = Field(20, ge=1)
    nonfinite: NonfiniteConfig = Field(default_factory=NonfiniteConfig)
    distillation: DistillationConfig = Field(default_factory=DistillationConfig)
    profile: ProfileConfig | None = Field(
        None,
        description="trace these steps with the TensorFlow profiler into "
        "logs/train/plugins/profile (TensorBoard's Profile tab)",
    )
    deterministic: bool = Field(False, description="TensorFlow op determinism (bit-exact reruns on GPU too)")
    collective_timeout: float = Field(
        600.0,
        gt=0.0,
        description="multi_worker: seconds a cross-worker operation may wait for a peer before the run fails",
    )

    @field_validator("steps_per_execution", mode="before")
    @classmethod
    def _auto_or_positive_int(cls, v):
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"expected 'auto' or int >= 1, got {v!r}")

    @field_validator("jit_compile", mode="before")
    @classmethod
    def _auto_or_bool(cls, v):
        if v == "auto" or isinstance(v, bool):
            return v
        raise ValueError(f"expected 'auto', true or false, got {v!r}")


class LoggingConfig(StrictModel):
    tensorboard: bool = True
    progress: Literal["auto", "bar", "lines", "none"] = "auto"
    gate_heatmap: bool = True
    dead_expert_threshold: float = Field(0.01, ge=0.0, le=1.0)
    dead_expert_patience: int = Field(3, ge=1)
    gradient_stats_every: int = Field(
        0, ge=0, description="log grads/norm/<task> and grads/cosine/<a>__<b> every this many steps (0: never)"
    )


class ExperimentConfig(StrictModel):
    experiment: ExperimentSection = Field(default_factory=ExperimentSection)
    data: DataConfig
    tasks: list[TaskConfig] = Field(..., min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _default_weights(self):
        """A task's weight defaults to 1, and to 0 for a factor of a `product_of` task (ESMM trains the factor
        through the product only, unless it is given a weight)."""
        factors = {f for t in self.tasks for f in t.product_of or []}
        for t in self.tasks:
            if t.weight is None:
                t.weight = 0.0 if t.name in factors else 1.0
        return self

    def validate_all(self) -> ExperimentConfig:
        """Cross-field checks; raises ConfigError listing every problem with its path."""
        errors = []
        names = [t.name for t in self.tasks]
        for i, t in enumerate(self.tasks):
            p = f"tasks[{i}]"
            if names.count(t.name) > 1:
                errors.append(f"{p}.name: duplicate task name {t.name!r}")
            if t.dataset not in self.data.sources:
                errors.append(
                    f"{p}.dataset: unknown dataset {t.dataset!r}; data.sources has {sorted(self.data.sources)}"
                )
            if t.type == "classification" and t.num_classes is not None and t.num_classes < 2:
                errors.append(f"{p}.num_classes: expected int >= 2, got {t.num_classes}")
            if t.type != "classification" and t.num_classes is not None and t.num_classes < 1:
                errors.append(f"{p}.num_classes: expected int >= 1, got {t.num_classes}")
            if t.type == "binary" and t.num_classes not in (None, 2):
                errors.append(f"{p}.num_classes: a binary task has 2 classes, got {t.num_classes}")
            if t.type == "regression" and t.num_classes not in (None, 1):
                errors.append(f"{p}.num_classes: a regression task has no classes, got {t.num_classes}")
            if t.loss is not None and t.loss not in LOSSES_BY_TYPE[t.type]:
                errors.append(f"{p}.loss: expected one of {LOSSES_BY_TYPE[t.type]} for a {t.type} task, got {t.loss!r}")
            for j, m in enumerate(t.metrics or []):
                if m not in METRICS_BY_TYPE[t.type]:
                    errors.append(
                        f"{p}.metrics[{j}]: expected one of {METRICS_BY_TYPE[t.type]} for a {t.type} task, got {m!r}"
                    )
            if t.type == "regression" and t.label_map is not None:
                errors.append(f"{p}.label_map: a regression task reads its targets as they are; remove label_map")
            if "gauc" in (t.metrics or []) and t.group_by is None:
                errors.append(f"{p}.group_by: gauc averages the AUC of each group; name the input that groups")
            if t.group_by is not None and "gauc" not in (t.metrics or []):
                errors.append(f"{p}.group_by: only the gauc metric reads it; add gauc to metrics or remove it")
        errors += self._product_errors()
        if all(t.weight == 0 for t in self.tasks):
            errors.append("tasks: at least one task needs weight > 0")
        if WEIGHTINGS.get(self.training.weighting.type).task_gradients:
            loss_weightings = [k for k, cls in WEIGHTINGS.items() if not cls.task_gradients]
            for i, t in enumerate(self.tasks):
                if t.warmup_steps:
                    errors.append(
                        f"tasks[{i}].warmup_steps: {self.training.weighting.type} combines the tasks' "
                        "gradients by their directions, so a ramped loss does not ramp the task in; use a "
                        f"loss weighting ({', '.join(loss_weightings)}) or no warm-up"
                    )
        errors += self._gate_errors()
        monitor = self.training.early_stopping.monitor
        if monitor is not None and monitor not in self.monitor_names():
            errors.append(
                f"training.early_stopping.monitor: unknown metric {monitor!r}; known: {', '.join(self.monitor_names())}"
            )
        if self.training.strategy == "one_device" and self.training.devices and len(self.training.devices) != 1:
            errors.append(f"training.devices: one_device takes one device, got {self.training.devices}")
        if errors:
            raise ConfigError("\n".join(errors))
        return self

    def _product_errors(self) -> list[str]:
        """`product_of` names other binary tasks of the same source that are not products themselves."""
        errors = []
        by_name = {t.name: t for t in self.tasks}
        for i, t in enumerate(self.tasks):
            for j, name in enumerate(t.product_of or []):
                where = f"tasks[{i}].product_of[{j}]"
                factor = by_name.get(name)
                if name == t.name:
                    errors.append(f"{where}: task {t.name!r} cannot be a factor of itself")
                elif factor is None:
                    errors.append(f"{where}: no task {name!r}; the tasks are {', '.join(by_name)}")
                elif factor.type != "binary":
                    errors.append(f"{where}: {name!r} is a {factor.type} task; factors are binary tasks")
                elif factor.product_of:
                    errors.append(f"{where}: {name!r} is itself a product; name its factors instead")
                elif factor.dataset != t.dataset:
                    errors.append(
                        f"{where}: {name!r} reads {factor.dataset!r}, {t.name!r} reads {t.dataset!r}; a product "
                        "and its factors read one source"
                    )
            if t.product_of and t.type != "binary":
                errors.append(
                    f"tasks[{i}].type: a product_of task is binary (its probability is a product), got {t.type!r}"
                )
            if t.product_of and len(set(t.product_of)) != len(t.product_of):
                errors.append(f"tasks[{i}].product_of: a factor is named twice ({t.product_of})")
        return errors

    def _gate_errors(self) -> list[str]:
        """A top-k gate must have at least k experts to choose among in every gate of the architecture."""
        k = getattr(self.model.gate, "k", None)
        arch = self.model.architecture
        if not ARCHITECTURES.get(arch.type).gated:
            if self.model.experts.input == "raw":
                gated = [key for key, cls in ARCHITECTURES.items() if cls.gated]
                return [
                    f"model.experts.input: 'raw' makes each expert a whole network on the raw inputs; the "
                    f"{arch.type} architecture has no experts (use {', '.join(gated)}, or input 'trunk')"
                ]
            return []
        if k is None:
            return []
        fewest = self.model.experts.count + getattr(arch, "task_experts", 0)
        if k > fewest:
            where = "model.experts.count" + (
                " + model.architecture.task_experts" if hasattr(arch, "task_experts") else ""
            )
            return [f"model.gate.k: {k} is more than the {fewest} experts a gate chooses among ({where})"]
        return []

    def monitor_names(self) -> list[str]:
        names = ["eval/loss"]
        for t in self.tasks:
            names += [f"eval/{t.name}/loss"] + [f"eval/{t.name}/{m}" for m in t.resolved_metrics()]
        return names

    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)
