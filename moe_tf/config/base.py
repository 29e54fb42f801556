"""The strict base model every config object derives from, and `one_of` for registry-typed choices."""

from __future__ import annotations

import functools
import operator
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"  # task, feature and label names: identifiers (they become signature names)


class StrictModel(BaseModel):
    """A config object: unknown keys are errors, and values are not coerced across types.

    Strict mode refuses `"5"` for an int and `true` for a number; the exceptions are those YAML cannot avoid:
    an int where a float is expected (`1` for `1.0`), and a list where a tuple is expected.
    """

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, frozen=False)


def check_identifiers(names, what: str, hint: str = "") -> list[str]:
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
    return Field("image", pattern=NAME_PATTERN,
                 description="model input name; sources with the same feature name and shape share one stem")


def one_of(registry):
    """Returns a pydantic type accepting the `Config` of any component registered in `registry`.

    Each registered component class carries a `Config` (a StrictModel with a `type: Literal[key]` field);
    the YAML's `type:` picks which one validates the rest of the block. A bare name is short for `{type: name}`
    (`architecture: mmoe`).
    """
    configs = [registry.get(key).Config for key in registry.keys()]
    shorthand = BeforeValidator(lambda v: {"type": v} if isinstance(v, str) else v)
    if len(configs) == 1:
        return Annotated[configs[0], shorthand]
    union = functools.reduce(operator.or_, configs)  # Config1 | Config2 | ...
    return Annotated[Annotated[union, Field(discriminator="type")], shorthand]
