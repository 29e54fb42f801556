"""Categorical inputs end to end: vocabularies from the training split, missing and OOV ids, hashing, shared tables,
the tabular stem, checkpoints, resume and the export of raw columns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components, restore_components
from moe_tf.config.loader import validate_config
from moe_tf.data.categorical import default_embedding_dim, vocabulary_from_counts
from moe_tf.data.statistics import count_values
from moe_tf.errors import ConfigError, DataError
from moe_tf.models.categorical import CategoryLookup
from moe_tf.run import train
from moe_tf.run_dir import read_run_config
from moe_tf.testing.files import write_census_csv
from tests.conftest import census_dict, run_fresh_python, run_main, straight_and_resumed


def split_files(tmp_path, extra_city="rome"):
    """Train and test files: the test file's last row has a city the training file never has."""
    train_csv = write_census_csv(tmp_path / "train.csv", n=400, seed=1)
    test_csv = write_census_csv(tmp_path / "test.csv", n=60, seed=2, extra_city=extra_city)
    data = census_dict(train_csv)
    source = data["data"]["sources"]["census"]
    del source["path"]
    source.update(train=train_csv, test=test_csv, eval_fraction=0.0)
    return data


def build_vocabulary(values, options):
    return vocabulary_from_counts(count_values(values, options), options)


def test_vocabulary_orders_by_count_and_drops_rare_and_missing_values():
    values = ["b", "a", "b", "?", "c", "b", "a", "?", "?", "d"]
    assert build_vocabulary(values, {"missing": ["?"]}) == (["b", "a", "c", "d"], 0, 0)
    assert build_vocabulary(values, {"missing": ["?"], "min_count": 2}) == (["b", "a"], 0, 0)
    assert build_vocabulary(values, {"missing": [], "max_tokens": 2}) == (["?", "b"], 3, 4)
    assert [default_embedding_dim(n) for n in (4, 52, 20_000)] == [9, 17, 64]


def test_ids_missing_oov_and_vocabulary_from_the_training_split_only(tmp_path):
    parts = build_components(validate_config(split_files(tmp_path)), training=False)
    lookup = parts.model.preprocessors("city")[0]
    vocabulary = lookup.vocabulary()
    assert "rome" not in vocabulary and "?" not in vocabulary
    assert sorted(vocabulary) == ["brest", "lille", "lyon", "metz", "nice", "paris"] and vocabulary[0] == "paris"
    ids = lookup(tf.constant(["paris", "?", "rome", "", "lyon"])).numpy().tolist()
    assert ids == [2, 0, 1, 1, 2 + vocabulary.index("lyon")]  # 0 missing, 1 out of vocabulary, then the vocabulary
    batches = list(parts.data.eval_dataset("test", 64))
    cities = np.concatenate([x["city"].numpy() for x, _, _ in batches])
    assert cities.dtype == np.int32 and cities[-1] == 1  # the pipeline feeds ids; "rome" is out of vocabulary


def test_hashed_ids_are_the_same_in_a_fresh_process():
    lookup = CategoryLookup({"hash_buckets": 16, "missing": ["-1"]})
    values = [3, 17, 123456789, -1, 42]
    ids = lookup(tf.constant(values, tf.int64)).numpy().tolist()
    script = r"""
import json, sys
import keras, tensorflow as tf
h = keras.layers.Hashing(num_bins=16)
print(json.dumps((h(tf.strings.as_string(tf.constant(json.loads(sys.argv[1]), tf.int64))) + 1).numpy().tolist()))
"""
    fresh = run_fresh_python(script, json.dumps(values), cwd=".")
    assert ids[3] == 0 and [i for k, i in enumerate(ids) if k != 3] == [i for k, i in enumerate(fresh) if k != 3]
    assert all(1 <= i <= 16 for k, i in enumerate(ids) if k != 3)


