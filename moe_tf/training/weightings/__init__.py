"""Task weighting: how per-task losses combine into the loss the optimizer sees. Registered in WEIGHTINGS."""

from moe_tf.registry import Registry

WEIGHTINGS = Registry("weighting")

from moe_tf.training.weightings import fixed  # noqa: E402,F401


def build_weighting(config, tasks):
    """Args: the `training.weighting` config and the resolved tasks (their `weight` is α_t)."""
    return WEIGHTINGS.get(config.type, "training.weighting.type")({t.name: t.weight for t in tasks}, config)
