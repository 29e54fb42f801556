"""The gate heatmap's PNG leaves no figure behind in a long run."""

import gc

from matplotlib.figure import Figure

from moe_tf.logging.gates import heatmap_png


def live_figures():
    return sum(isinstance(o, Figure) for o in gc.get_objects())


def test_each_heatmap_png_frees_its_figure():
    # Automatic collection off, as good as in a training process (its full collections are rare): only the
    # collection heatmap_png makes frees the figures' reference cycles.
    gc.collect()
    before = live_figures()
    gc.disable()
    try:
        for _ in range(3):
            png = heatmap_png([[0.25, 0.75], [1.0, 0.0]], ["digit", "high"], ["e0", "e1"], "gates", "weight")
            assert png.startswith(b"\x89PNG")
        assert live_figures() == before
    finally:
        gc.enable()
