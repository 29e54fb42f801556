"""Builds the multi-task model from the `model` config and the resolved tasks."""

from __future__ import annotations

import numpy as np

from moe_tf.models.multitask import MultiTaskModel


def build_model(model_config, tasks, input_shape) -> MultiTaskModel:
    """Creates and builds the model (variables exist on return; call under `strategy.scope()` when distributing).

    Args:
        model_config: the `model` section (a config object or its dict).
        tasks: resolved tasks (`TaskInfo`), each with `name` and `output_units`.
        input_shape: [H, W, C] of the raw uint8 input.
    """
    cfg = model_config.model_dump() if hasattr(model_config, "model_dump") else dict(model_config)
    specs = [{"name": t.name, "units": t.output_units} for t in tasks]
    model = MultiTaskModel(cfg, specs, input_shape, name="moe_tf_model")
    model(np.zeros((1, *input_shape), dtype=np.uint8), training=False)  # creates every variable
    return model


def count_params(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
