"""Terminal output: a progress bar (or plain lines when not on a terminal) and the end-of-run table."""

from __future__ import annotations

import sys
import time


def _short(summary: dict) -> str:
    parts = [f"loss {summary['loss']:.4f}"]
    for task, metrics in summary["tasks"].items():
        for metric, value in metrics.items():
            if metric != "loss":
                parts.append(f"{task}/{metric.replace('accuracy', 'acc')} {value:.4f}")
    dropped = [g["dropped"] for g in summary.get("gates", {}).values() if "dropped" in g]
    if dropped:  # sparse gates: the worst gate's share of assignments dropped by capacity
        parts.append(f"dropped {100 * max(dropped):.1f}%")
    return "  ".join(parts)


class Progress:
    """Args: mode "auto" (bar on a terminal, else lines), "bar", "lines" or "none"; stream (stderr)."""

    def __init__(self, mode: str = "auto", stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode if enabled else "none"
        self.epoch_info = (0, 1, 1, 0)
        self._bar_open = False

    def print(self, text: str = "") -> None:
        if self.mode == "none":
            return
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def epoch_start(self, epoch: int, num_epochs: int, steps_per_epoch: int, offset: int) -> None:
        self.epoch_info = (epoch, num_epochs, steps_per_epoch, offset)
        self._epoch_started = time.perf_counter()
        note = f" (resuming at step {offset} of the epoch)" if offset else ""
        self.print(f"epoch {epoch + 1}/{num_epochs}{note}")

    def train(self, step: int, summary: dict) -> None:
        epoch, _, per_epoch, _ = self.epoch_info
        done = step - epoch * per_epoch
        text = (
            f"{done:>{len(str(per_epoch))}}/{per_epoch}  step {step}  {_short(summary)}  "
            f"{summary['examples_per_sec']:,.0f} ex/s"
        )
        if self.mode == "bar":
            width = 24
            filled = int(width * done / max(per_epoch, 1))
            bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {text}\033[K")
            self.stream.flush()
            self._bar_open = True
        elif self.mode == "lines":
            self.print(text)

    def eval(self, step: int, summary: dict, split: str = "eval") -> None:
        self.print(f"  {split} @ step {step}: {_short(summary)}")


def summary_table(summary: dict, split: str) -> str:
    """A plain table of every task's metrics on `split`."""
    metrics = sorted({m for t in summary["tasks"].values() for m in t})
    rows = [["task", *metrics]]
    for task, values in summary["tasks"].items():
        rows.append([task, *(f"{values[m]:.4f}" if m in values else "-" for m in metrics)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"{split} results:\n" + "\n".join(lines)
