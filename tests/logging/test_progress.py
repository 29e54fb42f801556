"""The progress modes on a captured stream: the exact lines, the bar's fill, nothing at all, and what auto picks."""

import io

from moe_tf.logging.progress import Progress

SUMMARY = {
    "loss": 1.23456,
    "examples_per_sec": 1234.4,
    "tasks": {"digit": {"loss": 2.0, "accuracy": 0.5, "top5_accuracy": 0.875}, "high": {"accuracy": 0.75}},
}
LINE = "step 5  loss 1.2346  digit/acc 0.5000  digit/top5_acc 0.8750  high/acc 0.7500  1,234 ex/s"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_prints_one_line_per_call():
    stream = io.StringIO()
    progress = Progress("lines", stream)
    progress.epoch_start(0, 2, 20, 0)
    progress.train(5, SUMMARY)
    progress.eval(5, SUMMARY)
    assert (
        stream.getvalue() == f"epoch 1/2\n 5/20  {LINE}\n  eval @ step 5: loss 1.2346  digit/acc 0.5000  "
        "digit/top5_acc 0.8750  high/acc 0.7500\n"
    )


def test_bar_redraws_one_line_and_fills_with_the_epoch():
    stream = io.StringIO()
    progress = Progress("bar", stream)
    progress.epoch_start(1, 2, 20, 0)
    progress.train(25, SUMMARY)  # 5 of the epoch's 20 steps: 6 of 24 cells
    bar = "=" * 5 + ">" + "." * 18
    assert stream.getvalue() == f"epoch 2/2\n\r[{bar}]  5/20  step 25  {LINE[len('step 5  ') :]}\033[K"
    progress.train(40, SUMMARY)  # the whole epoch: 24 cells, no arrow
    assert stream.getvalue().endswith(f"\r[{'=' * 24}] 20/20  step 40  {LINE[len('step 5  ') :]}\033[K")
    progress.print("done")  # a message ends the bar's line first
    assert stream.getvalue().endswith("\033[K\ndone\n")


def test_none_and_a_disabled_progress_write_nothing():
    for progress in (Progress("none", io.StringIO()), Progress("lines", io.StringIO(), enabled=False)):
        progress.epoch_start(0, 1, 20, 0)
        progress.train(5, SUMMARY)
        progress.eval(5, SUMMARY)
        progress.print("text")
        assert progress.stream.getvalue() == ""


def test_auto_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert Progress("auto", Terminal()).mode == "bar"
    assert Progress("auto", io.StringIO()).mode == "lines"
