"""Per-task gates over the expert pool: features → weights [batch, experts]. Registered in GATES."""

from moe_tf.registry import Registry

GATES = Registry("gate")

from moe_tf.models.gates import softmax  # noqa: E402,F401
