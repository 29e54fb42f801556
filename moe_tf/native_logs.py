"""TensorFlow's native start-up lines, kept out of the command line's output.

Importing TensorFlow 2.21 writes, from C++ and whatever TF_CPP_MIN_LOG_LEVEL says, absl's "All log messages before
absl::InitializeLog()" warning, the oneDNN notice and "Could not find cuda drivers" (twice), and the first device
lookup a "failed call to cuInit" error on a machine without a GPU; the first training step adds oneDNN's "supports
DT_BOOL only on platforms with AVX-512" notice, logged as an error. The CLI runs a command with file descriptor 2
on a pipe and passes on every line that is not such chatter as it arrives: a real native error is still shown (the
package's TF_CPP_MIN_LOG_LEVEL=2 hides native information and warnings). `moe-tf --verbose` or MOE_TF_VERBOSE=1
keeps everything, at TensorFlow's own log level.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from collections.abc import Iterator

VERBOSE_ENV = "MOE_TF_VERBOSE"

# A native log line is "<I|W|E|F>MMDD hh:mm:ss.micros thread file:line] message".
_STAMP = r"\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "  # before absl starts, the time reads 00:00:<epoch seconds>
CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rf"|[IW]{_STAMP}"  # information and warnings at start-up
    rf"|E{_STAMP}failed call to cuInit"  # no GPU on this machine: TensorFlow runs on the CPU
    rf"|E{_STAMP}oneDNN supports DT_BOOL only on platforms with AVX-512"  # a fallback notice, at the first step
    r"|To enable the following instructions: .* rebuild TensorFlow"  # the CPU feature notice's second line
)


def is_chatter(line: str) -> bool:
    """Whether `line` is one of TensorFlow's start-up lines that `moe-tf` hides (not an error)."""
    return CHATTER.match(line) is not None


def verbose_requested() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def hidden_chatter() -> Iterator[None]:
    """Runs the block with file descriptor 2 (where TensorFlow's C++ logs go) on a pipe; a thread writes every line
    that is not chatter (a native error, a fatal check's message before the abort) to the real stderr as it arrives.
    Python's own `sys.stderr` (progress, error messages) writes to the real stderr directly meanwhile, so a terminal
    stays a terminal. Where no pipe can be made, nothing is hidden."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        yield
        return
    forwarder = threading.Thread(target=_forward, args=(read_end, saved), daemon=True, name="moe_tf-stderr")
    forwarder.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    python_stderr = sys.stderr
    if sys.stderr is sys.__stderr__ and sys.stderr is not None:  # not a test's capture: keep it on the real stderr
        # unbuffered bytes under the text layer: no BufferedWriter lock, so a signal handler that prints while the
        # main thread is inside a write (SIGTERM's announcement) cannot hit "reentrant call"
        sys.stderr = io.TextIOWrapper(
            io.FileIO(os.dup(saved), "w"),
            encoding=python_stderr.encoding,
            errors="backslashreplace",
            line_buffering=True,
            write_through=True,
        )
    try:
        yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        python_stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer closes: the forwarder reads to the end and stops
        forwarder.join(timeout=2)  # (a child process still holding the pipe must not hold up the exit)
        os.close(saved)


def _forward(read_end: int, out: int) -> None:
    """Copies the lines read from `read_end` that are not chatter to `out`, until the pipe closes."""
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not is_chatter(line.decode("utf-8", "replace").rstrip("\r\n")):
                os.write(out, line)


@contextlib.contextmanager
def quiet_tensorflow(verbose: bool = False) -> Iterator[None]:
    """Runs a command with TensorFlow loaded and its chatter hidden (unless `verbose` or MOE_TF_VERBOSE): at start-up,
    and the notices it logs as errors at the first training step."""
    if verbose or verbose_requested():
        import moe_tf

        if moe_tf.USER_TF_LOG_LEVEL is None:  # TensorFlow's own default, not the package's
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow  # noqa: F401

        yield
        return
    with hidden_chatter():
        import tensorflow as tf

        tf.config.list_physical_devices()
        yield
