"""How tasks share the expert pool. Each architecture maps shared features to one representation per task
(plus each task's gate weights for telemetry), and says which of its variables belong to one task alone
(`task_variables(name)`). Registered in ARCHITECTURES."""

from moe_tf.registry import Registry

ARCHITECTURES = Registry("architecture")

from moe_tf.models.architectures import mmoe, shared_bottom  # noqa: E402,F401