def test_a_shared_table_is_one_variable_and_one_vocabulary(tmp_path):
    path = tmp_path / "pairs.csv"
    rows = ["home,away,label"] + [
        f"{a},{b},{(i % 3 == 0) * 1}" for i, (a, b) in enumerate(zip("abcab" * 20, "ddcba" * 20))
    ]
    path.write_text("\n".join(rows) + "\n")
    data = census_dict(path)
    data["data"]["sources"]["census"] = {
        "type": "csv",
        "path": str(path),
        "categorical": {"home": {"shared_embedding": "team"}, "away": {"shared_embedding": "team"}},
        "labels": ["label"],
    }
    data["tasks"] = [{"name": "label", "dataset": "census", "label": "label", "type": "binary"}]
    parts = build_components(validate_config(data), training=False)
    tables = [v for v in parts.model.trainable_variables if "embedding_" in v.path]
    assert [v.path.split("/")[-2] for v in tables] == ["embedding_team"]
    home, away = parts.model.preprocessors("home")[0], parts.model.preprocessors("away")[0]
    assert home.vocabulary() == away.vocabulary() and sorted(home.vocabulary()) == ["a", "b", "c", "d"]
    assert tables[0].shape[0] == 1 + 1 + 4  # missing, one OOV bucket, four values
    stem = parts.model.all_backbones()[0].tabular.stem
    same = stem.tables["team"](tf.constant([2]))
    np.testing.assert_array_equal(same.numpy(), tables[0].numpy()[2:3])

    data["data"]["sources"]["census"]["categorical"]["away"]["embedding_dim"] = 3
    with pytest.raises(ConfigError, match="shared_embedding 'team'.*embedding_dim differ"):
        build_components(validate_config(data), training=False)


def test_the_tabular_stem_groups_categorical_and_numeric_inputs_and_crosses_them(tmp_path):
    csv_path = write_census_csv(tmp_path / "c.csv", n=200)
    data = census_dict(csv_path, model={"stems": {"categorical": {"interaction": "cross", "cross_layers": 2}}})
    parts = build_components(validate_config(data), training=False)
    backbone = parts.model.all_backbones()[0]
    assert backbone.encoders == {} and sorted(backbone.tabular.inputs_spec) == ["city", "numeric", "plan", "user"]
    stem = backbone.tabular.stem
    widths = {t: layer.output_dim for t, layer in stem.tables.items()}
    assert widths == {"city": default_embedding_dim(1 + 1 + 6), "plan": 4, "user": default_embedding_dim(17)}
    assert [type(c).__name__ for c in stem.cross] == ["FeatureCross", "FeatureCross"]
    width = sum(widths.values()) + 3
    assert stem.cross[0].dense.kernel.shape == (width, width)


def test_zero_one_columns_are_not_standardised(tmp_path):
    parts = build_components(validate_config(census_dict(write_census_csv(tmp_path / "c.csv"))), training=False)
    mean, variance, indicator = parts.data.feature_statistics("numeric")
    assert indicator.tolist() == [False, False, True]
    layer = parts.model.preprocessors("numeric")[0]
    out = layer(tf.constant([[40.0, 20.0, 1.0], [40.0, 20.0, 0.0]])).numpy()
    assert out[:, 2].tolist() == pytest.approx([1.0, 0.0], abs=1e-5)  # unscaled, not (1 - 0.1) / 0.3
    spend = (np.log1p(20.0) - mean[1]) / np.sqrt(variance[1] + 1e-6)  # log1p, then standardised
    assert out[0, 1] == pytest.approx(spend, rel=1e-4)


