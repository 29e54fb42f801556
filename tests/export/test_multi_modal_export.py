"""Images and text in one model: digits (images) and the reviews TSV (text) train together, export, and each task is
served from its own modality's raw input, in a fresh process without moe_tf."""

import json

import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import restore_components
from moe_tf.config.loader import validate_config
from moe_tf.run import train
from tests.conftest import run_fresh_python, run_main, text_dict

FRESH = r"""
import json, sys
sys.modules["moe_tf"] = None
import numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
images = np.load(sys.argv[2])
digit = m.signatures["task_digit"](image=tf.constant(images))["class_id"].numpy().tolist()
topic = m.signatures["task_topic"](text=tf.constant(json.loads(sys.argv[3])))["class_id"].numpy().tolist()
inputs = {s.name.split(":")[0] for s in m.signatures["task_topic"].structured_input_signature[1].values()}
print(json.dumps({"digit": digit, "topic": topic, "topic_inputs": sorted(inputs)}))
"""


@pytest.fixture(scope="module")
def multi_modal_run(tmp_path_factory, reviews_tsv):
    config = text_dict(reviews_tsv, training={"steps": 200, "eval_every": 100})
    config["data"]["sources"]["digits"] = {"type": "digits"}
    config["tasks"].append({"name": "digit", "dataset": "digits"})
    config["model"]["stems"]["image"] = {"type": "conv", "filters": [8]}
    config["model"]["fusion_units"] = 16
    run_dir = str(tmp_path_factory.mktemp("runs") / "multi_modal")
    return run_dir, train(validate_config(config), run_dir)


def test_both_modalities_learn(multi_modal_run):
    _, metrics = multi_modal_run
    assert metrics["tasks"]["digit"]["accuracy"] > 0.5  # chance 0.1
    assert metrics["tasks"]["topic"]["accuracy"] > 0.45  # chance 1/3


def test_export_serves_each_task_from_its_modality(multi_modal_run, tmp_path):
    from sklearn.datasets import load_digits

    run_dir, _ = multi_modal_run
    meta = json.loads(open(f"{run_dir}/export/moe_tf_export.json").read())
    assert meta["features"]["text"]["modality"] == "text" and meta["features"]["image"]["modality"] == "image"
    assert {t["name"]: t["features"] for t in meta["tasks"]} == {
        "sentiment": ["text"],
        "topic": ["text"],
        "digit": ["image"],
    }
    digits = load_digits()
    images = np.round(digits.images[:40] * (255 / 16)).astype(np.uint8)[..., None]
    np.save(tmp_path / "images.npy", images)
    texts = ["the coach and the team", "warm soup and bread", "my new laptop screen"]
    got = run_fresh_python(FRESH, f"{run_dir}/export", str(tmp_path / "images.npy"), json.dumps(texts), cwd=tmp_path)
    assert got["topic_inputs"] == ["text"]  # the text task's endpoint takes strings only
    assert np.mean(np.array(got["digit"]) == digits.target[:40]) > 0.5
    model = restore_components(run_dir)[0].model  # the served predictions are the trained model's
    assert got["topic"] == np.argmax(model({"text": tf.constant(texts)})["outputs"]["topic"], -1).tolist()
    assert got["digit"] == np.argmax(model({"image": images})["outputs"]["digit"], -1).tolist()


def test_predict_picks_the_tasks_a_file_can_feed(multi_modal_run, tmp_path, capsys):
    run_dir, _ = multi_modal_run
    (tmp_path / "t.txt").write_text("the coach and the team\n")
    code, out, err = run_main(capsys, "predict", run_dir, "--input", tmp_path / "t.txt")
    assert code == 0, err
    assert set(json.loads(out)) == {"sentiment", "topic"}
    np.savez(tmp_path / "i.npz", image=np.zeros((2, 8, 8, 1), np.uint8))
    code, out, err = run_main(capsys, "predict", run_dir, "--input", tmp_path / "i.npz")
    assert code == 0, err
    assert [set(json.loads(line)) for line in out.strip().splitlines()] == [{"digit"}, {"digit"}]
