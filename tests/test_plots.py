"""The figures (toy_lib/plots.py): every public plot function draws in the book's one style.

For every plot function and several inputs: the figure is at most the column wide (also once
saved cropped, as Jupyter saves it), drawn at `DPI`, every piece of text is at least
`FONT_SIZE` once the figure is drawn, colour scales have labelled colour bars, and features are
labelled by number. Bad input raises a `ValueError` that names the argument.
"""

from __future__ import annotations

import inspect
import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from toy_lib import metrics, plots  # noqa: E402


def pentagon(radius: float = 1.15) -> np.ndarray:
    angles = 2 * np.pi * np.arange(5) / 5
    return radius * np.stack([np.cos(angles), np.sin(angles)])  # (2, 5)


def sweep_like() -> np.ndarray:
    """Five 5 -> 2 models: two orthogonal features, two antipodal pairs, three pentagons."""
    dense = np.zeros((2, 5))
    dense[:, 0], dense[:, 1] = [1, 0], [0, 1]
    pairs = np.zeros((2, 5))
    pairs[:, 0], pairs[:, 1], pairs[:, 2], pairs[:, 3] = [1, 0], [-1, 0], [0, 1], [0, -1]
    return np.stack([dense, pairs, pentagon(1.1), pentagon(1.15), pentagon(1.16)])


IMPORTANCE = 0.9 ** np.arange(5)

