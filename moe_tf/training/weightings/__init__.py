"""Task weighting: how per-task losses become the gradient the optimizer applies. Registered in WEIGHTINGS.

Each weighting owns the backward pass (see base.py). A `LossWeighting` weighs the task losses and differentiates
their sum once (GradNorm also measures each task's gradient on the last shared layer); a `TaskGradientWeighting`
differentiates each task's loss on the shared variables and combines the global per-task gradients. Which method is
which is read off the classes (`task_gradients`, `gradient_based`), never listed by hand.
"""

from moe_tf.registry import WEIGHTINGS


def build_weighting(config, tasks, model, seed: int = 0, steps_per_epoch: int = 1):
    """Builds the method (its state variables under the current strategy's scope) and checks it fits `model`.

    Args: the `training.weighting` config, the resolved tasks (their `weight` is α_t), the built model,
        `experiment.seed`, the steps per epoch (for per-epoch windows).
    """
    cls = WEIGHTINGS.get(config.type, "training.weighting.type")
    weighting = cls({t.name: t.weight for t in tasks}, config, seed, tasks, steps_per_epoch)
    weighting.bind(model)
    return weighting
