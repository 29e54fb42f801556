"""Gates over a pool of experts: features → routing (weights, auxiliary losses and, for sparse gates, the dispatch
of each expert's examples). One file per gate, registered in GATES; the shared base is in `base.py`."""

from moe_tf.registry import GATES

__all__ = ["GATES"]
