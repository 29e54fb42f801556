"""The whole multi-task model: preprocessing → stem → shared trunk → architecture → tower and head per task."""

from __future__ import annotations

import keras
from keras import ops

from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.models.layers import DenseStack
from moe_tf.models.stems import STEMS


@keras.saving.register_keras_serializable(package="moe_tf")
class MultiTaskModel(keras.Model):
    """Raw uint8 images in, one output per task out.

    Args:
        model_config: `model` section of the config, as a dict (see README, "model").
        tasks: [{"name": str, "units": int}] — `units` is the head width (classes, or 1 for binary/regression).
        input_shape: [H, W, C] of the raw images.

    Call: images uint8 [batch, H, W, C] →
        {"outputs": {task: logits [batch, units] float32}, "gates": {task: [batch, experts] float32}}.
    Preprocessing (cast, scale to [0, 1]) is inside the model, so the export takes raw images.
    """

    def __init__(self, model_config, tasks, input_shape, **kwargs):
        super().__init__(**kwargs)
        self.model_config = dict(model_config)
        self.tasks = [dict(t) for t in tasks]
        self.raw_input_shape = tuple(input_shape)
        cfg = self.model_config
        l2, dropout, act = cfg["l2"], cfg["dropout"], cfg["activation"]
        stem_params = {k: v for k, v in cfg["stem"].items() if k != "type"}
        self.stem = STEMS.get(cfg["stem"]["type"])(l2=l2, name="stem", **stem_params)
        self.trunk = DenseStack(cfg["trunk"]["units"], act, dropout, l2, name="trunk")
        names = [t["name"] for t in self.tasks]
        arch_cls = ARCHITECTURES.get(cfg["architecture"])
        arch_kwargs = dict(task_names=names, expert_units=cfg["experts"]["units"], activation=act,
                           dropout=dropout, l2=l2, name="mixture")
        if cfg["architecture"] != "shared_bottom":
            arch_kwargs.update(num_experts=cfg["experts"]["count"], gate=cfg["gate"])
        self.mixture = arch_cls(**arch_kwargs)
        self.towers = {t["name"]: DenseStack(cfg["tower"]["units"], act, dropout, l2, name=f"tower_{t['name']}")
                       for t in self.tasks}
        # Heads compute in float32 under mixed precision.
        self.heads = {t["name"]: keras.layers.Dense(t["units"], dtype="float32", name=f"head_{t['name']}")
                      for t in self.tasks}

    def call(self, images, training=None):
        x = ops.cast(images, self.compute_dtype) / 255.0  # [batch, H, W, C] in [0, 1]
        x = self.stem(x, training=training)  # [batch, features]
        x = self.trunk(x, training=training)
        features, gates = self.mixture(x, training=training)
        outputs = {name: self.heads[name](self.towers[name](features[name], training=training))
                   for name in features}
        return {"outputs": outputs, "gates": gates}

    def get_config(self):
        return {"model_config": self.model_config, "tasks": self.tasks, "input_shape": list(self.raw_input_shape),
                "name": self.name}
