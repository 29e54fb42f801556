"""Task weighting: how per-task losses combine into the loss the optimizer sees. Registered in WEIGHTINGS."""

from moe_tf.registry import Registry

WEIGHTINGS = Registry("weighting")

from moe_tf.training.weightings import fixed  # noqa: E402,F401
