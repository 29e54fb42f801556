"""The tabular stem's `embeddings: distributed` tables (keras-rs DistributedEmbedding): lookups and pooling equal to
the Keras tables', the L2 penalty, a mirrored run that resumes exactly and exports, and the errors. The SparseCore
placement needs a TPU: here it is refused with a clear error, and the checks it triggers are tested by marking a
table as engine-held."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.components import build_components
from moe_tf.config.loader import deep_merge, validate_config
from moe_tf.errors import ConfigError
from moe_tf.models.stems.tabular import TabularStem, pooled
from moe_tf.testing.files import write_census_csv
from tests.conftest import census_dict, run_main, straight_and_resumed

DISTRIBUTED = {"type": "tabular", "units": [16], "embeddings": "distributed"}


def matches_file(tmp_path):
    """Teams (home/away reading one shared table), multi-valued tags (sqrtn), hashed venue ids."""
    path = tmp_path / "matches.csv"
    tags = ["derby|night", "cup", "", "night|cup|derby|rain", "derby"]
    rows = ["home,away,tags,venue,won"] + [
        f"{h},{a},{tags[i % 5]},{i % 7},{i % 3 == 0:d}" for i, (h, a) in enumerate(zip("abcab" * 20, "ddcba" * 20))
    ]
    path.write_text("\n".join(rows) + "\n")
    data = census_dict(path, model={"stems": {"categorical": DISTRIBUTED}, "l2": 0.01})
    data["data"]["sources"]["census"] = {
        "type": "csv",
        "path": str(path),
        "categorical": {
            "home": {"shared_embedding": "team"},
            "away": {"shared_embedding": "team"},
            "tags": {"separator": "|", "max_length": 3, "combiner": "sqrtn"},
            "venue": {"hash_buckets": 5},
        },
        "labels": ["won"],
    }
    data["tasks"] = [{"name": "won", "dataset": "census", "label": "won", "type": "binary"}]
    return data


def test_distributed_tables_look_up_and_pool_as_keras_tables_do(tmp_path):
    parts = build_components(validate_config(matches_file(tmp_path)), training=False)
    stem = parts.model.tabular_stems()[0]
    assert stem.tables == {} and stem.engine_tables() == []  # CPU: every table on the default device
    tables = {k: v.numpy() for k, v in stem.distributed.get_embedding_tables().items()}
    assert sorted(tables) == ["tags", "team", "venue"]  # home and away: one table
    assert tables["team"].shape == (1 + 1 + 4, stem.distributed._feature_configs["home"].table.embedding_dim)
    assert tables["venue"].shape[0] == 1 + 5
    listed = ", ".join(f"{t} {v.shape[0]}×{v.shape[1]}" for t, v in sorted(tables.items()))
    count = sum(v.size for v in tables.values())
    assert stem.describe_tables() == (
        f"embedding tables (distributed): {listed}; {count} parameters ({count * 4 / 2**10:.1f} KiB in float32, "
        "before the optimizer's slots), held whole by every replica"
    )
    lookups = {f: parts.model.preprocessors(f)[0] for f in ("home", "away", "tags", "venue")}
    raw = {
        "home": tf.constant(["a", "zz", "c"]),
        "away": tf.constant(["d", "a", "?"]),
        "tags": tf.constant(["night|derby", "", "cup|zz|rain|derby"]),
        "venue": tf.constant(["3", "0", "6"]),
    }
    ids = {f: lookups[f](v) for f, v in raw.items()}
    vectors = stem._distributed(ids)
    for f in ("home", "away", "venue"):
        table = tables["team" if f in ("home", "away") else f]
        np.testing.assert_allclose(vectors[f].numpy(), table[ids[f].numpy()], rtol=1e-6)
    reference = keras.layers.Embedding(*tables["tags"].shape)
    reference.build((None,))
    reference.embeddings.assign(tables["tags"])
    expected = pooled(reference, ids["tags"], {"combiner": "sqrtn"}).numpy()
    np.testing.assert_allclose(vectors["tags"].numpy(), expected, rtol=1e-5, atol=1e-7)
    t = ids["tags"].numpy()
    assert t[1].tolist()[:1] == [0]  # an empty cell is one missing id: its vector is the missing row
    np.testing.assert_allclose(vectors["tags"].numpy()[1], tables["tags"][0], rtol=1e-6)
    # model.l2 reaches the distributed tables as it reaches Keras tables: l2 · Σ w² per table
    penalties = sorted(float(x) for x in stem.losses)
    wanted = sorted(0.01 * float(np.sum(np.square(v))) for v in tables.values())
    assert len(penalties) >= 3
    for w in wanted:
        assert min(abs(p - w) for p in penalties) < 1e-6 * max(1.0, w)


def test_a_distributed_mirrored_run_resumes_exactly_evaluates_and_exports(tmp_path, capsys, monkeypatch, mirrored):
    monkeypatch.setattr("moe_tf.run.build_strategy", lambda cfg: mirrored)  # the session's one (see conftest)
    config = census_dict(
        write_census_csv(tmp_path / "c.csv", n=300),
        model={"stems": {"categorical": DISTRIBUTED}},
        training={"strategy": "mirrored", "log_every": 5},
    )
    path = tmp_path / "distributed.yaml"
    path.write_text(yaml.safe_dump(config))
    straight, resumed = straight_and_resumed(capsys, path, tmp_path, steps=16)
    names = [n for n in straight if "distributed_embedding" in n and "optimizer" not in n]
    assert len(names) == 3, sorted(straight)  # city, plan, user: one variable each
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_allclose(straight[name], resumed[name], rtol=1e-5, atol=1e-6, err_msg=name)
    run = tmp_path / "straight"
    code, out, err = run_main(capsys, "evaluate", run)
    assert code == 0, err[-2000:]
    assert "bought" in out
    code, _, err = run_main(capsys, "export", run, "--output", tmp_path / "export")
    assert code == 0, err[-2000:]
    serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    got = serve(
        city=tf.constant(["paris", "?"]),
        plan=tf.constant(["pro", "free"]),
        user=tf.constant(["3", "999"]),
        numeric=tf.constant([[40.0, 20.0, 1.0], [30.0, 5.0, 0.0]]),
    )
    assert got["bought"].shape == (2, 2)  # class probabilities
    np.testing.assert_allclose(got["bought"].numpy().sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "stem, message",
    [
        ({"placement": "sparsecore"}, "placement 'sparsecore' needs a TPU with SparseCores"),
        ({"embeddings": "keras", "placement": "default_device"}, "placement applies to distributed tables"),
        ({"embeddings": "keras", "table_optimizer": "sgd"}, "table_optimizer applies to distributed tables"),
        ({"table_learning_rate": 0}, "table_learning_rate"),
    ],
)
def test_bad_distributed_table_settings(tmp_path, stem, message):
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=100), model={"stems": {"categorical": DISTRIBUTED}})
    data["model"]["stems"]["categorical"].update(stem)
    with pytest.raises(ConfigError, match=message):
        build_components(validate_config(data), training=False)


def test_shared_distributed_tables_need_one_combiner(tmp_path):
    data = matches_file(tmp_path)
    columns = data["data"]["sources"]["census"]["categorical"]
    columns["home"].update(separator="|", combiner="sum")
    columns["away"].update(separator="|", combiner="mean")
    with pytest.raises(ConfigError, match="shared_embedding 'team'.*different combiners \\(mean vs sum\\)"):
        build_components(validate_config(data), training=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"training": {"weighting": {"type": "pcgrad"}}}, "training.weighting.type: pcgrad takes several backward"),
        ({"logging": {"gradient_stats_every": 5}}, "logging.gradient_stats_every"),
        ({"training": {"mixed_precision": "mixed_float16"}}, "mixed_float16 scales the loss"),
    ],
)
def test_what_engine_held_tables_cannot_train_with_is_refused(tmp_path, monkeypatch, change, message):
    """On a TPU with SparseCores the embedding engine updates the tables inside the backward pass; marking the
    tables as engine-held here (no TPU) runs the same checks."""
    monkeypatch.setattr(TabularStem, "engine_tables", lambda self: ["city", "plan"])
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=100), model={"stems": {"categorical": DISTRIBUTED}})
    with pytest.raises(ConfigError, match=message):
        build_components(validate_config(deep_merge(data, change))).trainer()
