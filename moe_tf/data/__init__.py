"""Data sources (one file each, registered in DATASETS) and the tf.data pipeline that feeds the trainer."""

from moe_tf.registry import Registry

DATASETS = Registry("dataset")

# Importing the sources registers them.
from moe_tf.data import delimited, digits, idx, multi_image, npz, synthetic_mmoe, tfds  # noqa: E402,F401
from moe_tf.data.pipeline import SOURCE_KEY, TaskData, build_task_data  # noqa: E402

__all__ = ["DATASETS", "SOURCE_KEY", "TaskData", "build_task_data"]
