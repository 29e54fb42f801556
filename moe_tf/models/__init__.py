"""Model building: stems, gates and architectures (one registry each) composed by `build_model`."""

from moe_tf.models.builder import build_model, count_params, example_inputs

__all__ = ["build_model", "count_params", "example_inputs"]
