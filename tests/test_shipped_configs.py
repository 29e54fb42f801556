"""Shipped configs that run offline train end to end on a few steps (the full runs are in benchmarks/)."""

import os

import pytest

from moe_tf.config.loader import load_config
from moe_tf.run import train
from tests.conftest import FASHION_DIR, REPO


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="apt-get install dataset-fashion-mnist")
def test_digits_and_fashion_in_one_model(tmp_path):
    overrides = ["training.steps=6", "training.eval_every=6", "training.log_every=3", "data.sources.fashion.limit=640",
                 "logging.progress=none", "data.shuffle_buffer=700"]
    config = load_config(f"{REPO}/configs/digits_fashion_mmoe.yaml", overrides)
    metrics = train(config, str(tmp_path / "run"))
    assert metrics["step"] == 6 and set(metrics["tasks"]) == {"digit", "item", "footwear"}
    meta = (tmp_path / "run" / "export" / "moe_tf_export.json").read_text()
    assert '"digit_image"' in meta and '"image"' in meta
