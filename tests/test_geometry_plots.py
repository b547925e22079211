"""The figures of the two opening chapters (toy_lib.plots, the section at its end): each returns a
Figure in the book's style (at most the column width, no text smaller than FONT_SIZE, labelled
colour bars, features numbered), and bad input is refused with a message."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import toy_lib  # noqa: E402
from toy_lib import geometry, plots  # noqa: E402


def _texts(fig: Figure):
    """Every visible, non-empty text of the figure (titles, labels, ticks, legends, annotations)."""
    fig.canvas.draw()
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def _check_style(fig: Figure) -> list[str]:
    assert isinstance(fig, Figure)
    width, _ = fig.get_size_inches()
    assert width <= plots.COLUMN_WIDTH + 1e-9, f"figure is {width} in wide"
    texts = _texts(fig)
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < plots.FONT_SIZE]
    assert not small, f"text smaller than {plots.FONT_SIZE} pt: {small}"
    return [t.get_text() for t in texts]


def _colour_bar_labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_leakage_figure():
    W, b = geometry.hand_built_polygon(5)
    x = torch.eye(5, dtype=torch.float64)[:3]
    fig = plots.leakage(W, x, toy_lib.forward(W, b, x[None])[0], titles=["a", "b", "c"])
    texts = _check_style(fig)
    assert all(str(i) in texts for i in range(5)), "features are numbered"
    assert _colour_bar_labels(fig) == [r"$W_i \cdot W_j$"]
    assert "1.45" in texts, "the values of WᵀW are written in"


def test_neuron_weights_figure():
    fig = plots.neuron_weights([np.eye(4), geometry.random_rotation(4).numpy()], titles=["before", "after"])
    texts = _check_style(fig)
    assert {"before", "after", "neuron", "feature"} <= set(texts)
    assert _colour_bar_labels(fig) == [r"weight $W_{k,i}$"]


def test_probe_accuracies_figure():
    fig = plots.probe_accuracies([0.99, 0.98, 0.97], [0.85, 0.9, 0.8], baseline=0.8)
    texts = _check_style(fig)
    assert {"0", "1", "2", "accuracy"} <= set(texts)


def test_max_cosine_curves_figure():
    dims, ns = [16, 64], [10, 100]
    largest = [np.array([[0.6, 0.55, 0.58], [0.3, 0.28, 0.31]]), np.array([[0.8, 0.79], [0.45, 0.47]])]
    fig = plots.max_cosine_curves(dims, ns, largest, threshold=0.1)
    texts = _check_style(fig)
    assert "N = 10" in texts and "N = 100" in texts


def test_packing_counts_figure():
    fig = plots.packing_counts(
        [4, 8, 16], [4, 8, 18], [8, 64], np.array([[1, 2], [1, 2], [2, 3]]), threshold=0.1
    )
    texts = _check_style(fig)
    assert "packed by the optimiser" in texts and "dimension $d$" in texts


def test_interference_cost_figure():
    p = np.array([1.0, 0.1, 0.01])
    sim = np.array([[0.03, 0.003, 0.0003], [0.03, 0.0003, 3e-6]])
    fig = plots.interference_cost(p, sim, 0.01 * sim, sim, labels=["linear", "clipped"])
    texts = _check_style(fig)
    assert "linear: simulated" in texts and "clipped: predicted" in texts


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: plots.leakage(torch.ones(3, 4), torch.eye(4), torch.eye(4)), "2-D hidden space"),
        (lambda: plots.leakage(torch.ones(2, 4), torch.eye(3), torch.eye(3)), "expected both (case, 4)"),
        (lambda: plots.leakage(torch.ones(2, 3), torch.eye(3), torch.eye(3), titles=["a"]), "titles has 1"),
        (lambda: plots.neuron_weights([np.eye(2)], titles=["a", "b"]), "titles has 2"),
        (lambda: plots.neuron_weights([np.ones(3)], titles=["a"]), "(neuron, feature)"),
        (lambda: plots.probe_accuracies([0.9, 0.9], [0.8], 0.5), "the same (feature,)"),
        (
            lambda: plots.max_cosine_curves([16, 32], [10], [np.ones((3, 2))]),
            "expected 1 arrays of shape (2, draw)",
        ),
        (
            lambda: plots.packing_counts([4, 8], [4], [8], np.ones((2, 1)), threshold=0.1),
            "one count per entry",
        ),
        (
            lambda: plots.interference_cost(
                [1.0], np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)), ["a", "b"]
            ),
            "labels has 2",
        ),
        (lambda: plots.probe_accuracies([0.9, np.nan], [0.8, 0.8], 0.5), "NaN"),
    ],
)
def test_bad_input_is_refused(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value), str(info.value)
