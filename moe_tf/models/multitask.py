"""The whole multi-task model: backbone (an encoder per named input → shared trunk) → architecture → tower and
head per task."""

from __future__ import annotations

import keras

from moe_tf.config.base import one_of, plain, typed
from moe_tf.config.schema import ModelConfig
from moe_tf.models.backbone import Backbone
from moe_tf.models.encoder_experts import RawGateInput
from moe_tf.models.layers import DenseStack, product_logits
from moe_tf.models.mixture import SHARED
from moe_tf.registry import ARCHITECTURES, STEMS


@keras.saving.register_keras_serializable(package="moe_tf")
class MultiTaskModel(keras.Model):
    """Raw named features in, one output per task out.

    Args:
        model_config: the `model` config (a ModelConfig; its plain mapping when Keras rebuilds the model).
        tasks: [{"name": str, "units": int, optionally "product_of": [task, ...]}]: `units` is the head width
            (classes, or 1 for binary/regression). A `product_of` task has no tower or head: its probability is the
            product of its factors' (ESMM), and its logit is that probability's logit.
        inputs: {feature: {"dtype", "shape", "modality"}}: the model inputs.
        stems: {feature: stem config}: each input's resolved stem.
        sources: [[feature, ...]] per source (None with one source): which inputs each source provides.

    Call: {feature: [batch, *shape], optionally "_source": int32 [batch]} →
        {"outputs": {task: logits [batch, units] float32},
         "gates": {gate: {"weights": [batch, experts] float32, "aux": {loss: scalar}, and for sparse gates
                          "routed" [experts], "dropped", "assignments"}}}.
    An architecture with `independent = True` (single_task) gets a backbone per task, so nothing is shared.
    """

    def __init__(self, model_config, tasks, inputs, stems, sources=None, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = typed(ModelConfig, model_config)
        self.tasks = [dict(t) for t in tasks]
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.stems = {k: typed(one_of(STEMS), v) for k, v in stems.items()}
        self.sources = [list(s) for s in sources] if sources else None
        l2, dropout, act = cfg.l2, cfg.dropout, cfg.activation
        self.products = {t["name"]: list(t["product_of"]) for t in self.tasks if t.get("product_of")}
        names = [t["name"] for t in self.tasks if t["name"] not in self.products]  # the tasks with their own head
        arch_cls = ARCHITECTURES.get(cfg.architecture.type)
        arch = cfg.architecture.model_dump(exclude={"type"})  # the architecture's own parameters
        backbone_args = dict(
            inputs=self.inputs_spec,
            stems=self.stems,
            sources=self.sources,
            fusion_units=cfg.fusion_units,
            normalize_numeric=cfg.normalize_numeric,
            trunk_units=cfg.trunk.units,
            activation=act,
            dropout=dropout,
            l2=l2,
        )
        self.raw_experts = cfg.experts.input == "raw"
        self.gate_input = None
        if self.raw_experts:  # every expert is a whole network on the raw inputs; gates read them flattened
            self.gate_input = RawGateInput(self.inputs_spec, cfg.normalize_numeric, name="gate_input")
            arch.update(raw_backbone=backbone_args, gate_width=self.gate_input.width)
        self.mixture = arch_cls(
            task_names=names,
            experts=cfg.experts,
            gate=cfg.gate,
            activation=act,
            dropout=dropout,
            l2=l2,
            name="mixture",
            **arch,
        )
        if self.raw_experts:
            self.backbones = {}
        elif arch_cls.independent:
            self.backbones = {t: Backbone(**backbone_args, name=f"backbone_{t}") for t in names}
        else:
            self.backbones = {SHARED: Backbone(**backbone_args, name="backbone")}
        self.towers = {t: DenseStack(cfg.tower.units, act, dropout, l2, name=f"tower_{t}") for t in names}
        units = {t["name"]: t["units"] for t in self.tasks}
        # Heads compute in float32 under mixed precision.
        self.heads = {t: keras.layers.Dense(units[t], dtype="float32", name=f"head_{t}") for t in names}

    def all_backbones(self) -> list:
        """Every Backbone: the shared one, one per task (single_task), or one per expert (raw-input experts)."""
        return [*self.backbones.values(), *self.mixture.expert_backbones()]

    def tabular_stems(self) -> list:
        """Every TabularStem (one per backbone that has tabular inputs)."""
        return [b.tabular.stem for b in self.all_backbones() if b.tabular is not None]

    def load_pretrained(self) -> list[str]:
        """Loads the pretrained weights stems name (a `keras_applications` stem's `weights`): a new run's start.
        Returns a line per stem that loaded some."""
        stems = [e.stem for b in self.all_backbones() for e in b.all_encoders()]
        loaded = [s.load_pretrained() for s in stems if s is not None and hasattr(s, "load_pretrained")]
        return [line for line in loaded if line]

    @property
    def encoders(self) -> dict:
        """{feature: InputEncoder} of the first backbone (the only one unless the architecture is independent or
        the experts read the raw inputs)."""
        return self.all_backbones()[0].encoders

    def preprocessors(self, feature: str) -> list:
        """Every preprocessing layer of `feature` (one per backbone, and the gates' when experts read raw inputs)."""
        layers = [b.preprocess_layer(feature) for b in self.all_backbones()]
        return layers + ([self.gate_input.preprocess[feature]] if self.gate_input is not None else [])

    def freeze(self, parts) -> dict[str, int]:
        """Makes the variables of `parts` (the names `model.freeze` takes) non-trainable; returns {part: variables
        frozen}.

        `stems` is every input's encoder (stem and projection), `trunk` the dense trunk, `experts` the expert pools
        (the shared block of shared_bottom), `gates` every gate. Frozen BatchNorm layers run in inference mode.
        """
        counts = {}
        for part in parts:
            layers = self.part_layers(part)
            counts[part] = sum(len(layer.trainable_variables) for layer in layers)
            for layer in layers:
                layer.trainable = False
        return counts

    def part_layers(self, part: str) -> list:
        """The layers of a part (`stems`, `trunk`, `experts` or `gates`; see `freeze`)."""
        if part == "stems":
            return [e for b in self.all_backbones() for e in b.all_encoders()]
        if part == "trunk":
            return [b.trunk for b in self.all_backbones()]
        return self.mixture.part_layers(part)

    def part_variables(self, part: str) -> list:
        """The trainable variables of a part (see `part_layers`)."""
        return [v for layer in self.part_layers(part) for v in layer.trainable_variables]

    def text_vectorizers(self) -> dict[str, list]:
        """{text feature: its TextVectorizers (one per backbone; they hold one vocabulary)}."""
        return {f: self.preprocessors(f) for f, spec in self.inputs_spec.items() if spec["modality"] == "text"}

    def vocabulary_layers(self) -> dict[str, list]:
        """{text or categorical feature with a vocabulary: its preprocessing layers (one per backbone; they hold one
        vocabulary, which checkpoints save)}. Hashed and bucketised categorical features have none."""
        out = {}
        for f, spec in self.inputs_spec.items():
            options = spec.get("options", {})
            if spec["modality"] == "text" or (
                spec["modality"] == "categorical" and not options.get("hash_buckets") and not options.get("buckets")
            ):
                out[f] = self.preprocessors(f)
        return out

    def input_lookups(self) -> dict:
        """{text or categorical feature: raw [batch] → ids}, what the input pipeline feeds the training step."""
        return {
            f: self.preprocessors(f)[0].ids
            for f, spec in self.inputs_spec.items()
            if spec["modality"] in ("text", "categorical") and not spec.get("options", {}).get("buckets")
        }  # bucketised numbers stay numbers: their boundaries are a weight, read in the step

    def call(self, inputs, training=None, representation=False):
        """With `representation` (training only, for MGDA-UB) the result also holds "representation": the shared
        tensor the architecture's top reads (see `has_representation`)."""
        kwargs = {"representation": True} if representation else {}
        if self.raw_experts:
            mixed = self.mixture(inputs, training=training, gate_input=self.gate_input(inputs), **kwargs)
        else:
            if SHARED in self.backbones:
                x = self.backbones[SHARED](inputs, training=training)  # [batch, features]
            else:
                x = {t: b(inputs, training=training) for t, b in self.backbones.items()}
            mixed = self.mixture(x, training=training, **kwargs)
        features, gates = mixed[0], mixed[1]
        outputs = {name: self.heads[name](self.towers[name](features[name], training=training)) for name in features}
        for name, factors in self.products.items():
            outputs[name] = product_logits([outputs[f] for f in factors])
        result = {"outputs": outputs, "gates": gates}
        if representation:
            result["representation"] = mixed[2]
        return result

    def has_representation(self) -> bool:
        """Whether the model has one shared tensor that every task's loss depends on (MGDA-UB needs one)."""
        return self.mixture.has_representation()

    def last_shared_variables(self) -> list:
        """The last shared layer's variables (GradNorm's W): the top shared experts' last layer, or the shared
        block's for shared_bottom; none when nothing is shared."""
        return self.mixture.last_shared_variables()

    def task_gates(self) -> dict[str, str]:
        """{task: the gate whose routing it reads} (empty without gates)."""
        return self.mixture.task_gates()

    def variable_groups(self) -> tuple[list, dict[str, list]]:
        """(shared trainable variables, {task: trainable variables only that task's loss reaches}).

        A task's own variables are its tower, its head and whatever the architecture gives it alone (its gates,
        its experts, its backbone when nothing is shared); everything else is shared. Gradient-based weightings
        treat the two differently.
        """
        own: dict[str, list] = {
            name: [] for name in self.products
        }  # a product's loss reaches only its factors' variables
        for t in self.tasks:
            name = t["name"]
            if name in self.products:
                continue
            own[name] = [
                *self.towers[name].trainable_variables,
                *self.heads[name].trainable_variables,
                *self.mixture.task_variables(name),
            ]
            if name in self.backbones:
                own[name] += self.backbones[name].trainable_variables
        taken = {id(v) for vs in own.values() for v in vs}
        shared = [v for v in self.trainable_variables if id(v) not in taken]
        return shared, own

    @property
    def _default_save_signature(self):
        """None: the export writes its own signatures (Keras' default one would trace every input as float32,
        which a text input is not)."""
        return None

    def get_config(self):
        return {
            "model_config": plain(self.config),
            "tasks": self.tasks,
            "inputs": self.inputs_spec,
            "stems": plain(self.stems),
            "sources": self.sources,
            "name": self.name,
        }
