"""Graceful stop: SIGINT (Ctrl-C) or SIGTERM (a scheduler pre-empting the job) ends training after the current step
with a checkpoint; a second signal stops at once.

Python runs a signal handler only between bytecodes, and the main thread may be inside a graph call of many steps.
So the C-level handler's wake-up byte is also read by a helper thread, which calls `on_request` at once (the trainer
sets a variable its multi-step loop reads between steps) and, on a second signal, exits immediately.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """While entered (in the main thread), SIGINT and SIGTERM request a stop instead of ending the process.

    `reason` is the first signal's name ("SIGINT"/"SIGTERM") or None; `on_request` (set by the trainer) is called
    from the helper thread when the first one arrives.
    """

    def __init__(self, announce=None):
        """Args: announce: prints a line (the run's progress output), called once when a stop is requested."""
        self.reason: str | None = None
        self.on_request = None
        self.announce = announce or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._previous = None
        self._pipe = None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can only be set from the main thread: behave as before
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._pipe = (read, write)
        self._previous = {s: signal.signal(s, self._handler) for s in SIGNALS}
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(read,), name="moe_tf-stop-request", daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self._previous is None:
            return False
        signal.set_wakeup_fd(self._previous_fd)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        os.close(self._pipe[1])  # the helper thread reads end-of-file and ends
        self._previous = None
        return False

    def _handler(self, signum, frame):
        self._request(signum)  # usually the helper thread has seen this signal already

    def _watch(self, read):
        """Every signal's wake-up byte, in order: the first requests the stop, the second ends the process."""
        seen = 0
        try:
            while True:
                data = os.read(read, 64)
                if not data:
                    break
                for signum in data:
                    if signum not in SIGNALS:
                        continue
                    seen += 1
                    if seen == 1:
                        self._request(signum)
                    else:
                        # Checkpoints already written are complete files: only the steps since the last are lost.
                        self.announce(
                            f"{signal.Signals(signum).name} again: stopping at once; the last checkpoint "
                            "written is kept"
                        )
                        os._exit(128 + signum)
        finally:
            os.close(read)

    def _request(self, signum) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = signal.Signals(signum).name
        self.announce(
            f"{self.reason}: stopping after the current step and writing a checkpoint (send it again to stop at once)"
        )
        if self.on_request is not None:
            self.on_request()
