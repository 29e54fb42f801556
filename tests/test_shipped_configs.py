"""Shipped configs that run offline train end to end on a few steps (the full runs are in benchmarks/)."""

import os

import pytest

from moe_tf.config.loader import load_config, resolve_config_dict
from moe_tf.run import train
from tests.conftest import FASHION_DIR, REPO


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="apt-get install dataset-fashion-mnist")
def test_digits_and_fashion_in_one_model(tmp_path):
    overrides = [
        "training.steps=6",
        "training.eval_every=6",
        "training.log_every=3",
        "data.sources.fashion.limit=640",
        "logging.progress=none",
        "data.shuffle_buffer=700",
    ]
    config = load_config(f"{REPO}/configs/digits_fashion_mmoe.yaml", overrides)
    metrics = train(config, str(tmp_path / "run"))
    assert metrics["step"] == 6 and set(metrics["tasks"]) == {"digit", "item", "footwear"}
    meta = (tmp_path / "run" / "export" / "moe_tf_export.json").read_text()
    assert '"digit_image"' in meta and '"image"' in meta


SHARED_DATA = os.path.join(REPO, "..", "shared", "data")
QUICK = [
    "training.steps=4",
    "training.eval_every=4",
    "training.log_every=2",
    "training.batch_size=32",
    "logging.progress=none",
    "data.shuffle_buffer=500",
]
SHIPPED = {
    "sst2_text_cnn": ["data.sources.sst2.limit=300", "model.stems.text.max_tokens=500"],
    "sst2_agnews_mmoe": [
        "data.sources.sst2.limit=300",
        "data.sources.agnews.limit=300",
        "model.stems.text.max_tokens=500",
    ],
    "fashion_sst2_mmoe": [
        "data.sources.sst2.limit=300",
        "data.sources.fashion.limit=300",
        "model.stems.text.max_tokens=500",
    ],
    "synthetic_mmoe": ["data.sources.synthetic.size=400"],
    "multi_fashion_mmoe": ["data.sources.multi.source.limit=300"],
}


def data_paths(value) -> list[str]:
    """Every string under a config's `data` section (its sources' paths, however nested)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in data_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in data_paths(v)]
    return [value] if isinstance(value, str) else []


def needs(name) -> list:
    """Skip marks for the data a shipped config reads that this machine lacks (none: it always runs)."""
    paths = data_paths(resolve_config_dict(f"{REPO}/configs/{name}.yaml")["data"])
    marks = []
    if any(p.startswith(FASHION_DIR) for p in paths):
        marks.append(pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="apt-get install dataset-fashion-mnist"))
    if any("shared/data/" in p for p in paths):
        marks.append(
            pytest.mark.skipif(
                not os.path.isdir(SHARED_DATA), reason="../shared/data (SST-2, AG News) is not beside the repository"
            )
        )
    return marks


@pytest.mark.parametrize("name", [pytest.param(name, marks=needs(name)) for name in sorted(SHIPPED)])
def test_text_and_generator_configs_train_and_export(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the configs' data paths are relative to the repository root
    config = load_config(f"{REPO}/configs/{name}.yaml", QUICK + SHIPPED[name])
    metrics = train(config, str(tmp_path / "run"))
    assert metrics["step"] == 4 and set(metrics["tasks"]) == {t.name for t in config.tasks}
    meta = (tmp_path / "run" / "export" / "moe_tf_export.json").read_text()
    if "sst2" in name:
        assert '"negative"' in meta and '"modality": "text"' in meta
    if name == "multi_fashion_mmoe":
        assert '"shape": [\n        36,\n        36,\n        1\n      ]' in meta
