"""Task weighting: how per-task losses become the gradient the optimizer applies. Registered in WEIGHTINGS.

Each weighting owns the backward pass (see base.py): `fixed` differentiates Σ α_t L_t once; gradient-based methods
such as `pcgrad` differentiate each task's loss and combine the global per-task gradients.
"""

from moe_tf.registry import Registry

WEIGHTINGS = Registry("weighting")

from moe_tf.training.weightings import fixed, pcgrad  # noqa: E402,F401


def build_weighting(config, tasks, seed: int = 0):
    """Args: the `training.weighting` config, the resolved tasks (their `weight` is α_t), `experiment.seed`."""
    cls = WEIGHTINGS.get(config.type, "training.weighting.type")
    return cls({t.name: t.weight for t in tasks}, config, seed)
