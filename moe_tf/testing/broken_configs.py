"""Broken configs generated from the real schema, for the fuzz test (tests/config/test_fuzz.py) and the robustness
figures (benchmarks/robustness.py).

`broken_case(rng, directory)` draws one case from a `random.Random` (Hypothesis hands the test a controlled one):
a valid config (a shipped one, or the tiny test config) mutated at a site found by walking the config alongside
its pydantic schema — a wrong type, an unknown key at any level, a missing required field, a number outside its
bounds, an unknown registry or choice name, a top-k larger than the expert count — or broken as a file: invalid
YAML, a Python object tag, a `base:` cycle or a missing base file, or a bad `--set`. Each case says which strings
the error must contain (the field path, the file, the `--set` key).
"""

from __future__ import annotations

import copy
import glob
import os
import typing
from dataclasses import dataclass, field

import yaml

from moe_tf.config.base import config_models
from moe_tf.config.loader import resolve_config_dict
from moe_tf.config.schema import ExperimentConfig
from moe_tf.testing.configs import TINY


@dataclass
class Case:
    kind: str
    path: str  # the config file
    overrides: list = field(default_factory=list)  # --set KEY=VALUE
    expect: list = field(default_factory=list)  # each must appear in the error message
    legal: bool = False  # the "wrong" value happens to be a legal one (see LEGAL_WRONG_TYPES): validates, exit 0

    def argv(self) -> list:
        return ["validate", self.path, *(a for o in self.overrides for a in ("--set", o))]


def base_configs(configs_dir: str = "configs") -> list[dict]:
    """Every config in `configs_dir` resolved (bases merged; the repository's shipped configs, run from its root),
    and the tiny test config."""
    found = [resolve_config_dict(p) for p in sorted(glob.glob(os.path.join(configs_dir, "*.yaml")))]
    return [copy.deepcopy(TINY), *found]


# ---- the schema walk ---------------------------------------------------------------------------------------


