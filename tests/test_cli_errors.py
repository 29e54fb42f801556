"""Every bad input (moe_tf/testing/bad_inputs.py) through the real CLI: exit code 2 for a configuration error, 1 for
any other, one line naming the file, the key or the value, no traceback, and nothing already written touched."""

import contextlib
import io
import os

import pytest

from moe_tf import cli
from moe_tf.testing.bad_inputs import CLI_CASES, DATA_CASES, copy_run
from tests.test_run_dir import snapshot


def run(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main([str(a) for a in args])  # an exception escaping here would be a traceback
    return code, err.getvalue()


# The cases whose config is at fault (moe_tf.errors.ConfigError, exit code 2); every other case is exit code 1.
CONFIG_ERRORS = {"digits: label map", "validate: missing config"}
assert CONFIG_ERRORS <= set(DATA_CASES) | set(CLI_CASES)


def check(code, err, expected, command, case):
    assert code == (2 if case in CONFIG_ERRORS else 1), err
    assert err.startswith(f"moe-tf {command}: error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_gets_a_clear_error(case, tmp_path):
    args, expected = DATA_CASES[case](str(tmp_path))
    code, err = run(args)
    check(code, err, expected, "train", case)
    assert not os.path.exists(tmp_path / "run")  # a run that could not start leaves no directory behind


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_bad_command_line_gets_a_clear_error(case, tmp_path, trained_run):
    breaks, argv, expected = CLI_CASES[case]
    run_dir = copy_run(trained_run[0], str(tmp_path))
    if breaks:
        breaks(run_dir)
    before = snapshot(run_dir)
    args = argv(str(tmp_path), run_dir)
    code, err = run(args)
    check(code, err, expected, args[0], case)
    assert snapshot(run_dir) == before  # the run is untouched
