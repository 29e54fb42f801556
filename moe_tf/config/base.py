"""The strict base model every config object derives from, and `one_of` for registry-typed choices."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

if TYPE_CHECKING:
    from moe_tf.registry import Registry

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"  # task, feature and label names: identifiers (they become signature names)


class StrictModel(BaseModel):
    """A config object: unknown keys are errors, and values are not coerced across types.

    Strict mode refuses `"5"` for an int and `true` for a number; the exceptions are those YAML cannot avoid:
    an int where a float is expected (`1` for `1.0`), and a list where a tuple is expected.
    """

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, frozen=False)


def typed(kind: Any, value: object) -> Any:
    """`value` as the config object `kind` describes: a StrictModel class or a registry choice (`one_of(...)`).
    Layers call it on their config arguments, which are config objects when the model is built from a config and
    plain mappings when Keras rebuilds a layer from `get_config()`."""
    if isinstance(kind, type) and issubclass(kind, Choice):
        return kind.validate(value)
    return value if isinstance(value, kind) else kind.model_validate(value)


def plain(value: object) -> object:
    """Config objects (also inside dicts and lists) as plain data, for a layer's `get_config()`."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def check_identifiers(names: list[str], what: str, hint: str = "") -> list[str]:
    """Raises ValueError unless every name is an identifier (NAME_PATTERN) and no name repeats; returns `names`.

    Args:
        what: what a name is ("label", "feature", …), for the message.
        hint: appended to the message of a bad name (e.g. "; rename the array").
    """
    import re

    for name in names:
        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"{what} {name!r} is not an identifier ([A-Za-z][A-Za-z0-9_]*){hint}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate {what}s in {list(names)}")
    return names


def check_label_keys(mapping: dict, labels: list[str], field: str) -> None:
    """Raises ValueError when a key of `mapping` (the config field `field`, e.g. `weights`) is not a label."""
    for label in mapping:
        if label not in labels:
            raise ValueError(f"{field}.{label}: not one of the labels {labels}")


def feature_name_field():
    """The `feature:` key of a single-image source: the name of the model input its images feed."""
    return Field(
        "image",
        pattern=NAME_PATTERN,
        description="model input name; sources with the same feature name and shape share one stem",
    )


def one_of(registry: Registry) -> type[Choice]:
    """A pydantic type accepting the `Config` of any component registered in `registry`.

    Each registered component class carries a `Config` (a StrictModel with a `type: Literal[key]` field); the YAML's
    `type:` picks which one validates the rest of the block. A bare name is short for `{type: name}`
    (`architecture: mmoe`). The registry is consulted when a value is validated, not when the schema is defined, so
    the schema imports no component (nor TensorFlow), and a component registered later (a plugin, a test) is a
    valid choice at once.
    """
    if registry not in _CHOICES:
        _CHOICES[registry] = type(f"{registry.kind.title()}Choice", (Choice,), {"registry": registry})
    return _CHOICES[registry]


_CHOICES: dict[Registry, type[Choice]] = {}


class Choice:
    """The pydantic type `one_of` makes: validates a `{type: key, ...}` mapping (or a bare key) with the `Config`
    of the component registered under `key`; a wrong `type` fails as a discriminated union does."""

    registry: Registry  # set on each subclass

    @classmethod
    def configs(cls) -> list[type[BaseModel]]:
        """The registered components' Config classes, by key."""
        return [component.Config for _, component in cls.registry.items()]

    @classmethod
    def validate(cls, value: object) -> BaseModel:
        if isinstance(value, str):
            value = {"type": value}
        if isinstance(value, BaseModel):
            key = getattr(value, "type", None)
            registered = cls.registry.get(key).Config if isinstance(key, str) and key in cls.registry else None
            if type(value) is registered:
                return value
            value = value.model_dump()
        if not isinstance(value, dict):
            raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
        if "type" not in value:
            raise PydanticCustomError(
                "union_tag_not_found",
                "Unable to extract tag using discriminator {discriminator}",
                {"discriminator": "'type'"},
            )
        keys = cls.registry.keys()
        if not isinstance(value["type"], str) or value["type"] not in keys:
            raise PydanticCustomError(
                "union_tag_invalid",
                "Input tag {tag} found using 'type' does not match any of the expected tags: {expected_tags}",
                {"tag": str(value["type"]), "expected_tags": ", ".join(map(repr, keys))},
            )
        return cls.registry.get(value["type"]).Config.model_validate(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # No serializer of its own: a value is a Config, serialized as a model with every model_dump option.
        return core_schema.no_info_plain_validator_function(cls.validate)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        """oneOf the registered components' Config schemas."""
        return {"oneOf": [handler(config.__pydantic_core_schema__) for config in cls.configs()]}


def config_models(annotation: object) -> list[type[BaseModel]]:
    """The config classes a field's annotation can hold, through Optional, list, dict, Union and Annotated; a
    registry choice gives every registered component's Config. What walkers of the schema use (error paths, the
    fuzz's broken configs, the config reference and its test)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, type) and issubclass(annotation, Choice):
        return annotation.configs()
    return [m for arg in typing.get_args(annotation) for m in config_models(arg)]
