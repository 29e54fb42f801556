"""The interface every weighting implements."""

from __future__ import annotations

import abc


class Weighting(abc.ABC):
    """Combines per-task losses into one scalar.

    Args:
        task_weights: {task: α_t} from `tasks[i].weight`.
        config: this weighting's own config.
    """

    def __init__(self, task_weights: dict[str, float], config):
        self.task_weights = dict(task_weights)
        self.config = config

    @property
    def trainable_variables(self) -> list:
        """Extra variables the optimizer trains (e.g. learned uncertainties); none by default."""
        return []

    @abc.abstractmethod
    def combine(self, task_losses: dict):
        """Args: {task: scalar loss}. Returns (total scalar, {task: effective weight scalar})."""
