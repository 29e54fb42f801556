"""The experiment config: typed sections with defaults, and the cross-field checks in `validate()`.

Every field carries its description, from which docs/reference/config.md (the config reference) is generated
(moe_tf.config.reference). Choices with their own parameters
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
    name: str = Field(
        "experiment",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="run name; the default run directory is `output_dir/name`",
    )
    seed: int = Field(42, description="seeds initialisation, data splits, shuffling and augmentation")
    output_dir: str = Field("runs", description="parent of the default run directory")


class AugmentationConfig(StrictModel):
    flip: Literal["none", "horizontal", "vertical", "both"] = Field(
        "none", description="random flips of training images: `none`, `horizontal`, `vertical` or `both`"
    )
    crop_padding: int = Field(
        0, ge=0, description="pad training images by N pixels and crop back at a random place; 0 is off"
    )
    translate: float = Field(
        0.0, ge=0.0, le=0.5, description="random shift of training images up to this fraction of the size (zero fill)"
    )
    cutout: int = Field(
        0,
        ge=0,
        description="zero a square of N×N pixels at a random place of each training image (DeVries & Taylor 2017; "
        "clipped at the borders); 0 is off",
    )
    mixup: float = Field(
        0.0,
        ge=0.0,
        description="mixup's α: each training batch is mixed with a shuffled copy of itself, λ ~ Beta(α, α), and "
        "each task's loss mixed alike (Zhang et al. 2018; 0.2–0.4 usual); 0 is off; image-only, one-source runs",
    )

    @property
    def enabled(self) -> bool:
        """Per-example augmentation (mixup mixes batches in the training step)."""
        return self.flip != "none" or self.crop_padding > 0 or self.translate > 0 or self.cutout > 0


class SamplingConfig(StrictModel):
    type: Literal["proportional", "uniform", "temperature"] = Field(
        "proportional",
        description="with several sources, which source each training batch comes from: `proportional` to the "
        "sources' training sizes, `uniform`, or `temperature` (p_s ∝ n_s^(1/τ))",
    )
    temperature: float = Field(
        2.0, gt=0.0, description="τ of `temperature` sampling (1 = proportional, large = uniform)"
    )


class DataConfig(StrictModel):
    sources: dict[str, DatasetChoice] = Field(
        ...,
        min_length=1,
        description="named sources `{name: {type: ..., ...}}`; tasks refer to a source by name, and may read "
        "different sources",
    )
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="which source each training batch comes from"
    )
    shuffle_buffer: int = Field(10_000, ge=1, description="shuffle buffer (examples); the order is seeded per epoch")
    cache: bool = Field(True, description="cache decoded TFDS examples in memory (in-memory sources need no cache)")
    augmentation: AugmentationConfig = Field(
        default_factory=AugmentationConfig,
        description="image augmentation, training only, seeded per example and epoch",
    )
    sharding: Literal["auto", "files", "data"] = Field(
        "auto",
        description="`multi_worker`: `files` (each worker reads its own training files), `data` (each worker reads "
        "every example and keeps its part of each batch); `auto`: `files` when every source is streamed, else `data`",
    )
    file_shards: int | None = Field(
        None,
        ge=1,
        description="one process: read the streamed training files as N shards, each global batch 1/N from each — "
        "the batches N `multi_worker` workers read; under `multi_worker` it is the number of workers",
    )


class TaskConfig(StrictModel):
    name: str = Field(
        ...,
        pattern=NAME_PATTERN,
        description="identifier (`[A-Za-z][A-Za-z0-9_]*`), used in tags, metrics and export signatures",
    )
    dataset: str = Field(..., description="the key of the `data.sources` entry the task reads")
    label: str = Field("label", description="which label column of the source the task reads")
    label_map: list[int] | dict[int, int] | None = Field(
        None,
        description="derive the task from the label: a list (index = source label) or a mapping `{source: task}`; "
        "unmapped source labels become missing (-1)",
    )
    type: Literal["classification", "binary", "regression"] = Field(
        "classification", description="`classification`, `binary` or `regression`"
    )
    num_classes: int | None = Field(
        None,
        description="default: from the data; checked against the labels (≥ 2 for classification; 2 for binary)",
    )
    class_names: list[str] | None = Field(None, description="default: from the data; stored in the export")
    loss: str | None = Field(
        None, description="default `crossentropy` (`mse` for regression); regression also takes `mae`, `huber`"
    )
    weight: float | None = Field(
        None,
        ge=0.0,
        description="α_t in the total loss Σ α_t L_t; default 1, and 0 for a factor of a `product_of` task",
    )
    metrics: list[str] | None = Field(
        None,
        description="default `[accuracy]` (`[mae]` for regression). classification: `accuracy`, `top5_accuracy`, "
        "`logloss`, `macro_f1`; binary: `accuracy`, `auc` (ROC), `pr_auc` (average precision), `logloss`, "
        "`precision`, `recall`, `f1` (at probability 0.5), `positive_rate` (mean label), `mean_prediction` (mean "
        "probability: beside `positive_rate`, calibration), `gauc` (with `group_by`); regression: `mae`, `mse`, "
        "`rmse`, `r2`. Every metric is exact over a split under any strategy and usable in "
        "`early_stopping.monitor`, search objectives and `moe-tf compare`",
    )
    warmup_steps: int = Field(
        0,
        ge=0,
        description="ramp the task's loss linearly from 0 (step 0) to full (this step), e.g. for a task added with "
        "`--init-from`; loss weightings only (gradient surgery combines directions, not scales)",
    )
    product_of: list[str] | None = Field(
        None,
        min_length=2,
        description="binary tasks whose probabilities multiply to this one's (ESMM: ctcvr = ctr × cvr); it has no "
        "tower of its own and trains on its own label",
    )
    group_by: str | None = Field(
        None, pattern=NAME_PATTERN, description="`gauc`: the input whose values group the examples (e.g. a user id)"
    )
    num_thresholds: int = Field(
        4000,
        ge=10,
        le=100_000,
        description="`auc` and `pr_auc`: logit bins the positives and negatives are counted in",
    )

    def resolved_loss(self) -> str:
        return self.loss or LOSSES_BY_TYPE[self.type][0]

    def resolved_metrics(self) -> list[str]:
        return list(self.metrics) if self.metrics is not None else [METRICS_BY_TYPE[self.type][0]]


class DenseStackConfig(StrictModel):
    units: list[int] = Field(default_factory=list, description="widths of the dense layers, in order")

    @field_validator("units")
    @classmethod
    def _positive(cls, v):
        if any(u < 1 for u in v):
            raise ValueError(f"every width must be >= 1, got {v}")
        return v


class ExpertsConfig(StrictModel):
    count: int = Field(4, ge=1, description="number of (shared) experts E (unused by `shared_bottom`, `single_task`)")
    units: list[int] = Field(
        default_factory=lambda: [64],
        min_length=1,
        description="each expert's layer widths (`shared_bottom`: the shared block; `single_task`: each task's "
        "network)",
    )
    input: Literal["trunk", "raw"] = Field(
        "trunk",
        description="`trunk`: experts are MLPs on the shared trunk's output, gates read it too. `raw`: each expert "
        "of the first level is a whole network (its own stems and trunk, then the MLP) on the raw inputs and gates "
        "read the flattened preprocessed inputs, as LibMTL builds MMoE (gated architectures only)",
    )


ModelPart = Literal["stems", "trunk", "experts", "gates"]  # what model.freeze and training.optimizer.parts name


class ModelConfig(StrictModel):
    architecture: ArchitectureChoice = Field(
        default_factory=lambda: ARCHITECTURES.get("mmoe").Config(),
        description="how tasks share the network: `{type: ..., parameters}`, or just the name (`architecture: ple` "
        "is `{type: ple}`)",
    )
    stem: StemChoice | None = Field(
        None,
        description="one stem for every input its type takes (`conv`, `resnet`, `keras_applications`: images; "
        "`dense`: images and numeric; `tabular`: categorical and numeric; `bag`, `text_cnn`, `transformer`: text). "
        "Default: the modality's own (`conv` for images, `dense` for numeric, `bag` for text, `tabular` for "
        "categorical)",
    )
    stems: dict[str, StemChoice] = Field(
        default_factory=dict,
        description="per-input stems `{key: stem config}` (the keys of `model.stem`), the key a feature name, a "
        "source name or a modality; the most specific wins (feature, source, modality, then `model.stem`, then the "
        "modality's default: `conv` for images, `dense` for numeric, `bag` for text, `tabular` for categorical; in "
        "a run with categorical inputs, numeric inputs default to the categorical ones' stem, "
        "`model.stems.categorical`)",
    )
    fusion_units: int = Field(
        128,
        ge=1,
        description="with several inputs, each input's stem output is projected to this width and the inputs an "
        "example has are summed before the trunk",
    )
    normalize_numeric: bool = Field(
        True,
        description="standardise numeric inputs with the training split's mean and variance (per element), stored "
        "in the model and its export; elements that are 0/1 in the whole training split (one-hot columns) stay "
        "unscaled",
    )
    trunk: DenseStackConfig = Field(default_factory=DenseStackConfig, description="shared dense layers after the stems")
    experts: ExpertsConfig = Field(default_factory=ExpertsConfig, description="the pool of experts")
    gate: GateChoice = Field(
        default_factory=lambda: GATES.get("softmax").Config(),
        description="how a gate mixes experts: `{type: ..., parameters}` or just the name",
    )
    tower: DenseStackConfig = Field(
        default_factory=lambda: DenseStackConfig(units=[32]), description="each task's tower before its head"
    )
    activation: Literal["relu", "gelu", "silu", "tanh", "elu"] = Field(
        "relu", description="activation of the dense layers: `relu`, `gelu`, `silu`, `tanh` or `elu`"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each dense layer (training only)")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on kernels, added to the total loss")
    freeze: list[ModelPart] = Field(
        default_factory=list,
        description="parts whose variables are not trained (e.g. after `--init-from`): any of `stems` (every "
        "input's stem and projection), `trunk`, `experts` (`shared_bottom`: its shared block), `gates`; a part the "
        "architecture lacks is an error",
    )


class ScheduleConfig(StrictModel):
    type: Literal["constant", "cosine", "exponential"] = Field(
        "constant", description="`constant`, `cosine` or `exponential` after the warm-up"
    )
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    decay_steps: int | None = Field(None, ge=1, description="decay length (default: the rest of training)")
    decay_rate: float = Field(0.5, gt=0.0, le=1.0, description="`exponential`: factor per `decay_steps`")
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="`cosine`: final fraction of the peak learning rate")


class PartOptimizerConfig(StrictModel):
    """A part's own learning rate: the optimizer's times `learning_rate_scale`, and 0 for its first `frozen_steps`."""

    learning_rate_scale: float = Field(
        1.0, ge=0.0, description="a part's factor on the optimizer's (scheduled) learning rate; 0 holds it still"
    )
    frozen_steps: int = Field(0, ge=0, description="steps at the start in which the part does not move")


class OptimizerConfig(StrictModel):
    type: Literal["adam", "adamw", "sgd", "rmsprop"] = Field("adam", description="`adam`, `adamw`, `sgd` or `rmsprop`")
    learning_rate: float = Field(1e-3, gt=0.0, description="peak learning rate")
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        description="decoupled weight decay (w ← w − lr·wd·w each step) for every optimizer type; 0 is none; "
        "batch-norm scales and offsets are left out",
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD / RMSprop momentum")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="the learning-rate schedule")
    parts: dict[ModelPart, PartOptimizerConfig] = Field(
        default_factory=dict,
        description="a learning rate per part: `{stems: {learning_rate_scale: 0.1, frozen_steps: 500}}` moves the "
        "stems by 0.1× the optimizer's step, and not at all for the first 500 steps; parts are `stems`, `trunk`, "
        "`experts`, `gates` (e.g. for a pretrained backbone)",
    )


class EarlyStoppingConfig(StrictModel):
    monitor: str | None = Field(
        None,
        description="the metric early stopping and the best checkpoint follow, e.g. `eval/digit/accuracy`, "
        "`eval/digit/loss`, `eval/loss`; null: no early stopping",
    )
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="`min` for losses and errors, `max` otherwise; `auto` picks by the metric's name"
    )
    patience: int = Field(5, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as an improvement")
    restore_best: bool = Field(True, description="test, export and `evaluate` use the best checkpoint")


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
    lr_factor: float = Field(
        0.5, gt=0.0, lt=1.0, description="reduce_lr: the learning rate's factor per skipped step (kept in checkpoints)"
    )
    max_consecutive: int = Field(20, ge=1, description="skip/reduce_lr: stop after this many non-finite steps in a row")


class TrainingConfig(StrictModel):
    strategy: Literal["default", "one_device", "mirrored", "multi_worker", "tpu"] = Field(
        "default",
        description="`default`, `one_device`, `mirrored`, `multi_worker` (from `TF_CONFIG`) or `tpu`",
    )
    devices: list[str] | None = Field(
        None, description='devices for `mirrored` / `one_device`, e.g. `["/gpu:0", "/gpu:1"]` (default: all)'
    )
    tpu: str | None = Field(None, description="TPU name or `grpc://` address for `tpu` (default: the local TPU)")
    logical_cpus: int | None = Field(
        None, ge=1, description="split the CPU into N logical devices (to try `mirrored` without GPUs)"
    )
    epochs: int = Field(5, ge=1, description="epochs (ignored when `steps` is set)")
    steps: int | None = Field(None, ge=1, description="total optimizer steps")
    batch_size: int = Field(64, ge=1, description="**global** batch size, split over replicas")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="the optimizer")
    mixed_precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32",
        description="`float32`, `mixed_float16` (with dynamic loss scaling) or `mixed_bfloat16`; heads and gates "
        "stay float32",
    )
    ema_momentum: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description=(
            "keep an exponential moving average of the weights, a ← m·a + (1 − m)·w after every applied step (the "
            "first copies them; 0.99 ≈ the last 100 steps). Training updates the raw weights; evaluation during "
            "training (so early stopping), the test split, the export, `evaluate`, `predict`, `--init-from` and a "
            "distillation teacher use the average. Checkpoints hold both, so `--resume` continues both exactly. "
            "null: off"
        ),
    )
    weighting: WeightingChoice = Field(
        default_factory=lambda: WEIGHTINGS.get("fixed").Config(),
        description="how task losses become the gradient: `{type: ..., parameters}` or just the name",
    )
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=EarlyStoppingConfig, description="early stopping and the best checkpoint"
    )
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: see `evals_per_epoch`)")
    evals_per_epoch: int = Field(
        1,
        ge=1,
        description="with `eval_every: 0`, evaluate every ⌊steps per epoch / N⌋ steps (so early stopping can pick a "
        "point inside an epoch, whatever the data set's size); a non-zero `eval_every`, e.g. from `--set`, takes "
        "precedence",
    )
    checkpoint_every: int = Field(0, ge=0, description="checkpoint every N steps (0: at each evaluation)")
    keep_checkpoints: int = Field(3, ge=1, description="latest checkpoints kept")
    steps_per_execution: Literal["auto"] | int = Field(
        "auto",
        description="steps per `tf.function` call. `auto`: every stretch between two log/eval/checkpoint steps runs "
        "as one graph call (the step statistics accumulate in variables, so the host has nothing to do in between; "
        "progress output is unchanged). An int ≥ 1 caps the stretch (`1`: one step per call)",
    )
    jit_compile: Literal["auto"] | bool = Field(
        "auto",
        description="compile the step with XLA (the whole step on one device; each replica's forward and backward "
        "pass under `mirrored`/`multi_worker`, whose optimizer all-reduces outside XLA). `auto`: on when GPUs are "
        "present; off on CPU-only machines (XLA's CPU kernels are slower than oneDNN's for real models; it helps "
        "only tiny, dispatch-bound models) and on TPU, where the whole step is compiled anyway",
    )
    log_every: int = Field(20, ge=1, description="steps between progress lines and TensorBoard scalars")
    nonfinite: NonfiniteConfig = Field(
        default_factory=NonfiniteConfig,
        description="what follows a step with a NaN/Inf loss or gradient (such a step is never applied)",
    )
    distillation: DistillationConfig = Field(
        default_factory=DistillationConfig, description="knowledge distillation from a trained run"
    )
    profile: ProfileConfig | None = Field(
        None,
        description="`{}` or `--profile`: trace training steps with the TensorFlow profiler into "
        "`<run>/logs/train/plugins/profile` (TensorBoard's Profile tab); null: off",
    )
    deterministic: bool = Field(
        False,
        description="TensorFlow op determinism: bit-exact reruns and resumes on GPU too; says which of the step's "
        "ops have no deterministic kernel on the device",
    )
    collective_timeout: float = Field(
        600.0,
        gt=0.0,
        description="`multi_worker`: seconds a cross-worker operation may wait for a peer before the run fails",
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
    tensorboard: bool = Field(True, description="write TensorBoard events to `<run>/logs`")
    progress: Literal["auto", "bar", "lines", "none"] = Field(
        "auto", description="progress output: `bar`, `lines`, `none`; `auto`: `bar` on a terminal, else `lines`"
    )
    gate_heatmap: bool = Field(
        True,
        description="log the labelled gate × expert heatmap image at each evaluation (`gates.png` is written either "
        "way)",
    )
    dead_expert_threshold: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="an expert whose load (fraction of examples routed to it; mean gate weight for dense gates) "
        "stays below this under every gate for `dead_expert_patience` evaluations in a row is named in a warning "
        "and counted in `gates/dead_experts`",
    )
    dead_expert_patience: int = Field(
        3, ge=1, description="evaluations in a row below `dead_expert_threshold` before an expert counts as dead"
    )
    gradient_stats_every: int = Field(
        0,
        ge=0,
        description="every this many steps, measure each task's loss gradient on the shared variables and log "
        "`grads/norm/<task>` and `grads/cosine/<a>__<b>` (0: never; costs one forward and one backward pass per "
        "task on those steps only)",
    )


class ExperimentConfig(StrictModel):
    experiment: ExperimentSection = Field(
        default_factory=ExperimentSection, description="the run's name, seed and output directory"
    )
    data: DataConfig = Field(..., description="the data sources and how batches are drawn from them")
    tasks: list[TaskConfig] = Field(..., min_length=1, description="the tasks, each reading a label of a source")
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="stems, trunk, experts, gates, architecture and towers"
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig,
        description="strategy, optimizer, task weighting, evaluation, checkpoints and early stopping",
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="TensorBoard, progress and telemetry")

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
