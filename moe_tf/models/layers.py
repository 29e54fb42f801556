"""Building-block layers shared by stems, architectures and towers: a dense stack and a batched expert pool."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="moe_tf")
class DenseStack(keras.layers.Layer):
    """Dense → activation → dropout, once per entry of `units`. With no units it is the identity.

    Args:
        units: widths of the successive dense layers.
        activation: activation after each dense layer.
        dropout: dropout rate after each activation (training only).
        l2: L2 penalty on the kernels.
    """

    def __init__(self, units=(), activation="relu", dropout=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = list(units)
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        reg = keras.regularizers.L2(l2) if l2 else None
        self.dense_layers = [
            keras.layers.Dense(u, activation=activation, kernel_regularizer=reg, name=f"dense_{i}")
            for i, u in enumerate(self.units)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout) if dropout else None

    def build(self, input_shape):
        shape = input_shape
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, x, training=None):
        for layer in self.dense_layers:
            x = layer(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units[-1]) if self.units else input_shape

    def last_layer_variables(self) -> list:
        """The variables of the last Dense layer (none without layers)."""
        return list(self.dense_layers[-1].trainable_variables) if self.dense_layers else []

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }


# The expert products as matmuls rather than einsums: TensorFlow's CPU einsum is slower than the matmul it stands for
# (forward and backward on two cores: [256, 1620] × 4 experts of 50, 4.4 vs 5.4 ms; 16 experts' routed slots
# [16, 64, 1024] × [16, 1024, 1024], 50 vs 93 ms; benchmarks/RESULTS.md#speed).


def _shared_rows(x, kernel):
    """x [batch, in] through every expert's kernel [experts, in, out] → [batch, experts, out], as one
    [batch, in] × [in, experts·out] matmul."""
    experts, fan_in, units = kernel.shape
    merged = ops.reshape(ops.transpose(kernel, (1, 0, 2)), (fan_in, experts * units))
    return ops.reshape(ops.matmul(x, merged), (-1, experts, units))


def _own_rows(x, kernel):
    """x [batch, experts, in], each expert on its own slice → [batch, experts, out] (a batched matmul)."""
    return ops.transpose(ops.matmul(ops.transpose(x, (1, 0, 2)), kernel), (1, 0, 2))


def _slots(x, kernel):
    """x [experts, slots, in] → [experts, slots, out] (a batched matmul)."""
    return ops.matmul(x, kernel)


@keras.saving.register_keras_serializable(package="moe_tf")
class ExpertPool(keras.layers.Layer):
    """`num_experts` independent MLPs evaluated together with one matmul per layer.

    Args:
        num_experts: number of experts E.
        units: widths of each expert's layers (all experts share the shape, not the weights).
        activation: the activation of every layer, as in DenseStack.
        dropout: dropout rate after each layer in training, as in DenseStack.
        l2: L2 penalty on the kernels, as in DenseStack.

    Call: x [batch, features] → [batch, experts, units[-1]].
    """

    def __init__(self, num_experts, units=(64,), activation="relu", dropout=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.units = list(units)
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self._act = keras.activations.get(activation)
        self.dropout_layer = keras.layers.Dropout(dropout) if dropout else None

    def build(self, input_shape):
        reg = keras.regularizers.L2(self.l2) if self.l2 else None
        # Glorot-uniform per expert, as a Dense layer of [in, out] alone would be: Keras' glorot_uniform on
        # [experts, in, out] counts the experts axis as a receptive field and divides the variance by E;
        # scale = E undoes that, so the limit is sqrt(6 / (in + out)).
        init = keras.initializers.VarianceScaling(scale=float(self.num_experts), mode="fan_avg", distribution="uniform")
        self.kernels, self.biases = [], []
        fan_in = input_shape[-1]
        for i, u in enumerate(self.units):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}", shape=(self.num_experts, fan_in, u), initializer=init, regularizer=reg
                )
            )
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(self.num_experts, u), initializer="zeros"))
            fan_in = u

    def call(self, x, training=None):
        """x [batch, features] (every expert reads the same rows) or [batch, experts, features] → [batch, experts,
        units[-1]]."""
        return self._stack(x, _shared_rows if len(x.shape) == 2 else _own_rows, _own_rows, training)

    def last_layer_variables(self) -> list:
        """Every expert's last layer (one stacked kernel and bias)."""
        return [self.kernels[-1], self.biases[-1]]

    def on_slots(self, x, training=None):
        """Each expert on its own rows: x [experts, slots, features] → [experts, slots, units[-1]] (sparse
        dispatch: compute grows with the slots, not with the batch × experts)."""
        return self._stack(x, _slots, _slots, training)

    def on_rows(self, x, rows, training=None):
        """Each expert on the rows of x [batch, features] listed in rows [experts, slots] (`batch` = an empty slot,
        a row of zeros) → [experts, slots, units[-1]]."""
        padded = ops.concatenate([x, ops.zeros_like(x[:1])], axis=0)
        return self.on_slots(ops.take(padded, rows, axis=0), training=training)

    def _stack(self, x, first, rest, training):
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            x = (first if i == 0 else rest)(x, kernel)
            x = self._act(x + (bias[:, None] if rest is _slots else bias[None]))
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_experts, self.units[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }


LOG_ONE_MINUS_EPS = -1e-7  # log p is kept below this, so a product's logit stays finite (at most ~16)


def product_logits(logits: list):
    """The logit of Π σ(z_i) for binary logits z_i [batch, 1] (float32), computed in log space: log p = Σ log σ(z_i)
    = -Σ softplus(-z_i), and logit = log p − log(1 − p), with log(1 − p) from log p without cancellation. A
    cross-entropy on this logit is the cross-entropy of the product probability (ESMM's CTCVR loss), and its
    gradient reaches every factor."""
    log_p = ops.minimum(-sum(ops.softplus(-ops.cast(z, "float32")) for z in logits), LOG_ONE_MINUS_EPS)
    log_not_p = ops.where(log_p > -0.6931471805599453, ops.log(-ops.expm1(log_p)), ops.log1p(-ops.exp(log_p)))
    return log_p - log_not_p
