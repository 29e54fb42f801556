"""The documentation: the config reference is generated from the schema and lists (and describes) every field; the
site builds with `mkdocs build --strict`; README's first lines give the two commands and its opening paragraph names
every component; the search guide names every search-space key; no page carries issue numbers."""

import glob
import os
import re
import subprocess
import sys
import typing

import pytest

from moe_tf.config.base import config_models
from moe_tf.config.reference import reference_markdown
from moe_tf.config.schema import ExperimentConfig
from tests.conftest import REPO


def slots(annotation, suffix=""):
    """(path suffix, config class) for each config class a field can hold: `[i]` for a list's entries, `.<*>` for
    a mapping's values (any `<placeholder>` in the reference)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        yield from slots(args[0], suffix + "[i]")
    elif origin is dict:
        yield from slots(args[1], suffix + ".<*>")
    elif args:
        for arg in args:
            yield from slots(arg, suffix)
    else:
        for member in config_models(annotation):
            yield suffix, member


def schema_fields(model, prefix=""):
    """(path, field) of every field of `model` and of every config object inside it, each registered component's
    `Config` included. `model.stems.<input>` takes the keys of `model.stem`, documented once under it."""
    for name, field in model.model_fields.items():
        path = prefix + name
        yield path, field
        if path == "model.stems":
            continue
        for suffix, member in slots(field.annotation):
            yield from schema_fields(member, path + suffix + ".")


def listed(path: str, text: str) -> bool:
    pattern = re.escape(f"`{path}`").replace(re.escape("<*>"), r"<\w+>")
    return re.search(pattern, text) is not None


def test_config_reference_lists_every_field():
    reference = reference_markdown()
    paths = sorted({path for path, _ in schema_fields(ExperimentConfig)})
    assert len(paths) > 250  # sources, stems, gates, architectures and weightings included
    missing = [p for p in paths if not listed(p, reference)]
    assert not missing, f"the config reference lacks: {missing}"


@pytest.mark.parametrize(
    "kind", ["data.sources", "model.stem", "model.gate", "model.architecture", "training.weighting"]
)
def test_config_reference_lists_each_components_own_keys_in_its_section(kind):
    """Each registered `type` has a section listing its own keys (a key two types share must be in both)."""
    from moe_tf import registry

    axis = {"data.sources": "DATASETS", "model.stem": "STEMS", "model.gate": "GATES"}
    axis |= {"model.architecture": "ARCHITECTURES", "training.weighting": "WEIGHTINGS"}
    where = kind + (".<name>" if kind == "data.sources" else "")
    reference = reference_markdown()
    for key, component in getattr(registry, axis[kind]).items():
        start = reference.index(f"`{where}.type: {key}`")
        end = reference.find("\n#", start)
        section = reference[start : end if end >= 0 else len(reference)]
        prefix = kind + (".<*>." if kind == "data.sources" else ".")
        fields = [p for p, _ in schema_fields(component.Config, prefix) if p != prefix + "type"]
        missing = [p for p in fields if not listed(p, section)]
        assert not missing, f"{kind} type {key}: its section lacks {missing}"


def test_every_config_field_has_a_description():
    fields = list(schema_fields(ExperimentConfig))  # model.stem holds every stem type: model.stems adds none
    undocumented = sorted({path for path, field in fields if not (field.description or "").strip()})
    assert not undocumented, f"fields without a description (Field(description=...)): {undocumented}"


def test_config_reference_shows_defaults_of_the_enclosing_default():
    """`model.tower` defaults to units [32] although a DenseStackConfig alone has []: the row shows [32]."""
    reference = reference_markdown()
    assert re.search(r"\| `model\.tower\.units` \| [^|]+ \| `\[32\]` \|", reference)
    assert re.search(r"\| `model\.trunk\.units` \| [^|]+ \| `\[\]` \|", reference)
    assert re.search(r"\| `data\.sources\.<name>\.labels` \| [^|]+ \| required \|", reference)


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, a page missing from the nav or an API docstring griffe
    cannot read fails it. The built site holds the generated config reference and README as its home page."""
    mkdocs = os.path.join(os.path.dirname(sys.executable), "mkdocs")
    site = tmp_path / "site"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config_page = (site / "reference" / "config.html").read_text()
    assert "model.gate.capacity_factor" in config_page and "data.sources.&lt;name&gt;.path" in config_page
    home = (site / "index.html").read_text()
    assert "make demo" in home and 'src="images/gates_digits.png"' in home
    assert (site / "images" / "gates_digits.png").is_file()
    assert "moe_tf.api.train" in (site / "reference" / "api.html").read_text()
    assert "moe_tf.layers.MMoE" in (site / "reference" / "layers.html").read_text()


def doc_pages():
    return [
        os.path.join(REPO, "README.md"),
        *sorted(glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)),
    ]


def test_relative_links_of_readme_and_docs_resolve():
    """Every relative link of README and the pages points at a file of the repository, so the links work on GitHub
    as well as in the site."""
    broken = []
    for page in doc_pages():
        text = re.sub(r"```.*?```", "", open(page).read(), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(page), target.split("#")[0]))
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(page, REPO)}: {target}")
    assert not broken, f"links to missing files: {broken}"


def test_readme_starts_with_the_two_commands():
    lines = open(f"{REPO}/README.md").read().splitlines()[:6]
    assert any(line.startswith("make demo") for line in lines)
    assert any(line.startswith("make test") for line in lines)


def test_readme_is_a_short_landing_page_and_no_page_cites_issues():
    readme = open(f"{REPO}/README.md").read()
    assert len(readme.splitlines()) <= 200, "README is the landing page: move detail to a guide under docs/"
    cited = []
    for page in doc_pages():
        for line in open(page).read().splitlines():
            if re.search(r"(?i)\bissues?\s*#?\d+|(?<![\w/&])#\d+\b|[\w-]+/[\w-]+#\d+", line):
                cited.append(f"{os.path.relpath(page, REPO)}: {line.strip()}")
    assert not cited, f"user docs cite issue numbers: {cited}"


def test_search_guide_documents_every_search_space_key():
    from moe_tf.search.space import PARAM_KINDS, PrunerSpec, SamplerSpec, SpaceSpec

    guide = open(f"{REPO}/docs/guides/search.md").read()
    keys = {*SpaceSpec.model_fields, *SamplerSpec.model_fields, *PrunerSpec.model_fields, *PARAM_KINDS}
    keys |= {f for kind in PARAM_KINDS.values() for f in kind.model_fields}
    missing = sorted(k for k in keys if k not in guide)
    assert not missing, f"the search guide lacks: {missing}"


def test_readme_opening_names_every_registered_architecture_gate_and_weighting():
    """The opening paragraph's lists are checked against the registries, so a new component is named there."""
    from moe_tf.registry import ARCHITECTURES, GATES, WEIGHTINGS

    readme = open(f"{REPO}/README.md").read()
    opening = readme[: readme.index("## ")].lower()
    keys = [*ARCHITECTURES.keys(), *GATES.keys(), *WEIGHTINGS.keys()]
    assert len(keys) >= 19
    missing = [k for k in keys if k.replace("_", " ").replace("noisy top k", "noisy top-k") not in opening]
    assert not missing, f"README's opening paragraph does not name: {missing}"
