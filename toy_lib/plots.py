"""Figures of toy models. Every function returns a matplotlib `Figure` and never calls show()."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from . import metrics


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _instances(W) -> np.ndarray:
    arr = _np(W).astype(np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"W has shape {arr.shape}: expected (instance, hidden, feature) or (hidden, feature)"
        )
    return arr


def feature_arrows(
    W,
    importance=None,
    titles: Sequence[str] | None = None,
    *,
    panel_size: float = 2.4,
    cmap: str = "viridis",
) -> Figure:
    """A row of 2-D panels, one per instance, each feature drawn as an arrow from the origin.

    Args:
        W: ``(instance, 2, feature)`` (or one ``(2, feature)`` model).
        importance: ``(instance, feature)`` or ``(feature,)``, colours the arrows (brighter =
            more important); ``None`` draws every arrow in one colour.
        titles: one title per panel (e.g. the sparsity of each setting).
    """
    arr = _instances(W)
    n_inst, n_hidden, n_feat = arr.shape
    if n_hidden != 2:
        raise ValueError(f"W has {n_hidden} hidden dimensions: expected 2 for arrows in a plane")
    if titles is not None and len(titles) != n_inst:
        raise ValueError(f"titles has {len(titles)} entries: expected one per instance ({n_inst})")
    imp = None if importance is None else np.broadcast_to(_np(importance), (n_inst, n_feat))
    colours = plt.get_cmap(cmap)
    lim = max(1.2, 1.1 * float(np.abs(arr).max()))
    fig, axes = plt.subplots(1, n_inst, figsize=(panel_size * n_inst, panel_size + 0.3), squeeze=False)
    for i, ax in enumerate(axes[0]):
        if imp is None or imp[i].max() == imp[i].min():
            norm = Normalize(vmin=0, vmax=1)
        else:  # stretch the colours over this panel's range of importances
            norm = Normalize(vmin=imp[i].min(), vmax=imp[i].max())
        for f in range(n_feat):
            colour = colours(0.35) if imp is None else colours(0.15 + 0.85 * norm(imp[i, f]))
            x, y = arr[i, 0, f], arr[i, 1, f]
            ax.plot([0, x], [0, y], color=colour, lw=2)
            ax.scatter([x], [y], color=colour, s=25, zorder=3)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.85", lw=0.8, zorder=0)
        ax.axvline(0, color="0.85", lw=0.8, zorder=0)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    fig.tight_layout()
    return fig


def wtw_and_norms(
    W,
    titles: Sequence[str] | None = None,
    *,
    panel_size: float = 2.6,
    cmap: str = "RdBu_r",
    superposition_cmap: str = "plasma",
) -> Figure:
    """For each instance: the ``WᵀW`` heatmap above, the feature norms below as bars.

    The bar of feature ``i`` has height ``||W_i||`` and is coloured by its superposition score
    ``Σ_{j≠i} (Ŵ_i · W_j)²`` (dark: alone in its direction; bright: shares it).

    Args:
        W: ``(instance, hidden, feature)`` (or one ``(hidden, feature)`` model).
        titles: one title per instance.
    """
    arr = _instances(W)
    n_inst, _, n_feat = arr.shape
    if titles is not None and len(titles) != n_inst:
        raise ValueError(f"titles has {len(titles)} entries: expected one per instance ({n_inst})")
    gram = np.swapaxes(arr, 1, 2) @ arr
    vmax = max(1.0, float(np.abs(gram).max()))
    norms = metrics.feature_norms(arr)
    sup = metrics.superposition_score(arr)
    sup_norm = Normalize(vmin=0, vmax=max(1.0, float(sup.max())))
    fig, axes = plt.subplots(
        2,
        n_inst,
        figsize=(panel_size * n_inst, 2 * panel_size),
        squeeze=False,
        gridspec_kw=dict(height_ratios=[1.3, 1]),
    )
    for i in range(n_inst):
        ax = axes[0, i]
        im = ax.imshow(gram[i], cmap=cmap, vmin=-vmax, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
        bx = axes[1, i]
        bx.bar(np.arange(n_feat), norms[i], color=plt.get_cmap(superposition_cmap)(sup_norm(sup[i])))
        bx.set_ylim(0, max(1.2, 1.1 * float(norms.max())))
        bx.set_xticks([])
        bx.set_xlabel("feature")
        if i == 0:
            bx.set_ylabel(r"$\|W_i\|$")
            ax.set_ylabel(r"$W^\top W$")
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8, label=r"$W_i \cdot W_j$")
    sm = plt.cm.ScalarMappable(norm=sup_norm, cmap=superposition_cmap)
    fig.colorbar(sm, ax=axes[1, :].tolist(), shrink=0.8, label="superposition")
    return fig


def loss_curve(loss_history, labels: Sequence[str] | None = None, *, smooth: int = 50) -> Figure:
    """Training loss against step on a log scale, one line per instance.

    Args:
        loss_history: ``(step, instance)`` (or ``(step,)``).
        labels: one label per instance.
        smooth: width of the moving average drawn over the raw (faint) curve.
    """
    hist = _np(loss_history).astype(np.float64)
    if hist.ndim == 1:
        hist = hist[:, None]
    steps = np.arange(1, hist.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i in range(hist.shape[1]):
        (line,) = ax.plot(steps, hist[:, i], alpha=0.25, lw=0.8)
        if smooth > 1 and hist.shape[0] >= smooth:
            kernel = np.ones(smooth) / smooth
            avg = np.convolve(hist[:, i], kernel, mode="valid")
            ax.plot(
                steps[smooth - 1 :], avg, color=line.get_color(), label=None if labels is None else labels[i]
            )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if labels is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
