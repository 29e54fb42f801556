"""From a config to batched tf.data pipelines of `(image uint8, {task: label})` for each split role.

Task labels are read from a source label column, optionally through the task's `label_map`
(e.g. digit → "digit >= 5"). A label of -1 means "missing": it is masked out of that task's loss and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from moe_tf.data.augment import augment_image
from moe_tf.data.base import SourceData
from moe_tf.errors import ConfigError, DataError

MISSING_LABEL = -1


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
    label: str
    label_table: np.ndarray | None  # source label → task label, -1 where unmapped

    @property
    def output_units(self) -> int:
        return 1 if self.kind in ("binary", "regression") else self.num_classes


def _label_table(task_cfg, source_classes: int) -> np.ndarray | None:
    mapping = task_cfg.label_map
    if mapping is None:
        return None
    table = np.full(max(source_classes, 1), MISSING_LABEL, dtype=np.int64)
    items = enumerate(mapping) if isinstance(mapping, list) else mapping.items()
    for src, dst in items:
        if not 0 <= int(src) < source_classes:
            raise ConfigError(
                f"tasks[{task_cfg.name}].label_map: source label {src} is out of range "
                f"(label {task_cfg.label!r} has {source_classes} classes)"
            )
        table[int(src)] = int(dst)
    return table


def resolve_tasks(task_cfgs, source: SourceData) -> list[TaskInfo]:
    """Checks each task's label against the source and fills in num_classes and class names."""
    infos = []
    for i, t in enumerate(task_cfgs):
        if t.label not in source.labels:
            raise ConfigError(f"tasks[{i}].label: source has no label {t.label!r}; it has {sorted(source.labels)}")
        src = source.labels[t.label]
        table = _label_table(t, src.num_classes)
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
        infos.append(TaskInfo(t.name, t.type, num_classes, names, t.weight, t.resolved_loss(), t.resolved_metrics(),
                              t.label, table))
    return infos


def check_labels(tasks: list[TaskInfo], source: SourceData) -> None:
    """For in-memory sources: every task label is missing (-1) or within [0, num_classes)."""
    for role, (_, labels) in source.arrays.items():
        for task in tasks:
            values = labels[task.label]
            if task.label_table is not None:
                values = task.label_table[np.clip(values, 0, len(task.label_table) - 1)]
            if task.kind == "regression":
                continue
            bad = values[(values < MISSING_LABEL) | (values >= task.num_classes)]
            if bad.size:
                raise DataError(
                    f"task {task.name!r}: label {int(bad[0])} out of range [0, {task.num_classes}) "
                    f"in split {role!r} ({bad.size} such labels)"
                )


@dataclass
class TaskData:
    """The loaded source, the resolved tasks, and factories for batched pipelines."""

    source: SourceData
    tasks: list[TaskInfo]
    data_config: object
    seed: int

    @property
    def input_shape(self):
        return self.source.input_shape

    def _with_task_labels(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """Maps batches of (image, source labels) to (image, {task: labels}), vectorised over the batch."""
        tables = {t.name: (tf.constant(t.label_table) if t.label_table is not None else None) for t in self.tasks}
        tasks = self.tasks

        def to_tasks(image, labels):
            out = {}
            for t in tasks:
                y = labels[t.label]
                if tables[t.name] is not None:
                    y = tf.gather(tables[t.name], y)
                out[t.name] = tf.cast(y, tf.float32) if t.kind == "regression" else y
            return image, out

        return ds.map(to_tasks, num_parallel_calls=tf.data.AUTOTUNE)

    def train_dataset(self, global_batch_size: int, epoch: int = 0, num_epochs: int = 1) -> tf.data.Dataset:
        """Full batches for epochs `epoch` … `epoch + num_epochs - 1`, one pipeline for all of them.

        Each epoch is shuffled with seed `experiment.seed + epoch` and augmented with per-example seeds, so epoch
        `e` is the same batches whether it is read alone or after other epochs (exact resume relies on this).
        """
        cfg = self.data_config
        base = self.source.splits["train"]
        if cfg.cache and not self.source.arrays:
            base = base.cache()
        aug, seed, buffer = cfg.augmentation, self.seed, cfg.shuffle_buffer

        def one_epoch(e):  # e: an int64 scalar tensor (traced once for all epochs)
            # The shuffle's op seed is a tensor; fixing this function graph's own seed keeps tf.data from comparing
            # it with the global seed (which fails when that is 0) and makes epoch orders independent of it.
            tf.compat.v1.set_random_seed(_GRAPH_SEED)
            ds = base.shuffle(buffer, seed=seed + e, reshuffle_each_iteration=False)
            if aug.enabled:
                def augment(index, element):
                    image, labels = element
                    return augment_image(image, aug, tf.stack([seed * 100_003 + e, index])), labels

                ds = ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            return self._with_task_labels(ds.batch(global_batch_size, drop_remainder=True))

        # Epochs are generated lazily, so a pipeline of thousands of epochs costs no more to build than one.
        ds = tf.data.Dataset.range(epoch, epoch + num_epochs).flat_map(one_epoch)
        return _finish(ds)

    def eval_dataset(self, role: str, global_batch_size: int) -> tf.data.Dataset:
        """An evaluation pipeline for `role` ("eval" or "test"), in order, keeping the last partial batch."""
        if role not in self.source.splits:
            raise DataError(f"the data source has no {role!r} split")
        ds = self._with_task_labels(self.source.splits[role].batch(global_batch_size))
        return _finish(ds)

    def steps_per_epoch(self, global_batch_size: int) -> int | None:
        n = self.source.sizes.get("train", -1)
        return None if n < 0 else n // global_batch_size


_GRAPH_SEED = 87654321


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def build_task_data(config) -> TaskData:
    """Loads the data source the tasks read and resolves the tasks against it.

    Args:
        config: the whole ExperimentConfig.
    """
    from moe_tf.data import DATASETS

    (name,) = {t.dataset for t in config.tasks}
    src_cfg = config.data.sources[name]
    source = DATASETS.get(src_cfg.type, f"data.sources.{name}.type")(src_cfg, config.experiment.seed).load()
    tasks = resolve_tasks(config.tasks, source)
    check_labels(tasks, source)
    if source.sizes.get("train", 0) == 0:
        raise DataError(f"data source {name!r} has an empty training split")
    return TaskData(source, tasks, config.data, config.experiment.seed)
