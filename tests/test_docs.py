"""README documents every config field, and its first lines give the two commands."""

from moe_tf.config.base import config_models
from moe_tf.config.schema import ExperimentConfig
from tests.conftest import REPO


def field_paths(model, prefix=""):
    for name, field in model.model_fields.items():
        annotation = field.annotation
        members = config_models(annotation)
        path = f"{prefix}{name}"
        if members and name not in ("sources", "stems"):
            for member in members:
                yield from field_paths(member, path + ("[i]." if name == "tasks" else "."))
        else:
            yield path


def test_readme_documents_every_field():
    readme = open(f"{REPO}/README.md").read()
    paths = sorted(set(field_paths(ExperimentConfig)))
    assert len(paths) > 50
    missing = [p for p in paths if f"`{p}`" not in readme]
    assert not missing, f"README lacks: {missing}"


def test_readme_starts_with_the_two_commands():
    lines = open(f"{REPO}/README.md").read().splitlines()[:6]
    assert any(line.startswith("make demo") for line in lines)
    assert any(line.startswith("make test") for line in lines)


def test_readme_documents_every_search_space_key():
    from moe_tf.search.space import PARAM_KINDS, PrunerSpec, SamplerSpec, SpaceSpec

    readme = open(f"{REPO}/README.md").read()
    section = readme[readme.index("## Search") : readme.index("## Distributed training")]
    keys = {*SpaceSpec.model_fields, *SamplerSpec.model_fields, *PrunerSpec.model_fields, *PARAM_KINDS}
    keys |= {f for kind in PARAM_KINDS.values() for f in kind.model_fields}
    missing = sorted(k for k in keys if k not in section)
    assert not missing, f"README's Search section lacks: {missing}"


def test_readme_opening_names_every_registered_architecture_gate_and_weighting():
    """The opening paragraph's lists are checked against the registries, so a new component is named there."""
    from moe_tf.registry import ARCHITECTURES, GATES, WEIGHTINGS

    readme = open(f"{REPO}/README.md").read()
    opening = readme[: readme.index("## ")].lower()
    keys = [*ARCHITECTURES.keys(), *GATES.keys(), *WEIGHTINGS.keys()]
    assert len(keys) >= 19
    missing = [k for k in keys if k.replace("_", " ").replace("noisy top k", "noisy top-k") not in opening]
    assert not missing, f"README's opening paragraph does not name: {missing}"
