"""How tasks share the network between the trunk and the towers. One file per architecture, registered in
ARCHITECTURES; each class carries its `Config` (the `model.architecture` block: `type` plus its parameters).

An architecture is a Keras layer built with `task_names`, `experts` ({"count", "units"}), `gate` (the gate
config), `activation`, `dropout`, `l2` and its own parameters. It maps the trunk output [batch, d] (or, when its
`independent` attribute is true, {task: [batch, d]} from a trunk per task) to
({task: [batch, units]}, {gate name: routing}) and says:
  task_variables(task): variables only that task's loss reaches (its gates, its experts);
  task_gates(): {task: the gate whose mixture the task reads};
  expert_names(): {gate: labels of the experts in its routing weights}.
"""

from moe_tf.registry import ARCHITECTURES

__all__ = ["ARCHITECTURES"]
