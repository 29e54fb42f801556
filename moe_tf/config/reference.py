"""The config reference, generated from the typed config so it cannot drift from it.

`reference_markdown()` walks `ExperimentConfig`: one section per top-level key (experiment, data, tasks, model,
training, logging), a table of every field under it (its path, type, default and the `description` it carries), and
for each registry choice (sources, stems, gates, architectures, weightings) one table per registered `type`. The
documentation site builds docs/reference/config.md from it at build time (docs/hooks.py);
`python -m moe_tf.config.reference` prints it.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from moe_tf.config.base import Choice

KEY_NAMES = {"sources": "<name>", "stems": "<input>", "categorical": "<input>", "features": "<input>"}
KEY_NAMES |= {"labels": "<label>", "parts": "<part>"}  # placeholders for the keys of a mapping, by field name
CHOICE_TITLES = {"dataset": "Source types", "stem": "Stems", "gate": "Gates", "architecture": "Architectures"}
CHOICE_TITLES |= {"weighting": "Task weightings"}
CHOICE_NAMES = {"dataset": "a source", "stem": "a stem", "gate": "a gate", "architecture": "an architecture"}
CHOICE_NAMES |= {"weighting": "a weighting"}

INTRO = """\
Every key a config file takes, generated from the typed config (`moe_tf.config.schema` and each component's
`Config`), so it lists exactly what validation accepts. A path like `tasks[i].name` is a key of each entry of a list;
`<name>` stands for a key you choose (a source's name, an input's name). A choice with parameters (a source, stem,
gate, architecture or weighting) is a mapping whose `type:` picks the component, and the keys it takes besides are
that component's, listed per `type` below each section. How config files are written and combined (`base:`,
`--set`): [Config files](../guides/configs.md).
"""


def reference_markdown() -> str:
    """The config reference as a markdown page."""
    from moe_tf.config.schema import ExperimentConfig

    out = ["# Config reference", "", INTRO]
    for name, field in ExperimentConfig.model_fields.items():
        out += [f"## `{name}`", "", _sentence(field.description), ""]
        choices: list[tuple[str, type[Choice]]] = []
        (model,) = [m for _, m in _slots(field.annotation)]
        prefix = f"{name}[i]." if name == "tasks" else f"{name}."
        out += _table(_rows(model, prefix, choices))
        rendered: set[type[Choice]] = set()
        for _, choice in choices:
            if choice in rendered:
                continue
            rendered.add(choice)
            paths = [p for p, c in choices if c is choice]
            out += _choice_section(choice, paths)
    return "\n".join(out).rstrip() + "\n"


def _choice_section(choice: type[Choice], paths: list[str]) -> list[str]:
    """One table per registered component of a choice; `paths`: where the choice occurs (`model.stem`, ...)."""
    kind = choice.registry.kind
    where = ", ".join(f"`{p}.type`" for p in paths)
    out = [f"### {CHOICE_TITLES.get(kind, kind.title() + 's')}", "", f"The values of {where}, and the keys each takes."]
    if len(paths) > 1:
        out[-1] += f" Each key listed under `{paths[0]}` is also a key of {', '.join(f'`{p}`' for p in paths[1:])}."
    out.append("")
    for key, component in choice.registry.items():
        config = component.Config
        out += [
            f"#### `{key}`",
            "",
            f"`{paths[0]}.type: {key}` — " + _sentence(config.model_fields["type"].description),
        ]
        out.append("")
        rows = [r for r in _rows(config, paths[0] + ".", []) if r[0] != f"{paths[0]}.type"]
        out += _table(rows) if rows else ["No other keys.", ""]
    return out


def _rows(model: type[BaseModel], prefix: str, choices: list, parent: object = None) -> list[tuple[str, str, str, str]]:
    """(path, type, default, description) of every field of `model` and of the config objects inside it; a
    registry choice is appended to `choices` as (path, Choice) instead of being expanded. `parent`: the default
    value of the field holding `model` (its fields' defaults come from it when it is a `model`)."""
    rows = []
    for name, field in model.model_fields.items():
        default = getattr(parent, name) if isinstance(parent, model) else _default_value(field)
        path = prefix + name
        slots = _slots(field.annotation)
        nested = [(suffix, m) for suffix, m in slots if not (isinstance(m, type) and issubclass(m, Choice))]
        kind = ", ".join(filter(None, [_type(field.annotation), _constraints(field)]))
        rows.append((path, kind, _default(default, expanded=bool(nested)), _text(field.description)))
        for suffix, member in slots:
            inner = path + suffix.replace(".<key>", "." + KEY_NAMES.get(name, "<key>"))
            if (suffix, member) in nested:
                rows += _rows(member, inner + ".", choices, default if suffix == "" else None)
            else:
                choices.append((inner, member))
    return rows


def _slots(annotation: Any, suffix: str = "") -> list[tuple[str, Any]]:
    """The config classes and choices a field holds, each with the path suffix that reaches it: "" (the field
    itself), "[i]" (a list's entries) or ".<key>" (a mapping's values)."""
    if isinstance(annotation, type) and issubclass(annotation, (BaseModel, Choice)):
        return [(suffix, annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return _slots(args[0], suffix + "[i]")
    if origin is dict:
        return _slots(args[1], suffix + ".<key>")
    return [slot for arg in args for slot in _slots(arg, suffix)]


def _type(annotation: Any) -> str:
    """A short type name: `int`, `list[int]`, `auto, min or max`, `float or null`, `a stem`."""
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, Choice):
        return f"{CHOICE_NAMES.get(annotation.registry.kind, annotation.registry.kind)} (`type:` below)"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        names = [f"`{_yaml(a)}`" for a in args]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is list:
        return f"list[{_type(args[0])}]"
    if origin is dict:
        return f"mapping {_type(args[0])} → {_type(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: FieldInfo) -> str:
    bounds = {Ge: ("≥", "ge"), Gt: (">", "gt"), Le: ("≤", "le"), Lt: ("<", "lt")}
    out = []
    for m in field.metadata:
        for kind, (sign, attribute) in bounds.items():
            if isinstance(m, kind):
                out.append(f"{sign} {_yaml(getattr(m, attribute))}")
        if isinstance(m, MinLen):
            out.append(f"at least {m.min_length}")
        if isinstance(m, MaxLen):
            out.append(f"at most {m.max_length}")
        if getattr(m, "pattern", None):
            out.append(f"matching `{m.pattern}`")
    return ", ".join(out)


def _default_value(field: FieldInfo) -> object:
    if field.is_required():
        return PydanticUndefined
    return field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]


def _default(value: object, expanded: bool) -> str:
    """A default as YAML, `required`, or `—` for a mapping whose keys are listed below it."""
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        key = getattr(value, "type", None)
        return f"`{key}`" if isinstance(key, str) and not expanded else "—"
    return f"`{_yaml(value)}`"


def _yaml(value: object) -> str:
    """A value as it is written in YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.1f}" if value.is_integer() and abs(value) < 1e6 else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and (not value or value.strip() != value or value[0] in "[]{}:#&*!|>'\"%@`"):
        return repr(value)
    return str(value)


def _sentence(description: str | None) -> str:
    text = _text(description)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _text(description: str | None) -> str:
    return (description or "").replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    lines += [f"| `{path}` | {kind} | {default} | {text} |" for path, kind, default, text in rows]
    return [*lines, ""]


if __name__ == "__main__":
    print(reference_markdown(), end="")
