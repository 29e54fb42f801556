"""Keras 3 layers for your own models: moe-tf's expert blocks (MMoE, OMoE, CGC, PLE), its gates and its stems.

They work in a functional or subclassed `keras.Model` trained with `fit`, `evaluate` and `predict`. The blocks add
their gates' auxiliary losses (load balancing, z-loss) with `add_loss` in training; a gate used on its own returns
them under "aux" in its output instead. Every layer is registered for serialization: a model saved as
`.keras` loads back (`keras.saving.load_model`) with identical outputs once `moe_tf.layers` is imported.

    import keras
    import moe_tf.layers

    x = keras.Input((16,))
    features = moe_tf.layers.MMoE(["ctr", "cvr"], num_experts=4, expert_units=[32])(x)
    outputs = {
        "ctr": keras.layers.Dense(1, activation="sigmoid", name="ctr")(features["ctr"]),
        "cvr": keras.layers.Dense(1, activation="sigmoid", name="cvr")(features["cvr"]),
    }
    model = keras.Model(x, outputs)
    model.compile("adam", {"ctr": "binary_crossentropy", "cvr": "binary_crossentropy"})

The same blocks are what `moe-tf train` builds from `model.architecture`, `model.experts` and `model.gate`.
"""

from moe_tf.models.blocks import CGC, PLE, MixtureOfExperts, MMoE, OMoE
from moe_tf.models.gates.expert_choice import ExpertChoiceGate
from moe_tf.models.gates.noisy_top_k import NoisyTopKGate
from moe_tf.models.gates.softmax import SoftmaxGate
from moe_tf.models.gates.switch import SwitchGate
from moe_tf.models.layers import DenseStack, ExpertPool
from moe_tf.models.stems.applications import ApplicationStem
from moe_tf.models.stems.conv import ConvStem
from moe_tf.models.stems.dense import DenseStem
from moe_tf.models.stems.resnet import BasicBlock, ResNetStem

__all__ = [
    "CGC",
    "MMoE",
    "OMoE",
    "PLE",
    "ApplicationStem",
    "BasicBlock",
    "ConvStem",
    "DenseStack",
    "DenseStem",
    "ExpertChoiceGate",
    "ExpertPool",
    "MixtureOfExperts",
    "NoisyTopKGate",
    "ResNetStem",
    "SoftmaxGate",
    "SwitchGate",
]
