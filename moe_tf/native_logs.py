"""TensorFlow's native start-up lines, kept out of the command line's output.

Importing TensorFlow 2.21 writes, from C++ and whatever TF_CPP_MIN_LOG_LEVEL says, absl's "All log messages before
absl::InitializeLog()" warning, the oneDNN notice and "Could not find cuda drivers" (twice), and the first device
lookup a "failed call to cuInit" error on a machine without a GPU. The CLI imports TensorFlow and looks up its devices
with file descriptor 2 on a pipe, and passes on every line that is not such chatter as it arrives: a real error
raised while TensorFlow loads is still shown. Later native logs are not touched (errors show; the package's
TF_CPP_MIN_LOG_LEVEL=2 hides native information and warnings). `moe-tf --verbose` or MOE_TF_VERBOSE=1 keeps
everything, at TensorFlow's own log level.
"""

from __future__ import annotations

import contextlib
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
    r"|To enable the following instructions: .* rebuild TensorFlow"  # the CPU feature notice's second line
)


def is_chatter(line: str) -> bool:
    """Whether `line` is one of TensorFlow's start-up lines that `moe-tf` hides (not an error)."""
    return CHATTER.match(line) is not None


def verbose_requested() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def hidden_chatter() -> Iterator[None]:
    """Runs the block with file descriptor 2 on a pipe; a thread writes every line that is not start-up chatter (a
    Python traceback, a native error, a fatal check's message before the abort) to the real stderr as it arrives.
    Where no pipe can be made, nothing is hidden."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        read_end, write_end = os.pipe()
    except OSError:
        os.close(saved)
        yield
        return
    forwarder = threading.Thread(target=_forward, args=(read_end, saved), daemon=True, name="moe_tf-stderr")
    forwarder.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer closes: the forwarder reads to the end and stops
        forwarder.join(timeout=10)
        os.close(saved)


def _forward(read_end: int, out: int) -> None:
    """Copies the lines read from `read_end` that are not chatter to `out`, until the pipe closes."""
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not is_chatter(line.decode("utf-8", "replace").rstrip("\r\n")):
                os.write(out, line)


def load_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and looks up its devices, hiding the start-up chatter unless `verbose` (or
    MOE_TF_VERBOSE); a no-op once TensorFlow is loaded."""
    if "tensorflow" in sys.modules:
        return
    if verbose or verbose_requested():
        import moe_tf

        if moe_tf.USER_TF_LOG_LEVEL is None:  # TensorFlow's own default, not the package's
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow  # noqa: F401

        return
    with hidden_chatter():
        import tensorflow as tf

        tf.config.list_physical_devices()
