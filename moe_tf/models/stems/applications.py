"""A Keras Applications backbone as an image stem (`type: keras_applications`): MobileNetV3, EfficientNetV2,
ResNet50, ConvNeXt, ... without their classification top, pretrained on ImageNet or not, frozen, partly or wholly
fine-tuned.

The stem takes the [0, 1] pixels of the model's image preprocessing and applies the application's own
preprocessing inside the model (its `preprocess_input` on 0–255 values; MobileNetV3, EfficientNetV2 and ConvNeXt
rescale inside the network), so exports keep taking raw uint8 images. A grayscale input is tiled to three channels;
`resize` scales inputs to the size the network needs (most need at least 32×32).
"""

from __future__ import annotations

import collections
import contextlib
import difflib
import functools
import importlib
import os
import socket
from typing import Any, Literal

import keras
from pydantic import Field, field_validator

from moe_tf.config.base import StrictModel
from moe_tf.errors import ConfigError
from moe_tf.registry import STEMS

DOWNLOAD_TIMEOUT_S = 30  # a stalled connection fails the download instead of hanging the run


def application_names() -> list[str]:
    """The Keras Applications model functions (ResNet50, MobileNetV3Small, ...)."""
    return sorted(n for n in dir(keras.applications) if n[:1].isupper())


