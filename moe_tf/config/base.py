"""The strict base model every config object derives from, and `one_of` for registry-typed choices."""

from __future__ import annotations

import functools
import operator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """A config object: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True, frozen=False)


def one_of(registry):
    """Returns a pydantic type accepting the `Config` of any component registered in `registry`.

    Each registered component class carries a `Config` (a StrictModel with a `type: Literal[key]` field);
    the YAML's `type:` picks which one validates the rest of the block.
    """
    configs = [registry.get(key).Config for key in registry.keys()]
    if len(configs) == 1:
        return configs[0]
    union = functools.reduce(operator.or_, configs)  # Config1 | Config2 | ...
    return Annotated[union, Field(discriminator="type")]