#: (label, plot function, arguments): every public plot function, with typical and edge inputs.
CASES = [
    (
        "arrows-sweep",
        plots.feature_arrows,
        dict(W=sweep_like(), importance=IMPORTANCE, titles=[f"S = {s}" for s in (0, 0.7, 0.9, 0.97, 0.99)]),
    ),
    ("arrows-one-model", plots.feature_arrows, dict(W=torch.tensor(pentagon()), titles=["S = 0.99"])),
    (
        "arrows-six-panels",
        plots.feature_arrows,
        dict(W=np.concatenate([sweep_like(), sweep_like()[:1]]), importance=np.tile(IMPORTANCE, (6, 1))),
    ),
    ("wtw-sweep", plots.wtw_and_norms, dict(W=sweep_like(), titles=[f"S = {s}" for s in range(5)])),
    ("wtw-one-model", plots.wtw_and_norms, dict(W=pentagon())),
    (
        "wtw-20-features",
        plots.wtw_and_norms,
        dict(W=np.random.default_rng(0).normal(size=(2, 5, 20)), titles=["a", "b"]),
    ),
    (
        "loss-one",
        plots.loss_curve,
        dict(loss_history=np.exp(-np.linspace(0, 3, 500)) + 0.01, labels=["S = 0.9"]),
    ),
    (
        "loss-three",
        plots.loss_curve,
        dict(loss_history=np.random.default_rng(1).random((300, 3)) + 0.1, labels=["a", "b", "c"]),
    ),
    ("loss-short", plots.loss_curve, dict(loss_history=[0.5, 0.4, 0.3], smooth=50)),
    # the opening chapters
    (
        "neuron-weights",
        plots.neuron_weights,
        dict(matrices=[np.eye(4), np.random.default_rng(2).normal(size=(4, 4))], titles=["plain", "rotated"]),
    ),
    (
        "probe-accuracies",
        plots.probe_accuracies,
        dict(probe=np.full(6, 0.98), single_neuron=np.linspace(0.8, 0.9, 6), baseline=0.79),
    ),
    (
        "max-cosine-curves",
        plots.max_cosine_curves,
        dict(
            dims=np.array([16, 64, 256]),
            n_vectors=np.array([10, 100]),
            largest=np.random.default_rng(3).uniform(0.1, 0.9, size=(2, 3, 5)),
            threshold=0.1,
        ),
    ),
    (
        "packing-counts",
        plots.packing_counts,
        dict(
            packed_dims=np.array([4, 8, 16]),
            packed=np.array([4, 8, 18]),
            random_dims=np.array([64, 256]),
            random_counts=np.array([[2, 5], [3, 6], [2, 7]]),
            threshold=0.1,
        ),
    ),
    (
        "leakage",
        plots.leakage,
        dict(
            W=np.stack([np.cos(2 * np.pi * np.arange(3) / 3), np.sin(2 * np.pi * np.arange(3) / 3)]),
            inputs=np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]),
            outputs=np.array([[1.0, -0.5, -0.5], [0.5, 0.5, -1.0]]),
            titles=["0 alone", "0 and 1"],
        ),
    ),
    (
        "interference-cost",
        plots.interference_cost,
        dict(
            density=np.array([0.01, 0.1, 1.0]),
            simulated=np.array([[0.01, 0.1, 1.0], [1e-4, 1e-2, 1.0]]),
            standard_error=np.full((2, 3), 1e-3),
            predicted=np.array([[0.01, 0.1, 1.0], [1e-4, 1e-2, 1.0]]),
            labels=["linear", "clipped"],
        ),
    ),
    # sparse autoencoders
    (
        "sae-directions",
        plots.sae_directions,
        dict(
            true_W=pentagon(),
            W_dec_snapshots=np.random.default_rng(4).normal(size=(3, 2, 5, 2)),
            steps=[0, 100, 1000],
        ),
    ),
    (
        "shrinkage-curves",
        plots.shrinkage_curves,
        dict(
            magnitudes=np.linspace(0.1, 1, 10),
            activations=np.stack([np.linspace(0, 0.8, 10), np.linspace(0.1, 1, 10)]),
            labels=["L1", "JumpReLU"],
        ),
    ),
    ("cosine-heatmap", plots.cosine_heatmap, dict(cos=np.random.default_rng(5).uniform(-1, 1, size=(5, 8)))),
    (
        "metric-bars",
        plots.metric_bars,
        dict(
            labels=["relu", "topk", "gated"],
            metrics_by_name={"MMCS": [0.99, 0.7, 1.0], "L0": [1.1, 1.0, 1.2]},
        ),
    ),
    # the toy-models chapter's 20 -> 5 comparison and phase diagrams
    (
        "compared-20-features",
        plots.wtw_compared,
        dict(
            W_left=np.random.default_rng(6).normal(size=(2, 5, 20)),
            W_right=np.random.default_rng(7).normal(size=(2, 5, 20)),
            titles=["p = 1", "p = 0.01"],
        ),
    ),
    ("compared-one-model", plots.wtw_compared, dict(W_left=pentagon(), W_right=pentagon())),
    (
        "phase-diagram",
        plots.phase_diagram,
        dict(
            relative_importance=np.geomspace(0.1, 10, 5),
            density=np.geomspace(1, 0.01, 4),
            phases=np.array([["ignored"] * 2 + ["antipodal"] + ["dedicated"] * 2] * 4)[None].repeat(2, 0),
            boundaries=[[(np.array([0.1, 1.0]), np.array([0.16, 4 / 7]))], []],
            mark=np.eye(4, 5, dtype=bool)[None].repeat(2, 0),
            titles=["2 → 1", "3 → 2"],
        ),
    ),
    # superposition in richer settings
    (
        "neuron-loadings",
        plots.neuron_loadings,
        dict(W=np.random.default_rng(6).normal(size=(7, 5, 10)), titles=[f"p = {k}" for k in range(7)]),
    ),
    ("neuron-loadings-one", plots.neuron_loadings, dict(W=np.eye(6, 3) - np.eye(6, 3, k=-3))),
    (
        "neuron-loadings-wide",
        plots.neuron_loadings,
        dict(W=np.random.default_rng(7).normal(size=(2, 40, 100)), titles=["a", "b"], max_cols=1),
    ),
]


# The feature-dimensionality sweep and the pentagon's collapse (book/toy_models.md).
_SWEEP_W = np.random.default_rng(7).normal(size=(6, 3, 12))
_COLLAPSE_W = np.concatenate([np.stack([pentagon()] * 3), np.stack([pentagon()] * 3) * [1, 1, 1, 1, 0]])
CASES += [
    (
        "dims-per-feature",
        plots.dimensions_per_feature_curve,
        dict(density=np.geomspace(1, 0.01, 6), W=_SWEEP_W, plateau=(1, 3)),
    ),
    ("dims-scatter", plots.dimensionality_scatter, dict(density=np.geomspace(1, 0.01, 6), W=_SWEEP_W)),
    (
        "firing-rates",
        plots.firing_rate_histogram,
        dict(rates=np.concatenate([np.zeros(3), np.geomspace(1e-4, 0.5, 50)]), reference=0.01),
    ),
    (
        "adversarial-gain",
        plots.adversarial_gain_curve,
        dict(density=np.geomspace(1, 0.01, 6), gain=np.linspace(1, 4, 6), W=_SWEEP_W),
    ),
    (
        "collapse",
        plots.sparser_feature_collapse,
        dict(ratio=np.geomspace(1, 8, 6), W=_COLLAPSE_W, feature=4, collapse=(2.3, 3.5)),
    ),
]


