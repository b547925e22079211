"""The book's figures, in one style. Every function returns a matplotlib `Figure` and never
calls ``show()``; the chapter decides what to do with it.

The style (the same for every chapter, and for the live widgets in the browser):

- **Sized for the column.** A figure is at most `MAX_WIDTH` inches wide, drawn at `DPI`
  dots per inch; saved with Jupyter's margins it is at most `COLUMN_WIDTH` wide. The book's text column is 672 CSS pixels wide in the narrowest desktop layout
  (a 1280-pixel window), i.e. 7 inches at 96 pixels an inch, so a figure of `COLUMN_WIDTH`
  inches is shown at (at least) its design size there, and text of `FONT_SIZE` points is
  as large as the 16-pixel body text (12 pt = 16 px). No text in a figure is smaller than
  `FONT_SIZE`. Many panels go on several rows (`panel_grid`) rather than shrink.
- **One encoding per quantity**, everywhere in the book and in the live widget
  (``book/_static/pentagon/pentagon.js``):

  - feature index ``i``: its colour `feature_colour` (Okabe-Ito for up to 8 features, the
    widget's order) *and* its number written on the figure (at an arrow's tip, or as a tick
    label);
  - importance ``I_i``: line width, thicker for more important features
    (`importance_linewidth`, the widget's formula);
  - ``W_i · W_j`` (the matrix ``WᵀW``): the diverging red-blue `GRAM_CMAP`, centred at 0, with
    a labelled colour bar;
  - the superposition score of a feature: the sequential `SUPERPOSITION_CMAP`, with a labelled
    colour bar;
  - any other colour scale: a colour bar with a label.

`figure` creates a figure in this style; every plot function below uses it, and a chapter that
needs a figure of its own should too (``tests/test_plots.py`` checks every public plot function
for the sizes, the fonts, the colour bars and the feature numbers; ``tests/test_figures.py``
checks the rendered pages in a browser).

Every plot function checks its arguments first and refuses, with a ``ValueError`` naming the
argument, empty or mismatched inputs and weights that are not finite numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from . import _validate, metrics

#: The book's text column, in inches (672 CSS px at 96 px per inch).
COLUMN_WIDTH = 7.0
#: The margin, in inches, that Jupyter adds on every side of a figure when it saves it cropped to
#: its contents (matplotlib's ``savefig.pad_inches`` with ``bbox_inches="tight"``).
SAVE_PAD = 0.1
#: Widest figure, in inches. With `SAVE_PAD` on both sides the saved image is `COLUMN_WIDTH` wide.
MAX_WIDTH = COLUMN_WIDTH - 2 * SAVE_PAD
#: Resolution of the figures, dots per inch (sharp on high-density screens).
DPI = 150
#: Smallest text in any figure, in points. 12 pt at the column width renders as the 16 px body text.
FONT_SIZE = 12
#: Titles, a little larger.
TITLE_SIZE = 13
#: Okabe-Ito colours, distinguishable with the common colour-vision deficiencies (also the widgets').
FEATURE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: ``WᵀW`` and other signed quantities centred at zero.
GRAM_CMAP = "RdBu_r"
#: The superposition score of a feature (0 = alone in its direction).
SUPERPOSITION_CMAP = "viridis"
#: Width in points of the arrow of the most important feature. The least important one is
#: 0.025 / 0.06 of it, as in the widget (stroke width 0.025 + 0.035 I).
ARROW_WIDTH = 4.5
#: The widest a panel of `feature_arrows` gets, in inches (a lone panel does not fill the column).
MAX_PANEL = 3.2

STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": FONT_SIZE,
    "axes.titlesize": TITLE_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE,
    "legend.title_fontsize": FONT_SIZE,
    "figure.titlesize": TITLE_SIZE,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.constrained_layout.use": True,
}


@contextmanager
def style():
    """The book's matplotlib settings (`STYLE`), for the figures created inside the block."""
    # pyplot loads its backend when the first figure is made, and Jupyter's inline backend then
    # sets matplotlib's rcParams (interactive mode, which makes Jupyter show the figures, and
    # its own font size). Load it now, outside the context: inside it, leaving the context
    # would undo interactive mode (no figure after the first would be shown), and the
    # backend's settings would override the book's in the first figure.
    plt.close(plt.figure())
    with plt.rc_context(STYLE):
        yield


def figure(nrows: int = 1, ncols: int = 1, *, height: float = 3.5, width: float = MAX_WIDTH, **subplots_kw):
    """A new ``(Figure, axes)`` in the book's style: ``width`` inches (at most `MAX_WIDTH`, so
    that the saved image, with its margins, is at most `COLUMN_WIDTH`) by ``height``; ``axes``
    is always a 2-D array ``(nrows, ncols)``.

    Tick labels stay at `FONT_SIZE` even when matplotlib makes new ticks after the figure is
    created (when it is drawn, say); axes added later (colour bars) get the same with
    `finish`.
    """
    nrows = _validate.integer(nrows, "nrows", minimum=1)
    ncols = _validate.integer(ncols, "ncols", minimum=1)
    height = _validate.positive(height, "height")
    width = _validate.positive(width, "width")
    if width > MAX_WIDTH + 1e-9:
        raise _validate.fail(
            "width", width, f"at most MAX_WIDTH = {MAX_WIDTH:g} inches (the column, less the saved margins)"
        )
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **subplots_kw)
    finish(fig)
    return fig, axes


def finish(fig: Figure) -> Figure:
    """Hold every axes of ``fig`` (colour bars included) to tick labels of `FONT_SIZE`, also for
    ticks matplotlib creates later; returns ``fig``. Call it after adding axes or colour bars."""
    for ax in fig.axes:
        ax.tick_params(labelsize=FONT_SIZE)
    return fig