def test_the_vocabulary_is_in_the_checkpoint_and_survives_changed_data(census_run, tmp_path):
    """Restored (evaluate/export) and resumed runs use the trained vocabularies, not ones rebuilt from the data:
    with the training file rewritten so a rebuilt vocabulary would differ, the restored model gives the same
    logits, and a resumed run keeps the vocabulary."""
    run_dir, metrics, csv_path = census_run
    trained_parts = restore_components(run_dir)[0]
    trained = trained_parts.model.preprocessors("city")[0].vocabulary()
    rows = {"city": tf.constant(["paris", "metz", "?"]), "plan": tf.constant(["pro", "free", "basic"])}
    rows |= {"user": tf.constant(["3", "7", "9"]), "numeric": tf.constant([[30.0, 10.0, 0.0]] * 3)}
    expected = trained_parts.model(rows, training=False)["outputs"]["bought"].numpy()
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    original = open(csv_path).read()
    try:
        with open(csv_path, "w") as f:  # metz is the most frequent city now
            f.write(original.replace("paris", "metz_").replace(",metz,", ",paris,").replace("metz_", "metz"))
        parts, _ = restore_components(run_dir)
        assert parts.model.preprocessors("city")[0].vocabulary() == trained
        np.testing.assert_allclose(parts.model(rows, training=False)["outputs"]["bought"].numpy(), expected, atol=1e-6)
        config = read_run_config(copy)
        config.training.epochs += 1
        train(config, copy, resume=True, export=False)
        resumed, _ = restore_components(copy, "latest")
        assert resumed.model.preprocessors("city")[0].vocabulary() == trained
    finally:
        with open(csv_path, "w") as f:
            f.write(original)


def test_resume_is_exact_with_vocabularies(tmp_path, capsys):
    import yaml

    csv_path = write_census_csv(tmp_path / "c.csv", n=300)
    data = census_dict(csv_path, training={"steps": 16, "checkpoint_every": 8, "eval_every": 8})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    a, b = straight_and_resumed(capsys, tmp_path / "c.yaml", tmp_path, 16)
    assert a.keys() == b.keys() and any("embedding_city" in k for k in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


FRESH = r"""
import json, sys
sys.modules["moe_tf"] = None  # moe_tf cannot be imported: the export must not need it
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
rows = json.loads(sys.argv[2])
inputs = {k: tf.constant(v, tf.float32 if k == "numeric" else tf.string) for k, v in rows.items()}
out = {k: v.numpy().tolist() for k, v in m.signatures["serving_default"](**inputs).items()}
print(json.dumps(out))
"""


def test_the_export_serves_raw_columns_without_moe_tf(census_run, tmp_path):
    run_dir, _, _ = census_run
    rows = {
        "city": ["paris", "?", "atlantis", "nice"],
        "plan": ["pro", "free", "basic", "unknown-plan"],
        "user": ["3", "49", "123456", ""],
        "numeric": [[30.0, 10.0, 0.0], [70.0, 2000.0, 1.0], [18.0, 0.0, 0.0], [45.0, 55.5, 1.0]],
    }
    parts, _ = restore_components(run_dir)
    logits = parts.model({k: tf.constant(v) for k, v in rows.items()}, training=False)["outputs"]
    got = run_fresh_python(FRESH, f"{run_dir}/export", json.dumps(rows), cwd=tmp_path)
    np.testing.assert_allclose(np.array(got["bought"])[:, 1], tf.sigmoid(logits["bought"][:, 0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(got["segment"], tf.nn.softmax(logits["segment"]).numpy(), atol=1e-5)
    meta = json.load(open(f"{run_dir}/export/moe_tf_export.json"))
    assert meta["features"]["city"]["modality"] == "categorical" and meta["features"]["city"]["dtype"] == "string"


def test_integer_id_arrays_are_categorical_inputs(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, 300)
    ids[::10] = -1
    np.savez(tmp_path / "ids.npz", item=ids, label=(ids % 2 == 0).astype(np.int64))
    data = census_dict(tmp_path)
    data["data"]["sources"]["census"] = {
        "type": "npz",
        "path": str(tmp_path / "ids.npz"),
        "features": ["item"],
        "modality": {"item": "categorical"},
        "missing": [-1],
        "labels": ["label"],
    }
    data["tasks"] = [{"name": "label", "dataset": "census", "label": "label", "type": "binary"}]
    parts = build_components(validate_config(data), training=False)
    assert parts.data.features["item"].dtype == "int64"
    lookup = parts.model.preprocessors("item")[0]
    assert sorted(int(t) for t in lookup.vocabulary()) == sorted(set(ids.tolist()) - {-1})
    assert lookup(tf.constant([-1, 999], tf.int64)).numpy().tolist() == [0, 1]


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"categorical": ["city", "colour"]}, DataError, r"no column 'colour'"),
        ({"categorical": {"city": {"hash_buckets": 0}}}, ConfigError, r"hash_buckets"),
        ({"categorical": {"city": {"embedding_dim": -2}}}, ConfigError, r"embedding_dim"),
        ({"log1p": ["plan"]}, ConfigError, r"log1p\[0\]: 'plan' is not one of the numeric columns"),
        ({"numeric": ["age", "plan"]}, DataError, r"line 2: feature 'plan' is '\w+', not a number"),
        ({"categorical": {"city": {"min_count": 10_000}}}, DataError, r"'city' has no value in the training split"),
    ],
)
def test_bad_categorical_inputs(tmp_path, change, error, message):
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=100))
    data["data"]["sources"]["census"].update(change)
    if change.get("numeric"):
        data["data"]["sources"]["census"]["log1p"] = []
    with pytest.raises(error, match=message):
        build_components(validate_config(data), training=False)