def public_plot_functions() -> set[str]:
    """Every public function of toy_lib.plots that draws a figure (returns a new `Figure`; not
    `plots.finish`, which takes one)."""
    return {
        name
        for name, fn in inspect.getmembers(plots, inspect.isfunction)
        if not name.startswith("_")
        and fn.__module__ == plots.__name__
        and inspect.signature(fn).return_annotation in (Figure, "Figure")
        and "fig" not in inspect.signature(fn).parameters
    }


def test_every_plot_function_is_checked_here():
    assert public_plot_functions() == {fn.__name__ for _, fn, _ in CASES}


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def drawn(request):
    label, fn, kwargs = request.param
    fig = fn(**kwargs)
    fig.canvas.draw()  # ticks and colour-bar labels are made at draw time
    yield label, fn, kwargs, fig
    plt.close(fig)


def texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def colour_bars(fig):
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


# --------------------------------------------------------------------------- the style


def test_returns_a_figure_at_the_books_resolution(drawn):
    _, _, _, fig = drawn
    assert isinstance(fig, Figure)
    assert fig.dpi == plots.DPI


def test_no_wider_than_the_column(drawn):
    _, _, _, fig = drawn
    width = fig.get_size_inches()[0]
    assert width <= plots.MAX_WIDTH + 1e-9 <= plots.COLUMN_WIDTH
    # Saved as Jupyter saves it (cropped to its contents, with a margin): at most the column.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=plots.SAVE_PAD)
    pixels = Image.open(io.BytesIO(buf.getvalue())).size[0]
    assert pixels <= math.ceil(plots.COLUMN_WIDTH * plots.DPI), f"saved image {pixels} px wide"


def test_every_text_is_at_least_the_body_size(drawn):
    _, _, _, fig = drawn
    found = texts(fig)
    assert found, "the figure has no text at all"
    small = [(t.get_text(), t.get_fontsize()) for t in found if t.get_fontsize() < plots.FONT_SIZE]
    assert not small, f"text smaller than FONT_SIZE = {plots.FONT_SIZE} pt: {small}"


def test_colour_scales_have_labelled_colour_bars(drawn):
    label, _, _, fig = drawn
    bars = colour_bars(fig)
    for cb in bars:
        assert cb.ax.get_ylabel().strip() or cb.ax.get_xlabel().strip(), (
            f"colour bar {cb.cmap.name} unlabelled"
        )
    # every image (heatmap) is read through a colour bar with its colour map and range
    for ax in fig.axes:
        for im in ax.images:
            assert any(
                cb.cmap.name == im.cmap.name
                and cb.norm.vmin == pytest.approx(im.norm.vmin)
                and cb.norm.vmax == pytest.approx(im.norm.vmax)
                for cb in bars
            ), f"an image ({im.cmap.name}) without a colour bar"
            if im.cmap.name == plots.GRAM_CMAP:  # signed quantities: one scale centred at 0
                assert im.norm.vmin == pytest.approx(-im.norm.vmax), (
                    "a signed colour scale must be centred at 0"
                )
    if label.startswith("wtw"):
        by_cmap = {cb.cmap.name: cb for cb in bars}
        assert set(by_cmap) == {plots.GRAM_CMAP, plots.SUPERPOSITION_CMAP}
        sup = by_cmap[plots.SUPERPOSITION_CMAP]
        assert sup.norm.vmin == 0
        for ax in fig.axes:
            for im in ax.images:
                assert im.cmap.name == plots.GRAM_CMAP


