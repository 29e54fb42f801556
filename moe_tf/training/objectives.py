"""Per-task losses and the additive statistics that metrics are computed from.

Every statistic is a sum over the examples of a replica's batch, so summing across replicas and steps and
dividing by the summed count gives exact global values under any strategy.
"""

from __future__ import annotations

import tensorflow as tf

from moe_tf.training.metrics import metric_sums, metric_values

EPS = 1e-9


def labelled(task, labels):
    """bool [batch]: whether each example has a label of `task` (class >= 0; regression: the target is not NaN)."""
    return tf.logical_not(tf.math.is_nan(labels)) if task.kind == "regression" else labels >= 0


def _per_example_loss(task, logits, labels):
    """Returns (loss [batch], mask [batch] float32, logits [batch, …], labels)."""
    mask = labelled(task, labels)
    if task.kind == "classification":
        safe = tf.where(mask, labels, tf.zeros_like(labels))
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
        return loss, tf.cast(mask, tf.float32), safe
    if task.kind == "binary":
        target = tf.cast(tf.where(mask, labels, tf.zeros_like(labels)), tf.float32)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits[:, 0])
        return loss, tf.cast(mask, tf.float32), target
    target = tf.where(mask, labels, tf.zeros_like(labels))  # regression
    err = logits[:, 0] - target
    if task.loss == "mae":
        loss = tf.abs(err)
    elif task.loss == "huber":
        loss = tf.where(tf.abs(err) <= 1.0, 0.5 * tf.square(err), tf.abs(err) - 0.5)
    else:
        loss = tf.square(err)
    return loss, tf.cast(mask, tf.float32), target


def task_presence(tasks, labels, loss_weights) -> dict:
    """{task: Σ loss_weights over the replica's labelled examples}: the pipeline's weights are 1 / (labelled
    examples of the task in the global batch), so across replicas this sums to 1 when the global batch has labels
    of the task and to 0 when it has none."""
    return {
        t.name: tf.reduce_sum(tf.cast(labelled(t, labels[t.name]), tf.float32) * loss_weights[t.name]) for t in tasks
    }


def task_stats(task, logits, labels, loss_weights=None):
    """Sums for one task over a batch: `loss_sum`, `count` and one sum per metric.

    Returns (stats, loss): `loss` is Σ loss_weights · per-example loss (the task's share of the objective; see
    moe_tf.data.pipeline), or None without `loss_weights`.
    """
    loss, mask, target = _per_example_loss(task, logits, labels)
    stats = {"loss_sum": tf.reduce_sum(loss * mask), "count": tf.reduce_sum(mask)}
    stats.update(metric_sums(task, logits, target, mask))
    weighted = None if loss_weights is None else tf.reduce_sum(loss * mask * loss_weights)
    return stats, weighted


HISTOGRAM_BINS = 10  # gate weights are counted in equal bins over [0, 1]


def gate_stats(routing):
    """Sums for one gate's routing over a batch (see MultiTaskModel): weight per expert, entropy, a histogram of
    the weights, each auxiliary loss (a replica's share: value / replicas, so replicas sum to the mean), and for
    sparse gates the examples each expert processed and the assignments dropped by capacity."""
    weights = tf.cast(routing["weights"], tf.float32)  # [batch, experts]
    entropy = -tf.reduce_sum(weights * tf.math.log(weights + EPS), axis=-1)  # [batch]
    bins = tf.clip_by_value(tf.cast(tf.floor(weights * HISTOGRAM_BINS), tf.int32), 0, HISTOGRAM_BINS - 1)
    share = 1.0 / tf.distribute.get_strategy().num_replicas_in_sync
    out = {
        "weight_sum": tf.reduce_sum(weights, axis=0),
        "entropy_sum": tf.reduce_sum(entropy),
        "n": tf.cast(tf.shape(weights)[0], tf.float32),
        "histogram": tf.math.unsorted_segment_sum(tf.ones_like(weights), bins, HISTOGRAM_BINS),
        "aux": {k: tf.cast(v, tf.float32) * share for k, v in routing["aux"].items()},
        "batches": tf.constant(share, tf.float32),
    }
    if "routed" in routing:
        out.update(routed_sum=routing["routed"], dropped_sum=routing["dropped"], assignments_sum=routing["assignments"])
    return out


def aux_total(outputs):
    """Σ of every gate's auxiliary losses in a replica's forward pass (a scalar), or None without any."""
    terms = [v for r in outputs["gates"].values() for v in r["aux"].values()]
    return tf.add_n([tf.cast(v, tf.float32) for v in terms]) if terms else None


def batch_stats(tasks, outputs, labels, loss_weights=None):
    """All sums for a batch, and each task's loss.

    Returns ({"tasks": {task: {...}}, "gates": {task: {...}}}, {task: Σ loss_weights · loss} or None).
    """
    per_task = {
        t.name: task_stats(
            t, outputs["outputs"][t.name], labels[t.name], None if loss_weights is None else loss_weights[t.name]
        )
        for t in tasks
    }
    stats = {
        "tasks": {name: s for name, (s, _) in per_task.items()},
        "gates": {name: gate_stats(g) for name, g in outputs["gates"].items()},
    }
    losses = None if loss_weights is None else {name: loss for name, (_, loss) in per_task.items()}
    return stats, losses


def summarize(stats, tasks) -> dict:
    """Accumulated sums (numpy) → metric values: {"tasks": {task: {"loss": …, metric: …}}, "gates": {gate: {"entropy",
    "expert_weights", "histogram", "aux": {loss: mean}, and for sparse gates "routed", "dropped"}}}.

    `loss` is the unweighted mean of the task losses over labelled examples; the caller adds the weighted total.
    """
    out = {"tasks": {}, "gates": {}}
    for task in tasks:
        out["tasks"][task.name] = metric_values(task, stats["tasks"][task.name])
    for name, g in stats["gates"].items():
        n = max(float(g["n"]), EPS)
        gate = {
            "entropy": float(g["entropy_sum"]) / n,
            "expert_weights": [float(w) / n for w in g["weight_sum"]],
            "histogram": [float(c) for c in g["histogram"]],
            "aux": {k: float(v) / max(float(g["batches"]), EPS) for k, v in g["aux"].items()},
        }
        if "routed_sum" in g:
            gate["routed"] = [float(c) / n for c in g["routed_sum"]]  # fraction of examples each expert took
            gate["dropped"] = float(g["dropped_sum"]) / max(float(g["assignments_sum"]), EPS)
        out["gates"][name] = gate
    return out