def test_a_vocabulary_beyond_max_tokens_is_cut_with_a_warning(tmp_path):
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=300))
    data["data"]["sources"]["census"]["categorical"]["city"] = {"max_tokens": 2}
    said = []
    parts = build_components(validate_config(data), training=False, warn=said.append)
    assert len(parts.model.preprocessors("city")[0].vocabulary()) == 2
    assert len(said) == 1 and "'city': 4 more values" in said[0] and "than max_tokens 2 go to OOV" in said[0]


def test_predict_reads_raw_rows_laid_out_like_the_training_file(census_run, tmp_path, capsys):
    """`moe-tf predict EXPORT --input rows.csv`: categorical columns as they are, the numeric input assembled from
    its columns (any order, extra columns ignored); a non-number is an error naming the row and column."""
    run_dir, _, _ = census_run
    rows = tmp_path / "rows.csv"
    rows.write_text("member,spend,note,city,plan,user,age\n0,10.0,x,paris,pro,3,30\n1,2000,y,?,free,49,70\n")
    code, out, err = run_main(capsys, "predict", f"{run_dir}/export", "--input", rows)
    assert code == 0, err
    got = [json.loads(line) for line in out.strip().splitlines()]
    served = tf.saved_model.load(f"{run_dir}/export").signatures["serving_default"](
        city=tf.constant(["paris", "?"]),
        plan=tf.constant(["pro", "free"]),
        user=tf.constant(["3", "49"]),
        numeric=tf.constant([[30.0, 10.0, 0.0], [70.0, 2000.0, 1.0]]),
    )
    np.testing.assert_allclose([g["bought"]["probabilities"] for g in got], served["bought"].numpy(), atol=1e-5)
    rows.write_text("city,plan,user,age,spend,member\nparis,pro,3,thirty,10,0\n")
    code, _, err = run_main(capsys, "predict", f"{run_dir}/export", "--input", rows)
    assert code != 0 and "rows.csv, row 2: column 'age' is 'thirty', not a number" in err


