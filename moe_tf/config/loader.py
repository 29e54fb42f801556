"""YAML → ExperimentConfig: `base:` inheritance, `--set a.b=c` overrides, and errors that name the field path."""

from __future__ import annotations

import copy
import difflib
import os
import re
import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from moe_tf.config.base import config_models
from moe_tf.config.schema import ExperimentConfig
from moe_tf.errors import ConfigError


def read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# The mappings that choose a component by `type` (a registry's): one of another type replaces the base's whole (its
# settings are another component's); the entries of `model.stems` and `data.sources` are such mappings too.
TYPED_KEYS = {"stem", "gate", "architecture", "weighting", "source"}
TYPED_ENTRIES = {"stems", "sources"}


def deep_merge(base: dict, override: dict, _parent: str = "") -> dict:
    """Mappings merge key by key; any other value (lists included) in `override` replaces the base's, and so does a
    component's mapping (a stem, gate, architecture, weighting or source) that names another `type:` than the
    base's: it keeps none of the other kind's settings."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        typed = key in TYPED_KEYS or _parent in TYPED_ENTRIES
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not (typed and _retyped(out[key], value)):
            out[key] = deep_merge(out[key], value, key)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _retyped(base: dict, override: dict) -> bool:
    return "type" in override and "type" in base and override["type"] != base["type"]


def load_with_bases(path: str, _chain: tuple = ()) -> dict:
    """Reads `path`, merging it over its `base:` file(s) (paths relative to the file that names them)."""
    real = os.path.realpath(path)
    if real in _chain:
        raise ConfigError(f"{path}: circular base: {' -> '.join(_chain + (real,))}")
    data = read_yaml(path)
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: base: expected a file path or a list of file paths, got {bases!r}")
    merged: dict = {}
    for b in bases:
        b_path = b if os.path.isabs(b) else os.path.join(os.path.dirname(os.path.abspath(path)), b)
        merged = deep_merge(merged, load_with_bases(b_path, _chain + (real,)))
    return deep_merge(merged, data)


_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _split_path(key: str, origin: str = "--set") -> list[str]:
    if not re.fullmatch(r"[^.\[\]]+(\.[^.\[\]]+|\[[^\]]+\])*", key):
        raise ConfigError(
            f"{origin} {key}: cannot parse the key (expected e.g. model.experts.count or tasks[0].weight)"
        )
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _TOKEN.finditer(key)]


def apply_override(data: dict, assignment: str) -> None:
    """Applies one `a.b[0].c=value` (or `tasks.<task name>.weight=value`); the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from None
    glued = _glued_key(value)
    if glued is not None:
        name, _, rest = glued.partition(":")
        raise ConfigError(
            f"--set {key}: {raw!r} reads as a key {glued!r} without a value; YAML needs a space after ':' "
            f"(e.g. {{{name}: {rest}}})"
        )
    set_value(data, key.strip(), value)


def _glued_key(value: object) -> str | None:
    """A mapping key written `a:b` with no value (a flow mapping missing the space after ':'), if `value` has one."""
    if isinstance(value, dict):
        for k, v in value.items():
            if v is None and isinstance(k, str) and ":" in k and not k.startswith(":"):
                return k
            found = _glued_key(v)
            if found is not None:
                return found
    elif isinstance(value, list):
        return next((g for g in map(_glued_key, value) if g is not None), None)
    return None


def set_value(data: dict, key: str, value: object, origin: str = "--set") -> None:
    """Sets `key` (`--set` syntax) in a config mapping to `value`; errors start with `origin` and the key."""
    parts = _split_path(key, origin)
    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            index = _list_index(node, part, key, origin)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"{origin} {key}: {where} is not a mapping or a list")


def _list_index(items: list, part: str, key: str, origin: str) -> int:
    if re.fullmatch(r"-?\d+", part):
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(f"{origin} {key}: index {index} out of range (the list has {len(items)} entries)")
        return index
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    names = [item.get("name") for item in items if isinstance(item, dict)]
    raise ConfigError(f"{origin} {key}: no entry named {part!r}; names: {names}")


def resolve_config_dict(path: str, overrides: typing.Sequence[str] = ()) -> dict:
    data = load_with_bases(path)
    for assignment in overrides:
        apply_override(data, assignment)
    return data


def load_config(
    path: str, overrides: typing.Sequence[str] = (), model: type[ExperimentConfig] = ExperimentConfig
) -> ExperimentConfig:
    """Loads, merges, overrides and validates a config file as a `model` (ExperimentConfig or a subclass). Raises
    ConfigError naming the file and every bad field."""
    data = resolve_config_dict(path, overrides)
    try:
        return validate_config(data, model)
    except ConfigError as e:
        lines = str(e).splitlines()
        if len(lines) == 1:
            raise ConfigError(f"{path}: {lines[0]}") from None
        raise ConfigError(f"{path}:\n" + "\n".join(f"  {line}" for line in lines)) from None