def test_features_are_labelled_by_number(drawn):
    label, _, kwargs, fig = drawn
    if not label.startswith(("arrows", "wtw")):
        # any other heatmap numbers its rows and columns (features, neurons, latents)
        for ax in fig.axes:
            if ax.images and ax not in [cb.ax for cb in colour_bars(fig)]:
                for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
                    shown = [t.get_text() for t in ticks]
                    assert shown and all(t.isdigit() for t in shown), (
                        f"{label}: unnumbered heatmap axis {shown}"
                    )
        return
    W = np.asarray(kwargs["W"], dtype=float)
    W = W[None] if W.ndim == 2 else W
    n_feat = W.shape[-1]
    if label.startswith("arrows"):
        norms = metrics.feature_norms(W)
        panels = [ax for ax in fig.axes if ax.lines and ax.get_xlim()[0] < 0]
        assert len(panels) == W.shape[0]
        for k, ax in enumerate(panels):
            numbers = {t.get_text(): to_hex(t.get_color()) for t in ax.texts}
            for f in range(n_feat):
                if norms[k, f] >= 0.5:
                    assert numbers.get(str(f)) == to_hex(plots.feature_colour(f)), (
                        f"panel {k}: feature {f} should be numbered at its tip in its colour"
                    )
            dropped = [str(f) for f in range(n_feat) if norms[k, f] <= 0.5]
            if dropped:
                assert ax.get_xlabel() == "dropped: " + ", ".join(dropped)
    else:
        heatmaps = [ax for ax in fig.axes if ax.images]
        assert len(heatmaps) == W.shape[0]
        for ax in heatmaps:
            shown = [t.get_text() for t in ax.get_xticklabels()]
            assert shown and all(s.isdigit() and int(s) < n_feat for s in shown)
            assert shown[:2] == ["0", "1" if n_feat <= 10 else shown[1]]


def test_arrows_use_the_widgets_encoding():
    """Colour per feature in the widget's Okabe-Ito order; width grows with importance."""
    js = plots.__file__.rsplit("toy_lib", 1)[0] + "book/_static/pentagon/pentagon.js"
    text = open(js, encoding="utf-8").read()
    widget_colours = text.split("var COLOURS = [", 1)[1].split("]", 1)[0]
    widget = [c.strip().strip('"').upper() for c in widget_colours.split(",")]
    assert widget == [c.upper() for c in plots.FEATURE_COLOURS[: len(widget)]]
    assert "0.025 + 0.035 * tr.importance[f]" in text  # the width formula importance_linewidth mirrors

    fig = plots.feature_arrows(pentagon(), importance=IMPORTANCE)
    ax = fig.axes[0]
    arrows = [line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_xdata()[0] == 0]
    by_colour = {to_hex(line.get_color()): line.get_linewidth() for line in arrows}
    widths = [by_colour[to_hex(plots.feature_colour(f))] for f in range(5)]
    assert all(a > b for a, b in zip(widths, widths[1:])), f"widths {widths} should fall with importance"
    assert widths[0] == pytest.approx(plots.ARROW_WIDTH)
    assert widths[-1] == pytest.approx(plots.importance_linewidth(IMPORTANCE[-1]))
    assert plots.importance_linewidth(0.0) / plots.importance_linewidth(1.0) == pytest.approx(0.025 / 0.06)
    # a dashed circle of radius 1
    assert any(getattr(p, "radius", None) == 1.0 for p in ax.patches)
    plt.close(fig)


def test_the_key_panel_shows_every_feature():
    fig = plots.feature_arrows(sweep_like(), importance=IMPORTANCE)
    key = [ax for ax in fig.axes if not ax.axison and ax.texts]
    assert len(key) == 1
    shown = [t.get_text() for t in key[0].texts]
    for f in range(5):
        assert any(s.startswith(f"{f}  ({IMPORTANCE[f]:.2f})") for s in shown), shown
    plt.close(fig)


def test_figure_refuses_a_width_beyond_the_column():
    with pytest.raises(ValueError, match="width=7.5: expected at most MAX_WIDTH"):
        plots.figure(width=7.5)
    fig, axes = plots.figure(2, 3, height=4)
    assert axes.shape == (2, 3) and fig.dpi == plots.DPI
    plt.close(fig)


# --------------------------------------------------------------------------- bad input

