"""Reading the output of `moe-tf` processes the tests start, with a deadline."""

import os
import re
import select
import time


def read_until(stream, pattern, timeout=240):
    """Reads a process's pipe (`proc.stderr`, unread so far) until a line matches `pattern`; returns everything read,
    as lines. Fails when the process ends or `timeout` seconds pass first (a hung process fails the test)."""
    fd, text, deadline = stream.fileno(), "", time.monotonic() + timeout
    checked = 0  # complete lines already searched
    while True:
        lines = text.splitlines(keepends=True)
        complete = lines if text.endswith("\n") else lines[:-1]
        for line in complete[checked:]:
            if re.search(pattern, line):
                return lines
        checked = len(complete)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise AssertionError(f"{pattern!r} did not appear within {timeout} s:\n{text[-3000:]}")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise AssertionError(f"the process ended before {pattern!r} appeared:\n{text[-3000:]}")
        text += chunk.decode(errors="replace")


def printed_steps(lines):
    """The steps of the progress lines (`step N  loss ...`) among `lines`."""
    return [int(m.group(1)) for line in lines for m in [re.search(r"\bstep (\d+)  loss", line)] if m]