def _strip(annotation):
    """Optional[X] / Annotated[X, ...] → X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _model_for(annotation, value):
    """The model class `value` (a mapping) validates against, or None (plain data, e.g. a label map)."""
    if not isinstance(value, dict):
        return None
    members = config_models(annotation)
    if len(members) == 1:
        return members[0]
    tag = value.get("type")
    for m in members:
        t = m.model_fields.get("type")
        if t is not None and t.default == tag:
            return m
    return None


def _join(path: str, name) -> str:
    return f"{path}[{name}]" if isinstance(name, int) else (f"{path}.{name}" if path else str(name))


def walk(model, data: dict, path: str = ""):
    """Yields ("mapping", path, data, model) for every model-backed mapping and ("field", path, parent, name,
    FieldInfo) for every field present, depth first."""
    yield ("mapping", path, data, model)
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, here = data[name], _join(path, name)
        yield ("field", here, data, name, info)
        annotation = _strip(info.annotation)
        origin = typing.get_origin(annotation)
        if origin is list and isinstance(value, list):
            item = typing.get_args(annotation)[0]
            for i, v in enumerate(value):
                sub = _model_for(item, v)
                if sub:
                    yield from walk(sub, v, _join(here, i))
        elif origin is dict and isinstance(value, dict):
            item = typing.get_args(annotation)[1]
            for k, v in value.items():
                sub = _model_for(item, v)
                if sub:
                    yield from walk(sub, v, _join(here, k))
        else:
            sub = _model_for(annotation, value)
            if sub:
                yield from walk(sub, value, here)


def _bounds(info) -> dict[str, float]:
    out: dict[str, float] = {}
    for meta in info.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(meta, attr, None) is not None:
                out[attr] = getattr(meta, attr)
    return out


def _is_choice(info) -> bool:
    return typing.get_origin(_strip(info.annotation)) is typing.Literal


# ---- cases -------------------------------------------------------------------------------------------------


def _write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _numeric(info) -> bool:
    annotation = _strip(info.annotation)
    return annotation in (int, float) or any(a in (int, float) for a in typing.get_args(annotation))


def _takes_structure(info) -> bool:
    annotation = _strip(info.annotation)
    return typing.get_origin(annotation) in (list, dict) or bool(config_models(annotation))


# The one "wrong type" that is legal, found by trying every mutation site of every base config: {"wrong": "type"}
# for a field that also takes a {str: str} mapping (a delimited source's `text`: {input name: column} renames).
LEGAL_WRONG_TYPES = ("a {str: str} mapping for a field typed ... | dict[str, str]",)


def _takes_str_mapping(info) -> bool:
    annotation = _strip(info.annotation)
    return any(
        typing.get_origin(a) is dict and typing.get_args(a) == (str, str)
        for a in (annotation, *typing.get_args(annotation))
    )


def field_mutation(rng, data: dict):
    """Mutates `data` in place: draws a kind of breakage, then one of the schema sites where it applies (a field
    need not be in the config to be set wrongly). Returns (kind, the path the error must name, whether the value
    set is legal after all: LEGAL_WRONG_TYPES)."""
    sites = list(walk(ExperimentConfig, data))
    mappings = [(s[1], s[2], s[3]) for s in sites if s[0] == "mapping"]
    fields = [s for s in sites if s[0] == "field"]
    candidates = {
        "unknown key": [(path, mapping, None, None) for path, mapping, _ in mappings],
        "wrong type": [
            (path, mapping, name, info)
            for path, mapping, model in mappings
            for name, info in model.model_fields.items()
            if name != "type"
        ],
        "out of bounds": [
            (path, mapping, name, info)
            for path, mapping, model in mappings
            for name, info in model.model_fields.items()
            if _bounds(info) and _numeric(info)
        ],
        "missing": [
            (path.rsplit(".", 1)[0] if "." in path else "", parent, name, info)
            for _, path, parent, name, info in fields
            if info.is_required()
        ],
        "unknown name": [
            (path.rsplit(".", 1)[0] if "." in path else "", parent, name, info)
            for _, path, parent, name, info in fields
            if name == "type" or _is_choice(info)
        ],
    }
    kind = rng.choice(sorted(k for k, v in candidates.items() if v))
    path, mapping, name, info = rng.choice(candidates[kind])
    if kind == "unknown key":
        key = rng.choice(["bogus", "colour", "Experts", "learning_rte", "x1"])
        mapping[key] = rng.choice([1, "a", None, [1], {"k": 2}])
        return kind, _join(path, key), False
    here = _join(path, name)
    if kind == "wrong type":
        mapping[name] = 3.5 if _takes_structure(info) else rng.choice([{"wrong": "type"}, [[1], [2]]])
        return kind, here, mapping[name] == {"wrong": "type"} and _takes_str_mapping(info)
    elif kind == "out of bounds":
        bounds = _bounds(info)
        integer = _strip(info.annotation) is int
        if "ge" in bounds or "gt" in bounds:
            low = bounds["ge"] if "ge" in bounds else bounds["gt"]
            mapping[name] = low - (1 if integer else 0.5) if "ge" in bounds else low - rng.choice([0, 1])
        else:
            high = bounds["le"] if "le" in bounds else bounds["lt"]
            mapping[name] = high + (1 if integer else 0.5) if "le" in bounds else high + rng.choice([0, 1])
    elif kind == "missing":
        del mapping[name]
        if name == "type":  # a union's tag: the error names the mapping that lacks it
            return kind, path, False
    else:
        mapping[name] = rng.choice(["no_such_thing", "Mmoe", "softmax2", ""])
    return kind, here, False


def broken_case(rng, directory: str, bases=None) -> Case | None:
    """One broken config (files written to `directory`), or None when the drawn mutation does not apply."""
    bases = bases or base_configs()
    data = copy.deepcopy(rng.choice(bases))
    kind = rng.choices(
        ["field", "top_k", "yaml", "python tag", "base cycle", "missing base", "set"], weights=[60, 4, 8, 5, 4, 4, 15]
    )[0]
    if kind == "field":
        drawn = field_mutation(rng, data)
        if drawn is None:
            return None
        what, path, legal = drawn
        return Case(what, _write(directory, "config.yaml", yaml.safe_dump(data)), expect=[path], legal=legal)
    if kind == "top_k":
        tiny = copy.deepcopy(TINY)
        count = tiny["model"]["experts"]["count"]
        tiny["model"]["gate"] = {"type": rng.choice(["noisy_top_k"]), "k": count + rng.randint(1, 3)}
        return Case(kind, _write(directory, "config.yaml", yaml.safe_dump(tiny)), expect=["model.gate.k"])
    if kind == "yaml":
        lines = yaml.safe_dump(data).splitlines()
        at = rng.randrange(len(lines) + 1)
        lines.insert(
            at,
            rng.choice(
                ["  - [unclosed", "key: {a: 1", "\tindented: with a tab", ": : :", "experts: [1, 2", "'unterminated"]
            ),
        )
        path = _write(directory, "config.yaml", "\n".join(lines) + "\n")
        return Case(kind, path, expect=[path])
    if kind == "python tag":
        tag = rng.choice(
            [
                "!!python/object/apply:os.system ['true']",
                "!!python/name:os.system",
                "!!python/object:collections.OrderedDict {}",
                "!!binary aGVsbG8=",
            ]
        )
        lines = yaml.safe_dump(data).splitlines()
        lines.insert(rng.randrange(1, len(lines) + 1), f"injected: {tag}")
        path = _write(directory, "config.yaml", "\n".join(lines) + "\n")
        return Case(kind, path, expect=[path])
    if kind == "base cycle":
        a = os.path.join(directory, "a.yaml")
        _write(directory, "a.yaml", yaml.safe_dump({"base": "b.yaml", **data}))
        _write(directory, "b.yaml", yaml.safe_dump({"base": rng.choice(["a.yaml", "b.yaml"])}))
        return Case(kind, a, expect=["circular base"])
    if kind == "missing base":
        missing = rng.choice(["nowhere.yaml", "../no/such/base.yaml", "gone.yml"])
        path = _write(directory, "config.yaml", yaml.safe_dump({"base": missing, **data}))
        return Case(kind, path, expect=[os.path.basename(missing)])
    path = _write(directory, "config.yaml", yaml.safe_dump(data))
    key, value, expect = rng.choice(
        [
            ("model.experts.colour", "3", "model.experts.colour"),
            ("training.nonexistent.deeper", "1", "training.nonexistent"),
            (f"tasks[{len(data['tasks']) + rng.randint(0, 5)}].weight", "2", "out of range"),
            ("tasks[no_such_task].weight", "2", "no_such_task"),
            ("model..experts", "1", "model..experts"),
            ("training.batch_size", "[unclosed", "training.batch_size"),
            ("training.batch_size", "-4", "training.batch_size"),
            ("experiment.seed.inner", "1", "experiment.seed"),
        ]
    )
    assignment = f"{key}={value}" if rng.random() < 0.9 else key  # sometimes no "=" at all
    return Case("set", path, [assignment], [expect if "=" in assignment else "KEY=VALUE"])