BAD = [
    (plots.feature_arrows, dict(W=np.zeros((0, 2, 5))), "W=", "at least one instance"),
    (plots.feature_arrows, dict(W=[]), "W=", "shape"),
    (plots.feature_arrows, dict(W=np.zeros((2, 3, 5))), "W=", "2 hidden dimensions"),
    (plots.feature_arrows, dict(W=np.zeros(5)), "W=", "(instance, hidden, feature)"),
    (plots.feature_arrows, dict(W=np.full((2, 5), np.nan)), "W=", "finite"),
    (plots.feature_arrows, dict(W=torch.full((1, 2, 5), float("inf"))), "W=", "finite"),
    (plots.feature_arrows, dict(W="pentagon"), "W=", "real numbers"),
    (plots.feature_arrows, dict(W=pentagon(), titles=["a", "b"]), "titles=", "1 strings, one per panel"),
    (plots.feature_arrows, dict(W=pentagon(), titles="S = 0.9"), "titles=", "a single string"),
    (plots.feature_arrows, dict(W=pentagon(), titles=[0.9]), "titles=", "float"),
    (plots.feature_arrows, dict(W=pentagon(), importance=[1, 2, 3]), "importance=", "shape (5,)"),
    (plots.feature_arrows, dict(W=pentagon(), importance=-IMPORTANCE), "importance=", "negative"),
    (plots.feature_arrows, dict(W=pentagon(), importance=[1, 1, 1, np.nan, 1]), "importance=", "finite"),
    (plots.feature_arrows, dict(W=pentagon(), max_cols=0), "max_cols=0", "positive integer"),
    (plots.wtw_and_norms, dict(W=np.zeros((3, 0, 4))), "W=", "at least one"),
    (plots.wtw_and_norms, dict(W=np.ones((2, 2, 5)) * np.nan), "W=", "finite"),
    (plots.wtw_and_norms, dict(W=sweep_like(), titles=["only one"]), "titles=", "5 strings"),
    (plots.loss_curve, dict(loss_history=[]), "loss_history=", "non-empty"),
    (plots.loss_curve, dict(loss_history=np.zeros((0, 3))), "loss_history=", "non-empty"),
    (plots.loss_curve, dict(loss_history=[0.1, np.nan]), "loss_history=", "finite"),
    (plots.loss_curve, dict(loss_history=[0.1, -0.2]), "loss_history=", "non-negative"),
    (plots.loss_curve, dict(loss_history=np.ones((10, 2)), labels=["a"]), "labels=", "2 strings"),
    (plots.loss_curve, dict(loss_history=np.ones(10), smooth=0), "smooth=0", "positive integer"),
    (plots.loss_curve, dict(loss_history=np.ones(10), smooth=2.5), "smooth=2.5", "integer"),
    (plots.wtw_compared, dict(W_left=pentagon(), W_right=np.zeros((2, 2, 5))), "W_right=", "the instances"),
    (plots.wtw_compared, dict(W_left=pentagon(), W_right=np.full((2, 5), np.nan)), "W_right=", "finite"),
    (plots.wtw_compared, dict(W_left=pentagon(), W_right=pentagon(), labels=["a"]), "labels=", "2 strings"),
    (
        plots.phase_diagram,
        dict(relative_importance=[1, 0.5, 2], density=[1, 0.1, 0.01], phases=np.full((3, 4), "ignored")),
        "relative_importance=",
        "increasing",
    ),
    (
        plots.phase_diagram,
        dict(relative_importance=[0.1, 1, 10], density=[1, 0.1, 0], phases=np.full((3, 4), "ignored")),
        "density=",
        "(0, 1]",
    ),
    (
        plots.phase_diagram,
        dict(relative_importance=[0.1, 1, 10], density=[1, 0.1, 0.01], phases=np.full((3, 4), "ignored")),
        "phases=",
        "shape (panel, 3, 3)",
    ),
    (
        plots.phase_diagram,
        dict(relative_importance=[0.1, 1, 10], density=[1, 0.1, 0.01], phases=np.full((3, 3), "other")),
        "phases=",
        "names among",
    ),
    (
        plots.phase_diagram,
        dict(
            relative_importance=[0.1, 1, 10],
            density=[1, 0.1, 0.01],
            phases=np.full((3, 3), "ignored"),
            mark=np.ones((2, 2), bool),
        ),
        "mark=",
        "booleans of shape (1, 3, 3)",
    ),
    (
        plots.phase_diagram,
        dict(
            relative_importance=[0.1, 1, 10],
            density=[1, 0.1, 0.01],
            phases=np.full((3, 3), "ignored"),
            boundaries=[[], []],
        ),
        "boundaries=",
        "one list of curves per panel",
    ),
    (plots.neuron_loadings, dict(W=np.zeros((0, 5, 10))), "W=", "at least one"),
    (plots.neuron_loadings, dict(W=np.full((5, 10), np.nan)), "W=", "finite"),
    (plots.neuron_loadings, dict(W=np.ones((2, 5, 10)), titles=["one"]), "titles=", "2 strings"),
    (plots.neuron_loadings, dict(W=np.ones((5, 10)), max_cols=0), "max_cols=0", "positive integer"),
]