def panel_grid(n_panels: int, max_cols: int = 3) -> tuple[int, int]:
    """``(rows, cols)`` for ``n_panels`` panels, at most ``max_cols`` to a row."""
    n_panels = _validate.integer(n_panels, "n_panels", minimum=1)
    max_cols = _validate.integer(max_cols, "max_cols", minimum=1)
    cols = min(n_panels, max_cols)
    return -(-n_panels // cols), cols


def feature_colour(i: int, n_features: int | None = None):
    """The colour of feature ``i``: Okabe-Ito for up to 8 features (the widget's order), else a
    smooth colour map over ``n_features``."""
    i = _validate.integer(i, "i", minimum=0)
    if n_features is None or n_features <= len(FEATURE_COLOURS):
        return FEATURE_COLOURS[i % len(FEATURE_COLOURS)]
    n_features = _validate.integer(n_features, "n_features", minimum=1)
    return plt.get_cmap("turbo")(0.05 + 0.9 * i / max(1, n_features - 1))


def importance_linewidth(relative_importance):
    """Line width in points for a feature of ``relative_importance`` (its importance divided by
    the largest in the figure, in [0, 1]): `ARROW_WIDTH` at 1, ``0.025 / 0.06`` of it at 0,
    linear in between. The live widget draws ``0.025 + 0.035 I`` (in its plot's units), so a
    feature is as much thicker than another in the book as in the widget. Same shape as the
    input."""
    rel = _validate.real_array(relative_importance, "relative_importance")
    if rel.size and (rel.min() < 0 or rel.max() > 1):
        raise _validate.fail(
            "relative_importance", relative_importance, "numbers in [0, 1] (importance / its maximum)"
        )
    width = ARROW_WIDTH * (0.025 + 0.035 * rel) / 0.06
    return float(width) if width.ndim == 0 else width


# --------------------------------------------------------------------------- argument checks


def _weights(W, name: str = "W") -> np.ndarray:
    """``W`` as a float64 ``(instance, hidden, feature)`` array of finite numbers, non-empty."""
    arr = _validate.real_array(W, name)
    if arr.ndim not in (2, 3):
        raise _validate.fail(
            name,
            W,
            "an array of shape (instance, hidden, feature) or (hidden, feature)",
            f"shape {arr.shape}",
        )
    if arr.ndim == 2:
        arr = arr[None]
    if 0 in arr.shape:
        raise _validate.fail(
            name,
            W,
            "at least one instance, one hidden dimension and one feature (instance, hidden, feature)",
            f"shape {arr.shape}",
        )
    return arr


def _labels(values, n: int, name: str, what: str) -> list[str] | None:
    """``None``, or a list of exactly ``n`` strings (one per panel or line)."""
    if values is None:
        return None
    expected = f"a list of {n} strings, one per {what}"
    if isinstance(values, (str, bytes)):
        raise _validate.fail(name, values, expected, "a single string")
    try:
        items = list(values)
    except TypeError as err:
        raise _validate.fail(name, values, expected, type(values).__name__) from err
    if len(items) != n:
        raise _validate.fail(name, values, expected, f"{len(items)} entries")
    bad = [type(v).__name__ for v in items if not isinstance(v, str)]
    if bad:
        raise _validate.fail(name, values, expected, f"a {bad[0]} among them")
    return items


def _relative_importance(importance, n_inst: int, n_feat: int) -> np.ndarray:
    """``importance`` broadcast to ``(instance, feature)`` and divided by its largest value."""
    if importance is None:
        return np.ones((n_inst, n_feat))
    arr = _validate.real_array(importance, "importance")
    expected = f"non-negative numbers of shape ({n_feat},) or (instance, feature) = ({n_inst}, {n_feat})"
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != n_feat or arr.shape[0] not in (1, n_inst):
        raise _validate.fail("importance", importance, expected, f"shape {arr.shape}")
    if arr.min() < 0:
        raise _validate.fail("importance", importance, expected, f"a negative entry {arr.min():g}")
    top = arr.max()
    rel = arr / top if top > 0 else np.zeros_like(arr)
    return np.broadcast_to(rel, (n_inst, n_feat))


def _tick_positions(n: int) -> np.ndarray:
    """Feature numbers to write on an axis: all of them up to 10, else about 10, evenly spaced."""
    step = max(1, -(-n // 10))
    return np.arange(0, n, step)


# --------------------------------------------------------------------------- the figures


def feature_arrows(
    W,
    importance=None,
    titles: Sequence[str] | None = None,
    *,
    max_cols: int = 3,
) -> Figure:
    """One 2-D panel per instance, each feature drawn as an arrow from the origin to ``W_i``.

    The encoding is the live widget's: each arrow in its feature's colour (`feature_colour`)
    with the feature's number at its tip, its width set by the feature's importance
    (`importance_linewidth`: thicker is more important), and a dashed circle of radius 1. Every
    panel has the same scale. A feature whose arrow is shorter than 0.5 (not represented,
    `metrics.represented`) is listed under its panel as "dropped". When the panels leave a slot
    of the grid free, it holds the key: each feature's colour, width and importance.

    Args:
        W: ``(instance, 2, feature)`` (or one ``(2, feature)`` model).
        importance: ``(feature,)`` or ``(instance, feature)``, non-negative; sets the widths
            (relative to the largest). ``None`` draws every arrow at full width.
        titles: one title per panel (e.g. the sparsity of each setting).
        max_cols: panels per row; more panels go on further rows.
    """
    arr = _weights(W)
    n_inst, n_hidden, n_feat = arr.shape
    if n_hidden != 2:
        raise _validate.fail(
            "W",
            W,
            "2 hidden dimensions, shape (instance, 2, feature), for arrows in a plane",
            f"shape {arr.shape}",
        )
    titles = _labels(titles, n_inst, "titles", "panel")
    rel = _relative_importance(importance, n_inst, n_feat)
    widths = importance_linewidth(rel)
    rows, cols = panel_grid(n_inst, max_cols)
    spare = rows * cols - n_inst
    show_key = spare > 0 and n_feat <= len(FEATURE_COLOURS)
    panel = min(MAX_PANEL, MAX_WIDTH / cols)
    norms = metrics.feature_norms(arr)  # (instance, feature)
    kept = norms > metrics.REPRESENTED_NORM
    lim = max(1.45, float(norms.max()) + 0.4)  # room for the numbers beyond the tips
    any_dropped = bool((~kept).any())
    fig, axes = figure(rows, cols, width=panel * cols, height=rows * (panel + 0.35 + 0.3 * any_dropped))
    with style():
        for k, ax in enumerate(axes.flat):
            if k >= n_inst:
                if show_key and k == n_inst:
                    _arrow_key(ax, rel, widths, n_feat, importance is not None)
                else:
                    ax.set_axis_off()
                continue
            ax.add_patch(Circle((0, 0), 1.0, fill=False, ls="--", lw=1.0, color="0.65", zorder=0))
            ax.axhline(0, color="0.88", lw=0.8, zorder=0)
            ax.axvline(0, color="0.88", lw=0.8, zorder=0)
            # the most important features last, so they are drawn on top
            for f in sorted(range(n_feat), key=lambda f: rel[k, f]):
                colour = feature_colour(f, n_feat)
                x, y = arr[k, 0, f], arr[k, 1, f]
                ax.plot([0, x], [0, y], color=colour, lw=widths[k, f], solid_capstyle="round", zorder=2)
                if norms[k, f] >= 0.1:  # the widget hides the numbers of vanishing arrows too
                    ax.scatter([x], [y], color=colour, s=4 * widths[k, f] ** 2, zorder=3, linewidths=0)
                    out = 0.22 / norms[k, f]
                    ax.text(
                        x * (1 + out),
                        y * (1 + out),
                        str(f),
                        color=colour,
                        fontsize=FONT_SIZE,
                        fontweight="bold",
                        ha="center",
                        va="center",
                        zorder=4,
                    )
            _plane_axes(ax, lim)
            dropped = [str(f) for f in range(n_feat) if not kept[k, f]]
            if dropped:
                ax.set_xlabel("dropped: " + ", ".join(dropped), color="0.25")
            if titles is not None:
                ax.set_title(titles[k])
    return finish(fig)


def _arrow_key(ax, rel: np.ndarray, widths: np.ndarray, n_feat: int, with_importance: bool) -> None:
    """The key of `feature_arrows` in a free panel: one line per feature, in its colour and
    width, with its number (and its importance relative to the largest)."""
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(n_feat - 0.4, -1.1)
    ax.text(0.0, -0.9, "feature" + (" (importance)" if with_importance else ""), fontsize=FONT_SIZE)
    same = bool(np.allclose(rel, rel[:1]))
    for f in range(n_feat):
        ax.plot([0.02, 0.3], [f, f], color=feature_colour(f, n_feat), lw=widths[0, f], solid_capstyle="round")
        label = str(f)
        if with_importance and same:
            label += f"  ({rel[0, f]:.2f})"
        ax.text(0.38, f, label, fontsize=FONT_SIZE, va="center", color=feature_colour(f, n_feat))


def wtw_and_norms(
    W,
    titles: Sequence[str] | None = None,
    *,
    max_cols: int = 3,
) -> Figure:
    """For each instance: the ``WᵀW`` heatmap above, the feature norms below as bars.

    Entry ``(i, j)`` of the heatmap is ``W_i · W_j``, coloured by `GRAM_CMAP` centred at 0 (one
    colour bar for every panel). The bar of feature ``i`` has height ``||W_i||`` and is coloured
    by its superposition score ``Σ_{j≠i} (Ŵ_i · W_j)²`` (`SUPERPOSITION_CMAP`, with its own
    colour bar: dark = alone in its direction). Features are numbered on the axes. Instances
    go ``max_cols`` to a row.

    Args:
        W: ``(instance, hidden, feature)`` (or one ``(hidden, feature)`` model).
        titles: one title per instance.
        max_cols: instances per row.
    """
    arr = _weights(W)
    n_inst, _, n_feat = arr.shape
    titles = _labels(titles, n_inst, "titles", "instance")
    rows, cols = panel_grid(n_inst, max_cols)
    gram = np.swapaxes(arr, 1, 2) @ arr  # (instance, i, j)
    vmax = max(1.0, float(np.abs(gram).max()))
    norms = metrics.feature_norms(arr)
    sup = metrics.superposition_score(arr)
    sup_norm = Normalize(vmin=0, vmax=max(1.0, float(sup.max())))
    sup_cmap = plt.get_cmap(SUPERPOSITION_CMAP)
    panel = min(2.0, (MAX_WIDTH - 1.9) / cols)  # 1.9 in for the colour bars and their labels
    ticks = _tick_positions(n_feat)
    fig, axes = figure(
        2 * rows,
        cols,
        width=min(MAX_WIDTH, panel * cols + 2.3),
        height=rows * (1.6 * panel + 1.1),
        gridspec_kw=dict(height_ratios=[1.0, 0.6] * rows),
    )
    with style():
        for k in range(rows * cols):
            r, c = divmod(k, cols)
            ax, bx = axes[2 * r, c], axes[2 * r + 1, c]
            if k >= n_inst:
                ax.set_axis_off()
                bx.set_axis_off()
                continue
            im = ax.imshow(gram[k], cmap=GRAM_CMAP, vmin=-vmax, vmax=vmax)
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.tick_params(length=0)
            if titles is not None:
                ax.set_title(titles[k])
            bx.bar(np.arange(n_feat), norms[k], color=sup_cmap(sup_norm(sup[k])), edgecolor="0.3", lw=0.6)
            bx.set_xlim(-0.6, n_feat - 0.4)
            bx.set_ylim(0, max(1.25, 1.1 * float(norms.max())))
            bx.set_xticks(ticks)
            bx.set_xlabel("feature")
            if c == 0:
                ax.set_ylabel("feature")
                bx.set_ylabel(r"$\|W_i\|$")
            else:
                bx.set_yticklabels([])
        # Beside the first row of panels: each colour bar next to the panels it explains.
        fig.colorbar(im, ax=list(axes[0]), label=r"$W_i \cdot W_j$")
        mappable = plt.cm.ScalarMappable(norm=sup_norm, cmap=sup_cmap)
        fig.colorbar(mappable, ax=list(axes[1]), label="superposition")
    return finish(fig)


def loss_curve(loss_history, labels: Sequence[str] | None = None, *, smooth: int = 50) -> Figure:
    """Training loss against step on a log scale, one line per instance.

    Args:
        loss_history: ``(step, instance)`` (or ``(step,)``), non-negative finite losses.
        labels: one label per instance (shown in a legend).
        smooth: width of the moving average drawn over the raw (faint) curve; 1 draws the raw
            curve only.
    """
    hist = _validate.real_array(loss_history, "loss_history")
    if hist.ndim == 1:
        hist = hist[:, None]
    if hist.ndim != 2 or 0 in hist.shape:
        raise _validate.fail(
            "loss_history",
            loss_history,
            "a non-empty array of shape (step, instance) or (step,)",
            f"shape {np.shape(hist)}",
        )
    if hist.min() < 0:
        raise _validate.fail("loss_history", loss_history, "non-negative losses", f"{hist.min():g}")
    smooth = _validate.integer(smooth, "smooth", minimum=1)
    n_steps, n_inst = hist.shape
    labels = _labels(labels, n_inst, "labels", "instance (a column of loss_history)")
    steps = np.arange(1, n_steps + 1)
    colours = plt.get_cmap("cividis")(np.linspace(0.0, 0.8, n_inst)) if n_inst > 1 else ["0.15"]
    fig, axes = figure(height=3.3)
    ax = axes[0, 0]
    with style():
        for i in range(n_inst):
            averaged = smooth > 1 and n_steps >= smooth
            label = None if labels is None else labels[i]
            ax.plot(
                steps,
                hist[:, i],
                color=colours[i],
                alpha=0.25 if averaged else 1.0,
                lw=0.8,
                label=None if averaged else label,
            )
            if averaged:
                kernel = np.ones(smooth) / smooth
                avg = np.convolve(hist[:, i], kernel, mode="valid")
                ax.plot(steps[smooth - 1 :], avg, color=colours[i], lw=1.8, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if labels is not None:
            ax.legend()
    return finish(fig)


# --------------------------------------------------------------------------- sparse autoencoders
#
# The SAE figures check their own inputs (`_sae_array`, `_sae_labels`) with toy_lib/_validate.py:
# finite real numbers with the documented axes, labels that match, sizes a figure can show.

#: The most panels (snapshots, metrics) an SAE figure draws.
SAE_MAX_PANELS = 48
#: The most arrows, lines, rows or bars one panel of an SAE figure draws.
SAE_MAX_ITEMS = 1000


def _sae_array(value, name: str, axes: tuple[str, ...], fixed: dict | None = None) -> np.ndarray:
    """``value`` as a float64 copy of finite real numbers with one dimension per name in ``axes``,
    every axis non-empty and the sizes in ``fixed`` (``{axis: size}`` or ``{axis: (size, the
    argument it comes from)}``); else a clear error."""
    spelled = "(" + ", ".join(axes) + ")"
    arr = _validate.real_array(value, name)
    if arr.ndim != len(axes):
        raise _validate.fail(name, value, f"an array of shape {spelled}", f"shape {arr.shape}")
    for axis, size in zip(axes, arr.shape):
        want = (fixed or {}).get(axis)
        want, source = want if isinstance(want, tuple) else (want, None)
        if size == 0 or (want is not None and size != want):
            what = f"{want} entries on the {axis} axis" if want is not None else f"at least one {axis}"
            what += f", as {source} has" if source and want is not None else ""
            raise _validate.fail(
                name, value, f"an array of shape {spelled} with {what}", f"shape {arr.shape}"
            )
    return arr


def _sae_labels(value, name: str, n: int | None = None, per: str = "") -> list[str]:
    """A list or tuple of strings (``n`` of them when given, one ``per`` something)."""
    expected = "a non-empty list of strings"
    if n is not None:
        expected = f"a list of {n} strings" + (f", one per {per}" if per else "")
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or not all(isinstance(t, str) for t in value)
    ):
        raise _validate.fail(name, value, expected, type(value).__name__)
    if (n is not None and len(value) != n) or len(value) == 0:
        raise _validate.fail(name, value, expected, f"{len(value)}")
    return list(value)


def _sae_count(n: int, name: str, value, limit: int, what: str) -> None:
    if n > limit:
        raise _validate.fail(name, value, f"at most {limit} {what} (one figure can show no more)", f"{n}")


def sae_directions(
    true_W, W_dec_snapshots, steps: Sequence[int], *, instance: int = 0, max_cols: int = 4
) -> Figure:
    """Decoder directions against the true features over training, one panel per snapshot.

    Each panel is the 2-D hidden space: the toy model's feature directions ``Ŵ_i`` as coloured
    arrows with their numbers, and the SAE's decoder rows (unit length) as black dashed lines.
    When a decoder direction lies on a feature's arrow, that latent has found the feature.

    Args:
        true_W: ``(2, feature)`` the toy model's ``W`` (one instance; a feature with no direction
            gets no arrow).
        W_dec_snapshots: ``(snapshot, instance, d_sae, 2)`` (`toy_lib.SAEResult.W_dec_snapshots`).
        steps: the training step of each snapshot (the panel titles): one integer per snapshot.
        instance: which SAE instance to draw (0 to ``instance`` - 1).
        max_cols: panels per row.
    """
    W = _sae_array(true_W, "true_W", ("hidden", "feature"), {"hidden": 2})
    snaps = _sae_array(
        W_dec_snapshots, "W_dec_snapshots", ("snapshot", "instance", "d_sae", "hidden"), {"hidden": 2}
    )
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or len(steps) != snaps.shape[0]:
        raise _validate.fail(
            "steps",
            steps,
            f"one step per snapshot of W_dec_snapshots ({snaps.shape[0]}), as a list of integers",
            f"{type(steps).__name__} of length {len(steps)}"
            if isinstance(steps, Sequence)
            else type(steps).__name__,
        )
    steps = [_validate.integer(t, "steps", minimum=0) for t in steps]
    instance = _validate.integer(instance, "instance", minimum=0, maximum=snaps.shape[1] - 1)
    max_cols = _validate.integer(max_cols, "max_cols", minimum=1)
    _sae_count(len(steps), "W_dec_snapshots", W_dec_snapshots, SAE_MAX_PANELS, "snapshots")
    _sae_count(W.shape[1], "true_W", true_W, SAE_MAX_ITEMS, "features")
    _sae_count(snaps.shape[2], "W_dec_snapshots", W_dec_snapshots, SAE_MAX_ITEMS, "latents")
    norms = metrics.feature_norms(W)
    unit = np.where(norms > 0, W / np.where(norms > 0, norms, 1.0), 0.0)
    rows, cols = panel_grid(len(steps), max_cols)
    with style():
        fig, axes = figure(rows, cols, height=1.9 * rows + 0.4)
        for ax in axes.flat[len(steps) :]:
            ax.axis("off")
        for ax, step, dec in zip(axes.flat, steps, snaps[:, instance]):
            for i in range(W.shape[1]):
                if norms[i] == 0:
                    continue
                colour = feature_colour(i, W.shape[1])
                ax.annotate(
                    "", xy=unit[:, i], xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=colour, lw=2.5)
                )
                ax.text(
                    *(1.22 * unit[:, i]), str(i), color=colour, ha="center", va="center", fontsize=FONT_SIZE
                )
            for d in dec:
                n = np.linalg.norm(d)
                if n > 0:
                    # on top of the arrows (zorder), so that a direction on a feature stays visible
                    ax.plot([0, d[0] / n], [0, d[1] / n], color="black", ls="--", lw=1.3, zorder=4)
            _plane_axes(ax, 1.45)
            ax.set_title(f"step {step:,}")
        return fig


def shrinkage_curves(
    magnitudes, activations, labels: Sequence[str], *, ylabel: str = "activation of its latent"
) -> Figure:
    """A latent's activation (or the length of the reconstruction) against the true size of its
    feature, one line per SAE, with ``y = x``.

    On single-feature inputs ``h = v W_i`` the ideal latent reads back ``||h||``, and the ideal
    reconstruction has length ``||h||``: the dashed diagonal. A line below it means the SAE
    shrinks the feature (an L1 penalty does).

    Args:
        magnitudes: ``(point,)`` the true sizes ``||h||`` (the x axis).
        activations: ``(line, point)`` for each SAE the matched latent's activation, or
            ``||ĥ||``, the length of its reconstruction.
        labels: one label (a string) per line.
        ylabel: what the lines show (the y axis).
    """
    m = _sae_array(magnitudes, "magnitudes", ("point",))
    acts = _sae_array(activations, "activations", ("line", "point"), {"point": (m.shape[0], "magnitudes")})
    labels = _sae_labels(labels, "labels", acts.shape[0], "line of activations")
    if not isinstance(ylabel, str):
        raise _validate.fail("ylabel", ylabel, "a string", type(ylabel).__name__)
    _sae_count(acts.shape[0], "activations", activations, 12, "lines")
    _sae_count(m.shape[0], "magnitudes", magnitudes, 10**5, "points")
    with style():
        fig, axes = figure(1, 1, height=3.8)
        ax = axes[0, 0]
        top = max(float(m.max()), float(acts.max()))
        ax.plot([0, top], [0, top], color="0.5", ls="--", lw=1.2, label="y = x (no shrinkage)")
        styles = ["-", "--", "-.", ":", (0, (5, 1))]
        for k, (label, a) in enumerate(zip(labels, acts)):
            grey = str(round(min(0.1 + 0.15 * k, 0.85), 2))
            ax.plot(m, a, lw=2.2, ls=styles[k % len(styles)], color=grey, label=label)
        ax.set_xlabel(r"true size of the feature, $\|h\|$")
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", frameon=False)
        return fig


def cosine_heatmap(
    cos, *, xlabel: str = "latent", ylabel: str = "true feature", title: str | None = None
) -> Figure:
    """Cosines between true features (rows) and SAE decoder directions (columns), ``GRAM_CMAP``
    from -1 to 1 with a colour bar; every row and column numbered.

    Args:
        cos: ``(feature, latent)`` cosines from -1 to 1 (`toy_lib.metrics.cosine_matrix`).
        xlabel: the label of the columns' axis.
        ylabel: the label of the rows' axis.
        title: a title, or None.
    """
    c = _sae_array(cos, "cos", ("feature", "latent"))
    if np.abs(c).max() > 1 + 1e-6:
        raise _validate.fail(
            "cos", cos, "cosines from -1 to 1 (the colour scale's range)", f"{c.min():.3g} to {c.max():.3g}"
        )
    for name, text in (("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str):
            raise _validate.fail(name, text, "a string", type(text).__name__)
    if title is not None and not isinstance(title, str):
        raise _validate.fail("title", title, "a string or None", type(title).__name__)
    n_rows, n_cols = c.shape
    _sae_count(n_rows, "cos", cos, SAE_MAX_ITEMS, "rows")
    _sae_count(n_cols, "cos", cos, SAE_MAX_ITEMS, "columns")
    with style():
        fig, axes = figure(1, 1, height=min(6.5, 1.5 + 0.27 * n_rows))
        ax = axes[0, 0]
        im = ax.imshow(c, cmap=GRAM_CMAP, vmin=-1, vmax=1, aspect="auto")
        step = 1 if max(n_rows, n_cols) <= 12 else max(2, -(-max(n_rows, n_cols) // 24))
        ax.set_xticks(range(0, n_cols, step))
        ax.set_yticks(range(0, n_rows, step))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        fig.colorbar(im, ax=ax, label="cosine")
        return fig


def metric_bars(labels: Sequence[str], metrics_by_name: dict, *, max_cols: int = 2) -> Figure:
    """One panel per metric, one bar per SAE (labelled on the x axis), the value written on each bar.

    Args:
        labels: the SAEs' names (strings).
        metrics_by_name: ``{metric name: (len(labels),) values}``, finite numbers (a negative one
            is drawn below the axis).
        max_cols: panels per row.
    """
    labels = _sae_labels(labels, "labels")
    _sae_count(len(labels), "labels", labels, 40, "bars")
    if not isinstance(metrics_by_name, dict) or not metrics_by_name:
        raise _validate.fail(
            "metrics_by_name",
            metrics_by_name,
            "a non-empty dict {metric name: values}",
            type(metrics_by_name).__name__,
        )
    _sae_count(len(metrics_by_name), "metrics_by_name", metrics_by_name, SAE_MAX_PANELS, "metrics")
    max_cols = _validate.integer(max_cols, "max_cols", minimum=1)
    table = {}
    for name, values in metrics_by_name.items():
        if not isinstance(name, str):
            raise _validate.fail(
                "metrics_by_name", metrics_by_name, "metric names that are strings", repr(name)
            )
        table[name] = _sae_array(
            values, f"metrics_by_name[{name!r}]", ("SAE",), {"SAE": (len(labels), "labels")}
        )
    names = list(table)
    rows, cols = panel_grid(len(names), max_cols)
    with style():
        fig, axes = figure(rows, cols, height=2.6 * rows + 0.3)
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        for ax, name in zip(axes.flat, names):
            values = table[name]
            ax.bar(range(len(labels)), values, color="0.55")
            for k, v in enumerate(values):
                ax.text(k, v, f"{v:.2f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=FONT_SIZE)
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, ha="right")
            ax.set_title(name)
            low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
            span = max(high - low, 1e-9)
            ax.set_ylim(low - (0.3 * span if low < 0 else 0.0), high + 0.3 * span)
            if low < 0:
                ax.axhline(0, color="0.3", lw=0.8)
        return fig


# --------------------------------------------------------------------------- the opening chapters
# Figures of "Features" and "The geometry of superposition" (data from `toy_lib.geometry`).

#: The styles of lines that are not features (numbers of vectors, kinds of read-out), shades of
#: grey with a marker each, so that colour keeps meaning "feature" everywhere in the book.
SERIES_STYLES = (
    dict(color="0.0", marker="o", linestyle="-"),
    dict(color="0.4", marker="s", linestyle="--"),
    dict(color="0.62", marker="^", linestyle="-."),
)


def _in_style(fn):
    """Draw the whole figure inside `style()`, so every text it creates gets the book's sizes."""
    import functools

    @functools.wraps(fn)
    def drawn_in_style(*args, **kwargs):
        with style():
            return fn(*args, **kwargs)

    return drawn_in_style


def _series_style(i: int) -> dict:
    return SERIES_STYLES[i % len(SERIES_STYLES)]


def _fail(name: str, value, expected: str) -> ValueError:
    shape = getattr(value, "shape", None)
    got = f"shape {tuple(shape)}" if shape is not None else type(value).__name__
    return _validate.fail(name, value, expected, got)


def _array(value, name: str, ndim: int, expected: str) -> np.ndarray:
    """``value`` as a float64 array of finite numbers with ``ndim`` dimensions (see `_validate`)."""
    arr = _validate.real_array(value, name)
    if arr.ndim != ndim:
        raise _fail(name, arr, expected)
    return arr


def _feature_axis(ax, n_feat: int, axis: str = "x", label: str = "feature") -> None:
    ticks = np.arange(n_feat)
    if axis == "x":
        ax.set_xticks(ticks, [str(i) for i in ticks])
        ax.set_xlabel(label)
    else:
        ax.set_yticks(ticks, [str(i) for i in ticks])
        ax.set_ylabel(label)


def _plane_axes(ax, lim: float) -> None:
    """A frameless square view of the plane, [-lim, lim] on both axes, with no ticks: the one look
    of every figure that draws 2-D directions (arrows, decoder directions)."""
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)


def _draw_feature_arrows(ax, W2: np.ndarray) -> None:
    """Each column of ``W2: (2, feature)`` as an arrow from the origin in its feature's colour,
    its number written just beyond the tip; a dashed unit circle for scale."""
    n_feat = W2.shape[1]
    lim = max(1.25, 1.3 * float(np.linalg.norm(W2, axis=0).max()))
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="0.75", lw=1, ls="--", zorder=0)
    for i in range(n_feat):
        x, y = W2[0, i], W2[1, i]
        colour = feature_colour(i, n_feat)
        ax.annotate("", xy=(x, y), xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=2.2))
        norm = float(np.hypot(x, y)) or 1.0
        ax.text(x + 0.17 * x / norm, y + 0.17 * y / norm, str(i), color=colour, ha="center", va="center")
    _plane_axes(ax, lim)


def _annotated_gram(fig, ax, W: np.ndarray, title: str = r"$W^\top W$") -> None:
    """``WᵀW`` of ``W: (hidden, feature)`` as a heatmap with its values written in the cells,
    `GRAM_CMAP` centred at 0, features numbered, a labelled colour bar."""
    gram = W.T @ W
    n_feat = gram.shape[0]
    vmax = max(1.0, float(np.abs(gram).max()))
    im = ax.imshow(gram, cmap=GRAM_CMAP, vmin=-vmax, vmax=vmax, aspect="auto")
    for i in range(n_feat):
        for j in range(n_feat):
            value = gram[i, j]
            colour = "white" if abs(value) > 0.6 * vmax else "black"
            ax.text(j, i, f"{value:.2f}".replace("-", "\u2212"), ha="center", va="center", color=colour)
    _feature_axis(ax, n_feat, "x")
    _feature_axis(ax, n_feat, "y")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.85, label=r"$W_i \cdot W_j$")


@_in_style
def leakage(
    W, inputs, outputs, *, titles: Sequence[str] | None = None, output_label: str = "read-out"
) -> Figure:
    """How features stored in a plane leak into each other.

    Top row: the feature directions as arrows (feature colours, numbered) and ``WᵀW`` with its
    values written in. Below, one panel per input: the input ``x`` (outlined bars) and what the
    model reads back (filled bars), feature by feature.

    Args:
        W: ``(2, feature)`` (or ``(1, 2, feature)``).
        inputs: ``(case, feature)``: the inputs ``x``.
        outputs: ``(case, feature)``: what is read back for each.
        titles: one title per case.
        output_label: the legend's name for the filled bars.
    """
    arr = _weights(W)
    if arr.shape[0] != 1 or arr.shape[1] != 2:
        raise _fail("W", arr, "(2, feature) or (1, 2, feature): one model with a 2-D hidden space")
    W2 = arr[0]
    n_feat = W2.shape[1]
    x = _array(inputs, "inputs", 2, "(case, feature)")
    y = _array(outputs, "outputs", 2, "(case, feature)")
    if x.shape != y.shape or x.shape[1] != n_feat:
        raise ValueError(
            f"inputs has shape {x.shape} and outputs {y.shape}: expected both (case, {n_feat}), one "
            "row per case and one column per feature of W"
        )
    n_case = x.shape[0]
    if titles is not None and len(titles) != n_case:
        raise ValueError(f"titles has {len(titles)} entries: expected one per case ({n_case})")
    rows, cols = panel_grid(n_case, max_cols=2 if n_case == 4 else 3)
    fig, _ = figure(1, 1, height=3.8 + 2.6 * rows)
    fig.clear()
    top = fig.add_gridspec(2, 1, height_ratios=[1.5, 1.0 * rows])
    upper = top[0].subgridspec(1, 2, width_ratios=[2, 3.4])
    arrows = fig.add_subplot(upper[0])
    _draw_feature_arrows(arrows, W2)
    arrows.set_title("directions $W_i$")
    _annotated_gram(fig, fig.add_subplot(upper[1]), W2)
    lower = top[1].subgridspec(rows, cols)
    low = min(0.0, float(y.min()), float(x.min()))
    high = max(1.0, float(y.max()), float(x.max()))
    pad = 0.1 * (high - low)
    colours = [feature_colour(i, n_feat) for i in range(n_feat)]
    for c in range(n_case):
        ax = fig.add_subplot(lower[divmod(c, cols)])
        ax.bar(np.arange(n_feat), y[c], color=colours, width=0.62)
        ax.bar(np.arange(n_feat), x[c], fill=False, edgecolor="0.15", lw=1.4, width=0.84)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylim(low - pad, high + pad)
        _feature_axis(ax, n_feat)
        if titles is not None:
            ax.set_title(titles[c])
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="0.55", label=f"{output_label} (in the feature's colour)"),
        Patch(fill=False, edgecolor="0.15", lw=1.4, label="input $x$"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig


@_in_style
def neuron_weights(matrices, titles: Sequence[str]) -> Figure:
    """Which features each neuron responds to, for one or more layers ``h = W x``.

    Top: each ``W: (neuron, feature)`` as a heatmap (`GRAM_CMAP`, centred at 0, one labelled
    colour bar), neurons down, features across, both numbered. Below each: every neuron's
    top-feature share (`toy_lib.geometry.top_feature_share`), 1 for a neuron that responds to
    a single feature.

    Args:
        matrices: a list of ``(neuron, feature)`` arrays (or one ``(layer, neuron, feature)``).
        titles: one title per matrix.
    """
    mats = [_array(m, "matrices[...]", 2, "(neuron, feature)") for m in matrices]
    if not mats:
        raise ValueError("matrices is empty: expected at least one (neuron, feature) matrix")
    if len(titles) != len(mats):
        raise ValueError(f"titles has {len(titles)} entries: expected one per matrix ({len(mats)})")
    n = len(mats)
    vmax = max(float(np.abs(m).max()) for m in mats) or 1.0
    fig, axes = figure(2, n, height=6.2, gridspec_kw=dict(height_ratios=[1.5, 1]))
    for k, m in enumerate(mats):
        n_neuron, n_feat = m.shape
        ax = axes[0, k]
        im = ax.imshow(m, cmap=GRAM_CMAP, vmin=-vmax, vmax=vmax)
        _feature_axis(ax, n_feat, "x")
        _feature_axis(ax, n_neuron, "y", "neuron")
        ax.set_title(titles[k])
        share = (m**2).max(axis=1) / np.maximum((m**2).sum(axis=1), 1e-300)
        bx = axes[1, k]
        bx.bar(np.arange(n_neuron), share, color="0.45", width=0.7)
        bx.axhline(1.0, color="0.2", lw=1, ls="--")
        bx.set_ylim(0, 1.08)
        _feature_axis(bx, n_neuron, "x", "neuron")
        if k == 0:
            bx.set_ylabel("top-feature\nshare")
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.85, label=r"weight $W_{k,i}$")
    return fig


@_in_style
def probe_accuracies(probe, single_neuron, baseline: float) -> Figure:
    """Reading each feature off a layer: a linear probe against the best single neuron.

    Args:
        probe: ``(feature,)`` accuracy of the probe for each feature.
        single_neuron: ``(feature,)`` accuracy of the best single neuron for each feature.
        baseline: the accuracy of always answering "absent", drawn as a dashed line.
    """
    p = _array(probe, "probe", 1, "(feature,)")
    s = _array(single_neuron, "single_neuron", 1, "(feature,)")
    if p.shape != s.shape:
        raise ValueError(
            f"probe has shape {p.shape} and single_neuron {s.shape}: expected the same (feature,)"
        )
    n_feat = p.shape[0]
    fig, axes = figure(1, 1, height=4.2)
    ax = axes[0, 0]
    idx = np.arange(n_feat)
    colours = [feature_colour(i, n_feat) for i in range(n_feat)]
    ax.bar(idx - 0.2, p, width=0.38, color=colours)
    ax.bar(idx + 0.2, s, width=0.38, color="white", edgecolor=colours, hatch="///", lw=1.5)
    ax.axhline(baseline, color="0.3", ls="--", lw=1.2)
    low = min(float(baseline), float(s.min()), float(p.min()))
    ax.set_ylim(max(0.0, low - 0.08), 1.0)
    _feature_axis(ax, n_feat)
    ax.set_ylabel("accuracy")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="0.55", label="linear probe on the layer"),
        Patch(facecolor="white", edgecolor="0.4", hatch="///", label="best single neuron"),
        Line2D([], [], color="0.3", ls="--", lw=1.2, label='always "absent"'),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig


@_in_style
def max_cosine_curves(dims, n_vectors, largest, *, threshold: float | None = None) -> Figure:
    """The largest ``|cos|`` among ``N`` random directions against the dimension, measured and
    predicted.

    Markers: the median over draws, with bars from the lower to the upper quartile. Lines:
    `toy_lib.geometry.predicted_max_abs_cosine`. Log-log axes.

    Args:
        dims: ``(dim,)`` the dimensions measured.
        n_vectors: ``(n,)`` the numbers of vectors, one series each.
        largest: the measured largest ``|cos|`` of every draw: one ``(dim, draw)`` array per entry
            of ``n_vectors`` (the numbers of draws may differ), or one ``(n, dim, draw)`` array.
        threshold: draw a dotted horizontal line at this ``|cos|`` (optional).
    """
    from . import geometry

    d = _array(dims, "dims", 1, "(dim,)")
    ns = [int(n) for n in _array(n_vectors, "n_vectors", 1, "(n,)")]
    vals = [_array(v, "largest[...]", 2, "(dim, draw)") for v in largest]
    if len(vals) != len(ns) or any(v.shape[0] != len(d) for v in vals):
        shapes = [v.shape for v in vals]
        raise ValueError(f"largest has shapes {shapes}: expected {len(ns)} arrays of shape ({len(d)}, draw)")
    fig, axes = figure(1, 1, height=4.2)
    ax = axes[0, 0]
    fine = np.unique(np.geomspace(d.min(), d.max(), 40).round().astype(int))
    handles = []
    for k, n in enumerate(ns):
        style = _series_style(k)
        med = np.median(vals[k], axis=1)
        q1, q3 = np.percentile(vals[k], [25, 75], axis=1)
        measured = ax.errorbar(
            d, med, yerr=[med - q1, q3 - med], fmt=style["marker"], color=style["color"], capsize=3, ms=6
        )
        pred = [geometry.predicted_max_abs_cosine(n, int(x)) for x in fine]
        (predicted,) = ax.plot(fine, pred, color=style["color"], ls=style["linestyle"], lw=1.4)
        handles.append((measured, predicted))
    if threshold is not None:
        ax.axhline(threshold, color="0.5", ls=":", lw=1.2)
        ax.text(d.min(), threshold * 0.93, rf"$|\cos| = {threshold:g}$", va="top", color="0.35")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(d, [str(int(x)) for x in d])
    low, high = min(float(v.min()) for v in vals), max(float(v.max()) for v in vals)
    yticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1.0) if 0.8 * low <= t <= 1.2 * high]
    ax.set_yticks(yticks, [f"{t:g}" for t in yticks])
    ax.minorticks_off()
    ax.set_xlabel("dimension $d$")
    ax.set_ylabel(r"largest $|\cos|$ among $N$")
    from matplotlib.legend_handler import HandlerTuple

    ax.legend(
        handles,
        [f"N = {n:,}" for n in ns],
        handler_map={tuple: HandlerTuple(ndivide=None)},
        handlelength=3.5,
        loc="upper right",
        frameon=False,
        title="markers measured,\nlines predicted",
    )
    return fig


