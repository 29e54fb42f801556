"""Noisily gated top-k routing (Shazeer et al. 2017) with sparse dispatch."""

from __future__ import annotations

from typing import Literal

import keras
import tensorflow as tf
from pydantic import Field

from moe_tf.models import routing
from moe_tf.models.gates.base import Gate, GateConfig
from moe_tf.registry import GATES


@GATES.register("noisy_top_k")
@keras.saving.register_keras_serializable(package="moe_tf")
class NoisyTopKGate(Gate):
    """Each example goes to the k experts with the largest (noisy, in training) logits; their weights are the
    softmax over those k logits, so they sum to 1. Experts run only on the examples routed to them.

    Shazeer et al., "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer", ICLR 2017.
    In training the logits get Gaussian noise with a learned, per-expert standard deviation softplus(W_noise x).
    Auxiliary losses: importance = w_imp · CV²(Σ_batch weights) and load = w_load · CV²(Σ_batch P(routed)), P the
    smooth probability that an expert stays in the top k under resampled noise (the paper's estimator; without
    noise, the routed counts). Each expert takes at most ceil(capacity_factor · batch · k / experts) examples;
    assignments beyond that are dropped and counted.
    """

    sparse = True

    class Config(GateConfig):
        type: Literal["noisy_top_k"] = Field(
            "noisy_top_k",
            description="the k largest (noisy in training) logits, weights renormalised to sum to 1; importance and "
            "load losses (Shazeer et al. 2017); sparse",
        )
        k: int = Field(
            2, ge=1, description="experts per example (≤ the experts a gate chooses among: a config error otherwise)"
        )
        noise: bool = Field(True, description="learned Gaussian noise on the logits in training")
        importance_loss: float = Field(
            0.01,
            ge=0.0,
            description="coefficient of CV²(importance), importance = Σ over the batch of each expert's gate weights",
        )
        load_loss: float = Field(
            0.01,
            ge=0.0,
            description="coefficient of CV²(load), load = Σ over the batch of P(expert stays in the top k under "
            "resampled noise)",
        )
        capacity_factor: float = Field(
            2.0, gt=0.0, description="each expert takes at most ceil(factor · batch · k / E) examples in training"
        )
        eval_capacity_factor: float = Field(2.0, gt=0.0, description="the same in evaluation and in the export")

    def __init__(
        self,
        num_experts,
        k=2,
        noise=True,
        importance_loss=0.01,
        load_loss=0.01,
        capacity_factor=2.0,
        eval_capacity_factor=2.0,
        **kwargs,
    ):
        super().__init__(num_experts, **kwargs)
        if k > self.num_experts:
            raise ValueError(f"k={k} is more than the {self.num_experts} experts")
        self.top_k = int(k)
        self.noise = bool(noise)
        self.importance_loss = float(importance_loss)
        self.load_loss = float(load_loss)
        self.capacity_factor = float(capacity_factor)
        self.eval_capacity_factor = float(eval_capacity_factor)
        self.noise_std = (
            keras.layers.Dense(self.num_experts, kernel_initializer="zeros", name="noise", dtype=self.dtype_policy)
            if self.noise
            else None
        )

    def build(self, input_shape):
        super().build(input_shape)
        if self.noise_std is not None:
            self.noise_std.build(input_shape)

    def call(self, x, training=None):
        clean = self.logits(x)  # [batch, E]
        noisy, std = clean, None
        if self.noise and training:
            std = tf.nn.softplus(self.noise_std(x)) + 1e-2
            noisy = clean + tf.random.normal(tf.shape(clean)) * std
        k, batch = self.top_k, tf.shape(x)[0]
        top_values, top_indices = tf.math.top_k(noisy, k=min(k + 1, self.num_experts))
        values, indices = top_values[:, :k], top_indices[:, :k]
        top_weights = tf.nn.softmax(values, axis=-1)  # [batch, k], sums to 1
        weights = tf.reduce_sum(tf.one_hot(indices, self.num_experts) * top_weights[..., None], axis=1)  # [batch, E]
        factor = self.capacity_factor if training else self.eval_capacity_factor
        slots = routing.capacity(batch, k, self.num_experts, factor)
        slot_example, slot_weight, kept = routing.token_choice_slots(indices, top_weights, self.num_experts, slots)
        aux = self.aux_losses(clean)
        if self.importance_loss:
            aux["importance"] = self.importance_loss * routing.cv_squared(tf.reduce_sum(weights, axis=0))
        if self.load_loss:
            aux["load"] = self.load_loss * routing.cv_squared(self._load(clean, noisy, std, top_values, weights))
        return {
            "weights": weights,
            "aux": aux,
            "slot_example": slot_example,
            "slot_weight": slot_weight,
            "unrouted": ~tf.reduce_any(kept, axis=1),
            "dropped": tf.reduce_sum(tf.cast(~kept, tf.float32)),
            "assignments": tf.cast(batch * k, tf.float32),
        }

    def _load(self, clean, noisy, std, top_values, weights):
        """Σ over the batch of P(expert in the top k) per expert (differentiable with noise; counts without)."""
        k = self.top_k
        if std is None or k >= self.num_experts:
            return tf.reduce_sum(tf.cast(weights > 0, tf.float32), axis=0)
        threshold_in = top_values[:, k : k + 1]  # the (k+1)-th largest: an expert in the top k must stay above it
        threshold_out = top_values[:, k - 1 : k]  # the k-th largest: an expert outside must rise above it
        is_in = noisy > threshold_in
        p_in = routing.normal_cdf((clean - threshold_in) / std)
        p_out = routing.normal_cdf((clean - threshold_out) / std)
        return tf.reduce_sum(tf.where(is_in, p_in, p_out), axis=0)

    def get_config(self):
        return {
            **super().get_config(),
            "k": self.top_k,
            "noise": self.noise,
            "importance_loss": self.importance_loss,
            "load_loss": self.load_loss,
            "capacity_factor": self.capacity_factor,
            "eval_capacity_factor": self.eval_capacity_factor,
        }
