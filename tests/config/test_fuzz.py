"""Property-based: every broken config (600 drawn from the real schema, tests/config/broken_configs.py) gives
`moe-tf validate` exit code 2 and one readable message naming the field, the file or the --set key; never a
traceback, never a config that silently validates."""

import contextlib
import io
import tempfile

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from moe_tf import cli
from tests.config.broken_configs import base_configs, broken_case

BASES = base_configs()


def run_validate(case):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli.main(case.argv())  # an exception escaping here is what a user would see as a traceback
    return code, err.getvalue(), out.getvalue()


def test_every_broken_config_gets_a_clear_error():
    seen = {}

    @settings(max_examples=600, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(st.randoms(use_true_random=False))
    def check(rng):
        with tempfile.TemporaryDirectory() as directory:
            case = broken_case(rng, directory, BASES)
            assume(case is not None)
            code, err, out = run_validate(case)
            # A mutation that leaves a valid config (e.g. a wrong type a union accepts) is not a broken one.
            assume(code != 0)
            seen[case.kind] = seen.get(case.kind, 0) + 1
            assert code == 2, (case, err)
            assert err.startswith("moe-tf validate: error: "), (case, err)
            assert "Traceback" not in err and len(err) < 3000, (case, err)
            for expected in case.expect:
                assert expected in err, (case.kind, expected, err)
            assert not out

    check()
    kinds = {"unknown key", "wrong type", "out of bounds", "missing", "unknown name", "top_k", "yaml", "python tag",
             "base cycle", "missing base", "set"}
    print("broken configs by kind:", seen)
    assert kinds <= set(seen), seen  # every kind was drawn, and each failed cleanly
    assert sum(seen.values()) >= 500, seen
