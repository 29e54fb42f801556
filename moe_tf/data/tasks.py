"""Tasks resolved against the sources they read: classes, class names, label maps, and label checks.

One missing-label convention for every task kind: a class label of -1, or a regression target of NaN, is missing
and is masked out of that task's loss and metrics. Examples of another source carry missing labels for this task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moe_tf.data.base import SourceData
from moe_tf.errors import ConfigError, DataError

MISSING_LABEL = -1
GROUP_SUFFIX = "__group"  # gauc: a task's group keys travel with its labels as "<task>__group"


@dataclass
class TaskInfo:
    """A task resolved against its data: what the model builder and the trainer need."""

    name: str
    kind: str  # classification | binary | regression
    num_classes: int
    class_names: list[str]
    weight: float
    loss: str
    metrics: list[str]
    source: str  # the key in data.sources the task reads
    label: str
    label_table: np.ndarray | None  # source label → task label, -1 where unmapped
    features: list[str]  # the model inputs the task's source provides
    warmup_steps: int = 0  # the task's loss ramps from 0 to full over this many steps
    num_thresholds: int = 4000  # auc / pr_auc: logit bins (moe_tf.training.metrics)
    product_of: list[str] | None = None  # ESMM: the tasks whose probabilities multiply to this one's
    group_by: str | None = None  # gauc: the input whose values group the examples

    @property
    def group_key(self) -> str:
        """The label key the pipeline puts each example's group under (with `group_by`)."""
        return f"{self.name}{GROUP_SUFFIX}"

    @property
    def output_units(self) -> int:
        return 1 if self.kind in ("binary", "regression") else self.num_classes

    @property
    def missing(self):
        """The label value that marks a missing example: NaN for regression, -1 otherwise."""
        return np.nan if self.kind == "regression" else MISSING_LABEL


def _label_table(task_cfg, index: int, source_classes: int) -> np.ndarray | None:
    mapping = task_cfg.label_map
    if mapping is None:
        return None
    table = np.full(max(source_classes, 1), MISSING_LABEL, dtype=np.int64)
    items = enumerate(mapping) if isinstance(mapping, list) else mapping.items()
    for src, dst in items:
        if not 0 <= int(src) < source_classes:
            raise ConfigError(
                f"tasks[{index}].label_map: source label {src} is out of range "
                f"(label {task_cfg.label!r} has {source_classes} classes)"
            )
        if int(dst) < MISSING_LABEL:
            raise ConfigError(
                f"tasks[{index}].label_map: task label {dst} for source label {src} must be >= 0 (or -1 for missing)"
            )
        table[int(src)] = int(dst)
    return table


def resolve_tasks(task_cfgs, sources: dict[str, SourceData]) -> list[TaskInfo]:
    """Checks each task's label against its source and fills in num_classes and class names."""
    infos = []
    for i, t in enumerate(task_cfgs):
        source = sources[t.dataset]
        readable = sorted(k for k, info in source.labels.items() if info.kind != "weight")
        if t.label not in readable:
            raise ConfigError(f"tasks[{i}].label: source {t.dataset!r} has no label {t.label!r}; it has {readable}")
        src = source.labels[t.label]
        if src.kind == "value" and t.type != "regression":
            raise ConfigError(
                f"tasks[{i}].type: label {t.label!r} of {t.dataset!r} holds float targets, "
                f"so the task must be a regression, got {t.type!r}"
            )
        if t.type == "regression" and t.label_map is not None:
            raise ConfigError(
                f"tasks[{i}].label_map: a regression task reads its targets as they are; remove label_map"
            )
        if t.group_by is not None:
            spec = source.features.get(t.group_by)
            if spec is None or spec.shape != () or spec.modality not in ("categorical", "numeric"):
                raise ConfigError(
                    f"tasks[{i}].group_by: {t.group_by!r} is not a scalar categorical or numeric input of "
                    f"{t.dataset!r}; its inputs are {sorted(source.features)}"
                )
        table = _label_table(t, i, src.num_classes)
        if t.type == "regression":
            num_classes, names = 1, [t.name]
        else:
            inferred = int(table.max()) + 1 if table is not None else src.num_classes
            num_classes = t.num_classes or (2 if t.type == "binary" else inferred)
            if inferred > num_classes:
                raise ConfigError(
                    f"tasks[{i}].num_classes: {t.name!r} has labels up to {inferred - 1}, "
                    f"so num_classes must be >= {inferred}, got {num_classes}"
                )
            if t.class_names:
                names = list(t.class_names)
            elif table is None and len(src.class_names) == num_classes:
                names = list(src.class_names)
            else:
                names = [str(c) for c in range(num_classes)]
            if len(names) != num_classes:
                raise ConfigError(f"tasks[{i}].class_names: expected {num_classes} names, got {len(names)}")
        infos.append(
            TaskInfo(
                t.name,
                t.type,
                num_classes,
                names,
                t.weight,
                t.resolved_loss(),
                t.resolved_metrics(),
                t.dataset,
                t.label,
                table,
                sorted(source.features),
                t.warmup_steps,
                t.num_thresholds,
                list(t.product_of) if t.product_of else None,
                t.group_by,
            )
        )
    return infos


def map_labels(values: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """Source class labels → task labels through `table`; -1 (missing) stays -1."""
    if table is None:
        return values
    return np.where(values >= 0, table[np.clip(values, 0, len(table) - 1)], MISSING_LABEL)


def check_labels(tasks: list[TaskInfo], sources: dict[str, SourceData]) -> None:
    """For in-memory sources: every class label is missing (-1) or within [0, num_classes)."""
    for task in tasks:
        source = sources[task.source]
        for role, (_, labels) in source.arrays.items():
            values = labels[task.label]
            if source.labels[task.label].kind == "value":
                continue
            below = values[values < MISSING_LABEL]
            if below.size:
                raise DataError(
                    f"task {task.name!r}: label {int(below[0])} of {task.source!r} in split {role!r} is "
                    "negative; class labels are >= 0, and -1 marks a missing label"
                )
            if task.kind == "regression":
                continue
            if task.label_table is not None:
                beyond = values[values >= len(task.label_table)]
                if beyond.size:
                    raise DataError(
                        f"task {task.name!r}: source label {int(beyond[0])} of {task.source!r} is beyond "
                        f"the label_map's {len(task.label_table)} classes in split {role!r}"
                    )
                values = map_labels(values, task.label_table)
            bad = values[(values < MISSING_LABEL) | (values >= task.num_classes)]
            if bad.size:
                raise DataError(
                    f"task {task.name!r}: label {int(bad[0])} out of range [0, {task.num_classes}) "
                    f"in split {role!r} of {task.source!r} ({bad.size} such labels)"
                )