def validate_config(data: dict, model: type[ExperimentConfig] = ExperimentConfig) -> ExperimentConfig:
    """`data` as a `model` (ExperimentConfig or a subclass); raises ConfigError naming every bad field."""
    try:
        config = model.model_validate(data)
    except ValidationError as e:
        raise field_errors(e, data) from None
    return config.validate_all()


def field_errors(error: ValidationError, data: object) -> ConfigError:
    """pydantic's errors on config `data` as one ConfigError, a line per bad field with its path."""
    return ConfigError("\n".join(format_error(err, data, ExperimentConfig) for err in error.errors()))


def to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML that loads back into an equal config (python-mode dump: a label_map's integer
    keys stay integers, which strict validation requires)."""
    return yaml.safe_dump(config.model_dump(), sort_keys=False)


def leaf_values(value: object, prefix: str = "") -> dict:
    """The leaf keys of a config mapping, in `--set` syntax: {"model.experts.count": 4, "tasks[0].name": "digit",
    ...}; a list of plain values (e.g. `units: [64, 32]`) is one leaf."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(leaf_values(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(leaf_values(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


# ---- error formatting ----------------------------------------------------------------------------


def format_error(err: typing.Mapping, raw: object, root_model: type[BaseModel]) -> str:
    """One pydantic error → `tasks[1].num_classes: expected int >= 2, got 0`."""
    path: list[str] = []
    model: Any = root_model
    parent, node = None, raw
    loc = list(err["loc"])
    i = 0
    while i < len(loc):
        part = loc[i]
        # Discriminated unions add the tag value (e.g. "digits") to the location: skip it.
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            model = _union_member(model, part)
            i += 1
            continue
        if isinstance(part, int):
            path.append(f"[{part}]")
        else:
            path.append(("." if path else "") + str(part))
        child = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
        if i < len(loc) - 1 or err["type"] != "extra_forbidden":
            parent, model = model, _child_model(model, part, node)
            if isinstance(model, list) and isinstance(child, dict) and isinstance(child.get("type"), str):
                model = _union_member(model, child["type"]) or model  # a registry choice: the member its type names
        node = child
        i += 1
    if err["type"] == "union_tag_invalid":
        path.append(".type")
    where = "".join(path) or "(top level)"
    return f"{where}: {_describe(err, model, parent, loc)}"


def _has(node: dict | list, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _child_model(model, part, node):
    if model is None:
        return None
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        members = config_models(field.annotation)
        if len(members) == 1:
            return members[0]
        return members or None
    if isinstance(model, list):  # several candidates (dict/list values of a union): pick by the data's type
        return model
    return None


def _union_member(model, tag):
    candidates = model if isinstance(model, list) else [model]
    for m in candidates:
        if isinstance(m, type) and issubclass(m, BaseModel):
            t = m.model_fields.get("type")
            if t is not None and t.default == tag:
                return m
    return None


_EXPECTED = {
    "int_parsing": "expected int",
    "int_type": "expected int",
    "int_from_float": "expected int",
    "float_parsing": "expected number",
    "float_type": "expected number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "required",
}


def _constraint(parent: object, name: str | int) -> str:
    """` >= 1` for a field declared with Field(ge=1), and so on."""
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)) or name not in parent.model_fields:
        return ""
    for meta in parent.model_fields[name].metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                return f" {sign} {getattr(meta, attr)}"
    return ""


def _describe(err: typing.Mapping, model: object, parent: object, loc: list) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    got = f", got {err['input']!r}" if kind not in ("missing", "extra_forbidden") else ""
    if kind == "extra_forbidden":
        known = sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key{suffix}" + (f"; known keys: {', '.join(known)}" if known else "")
    if kind == "value_error":  # a validator's own message, which names the bad value
        return err["msg"].removeprefix("Value error, ")
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; known: {ctx.get('expected_tags')}"
    if kind == "literal_error" and loc[-1] == "type":
        return f"unknown type {err['input']!r}; known: {ctx.get('expected')}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}{got}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        (limit,) = ctx.values()
        noun = "int" if isinstance(err["input"], int) else "number"
        return f"expected {noun} {bounds[kind]} {limit}{got}"
    if kind in ("too_short", "too_long"):
        return f"{err['msg'][0].lower()}{err['msg'][1:]}"
    if kind in _EXPECTED:
        constraint = _constraint(parent, loc[-1]) if kind.startswith(("int", "float")) else ""
        return _EXPECTED[kind] + constraint + got
    return err["msg"] + got
