"""Property-based: every broken config (600 drawn from the real schema, moe_tf/testing/broken_configs.py) gives
`moe-tf validate` exit code 2 and one readable message naming the field, the file or the --set key; never a
traceback, never a config that silently validates. The one exception is a "wrong" value that is legal after all
(broken_configs.LEGAL_WRONG_TYPES): such a case must validate, and is counted apart."""

import contextlib
import copy
import io
import os
import tempfile

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from moe_tf import cli
from moe_tf.testing.broken_configs import Case, base_configs, broken_case
from tests.conftest import REPO

BASES = base_configs(os.path.join(REPO, "configs"))


def run_validate(case):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli.main(case.argv())  # an exception escaping here is what a user would see as a traceback
    return code, err.getvalue(), out.getvalue()


def test_every_broken_config_gets_a_clear_error():
    seen, legal = {}, []

    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(st.randoms(use_true_random=False))
    def check(rng):
        with tempfile.TemporaryDirectory() as directory:
            case = broken_case(rng, directory, BASES)
            assume(case is not None)
            code, err, out = run_validate(case)
            if case.legal:  # the listed legal "wrong" value: it validates, and is not a broken config
                assert code == 0, (case, err)
                legal.append(case)
                return
            seen[case.kind] = seen.get(case.kind, 0) + 1
            assert code == 2, (case, err)
            assert err.startswith("moe-tf validate: error: "), (case, err)
            assert "Traceback" not in err and len(err) < 3000, (case, err)
            for expected in case.expect:
                assert expected in err, (case.kind, expected, err)
            assert not out

    check()
    kinds = {
        "unknown key",
        "wrong type",
        "out of bounds",
        "missing",
        "unknown name",
        "top_k",
        "yaml",
        "python tag",
        "base cycle",
        "missing base",
        "set",
    }
    print("broken configs by kind:", seen, "legal after all:", len(legal))
    assert kinds <= set(seen), seen  # every kind was drawn, and each failed cleanly
    assert sum(seen.values()) >= 500, seen
    assert len(legal) <= 5, legal  # rare: it takes a delimited source's `text` and one of two values


def test_the_legal_wrong_type_validates_and_a_broken_one_does_not(tmp_path):
    """The exception the fuzz test allows is legal (text: {input name: column}), and the other value drawn for
    the same site is refused: the exception is no wider than the one value."""
    sst2 = copy.deepcopy(next(c for c in BASES if "sst2" in c["data"]["sources"]))
    for value, expected in (({"wrong": "type"}, 0), ([[1], [2]], 2)):
        sst2["data"]["sources"]["sst2"]["text"] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(sst2))
        code, err, _ = run_validate(Case("wrong type", str(path)))
        assert code == expected, (value, err)
