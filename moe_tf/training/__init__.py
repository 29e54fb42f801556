"""Training: strategies, the distributed loop, evaluation, checkpoints, early stopping and task weightings.

Whole runs (train, evaluate, export) are orchestrated above this package, in `moe_tf.run`.
"""
