"""Data sources (one file each, registered in DATASETS) and the tf.data pipeline that feeds the trainer."""

from moe_tf.data.pipeline import SOURCE_KEY, TaskData, build_task_data
from moe_tf.registry import DATASETS

__all__ = ["DATASETS", "SOURCE_KEY", "TaskData", "build_task_data"]