@_in_style
def packing_counts(packed_dims, packed, random_dims, random_counts, *, threshold: float) -> Figure:
    """How many directions fit with every pairwise ``|cos| <= threshold``, as the dimension grows.

    Packed by the optimiser (`toy_lib.geometry.pack_count`, markers and a solid line); drawn at
    random (`toy_lib.geometry.random_fit_count`: the median over draws, bars from the lower to
    the upper quartile) with its prediction (`predicted_random_count`, dotted); the
    ``d`` orthogonal directions (grey); and `packing_bound`, which no arrangement can beat
    (dashed, where it exists). Log-log axes.

    Args:
        packed_dims: ``(dim,)``; packed: ``(dim,)`` the optimiser's counts.
        random_dims: ``(dim2,)``; random_counts: ``(draw, dim2)`` counts of every draw.
        threshold: the ``|cos|`` threshold, for the title and the predictions.
    """
    from . import geometry

    pd = _array(packed_dims, "packed_dims", 1, "(dim,)")
    pc = _array(packed, "packed", 1, "(dim,)")
    rd = _array(random_dims, "random_dims", 1, "(dim,)")
    rc = _array(random_counts, "random_counts", 2, "(draw, dim)")
    if pc.shape != pd.shape:
        raise ValueError(
            f"packed has shape {pc.shape}: expected {pd.shape}, one count per entry of packed_dims"
        )
    if rc.shape[1] != rd.shape[0]:
        raise ValueError(f"random_counts has shape {rc.shape}: expected (draw, {rd.shape[0]})")
    fig, axes = figure(1, 1, height=5.4)
    ax = axes[0, 0]
    lo, hi = float(min(pd.min(), rd.min())), float(max(pd.max(), rd.max()))
    fine = np.unique(np.geomspace(lo, hi, 60).round().astype(int))
    bound_d = fine[fine * threshold**2 < 1]
    pred_d = fine[fine >= rd.min()]
    curves = [  # (d, count, style, label): the references, then the measurements
        (fine, fine, dict(color="0.7", lw=2), "$d$ orthogonal directions"),
        (
            bound_d,
            [geometry.packing_bound(int(x), threshold) for x in bound_d],
            dict(color="0.35", ls="--", lw=1.2),
            "the most that can fit (bound)",
        ),
        (pd, pc, dict(color="black", marker="o", ms=6, lw=1.8), "packed by the optimiser"),
    ]
    for xs, ys, kw, label in curves:
        ax.plot(xs, ys, label=label, **kw)
    med = np.median(rc, axis=0)
    q1, q3 = np.percentile(rc, [25, 75], axis=0)
    ax.errorbar(
        rd,
        med,
        yerr=[med - q1, q3 - med],
        fmt="s",
        color="0.45",
        capsize=3,
        ms=6,
        label="random directions (measured)",
    )
    ax.plot(
        pred_d,
        [geometry.predicted_random_count(int(x), threshold) for x in pred_d],
        color="0.45",
        ls=":",
        lw=1.4,
        label="random directions (predicted)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = np.unique(np.concatenate([pd, rd]))
    ticks = ticks[np.isclose(np.log2(ticks), np.round(np.log2(ticks)))]
    ax.set_xticks(ticks, [str(int(x)) for x in ticks])
    top = 4 * max(float(pc.max()), float(rc.max()), hi)
    ax.set_ylim(0.7, top)
    yticks = [t for t in (1, 10, 100, 1000, 10000) if t <= top]
    ax.set_yticks(yticks, [f"{t:,}" for t in yticks])
    ax.minorticks_off()
    ax.set_xlabel("dimension $d$")
    ax.set_ylabel(rf"directions with all $|\cos| \leq {threshold:g}$")
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return fig


@_in_style
def interference_cost(density, simulated, standard_error, predicted, labels: Sequence[str]) -> Figure:
    """Expected squared interference against feature density ``1 - S``, simulated and predicted.

    Markers: simulated means with bars of ±3 standard errors; lines: the predictions. One
    series per row (e.g. a linear read-out and one whose leaks into inactive features are
    clipped). Log-log axes.

    Args:
        density: ``(k,)`` feature densities ``1 - S``.
        simulated, standard_error, predicted: ``(series, k)``.
        labels: one name per series.
    """
    p = _array(density, "density", 1, "(k,)")
    sim = _array(simulated, "simulated", 2, "(series, k)")
    se = _array(standard_error, "standard_error", 2, "(series, k)")
    pred = _array(predicted, "predicted", 2, "(series, k)")
    if not (sim.shape == se.shape == pred.shape) or sim.shape[1] != p.shape[0]:
        raise ValueError(
            f"simulated {sim.shape}, standard_error {se.shape} and predicted {pred.shape}: expected "
            f"the same shape (series, {p.shape[0]})"
        )
    if len(labels) != sim.shape[0]:
        raise ValueError(f"labels has {len(labels)} entries: expected one per series ({sim.shape[0]})")
    fig, axes = figure(1, 1, height=4.0)
    ax = axes[0, 0]
    for k, label in enumerate(labels):
        style = _series_style(k)
        ax.plot(p, pred[k], color=style["color"], ls=style["linestyle"], lw=1.4, label=f"{label}: predicted")
        ax.errorbar(
            p,
            sim[k],
            yerr=3 * se[k],
            fmt=style["marker"],
            color=style["color"],
            capsize=3,
            ms=6,
            label=f"{label}: simulated",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("feature density $1 - S$")
    ax.set_ylabel("mean squared interference")
    ax.legend(loc="lower right", frameon=False)
    return fig


# --------------------------------------------------------------------------- phase diagrams (toy-models chapter)

#: The colour of each phase of a phase diagram, from Paul Tol's muted palette (none of them is
#: a feature colour), in the order of `toy_lib.theory.GEOMETRIES`.
PHASE_COLOURS = {"ignored": "#DDDDDD", "dedicated": "#88CCEE", "antipodal": "#CC6677", "polygon": "#DDCC77"}


def wtw_compared(
    W_left,
    W_right,
    titles: Sequence[str] | None = None,
    *,
    labels: Sequence[str] = ("linear", "ReLU"),
) -> Figure:
    """Two models side by side for each setting: ``WᵀW`` with the feature norms beside it.

    One row per setting (instance); on each side of the row, a model: its feature norms as
    horizontal bars (feature ``i`` on row ``i``, bar length ``||W_i||``, coloured by the
    superposition score ``Σ_{j≠i} (Ŵ_i · W_j)²`` on `SUPERPOSITION_CMAP`) and its ``WᵀW``
    (`GRAM_CMAP` centred at 0), as in `wtw_and_norms`. One colour bar for each scale, under the
    panels, the same for every panel.

    Args:
        W_left, W_right: ``(instance, hidden, feature)`` (or one ``(hidden, feature)`` model);
            the same number of instances and features (the hidden sizes may differ).
        titles: one title per setting (row), e.g. ``"p = 0.1"``.
        labels: the two models' names, written above their panels (e.g. ``("linear", "ReLU")``).
    """
    left, right = _weights(W_left, "W_left"), _weights(W_right, "W_right")
    if left.shape[0] != right.shape[0] or left.shape[2] != right.shape[2]:
        raise _validate.fail(
            "W_right",
            W_right,
            f"the instances and features of W_left, shape ({left.shape[0]}, hidden, {left.shape[2]})",
            f"shape {right.shape}",
        )
    n_inst, _, n_feat = left.shape
    titles = _labels(titles, n_inst, "titles", "setting")
    labels = _labels(labels, 2, "labels", "model")
    models = (left, right)
    grams = [np.swapaxes(a, 1, 2) @ a for a in models]
    vmax = max(1.0, max(float(np.abs(g).max()) for g in grams))
    norms = [metrics.feature_norms(a) for a in models]
    sups = [metrics.superposition_score(a) for a in models]
    sup_norm = Normalize(vmin=0, vmax=max(1.0, max(float(s.max()) for s in sups)))
    sup_cmap = plt.get_cmap(SUPERPOSITION_CMAP)
    top = max(1.25, 1.1 * max(float(n.max()) for n in norms))
    ticks = np.arange(0, n_feat, 1 if n_feat <= 6 else 5 if n_feat <= 30 else -(-n_feat // 5))
    fig, axes = figure(
        n_inst,
        4,
        width=MAX_WIDTH,
        height=2.45 * n_inst + 1.3,
        gridspec_kw=dict(width_ratios=[0.9, 2.0, 0.9, 2.0]),
    )
    with style():
        for k in range(n_inst):
            for side in range(2):
                bx, ax = axes[k, 2 * side], axes[k, 2 * side + 1]
                bx.barh(
                    np.arange(n_feat),
                    norms[side][k],
                    color=sup_cmap(sup_norm(sups[side][k])),
                    edgecolor="0.3",
                    lw=0.5,
                    height=0.8,
                )
                bx.set_ylim(n_feat - 0.5, -0.5)
                bx.set_xlim(0, top)
                bx.set_xticks([0, 1])
                bx.set_yticks(ticks)
                bx.set_ylabel("feature")
                im = ax.imshow(grams[side][k], cmap=GRAM_CMAP, vmin=-vmax, vmax=vmax)
                ax.set_xticks(ticks)
                ax.set_yticks(ticks)
                ax.tick_params(length=0)
                name = labels[side] if titles is None else f"{labels[side]}, {titles[k]}"
                ax.set_title(name)
                if k == n_inst - 1:
                    bx.set_xlabel(r"$\|W_i\|$")
                    ax.set_xlabel("feature")
        mappable = plt.cm.ScalarMappable(norm=sup_norm, cmap=sup_cmap)
        fig.colorbar(mappable, ax=list(axes[-1, :2]), orientation="horizontal", label="superposition")
        fig.colorbar(im, ax=list(axes[-1, 2:]), orientation="horizontal", label=r"$W_i \cdot W_j$")
    return finish(fig)


def _log_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway (in log) between log-spaced centres."""
    logc = np.log10(centres)
    mid = (logc[1:] + logc[:-1]) / 2
    return 10 ** np.concatenate([[2 * logc[0] - mid[0]], mid, [2 * logc[-1] - mid[-1]]])


def phase_diagram(
    relative_importance,
    density,
    phases,
    *,
    boundaries=None,
    mark=None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Phase diagrams: what the extra feature does in each cell of a (density, importance) grid.

    Each cell is coloured by its phase (`PHASE_COLOURS`, with a legend); both axes are
    logarithmic. Boundaries (e.g. `toy_lib.theory.boundaries`) are drawn as black lines over
    the cells, and cells in ``mark`` (e.g. where the trained model disagrees with the theory)
    get a black cross.

    Args:
        relative_importance: ``(importance,)`` positive, increasing: the columns' centres.
        density: ``(density,)`` in (0, 1]: the rows' centres.
        phases: ``(panel, density, importance)`` (or one ``(density, importance)`` grid) of phase
            names from `PHASE_COLOURS`.
        boundaries: ``None``, or one list per panel of ``(relative_importance, density)`` curves.
        mark: ``None``, or booleans of the shape of ``phases``.
        titles: one title per panel.
    """
    r = _validate.real_array(relative_importance, "relative_importance", ndim=(1,))
    p = _validate.real_array(density, "density", ndim=(1,))
    if r.size < 2 or (r <= 0).any() or np.any(np.diff(r) <= 0):
        raise _validate.fail("relative_importance", relative_importance, "at least 2 increasing numbers > 0")
    if p.size < 2 or (p <= 0).any() or (p > 1).any() or len(np.unique(p)) != p.size:
        raise _validate.fail("density", density, "at least 2 distinct densities in (0, 1]")
    grid = np.asarray(phases, dtype=object)
    if grid.ndim == 2:
        grid = grid[None]
    if grid.ndim != 3 or grid.shape[1:] != (p.size, r.size):
        raise _validate.fail(
            "phases",
            phases,
            f"phase names of shape (panel, {p.size}, {r.size}) (density, importance)",
            f"shape {np.shape(phases)}",
        )
    unknown = sorted({str(v) for v in grid.ravel()} - set(PHASE_COLOURS))
    if unknown:
        raise _validate.fail("phases", phases, f"names among {', '.join(PHASE_COLOURS)}", repr(unknown[0]))
    n_panels = grid.shape[0]
    titles = _labels(titles, n_panels, "titles", "panel")
    if boundaries is not None:
        boundaries = list(boundaries)
        if len(boundaries) != n_panels:
            raise _validate.fail(
                "boundaries", boundaries, f"one list of curves per panel ({n_panels})", f"{len(boundaries)}"
            )
    if mark is not None:
        mark_arr = np.asarray(mark)
        if mark_arr.ndim == 2:
            mark_arr = mark_arr[None]
        if mark_arr.shape != grid.shape or mark_arr.dtype != bool:
            raise _validate.fail(
                "mark", mark, f"booleans of shape {grid.shape}", f"{mark_arr.dtype} of shape {mark_arr.shape}"
            )
    names = list(PHASE_COLOURS)
    cmap = ListedColormap([PHASE_COLOURS[n] for n in names])
    codes = np.vectorize(names.index)(grid.astype(str)).astype(float)
    r_edges, p_order = _log_edges(r), np.argsort(p)
    p_sorted = p[p_order]
    p_edges = _log_edges(p_sorted)
    panel = min(3.3, (MAX_WIDTH - 0.2) / n_panels)
    fig, axes = figure(1, n_panels, width=min(MAX_WIDTH, panel * n_panels + 0.2), height=panel + 1.5)
    with style():
        for k, ax in enumerate(axes.flat):
            ax.pcolormesh(r_edges, p_edges, codes[k][p_order], cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5)
            if boundaries is not None:
                for br, bp in boundaries[k]:
                    ax.plot(br, bp, color="black", lw=2.0)
            if mark is not None:
                rows, cols = np.nonzero(mark_arr[k])
                ax.scatter(r[cols], p[rows], marker="x", color="black", s=40, lw=1.5, zorder=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(r_edges[0], r_edges[-1])
            ax.set_ylim(p_edges[0], p_edges[-1])
            ax.set_xlabel("relative importance $r$")
            if k == 0:
                ax.set_ylabel("density $p$")
            if titles is not None:
                ax.set_title(titles[k])
        present = [n for n in names if (grid == n).any()]
        handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLOURS[n]) for n in present]
        fig.legend(
            handles,
            [f"extra feature {n}" for n in present],
            loc="outside lower center",
            ncol=2,
            frameon=False,
        )
    return finish(fig)


# --------------------------------------------------------------------------- feature dimensionality sweeps


def _sweep(x, W, x_name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` ``(k,)`` of positive numbers and ``W`` ``(k, hidden, feature)``, checked together."""
    xs = _array(x, x_name, 1, f"(k,) {what}, one per model")
    if xs.size == 0 or xs.min() <= 0:
        raise _validate.fail(x_name, x, f"a non-empty 1-D array of positive {what}")
    arr = _weights(W)
    if arr.shape[0] != xs.shape[0]:
        raise _validate.fail(
            "W",
            W,
            f"one model per entry of {x_name}: shape ({xs.shape[0]}, hidden, feature)",
            f"shape {arr.shape}",
        )
    return xs, arr


def _density_axis(ax, density: np.ndarray) -> np.ndarray:
    """Log x axis of ``1 / (1 - S) = 1 / density``; returns the x values."""
    x = 1.0 / density
    ax.set_xscale("log")
    ax.set_xlabel(r"$1/(1-S)$: one over the feature density")
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if 0.9 * x.min() <= t <= 1.1 * x.max()]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    return x


def _spread_labels(values: Sequence[float], gap: float) -> list[float]:
    """Label heights for reference lines at ``values`` (largest first), moved down just enough
    that consecutive labels are at least ``gap`` apart."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else min(v, out[-1] - gap))
    return out


@_in_style
def dimensions_per_feature_curve(density, W, *, plateau: tuple[int, int] | None = None) -> Figure:
    """Dimensions per feature ``m / ||W||_F²`` (`toy_lib.metrics.dimensions_per_feature`) of
    every model of a sparsity sweep, against ``1 / (1 - S)`` on a log axis, with dotted
    reference lines at 1 and 1/2.

    Args:
        density: ``(k,)`` the feature density ``1 - S`` of each model, in (0, 1].
        W: ``(k, hidden, feature)`` the trained weights, in the order of ``density``.
        plateau: optional ``(start, stop)`` indices (as `toy_lib.metrics.longest_run` returns):
            the models ``start`` to ``stop - 1`` are shaded as the plateau at 1/2.
    """
    p, arr = _sweep(density, W, "density", "densities")
    if p.max() > 1:
        raise _validate.fail("density", density, "densities 1 - S in (0, 1]")
    dpf = metrics.dimensions_per_feature(arr)
    fig, axes = figure(1, 1, height=3.8)
    ax = axes[0, 0]
    x = _density_axis(ax, p)
    if plateau is not None:
        start, stop = (_validate.integer(v, "plateau", minimum=0, maximum=len(p)) for v in plateau)
        if stop - start < 1:
            raise _validate.fail("plateau", plateau, f"(start, stop) with 0 <= start < stop <= {len(p)}")
        ax.axvspan(x[start], x[stop - 1], color="0.88", zorder=0, label="plateau at 1/2")
    for level, text in ((1.0, "1"), (0.5, "1/2")):
        ax.axhline(level, color="0.45", ls=":", lw=1.2)
        ax.text(1.01, level, text, va="center", ha="left", color="0.3", transform=ax.get_yaxis_transform())
    ax.plot(x, dpf, color="black", marker="o", ms=5, lw=1.6, label=r"$m / \|W\|_F^2$")
    ax.set_ylim(0, max(1.1, float(dpf.max()) * 1.05))
    ax.set_ylabel("dimensions per feature")
    ax.legend(loc="upper right", frameon=False)
    return fig


@_in_style
def dimensionality_scatter(density, W, *, min_norm: float = metrics.REPRESENTED_NORM) -> Figure:
    """Every represented feature's dimensionality ``D_i`` (`toy_lib.metrics.feature_dimensionality`)
    as a dot at its model's ``1 / (1 - S)``, the dimensions per feature ``m / ||W||_F²`` as a
    line over them, and a labelled reference line at each plateau value of
    `toy_lib.metrics.PLATEAU_GEOMETRIES` (1, 3/4, 2/3, 1/2, 2/5, 3/8, with its geometry).

    Args:
        density: ``(k,)`` the feature density ``1 - S`` of each model, in (0, 1].
        W: ``(k, hidden, feature)`` the trained weights, in the order of ``density``.
        min_norm: features with a larger norm are drawn (default
            `toy_lib.metrics.REPRESENTED_NORM`); the others have no direction worth a dot.
    """
    from fractions import Fraction

    p, arr = _sweep(density, W, "density", "densities")
    if p.max() > 1:
        raise _validate.fail("density", density, "densities 1 - S in (0, 1]")
    min_norm = _validate.real(min_norm, "min_norm", low=0.0)
    D = metrics.feature_dimensionality(arr)
    shown = metrics.feature_norms(arr) > min_norm
    fig, axes = figure(1, 1, height=4.8)
    ax = axes[0, 0]
    x = _density_axis(ax, p)
    names = {"a dimension of its own": "alone", "antipodal pair": "pair", "square antiprism": "antiprism"}
    values = [g[0] for g in metrics.PLATEAU_GEOMETRIES]
    heights = _spread_labels(values, gap=0.05)
    for (value, name, _, _), y in zip(metrics.PLATEAU_GEOMETRIES, heights):
        ax.axhline(value, color="0.55", ls=":", lw=1.1, zorder=1)
        frac = Fraction(value).limit_denominator(10)
        label = f"{frac}  {names.get(name, name)}"
        ax.text(1.01, y, label, va="center", ha="left", color="0.25", transform=ax.get_yaxis_transform())
    xs = np.broadcast_to(x[:, None], D.shape)[shown]
    ax.scatter(
        xs, D[shown], s=14, color=FEATURE_COLOURS[0], alpha=0.35, lw=0, zorder=2, label="$D_i$ of a feature"
    )
    ax.plot(x, metrics.dimensions_per_feature(arr), color="black", lw=1.6, zorder=3, label=r"$m / \|W\|_F^2$")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("feature dimensionality")
    ax.legend(loc="lower left", frameon=False)
    return fig


@_in_style
def adversarial_gain_curve(density, gain, W) -> Figure:
    """Two panels over one sparsity axis (``1 / (1 - S)``, log scale): on top, each model's
    adversarial gain (`toy_lib.geometry.adversarial_gain`) with a dotted line at 1, the most a
    model without superposition allows; below, its features per dimension ``||W||_F² / m``
    (one over `toy_lib.metrics.dimensions_per_feature`), with a dotted line at 1.

    Args:
        density: ``(k,)`` the feature density ``1 - S`` of each model, in (0, 1].
        gain: ``(k,)`` each model's adversarial gain, in the order of ``density``.
        W: ``(k, hidden, feature)`` the trained weights, in the order of ``density``.
    """
    p, arr = _sweep(density, W, "density", "densities")
    if p.max() > 1:
        raise _validate.fail("density", density, "densities 1 - S in (0, 1]")
    g = _array(gain, "gain", 1, "(k,) gains, one per model")
    if g.shape != p.shape or g.min() < 0:
        raise _validate.fail("gain", gain, f"{p.size} non-negative gains, one per entry of density")
    dpf = metrics.dimensions_per_feature(arr)
    fpd = np.where(dpf > 0, 1.0 / np.where(dpf > 0, dpf, 1.0), 0.0)
    fig, axes = figure(2, 1, height=5.6, sharex=True)
    for ax, values, label in (
        (axes[0, 0], g, "adversarial gain"),
        (axes[1, 0], fpd, r"features per dimension $\|W\|_F^2 / m$"),
    ):
        x = _density_axis(ax, p)
        ax.axhline(1.0, color="0.45", ls=":", lw=1.2)
        ax.plot(x, values, color="black", marker="o", ms=5, lw=1.6)
        ax.set_ylim(0, float(values.max()) * 1.1)
        ax.set_ylabel(label)
    axes[0, 0].set_xlabel("")
    return fig


@_in_style
def firing_rate_histogram(rates, *, reference: float | None = None, bins: int = 40) -> Figure:
    """How often each latent of an SAE fires: a histogram of the live latents' firing rates on a
    log axis (a dead latent, rate 0, has no place on it: the title counts them).

    Args:
        rates: ``(latent,)`` firing rates in [0, 1] (`toy_lib.metrics.firing_rates`, or counts
            divided by the number of inputs).
        reference: optional rate in (0, 1] marked by a dashed line (``k / d_sae`` for a TopK
            SAE, the average rate it imposes).
        bins: the number of bars.
    """
    r = _array(rates, "rates", 1, "(latent,) firing rates in [0, 1]")
    if r.size == 0 or r.min() < 0 or r.max() > 1:
        raise _validate.fail("rates", rates, "a non-empty (latent,) array of firing rates in [0, 1]")
    live = r[r > 0]
    if live.size == 0:
        raise _validate.fail("rates", rates, "at least one live latent (a rate above 0)", "every latent dead")
    bins = _validate.integer(bins, "bins", minimum=1)
    fig, axes = figure(height=3.3)
    ax = axes[0, 0]
    ax.hist(np.log10(live), bins=bins, color="0.35")
    if reference is not None:
        ref = _validate.real(
            reference, "reference", low=0.0, high=1.0, low_open=True, expected="a rate in (0, 1]"
        )
        ax.axvline(np.log10(ref), color="0.1", ls="--", lw=1.5)
    ax.set_xlabel("firing rate (log$_{10}$ of the fraction of inputs)")
    ax.set_ylabel("latents")
    dead = r.size - live.size
    ax.set_title(f"{live.size:,} live latents, {dead:,} dead")
    return fig


@_in_style
def sparser_feature_collapse(
    ratio, W, *, feature: int = -1, collapse: tuple[float, float] | None = None
) -> Figure:
    """A 2-D model whose feature ``feature`` is made sparser than the others, model by model:
    that feature's norm (top) and every other feature's dimensionality (bottom, each in its
    colour), against how many times sparser it is (log axis), with reference lines at 2/5 (a
    pentagon) and 1/2 (antipodal pairs) and, optionally, the interval where the geometry
    changes shaded.

    Args:
        ratio: ``(k,)`` how many times sparser the feature is in each model (its density is the
            others' divided by this), positive.
        W: ``(k, hidden, feature)`` the trained weights, in the order of ``ratio``.
        feature: the feature made sparser (default the last).
        collapse: optional ``(low, high)`` ratios: the last model still in the first geometry
            and the first in the second, shaded and labelled.
    """
    r, arr = _sweep(ratio, W, "ratio", "ratios")
    n_feat = arr.shape[-1]
    feature = _validate.integer(feature, "feature", minimum=-n_feat, maximum=n_feat - 1) % n_feat
    norms = metrics.feature_norms(arr)
    D = metrics.feature_dimensionality(arr)
    fig, axes = figure(2, 1, height=5.6, sharex=True)
    top, bottom = axes[0, 0], axes[1, 0]
    if collapse is not None:
        low, high = (_validate.positive(v, "collapse") for v in collapse)
        if not low < high:
            raise _validate.fail("collapse", collapse, "(low, high) ratios with low < high")
        for ax in (top, bottom):
            ax.axvspan(low, high, color="0.85", zorder=0)
        top.text(low / 1.03, 0.5, "collapse", ha="right", va="center", color="0.3")
    colour = feature_colour(feature, n_feat)
    top.plot(r, norms[:, feature], color=colour, marker="o", ms=5, lw=1.6)
    top.set_ylabel(f"norm of\nfeature {feature}")
    top.set_ylim(0, max(1.3, float(norms[:, feature].max()) * 1.1))
    for level, text in ((0.4, "2/5 pentagon"), (0.5, "1/2 pair")):
        bottom.axhline(level, color="0.5", ls=":", lw=1.1)
        bottom.text(
            1.01, level, text, va="center", ha="left", color="0.25", transform=bottom.get_yaxis_transform()
        )
    for i in range(n_feat):
        if i != feature:
            bottom.plot(r, D[:, i], color=feature_colour(i, n_feat), marker="o", ms=4, lw=1.4, label=str(i))
    bottom.set_ylim(0.3, 0.6)
    bottom.set_ylabel("dimensionality $D_i$\nof the others")
    bottom.legend(title="feature", loc="upper left", frameon=False, ncol=n_feat - 1)
    bottom.set_xscale("log")
    ticks = [t for t in (1, 1.5, 2, 3, 4, 5, 6, 8, 10) if 0.95 * r.min() <= t <= 1.05 * r.max()]
    bottom.set_xticks(ticks, [f"{t:g}" for t in ticks])
    bottom.minorticks_off()
    bottom.set_xlabel(f"how many times sparser feature {feature} is than the others")
    return fig


# --------------------------------------------------------------------------- superposition in richer settings


@_in_style
def neuron_loadings(
    W, titles: Sequence[str] | None = None, *, max_cols: int = 3, height: float = 2.6
) -> Figure:
    """Each neuron's weight on every feature, one stacked bar per neuron, coloured by feature.

    For a layer ``h = ReLU(W x)`` with ``W`` of shape ``(instance, neuron, feature)``: in each
    panel (one instance), neuron ``k``'s bar stacks its weights ``W[k, i]`` on every feature
    ``i``, the positive ones upwards from 0 and the negative ones downwards, each segment in
    feature ``i``'s colour (`feature_colour`; the colour bar numbers the features). A
    monosemantic neuron is a bar of one colour; a polysemantic one stacks several.

    Args:
        W: ``(instance, neuron, feature)`` or ``(neuron, feature)`` weights.
        titles: one title per panel, or ``None``.
        max_cols: panels per row (a positive integer).
        height: height of one row of panels, in inches.

    Raises:
        ValueError: naming the argument, for weights that are empty, not finite or of the wrong
            shape, titles of the wrong number, or a bad ``max_cols`` or ``height``.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import BoundaryNorm, ListedColormap

    arr = _weights(W)
    n_inst, n_neuron, n_feat = arr.shape
    labels = _labels(titles, n_inst, "titles", "panel")
    max_cols = _validate.integer(max_cols, "max_cols", minimum=1)
    height = _validate.positive(height, "height")
    rows, cols = panel_grid(n_inst, max_cols)
    fig, axes = figure(rows, cols, height=height * rows + 0.6)
    colours = [feature_colour(i, n_feat) for i in range(n_feat)]
    for k in range(rows * cols):
        ax = axes.flat[k]
        if k >= n_inst:
            ax.set_visible(False)
            continue
        # every segment of every bar in one collection (a Rectangle per segment is slow to draw)
        w = arr[k].T  # (feature, neuron)
        pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
        top_pos, top_neg = np.cumsum(pos, axis=0), np.cumsum(neg, axis=0)
        verts, faces = [], []
        for tops, heights in ((top_pos, pos), (top_neg, neg)):
            feat, neu = np.nonzero(heights)
            lo, hi = tops[feat, neu] - heights[feat, neu], tops[feat, neu]
            left, right = neu - 0.4, neu + 0.4
            verts.append(np.stack([np.stack([left, lo], 1), np.stack([right, lo], 1),
                                   np.stack([right, hi], 1), np.stack([left, hi], 1)], 1))  # fmt: skip
            faces.extend(colours[i] for i in feat)
        ax.add_collection(PolyCollection(np.concatenate(verts), facecolors=faces, linewidths=0))
        ax.set_xlim(-0.6, n_neuron - 0.4)
        up, down = top_pos[-1], top_neg[-1]
        ax.axhline(0, color="0.2", lw=0.8)
        lim = max(float(up.max()), float(-down.min()))  # each panel on its own symmetric scale
        ax.set_ylim(-1.05 * lim if lim > 0 else -1.0, 1.05 * lim if lim > 0 else 1.0)
        ticks = _tick_positions(n_neuron)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        if k // cols == rows - 1 or k + cols >= n_inst:
            ax.set_xlabel("neuron")
        if k % cols == 0:
            ax.set_ylabel("weight")
        if labels:
            ax.set_title(labels[k])
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(n_feat + 1) - 0.5, n_feat)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), shrink=0.9)
    ticks = _tick_positions(n_feat)
    bar.set_ticks(ticks, labels=[str(t) for t in ticks])
    bar.set_label("feature")
    return finish(fig)


# --------------------------------------------------------------------------- evaluating SAEs
# Figures of "Evaluating SAEs", part A (data from `toy_lib.evaluation` and `toy_lib.metrics`).

#: Markers of the SAE architectures in the sparsity-reconstruction figure (greys, not feature
#: colours: colour means "feature" everywhere in the book).
ARCHITECTURE_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _named_series(values, name: str, labels: Sequence[str]) -> list[np.ndarray]:
    """One 1-D array of finite numbers per label (a list of arrays, or a dict by label)."""
    if isinstance(values, dict):
        values = [values.get(label) for label in labels]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != len(labels):
        raise _fail(name, values, f"one 1-D array per label ({len(labels)})")
    return [_array(v, f"{name}[{k}]", 1, "(point,)") for k, v in enumerate(values)]


@_in_style
def pareto_frontier(l0, error, labels: Sequence[str], *, ylabel: str = "MSE") -> Figure:
    """The sparsity-reconstruction trade-off: one marker per SAE (a grey shade and a shape per
    architecture), L0 on x, the reconstruction error on y (log scale), and the Pareto frontier of
    all the points together as a black step line (`toy_lib.evaluation.pareto_front`); a point on
    the frontier is drawn filled, a dominated one hollow.

    Args:
        l0: one ``(point,)`` array per architecture (a list in the order of ``labels``, or a dict
            by label): each SAE's L0.
        error: the same shapes: each SAE's reconstruction error (positive).
        labels: the architectures' names, at most ``len(ARCHITECTURE_MARKERS)``.
        ylabel: the label of the y axis.
    """
    from .evaluation import pareto_front

    labels = _sae_labels(labels, "labels")
    _sae_count(len(labels), "labels", labels, len(ARCHITECTURE_MARKERS), "architectures")
    xs = _named_series(l0, "l0", labels)
    ys = _named_series(error, "error", labels)
    for k, (x, y) in enumerate(zip(xs, ys)):
        if x.shape != y.shape:
            raise _fail(f"error[{k}]", y, f"the shape of l0[{k}], {x.shape}")
        if (y <= 0).any():
            raise _validate.fail(f"error[{k}]", y, "positive errors (the y axis is logarithmic)")
    if not isinstance(ylabel, str):
        raise _validate.fail("ylabel", ylabel, "a string", type(ylabel).__name__)
    all_x, all_y = np.concatenate(xs), np.concatenate(ys)
    on = pareto_front(all_x, all_y)
    fig, axes = figure(1, 1, height=4.4)
    ax = axes[0, 0]
    order = np.argsort(all_x[on])
    fx, fy = all_x[on][order], all_y[on][order]
    ax.step(fx, fy, where="post", color="0.0", lw=1.4, label="Pareto frontier", zorder=1)
    start = 0
    for k, (label, x, y) in enumerate(zip(labels, xs, ys)):
        grey = str(round(min(0.15 * k, 0.7), 2))
        mask = on[start : start + len(x)]
        start += len(x)
        marker = ARCHITECTURE_MARKERS[k]
        ax.scatter(x[mask], y[mask], marker=marker, s=70, color=grey, edgecolor="0.0", zorder=3)
        ax.scatter(
            x[~mask], y[~mask], marker=marker, s=70, facecolor="none", edgecolor=grey, lw=1.6, zorder=2
        )
        ax.scatter([], [], marker=marker, s=70, color=grey, edgecolor="0.0", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("L0 (active latents per input)")
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper right", frameon=False, title="filled: on the frontier")
    return fig


@_in_style
def dead_latent_curves(steps, dead_fraction, labels: Sequence[str]) -> Figure:
    """The fraction of dead latents over training, one grey line with markers per SAE.

    Args:
        steps: ``(snapshot,)`` the training steps (`toy_lib.SAEResult.snapshot_steps`).
        dead_fraction: ``(series, snapshot)`` fractions from 0 to 1 (the mean over latents of
            `toy_lib.SAEResult.dead_snapshots`).
        labels: one name per series.
    """
    s = _array(steps, "steps", 1, "(snapshot,)")
    d = _array(dead_fraction, "dead_fraction", 2, "(series, snapshot)")
    if d.shape[1] != len(s):
        raise _fail("dead_fraction", d, f"(series, snapshot) with snapshot = {len(s)} (the steps)")
    if (d < 0).any() or (d > 1).any():
        raise _validate.fail("dead_fraction", dead_fraction, "fractions from 0 to 1")
    labels = _sae_labels(labels, "labels", d.shape[0], "series")
    fig, axes = figure(1, 1, height=4.0)
    ax = axes[0, 0]
    for k, (label, row) in enumerate(zip(labels, d)):
        style = dict(_series_style(k))
        style["marker"] = ARCHITECTURE_MARKERS[k % len(ARCHITECTURE_MARKERS)]
        ax.plot(s, row, lw=1.8, ms=7, label=label, **style)
    ax.set_ylim(-0.03, max(0.1, float(d.max()) * 1.15))
    ax.set_xlabel("training step")
    ax.set_ylabel("fraction of latents dead")
    ax.legend(loc="upper left", frameon=False)
    return fig


@_in_style
def intervention_effects(
    effect, *, xlabel: str = "model output (feature)", ylabel: str = "feature edited"
) -> Figure:
    """The change in the toy model's outputs (columns) when the latent of one feature (rows) is
    edited, ``GRAM_CMAP`` centred at 0 with a colour bar; rows and columns numbered.

    Args:
        effect: ``(edit, output)`` finite changes (`toy_lib.evaluation.intervene`: after - before).
        xlabel: the label of the columns' axis.
        ylabel: the label of the rows' axis.
    """
    e = _sae_array(effect, "effect", ("edit", "output"))
    for name, text in (("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str):
            raise _validate.fail(name, text, "a string", type(text).__name__)
    n_rows, n_cols = e.shape
    _sae_count(n_rows, "effect", effect, SAE_MAX_ITEMS, "rows")
    _sae_count(n_cols, "effect", effect, SAE_MAX_ITEMS, "columns")
    lim = max(float(np.abs(e).max()), 1e-9)
    fig, axes = figure(1, 1, height=min(6.5, 1.5 + 0.27 * n_rows))
    ax = axes[0, 0]
    im = ax.imshow(e, cmap=GRAM_CMAP, vmin=-lim, vmax=lim, aspect="auto")
    step = 1 if max(n_rows, n_cols) <= 12 else max(2, -(-max(n_rows, n_cols) // 24))
    ax.set_xticks(range(0, n_cols, step))
    ax.set_yticks(range(0, n_rows, step))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label="change in output")
    return fig