def test_tflite_serves_vocabulary_features_and_refuses_hashed_ones(census_run, tmp_path, capsys):
    run_dir, _, _ = census_run
    code, _, err = run_main(capsys, "export", run_dir, "--format", "tflite", "--output", tmp_path / "lite")
    assert code != 0 and "categorical input(s) ['user'] are hashed (hash_buckets)" in err
    assert not (tmp_path / "lite").exists()

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 12, 400)
    np.savez(tmp_path / "ids.npz", item=ids, colour=rng.choice(["red", "blue", "green"], 400), label=ids % 3)
    data = census_dict(tmp_path, training={"epochs": 6})
    data["data"]["sources"]["census"] = {
        "type": "npz",
        "path": str(tmp_path / "ids.npz"),
        "features": ["item", "colour"],
        "modality": {"item": "categorical", "colour": "categorical"},
        "labels": ["label"],
    }
    data["tasks"] = [{"name": "label", "dataset": "census", "label": "label"}]
    run = str(tmp_path / "run")
    train(validate_config(data), run, export=False)
    code, out, err = run_main(capsys, "export", run, "--format", "tflite", "--output", tmp_path / "lite")
    assert code == 0, err
    report = json.load(open(tmp_path / "lite" / "compression.json"))["none"]["tasks"]["label"]
    assert report["examples"] > 50 and report["max_abs_diff"] < 1e-5 and report["saved_model"] > 0.6  # 3 classes

    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(tmp_path / "lite" / "none.tflite")).get_signature_runner("task_label")
    lite = runner(item=np.array(["3", "4", "999"], dtype=object), colour=np.array(["red", "?", "blue"], dtype=object))
    served = restore_components(run)[0].model(
        {"item": tf.constant([3, 4, 999], tf.int64), "colour": tf.constant(["red", "?", "blue"])}, training=False
    )["outputs"]["label"]
    np.testing.assert_allclose(lite["probabilities"], tf.nn.softmax(served).numpy(), atol=1e-5)


def test_missing_numbers_are_imputed_with_an_indicator_and_buckets_are_embedded(tmp_path):
    """An empty or `?` numeric cell is imputed with the training mean (0 after standardising) and flagged; a column
    with `buckets: N` is also a categorical input whose ids are its quantile buckets (0 when missing)."""
    path = tmp_path / "gaps.csv"
    rows = ["city,age,spend,bought"] + [
        f"{'paris' if i % 2 else 'lyon'},{'' if i % 7 == 0 else 20 + i % 40},{'?' if i % 11 == 0 else i},{i % 2}"
        for i in range(300)
    ]
    path.write_text("\n".join(rows) + "\n")
    data = census_dict(path)
    data["data"]["sources"]["census"] = {
        "type": "csv",
        "path": str(path),
        "categorical": ["city"],
        "numeric": ["age", "spend"],
        "buckets": {"age": 4},
        "missing": ["?"],
        "labels": ["bought"],
    }
    data["model"]["stems"]["categorical"]["interaction"] = "cross"  # needs every width known when it is built
    data["tasks"] = [{"name": "bought", "dataset": "census", "label": "bought", "type": "binary"}]
    parts = build_components(validate_config(data), training=False)
    assert parts.data.features["numeric"].options["nullable"] == [True, True]
    layer = parts.model.preprocessors("numeric")[0]
    mean, _, _ = parts.data.feature_statistics("numeric")
    train_ages = parts.data.sources["census"].arrays["train"][0]["numeric"][:, 0]
    assert mean[0] == pytest.approx(np.nanmean(train_ages), rel=1e-6)
    out = layer(tf.constant([[np.nan, 5.0], [mean[0], np.nan]], tf.float32)).numpy()
    assert out.shape == (2, 4) and out[0, 0] == pytest.approx(0.0, abs=1e-5) and out[1, 1] == pytest.approx(0, abs=1e-5)
    assert out[:, 2:].tolist() == [[1.0, 0.0], [0.0, 1.0]]  # the missing-indicators

    buckets = parts.model.preprocessors("age_bucket")[0]
    boundaries = buckets.boundaries.numpy()
    np.testing.assert_allclose(boundaries, np.nanquantile(train_ages, [0.25, 0.5, 0.75]), rtol=1e-6)
    ids = buckets(tf.constant([np.nan, -100.0, boundaries[1], 1e9], tf.float32)).numpy().tolist()
    assert ids == [0, 1, 3, 4]
    table = parts.model.all_backbones()[0].tabular.stem.tables["age_bucket"]
    assert table.input_dim == 1 + 4


