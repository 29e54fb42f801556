"""Adam on a small vector of a weighting's own parameters (FAMO's logits, GradNorm's weights), with its moments in
the weighting's checkpointed state."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from moe_tf.training.weightings.base import assign_if, state_variable


class VectorAdam:
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as torch.optim.Adam applies `weight_decay`.

    Args:
        name: prefix of the state variables.
        size: length of the parameter vector.
    """

    def __init__(
        self,
        name: str,
        size: int,
        learning_rate: float,
        weight_decay: float = 0.0,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
    ):
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.m = state_variable(f"{name}_adam_m", np.zeros(size))
        self.v = state_variable(f"{name}_adam_v", np.zeros(size))
        self.t = state_variable(f"{name}_adam_t", 0.0)

    def state(self) -> dict:
        return {"adam_m": self.m, "adam_v": self.v, "adam_t": self.t}

    def step(self, param, grad, finite) -> tf.Tensor:
        """Updates the moments (where `finite`) and returns the new parameter value."""
        grad = grad + self.weight_decay * param
        t = self.t + 1.0
        m = self.beta_1 * self.m + (1 - self.beta_1) * grad
        v = self.beta_2 * self.v + (1 - self.beta_2) * tf.square(grad)
        m_hat, v_hat = m / (1 - self.beta_1**t), v / (1 - self.beta_2**t)
        assign_if(finite, (self.m, m), (self.v, v), (self.t, t))
        return tf.where(finite, param - self.learning_rate * m_hat / (tf.sqrt(v_hat) + self.epsilon), param)