def application(name: str, where: str):
    """The keras.applications function `name` (ConfigError naming close matches when there is none)."""
    if name not in application_names():
        close = difflib.get_close_matches(name, application_names(), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; one of: {', '.join(application_names())}"
        raise ConfigError(f"{where}.name: {name!r} is not a Keras Applications model{hint}")
    return getattr(keras.applications, name)


def preprocess_input(name: str):
    """The application's `preprocess_input` (0–255 RGB → what the network was trained on)."""
    return importlib.import_module(getattr(keras.applications, name).__module__).preprocess_input


def load_backbone(name: str, shape: tuple, weights: str | None, where: str):
    """keras.applications.`name` without its top, global average pooled, for [H, W, C] inputs: `weights` "imagenet"
    (downloaded once into Keras' cache, ~/.keras/models), None (random initialisation) or a .weights.h5 file.
    Errors are ConfigErrors naming `where`."""
    fn = application(name, where)
    check_weights_file(name, weights, where)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with fresh_layer_names():
            return fn(include_top=False, weights=weights, input_shape=tuple(shape), pooling="avg")
    except ValueError as e:
        if weights not in (None, "imagenet"):
            raise ConfigError(f"{where}.weights: {weights!r} does not load into {name} without its top: {e}") from None
        hint = " (set resize: [32, 32] or larger)" if "at least" in str(e) else ""
        raise ConfigError(f"{where}: {name} does not take {list(shape)} inputs: {e}{hint}") from None
    except Exception as e:  # noqa: BLE001 - Keras wraps every download failure in a bare Exception
        if weights == "imagenet":
            raise ConfigError(
                f"{where}.weights: imagenet: the ImageNet weights of {name} are not in Keras' cache ({cache_dir()}) "
                f"and downloading them failed ({str(e).splitlines()[0][:200]}). On a machine without network, copy "
                "the file there, or give weights: a .weights.h5 path, or weights: null"
            ) from None
        raise ConfigError(f"{where}.weights: {weights!r} does not load into {name} without its top: {e}") from None
    finally:
        socket.setdefaulttimeout(previous)


def check_weights_files(model_config) -> None:
    """A new run's check, before any data is read: every keras_applications stem's `weights` file exists (a restored
    run reads its checkpoint and needs no file)."""
    stems = {"model.stem": model_config.stem, **{f"model.stems.{k}": v for k, v in model_config.stems.items()}}
    for where, stem in stems.items():
        if stem is not None and stem.type == "keras_applications":
            check_weights_file(stem.name, stem.weights, where)


def check_weights_file(name: str, weights: str | None, where: str) -> None:
    """A ConfigError unless `weights` is imagenet, None or an existing file."""
    if weights not in (None, "imagenet") and not os.path.exists(weights):
        raise ConfigError(
            f"{where}.weights: no file {weights!r}; give a .weights.h5 file of {name} without its top "
            "(include_top=False), 'imagenet' or null"
        )


@contextlib.contextmanager
def fresh_layer_names():
    """Keras' layer-name counters start afresh inside the block and are restored after it: the few layers an
    application leaves unnamed (ConvNeXt's last LayerNormalization, EfficientNet's Normalization) get the same
    names, and so their variables the same paths, however many models the process built before (checkpoints,
    --init-from and a distillation teacher match variables by path)."""
    from keras.src.backend.common import global_state

    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def cache_dir() -> str:
    """Where Keras keeps downloaded weights ($KERAS_HOME/models, by default ~/.keras/models)."""
    from keras.src.backend import config

    return os.path.join(config.keras_home(), "models")


@functools.lru_cache(maxsize=32)
def _checked(name: str, shape: tuple, where: str) -> None:
    """Builds the backbone once per process and configuration to check it takes the input (weights not loaded)."""
    load_backbone(name, shape, None, where)


@STEMS.register("keras_applications")
@keras.saving.register_keras_serializable(package="moe_tf")
class ApplicationStem(keras.layers.Layer):
    """A keras.applications backbone (see the module). Call: images [batch, H, W, C] in [0, 1] → [batch, features].

    `trainable`: true trains the whole backbone, false none of it (its batch norms normalise with their ImageNet
    statistics), N the last N layers of the backbone, its batch norms excepted (they stay in inference mode, as
    Keras' fine-tuning guide advises: updating them from a small batch would undo what the frozen layers learnt).
    """

    modalities = ("image",)
    config_renames = {"name": "application", "trainable": "train_backbone"}  # Keras layer arguments of their own

    class Config(StrictModel):
        type: Literal["keras_applications"] = Field(
            "keras_applications",
            description="images: any `keras.applications` network without its classifier, randomly initialised or with "
            "ImageNet weights, frozen, partly or wholly fine-tuned; the network's own preprocessing, "
            "grayscale tiling and resizing run inside the model, so the export takes raw uint8 images",
        )
        name: str = Field(
            ...,
            description="the model, e.g. `MobileNetV3Small`, `EfficientNetV2B0`, `ResNet50`, `ConvNeXtTiny` (any "
            "`keras.applications` name; a wrong one lists close names)",
        )
        weights: str | None = Field(
            None,
            description="`imagenet` (downloaded on first use into `~/.keras/models`), null (random initialisation) "
            "or a `.weights.h5` file of the model without its top",
        )
        trainable: bool | int = Field(
            True,
            description="`true`, `false` (frozen: its batch norms keep their statistics), or N: the backbone's last N "
            "layers train, their batch norms excepted",
        )
        resize: list[int] | None = Field(
            None,
            min_length=2,
            max_length=2,
            description="`[H, W]` the images are resized to inside the model (most networks need at least 32×32)",
        )

        @field_validator("trainable")
        @classmethod
        def _count(cls, v):
            if not isinstance(v, bool) and v < 1:
                raise ValueError(f"a positive count of layers, true or false; got {v}")
            return v

        @field_validator("resize")
        @classmethod
        def _size(cls, v):
            if v is not None and min(v) < 1:
                raise ValueError(f"a positive [height, width]; got {v}")
            return v

    @classmethod
    def check_input(cls, config, shape, where: str) -> None:
        """The named application exists and takes inputs of per-example `shape` (after `resize`, as 3 channels)."""
        application(config.name, where)
        _checked(config.name, backbone_shape(shape, config.resize), where)

    def __init__(self, application, weights=None, train_backbone=True, resize=None, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.application = application
        self.weights_source, self.backbone_trainable = weights, train_backbone
        self.resize = list(resize) if resize else None
        self.l2 = l2
        self.resizing = keras.layers.Resizing(*self.resize, name="resize") if self.resize else None
        self.preprocess_input = preprocess_input(application)
        self.backbone: Any = None  # built with the input's shape
        self.normalizations: list = []

    def build(self, input_shape):
        self.input_size = backbone_shape(input_shape[1:], self.resize)
        where = f"the keras_applications stem ({self.application})"
        self.backbone = load_backbone(self.application, self.input_size, None, where)
        set_trainable(self.backbone, self.backbone_trainable)
        # A Normalization layer (EfficientNet's input) keeps its statistics as tensors made when they were last set:
        # stale after set_weights or a checkpoint restore, and out of scope in another tf.function. Remade per call.
        self.normalizations = [
            layer
            for layer in self.backbone.layers
            if isinstance(layer, keras.layers.Normalization) and getattr(layer, "adapt_mean", None) is not None
        ]
        if self.l2:  # on the built kernels (a layer's kernel_regularizer is read when it creates them)
            for variable in self.backbone.trainable_weights:
                if variable.path.endswith("kernel"):  # also depthwise_kernel
                    variable.regularizer = keras.regularizers.L2(self.l2)
        self.built = True

    def load_pretrained(self) -> str | None:
        """Loads `weights` (ImageNet's or a file's) into the backbone: a new run's start (a resumed or restored run
        reads its checkpoint instead, so it needs neither the download nor the file). Returns what it loaded, for
        the log, or None without pretrained weights."""
        if self.weights_source is None:
            return None
        where = f"the keras_applications stem ({self.application})"
        source = load_backbone(self.application, self.input_size, self.weights_source, where)
        self.backbone.set_weights(source.get_weights())
        return f"{self.application}: weights from {self.weights_source}"

    def call(self, x, training=None):
        if x.shape[-1] == 1:
            x = keras.ops.repeat(x, 3, axis=-1)  # grayscale → RGB
        if self.resizing is not None:
            x = self.resizing(x)
        x = self.preprocess_input(x * 255.0)
        for layer in self.normalizations:  # their mean and variance as tensors of this graph, from their variables
            layer.finalize_state()
        return self.backbone(x, training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "application": self.application,
            "weights": self.weights_source,
            "train_backbone": self.backbone_trainable,
            "resize": self.resize,
            "l2": self.l2,
        }


def backbone_shape(shape, resize) -> tuple:
    """The backbone's per-example input shape: [H, W] (or `resize`), 3 channels for a grayscale input."""
    h, w = resize or (int(shape[0]), int(shape[1]))
    channels = int(shape[2]) if len(shape) > 2 else 1
    return (int(h), int(w), 3 if channels == 1 else channels)


def set_trainable(backbone, trainable: bool | int) -> None:
    """true: the whole backbone trains; false: none; N: its last N layers, batch norms excepted."""
    if isinstance(trainable, bool):
        backbone.trainable = trainable
        return
    for i, layer in enumerate(backbone.layers):
        last = i >= len(backbone.layers) - trainable
        layer.trainable = last and not isinstance(layer, keras.layers.BatchNormalization)