def test_multi_valued_columns_pool_their_values_embeddings(tmp_path, capsys):
    """`separator` splits a cell into values (vocabulary from every value of the training split, at most
    `max_length` per cell); the column's vector is the combiner of their embeddings, equal to a hand computation;
    an empty cell is one missing id; TFLite refuses the column."""
    path = tmp_path / "movies.csv"
    genres = ["action|comedy", "drama", "comedy|drama|action|horror", "", "comedy"]
    rows = ["genres,liked"] + [f"{genres[i % 5]},{i % 2}" for i in range(200)]
    path.write_text("\n".join(rows) + "\n")
    data = census_dict(path, training={"epochs": 1})
    data["data"]["sources"]["census"] = {
        "type": "csv",
        "path": str(path),
        "categorical": {"genres": {"separator": "|", "max_length": 3, "combiner": "sqrtn"}},
        "labels": ["liked"],
    }
    data["tasks"] = [{"name": "liked", "dataset": "census", "label": "liked", "type": "binary"}]
    parts = build_components(validate_config(data), training=False)
    lookup = parts.model.preprocessors("genres")[0]
    assert sorted(lookup.vocabulary()) == ["action", "comedy", "drama"]  # "horror" is 4th in its cell: cut
    ids = lookup(tf.constant(["comedy|action", "", "drama| zombie |comedy|action"])).numpy()
    vocabulary = lookup.vocabulary()
    at = {t: 2 + vocabulary.index(t) for t in vocabulary}
    assert ids.tolist() == [[at["comedy"], at["action"], -1], [0, -1, -1], [at["drama"], 1, at["comedy"]]]
    stem = parts.model.all_backbones()[0].tabular.stem
    table = stem.tables["genres"].embeddings.numpy()
    got = stem({"genres": tf.constant(ids)}, training=False)  # through the MLP: compare the pooled input instead
    from moe_tf.models.stems.tabular import pooled

    vectors = pooled(stem.tables["genres"], tf.constant(ids), {"combiner": "sqrtn"}).numpy()
    np.testing.assert_allclose(vectors[0], (table[at["comedy"]] + table[at["action"]]) / np.sqrt(2), rtol=1e-5)
    np.testing.assert_allclose(vectors[1], table[0], rtol=1e-5)
    np.testing.assert_allclose(
        vectors[2], (table[at["drama"]] + table[1] + table[at["comedy"]]) / np.sqrt(3), rtol=1e-5
    )
    assert got.shape[0] == 3
    run = str(tmp_path / "run")
    train(validate_config(data), run)
    served = tf.saved_model.load(f"{run}/export").signatures["serving_default"](genres=tf.constant(genres))
    assert served["liked"].shape == (5, 2)
    code, _, err = run_main(capsys, "export", run, "--format", "tflite", "--output", tmp_path / "lite")
    assert code != 0 and "multi-valued input(s) ['genres']" in err


def test_a_column_can_be_numeric_and_categorical_at_once(tmp_path):
    """configs/adult_mmoe.yaml reads the capital amounts both ways: the numeric input keeps the number, the
    categorical one gives each distinct cell (as written in the file) an id of its own."""
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=300))
    source = data["data"]["sources"]["census"]
    source["categorical"] = ["city", "age"]
    parts = build_components(validate_config(data), training=False)
    assert parts.data.features["age"].modality == "categorical"
    assert parts.data.features["numeric"].options["columns"] == ["age", "spend", "member"]
    train_rows = parts.data.sources["census"].arrays["train"][0]
    ages = train_rows["numeric"][:, 0]
    vocabulary = parts.model.preprocessors("age")[0].vocabulary()
    assert sorted(vocabulary, key=float) == sorted({f"{a:g}" for a in ages}, key=float)
    mean, _, _ = parts.data.feature_statistics("numeric")
    assert mean[0] == pytest.approx(ages.mean(), rel=1e-6)
    x, _, _ = next(iter(parts.data.eval_dataset("train", 8)))
    ids = x["age"].numpy()
    assert [vocabulary[i - 2] for i in ids] == [f"{a:g}" for a in x["numeric"].numpy()[:, 0]]
