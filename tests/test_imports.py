"""The import graph: no module imports one that imports it back (the package builds in one direction), the config
loads without TensorFlow, and every registry finds its components wherever it is asked first."""

import ast
import os
import subprocess
import sys

from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "moe_tf")


def _module_name(path: str) -> str:
    name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """{module: the moe_tf modules it imports}, counting every import statement (function-local ones too: a cycle
    broken by deferring an import is still a cycle)."""
    paths = {
        _module_name(os.path.join(d, f)): os.path.join(d, f)
        for d, _, files in os.walk(PACKAGE)
        for f in files
        if f.endswith(".py")
    }
    graph = {}
    for name, path in paths.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 80 and "moe_tf.registry" in graph["moe_tf.models.gates.softmax"]
    assert cycles(graph) == []


def _fresh(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_config_and_help_load_without_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "import moe_tf.config.loader, moe_tf.config.schema, moe_tf.registry\n"
        "from moe_tf import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: cli.main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    assert _fresh(code) == "[]"


def test_tensorflow_loaded_through_moe_tf_gets_the_onednn_default():
    code = (
        "import os, sys\n"
        "from moe_tf.training import trainer\n"
        "print('tensorflow' in sys.modules, os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    )
    assert _fresh(code) == "True 1"


def _registered_in_source(folder: str, registry: str) -> set[str]:
    """The keys `@REGISTRY.register("key")` decorators in the folder's files name."""
    keys = set()
    for name in os.listdir(folder):
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(open(os.path.join(folder, name)).read())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "register"
                    and getattr(node.func.value, "id", None) == registry
                ):
                    keys.add(node.args[0].value)
    return keys


def test_each_registry_finds_every_component_on_its_first_lookup():
    folders = {
        "DATASETS": "data",
        "STEMS": "models/stems",
        "GATES": "models/gates",
        "ARCHITECTURES": "models/architectures",
        "WEIGHTINGS": "training/weightings",
    }
    # A fresh process whose first moe_tf import is the registries themselves, and whose first use of each is keys().
    printed = _fresh(
        "from moe_tf import registry\n"
        f"for name in {list(folders)}:\n"
        "    print(name, ','.join(getattr(registry, name).keys()))"
    ).splitlines()
    found = dict(line.split(" ") for line in printed)
    for registry, folder in folders.items():
        expected = _registered_in_source(os.path.join(PACKAGE, folder), registry)
        assert len(expected) >= 4, (registry, expected)
        assert set(found[registry].split(",")) == expected, registry