@pytest.mark.parametrize(
    "fn, kwargs, name, fragment", BAD, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_input_is_refused_naming_the_argument(fn, kwargs, name, fragment):
    with pytest.raises(ValueError) as err:
        fn(**kwargs)
    message = str(err.value)
    assert message.startswith(name), message
    assert fragment in message, message
    assert "expected" in message, message


def test_jupyter_shows_every_figure_at_the_books_size():
    """In a Jupyter kernel (as the book's build runs the chapters), every cell that draws a
    figure shows it, not only the first, at the book's resolution and at most the column wide.
    (Loading Jupyter's inline backend inside the style's rc_context once switched off its
    interactive mode, and every figure after the first vanished from the page.)"""
    import base64

    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import numpy as np\nfrom toy_lib import plots",
        "plots.loss_curve(np.linspace(1, 0.1, 100));",
        "plots.feature_arrows(np.random.default_rng(0).normal(size=(5, 2, 5)));",
        "plots.wtw_and_norms(np.random.default_rng(1).normal(size=(2, 3, 4)));",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    for cell in nb.cells[1:]:
        images = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, f"{cell.source!r} showed {len(images)} figures"
        width, height = Image.open(io.BytesIO(base64.b64decode(images[0]))).size
        assert width <= math.ceil(plots.COLUMN_WIDTH * plots.DPI), f"{cell.source!r}: {width} px wide"
        assert width >= 0.9 * plots.MAX_WIDTH * plots.DPI, f"{cell.source!r}: {width} px, not at DPI"


def test_firing_rate_histogram_counts_dead_latents_and_refuses_bad_rates():
    fig = plots.firing_rate_histogram(np.array([0.0, 0.0, 0.01, 0.2, 1.0]), reference=0.05)
    assert fig.axes[0].get_title() == "3 live latents, 2 dead"
    plt.close(fig)
    for rates, message in [
        (np.array([0.1, 1.5]), r"^rates=.*firing rates in \[0, 1\]"),
        (np.array([-0.1, 0.5]), r"^rates=.*firing rates in \[0, 1\]"),
        (np.zeros(4), r"^rates=.*at least one live latent"),
        (np.ones((2, 2)) * 0.1, r"^rates="),
    ]:
        with pytest.raises(ValueError, match=message):
            plots.firing_rate_histogram(rates)
    with pytest.raises(ValueError, match=r"^reference=0\.0: expected a rate in \(0, 1\]"):
        plots.firing_rate_histogram(np.array([0.1]), reference=0.0)
    with pytest.raises(ValueError, match=r"^bins=0"):
        plots.firing_rate_histogram(np.array([0.1]), bins=0)


# The figures of "Evaluating SAEs", part A (book/evaluating.md).
CASES += [
    (
        "pareto",
        plots.pareto_frontier,
        dict(l0=[[1.0, 2.0, 3.0], [1.5, 2.5]], error=[[0.3, 0.1, 0.05], [0.2, 0.2]], labels=["L1", "TopK"]),
    ),
    (
        "dead-curves",
        plots.dead_latent_curves,
        dict(steps=[0, 500, 1000], dead_fraction=[[0.0, 0.1, 0.2], [0.0, 0.0, 0.05]], labels=["a", "b"]),
    ),
    ("effects", plots.intervention_effects, dict(effect=np.eye(4) - 0.1)),
]
