"""Phase diagrams of superposition: which arrangement of the features wins, in closed form, and
what a trained model actually did.

The setting of Elhage et al. (2022): ``n`` features of equal density ``p`` (each active with
probability ``p``, with a value uniform on [0, 1]), all of importance 1 except the last, the
*extra* feature, whose importance ``r`` is the *relative importance*; ``m = n - 1`` hidden
dimensions. For ``2 -> 1`` and ``3 -> 2`` a handful of arrangements (the *candidates*) are worth
comparing, each with unit-length arrows, zero bias for a represented feature and a bias equal to
the mean value ``p/2`` for an ignored one. Their expected losses (summed over features, without
the ``1/n`` of the training loss) are polynomials in ``p`` and ``r``:

- a feature of importance ``I`` that the model ignores costs ``I (p/3 - p²/4)``: the variance of
  its value, ``E[x²] - E[x]² = p/3 - p²/4`` (`ignored_loss`);
- two features in an antipodal pair (``W_j = -W_i``) are both reconstructed exactly unless both
  are active (probability ``p²``); then each comes back as ``ReLU(x_i - x_j)``, off by
  ``min(x_i, x_j)``, and ``E[min(U, V)²] = 1/6``: ``(I_i + I_j) p²/6`` (`antipodal_loss`);
- a feature with a dimension of its own costs nothing;
- three features at 120° (a triangle, for ``3 -> 2``): each pair that is active alone costs
  ``(I_i + I_j)/16`` (``E[min(U, V/2)²] = 1/16``), and all three active cost
  ``Σ_i I_i E[min(U, (V + W)/2)²] = Σ_i I_i / 6`` (`triangle_loss`).

`candidate_losses` lists the candidates of a setting, `phase` names the winner (what the extra
feature does: ``"ignored"``, ``"dedicated"`` or ``"antipodal"``), `boundaries` gives the lines
between the phases, and `near_boundary` the cells a comparison with trained models should leave
out. For ``2 -> 1`` the boundaries are ``p = 4r / (2 + 5r)`` (``r < 1``, ignored above,
antipodal below), ``p = 4 / (5 + 2r)`` (``r > 1``, dedicated above) and ``r = 1`` above the
triple point ``p = 4/7``.

`classify_geometry` names what each feature of a trained model does: ``"ignored"`` (norm at most
`metrics.REPRESENTED_NORM`), ``"antipodal"`` (a represented partner with cosine below
``-ANTIPODAL_COS``), ``"dedicated"`` (every other represented feature at ``|cos|`` below
``DEDICATED_COS``) or ``"polygon"`` (it shares its direction any other way: a triangle, a
pentagon).

Every function checks its arguments: a relative importance that is not > 0, a density outside
(0, 1], grids of different shapes or weights of the wrong shape raise a ``ValueError`` naming
the argument, the value and what was expected.
"""

from __future__ import annotations

import numpy as np

from . import _validate, metrics

__all__ = [
    "PHASES",
    "GEOMETRIES",
    "SETTINGS",
    "ANTIPODAL_COS",
    "DEDICATED_COS",
    "ignored_loss",
    "antipodal_loss",
    "triangle_loss",
    "candidate_losses",
    "phase",
    "boundaries",
    "near_boundary",
    "classify_geometry",
]

#: What the extra feature does in a phase diagram, in the order of the phase codes.
PHASES = ("ignored", "dedicated", "antipodal")
#: What `classify_geometry` calls each feature of a trained model.
GEOMETRIES = ("ignored", "dedicated", "antipodal", "polygon")
#: The settings that have candidates, ``n_features`` -> ``n_hidden``.
SETTINGS = {2: 1, 3: 2}
#: A represented partner with a cosine below ``-ANTIPODAL_COS`` makes an antipodal pair.
ANTIPODAL_COS = 0.9
#: A feature is dedicated when every other represented feature is at ``|cos|`` below this.
DEDICATED_COS = 0.3

#: E[min(U, (V + W)/2)²] for independent U, V, W uniform on [0, 1] (see `triangle_loss`).
_TRIPLE = 1 / 6


def _density(value, name: str = "density") -> np.ndarray:
    arr = _validate.real_array(value, name)
    if arr.size == 0:
        raise _validate.fail(name, value, "at least one density in (0, 1]", "an empty array")
    bad = (arr <= 0) | (arr > 1)
    if bad.any():
        raise _validate.fail(
            name, value, "densities in (0, 1] (the probability a feature is active)", f"{arr[bad].flat[0]:g}"
        )
    return arr


def _importance(value, name: str = "relative_importance") -> np.ndarray:
    arr = _validate.real_array(value, name)
    if arr.size == 0:
        raise _validate.fail(name, value, "at least one relative importance > 0", "an empty array")
    if (arr <= 0).any():
        raise _validate.fail(
            name,
            value,
            "relative importances > 0 (the extra feature's importance over the others')",
            f"{arr[arr <= 0].flat[0]:g}",
        )
    return arr


def _grid(relative_importance, density) -> tuple[np.ndarray, np.ndarray]:
    """The two arguments checked, with the same shape (a scalar goes with anything)."""
    r, p = _importance(relative_importance), _density(density)
    if r.ndim and p.ndim and r.shape != p.shape:
        raise _validate.fail(
            "density",
            density,
            f"the shape of relative_importance {r.shape} (one density per cell) or a single number",
            f"shape {p.shape}",
        )
    return np.broadcast_arrays(r, p)


def _setting(n_features) -> int:
    n = _validate.integer(n_features, "n_features", minimum=1)
    if n not in SETTINGS:
        raise _validate.fail("n_features", n_features, "2 (the 2 -> 1 model) or 3 (the 3 -> 2 model)")
    return n


def ignored_loss(density) -> np.ndarray:
    """``p/3 - p²/4``: the expected squared error of a feature of importance 1 that the model
    ignores (its output is the constant bias, best at the mean ``p/2``). Same shape as
    ``density``, each value in (0, 1]."""
    p = _density(density)
    return p / 3 - p**2 / 4


def antipodal_loss(density) -> np.ndarray:
    """``p²/6``: the expected squared error of one member (importance 1) of an antipodal pair
    with unit-length arrows and zero bias (wrong only when both are active, by ``min(x_i, x_j)``).
    Same shape as ``density``, each value in (0, 1]."""
    p = _density(density)
    return p**2 / 6


def triangle_loss(relative_importance, density) -> np.ndarray:
    """The expected loss of three features at 120° in a plane (unit arrows, zero bias), two of
    importance 1 and one of importance ``r``: each pair active alone costs ``(I_i + I_j)/16``,
    all three active ``(2 + r)/6``.

    Args:
        relative_importance: ``r > 0``, a number or an array.
        density: ``p`` in (0, 1], a number or an array of the same shape.
    """
    r, p = _grid(relative_importance, density)
    pair_alone = p**2 * (1 - p)
    return pair_alone * (2 + (1 + r) + (1 + r)) / 16 + p**3 * (2 + r) * _TRIPLE


def candidate_losses(relative_importance, density, *, n_features: int = 2) -> dict[str, np.ndarray]:
    """The expected loss of every candidate arrangement, per cell.

    Args:
        relative_importance: ``r > 0``, the extra feature's importance (the others have 1); a
            number or an array (a grid).
        density: ``p`` in (0, 1], the probability every feature is active; a number or an array
            of the same shape as ``relative_importance``.
        n_features: 2 (``2 -> 1``) or 3 (``3 -> 2``).

    Returns:
        ``{name: losses}`` in a fixed order, each of the grid's shape. The names say what every
        feature does; `phase` maps them to what the extra feature does.
    """
    n = _setting(n_features)
    r, p = _grid(relative_importance, density)
    ig, ap = p / 3 - p**2 / 4, p**2 / 6
    out = {
        "extra ignored": r * ig,
        "extra dedicated": ig,  # 3 -> 2: one weight-1 feature ignored
        "extra antipodal": (1 + r) * ap,  # 3 -> 2: the other weight-1 feature dedicated
    }
    if n == 3:
        out["pair antipodal, extra dedicated"] = 2 * ap
        out["triangle"] = triangle_loss(r, p)
    return out


#: What the extra feature does in each candidate.
_CANDIDATE_PHASE = {
    "extra ignored": "ignored",
    "extra dedicated": "dedicated",
    "extra antipodal": "antipodal",
    "pair antipodal, extra dedicated": "dedicated",
    "triangle": "polygon",
}


def phase(relative_importance, density, *, n_features: int = 2) -> np.ndarray:
    """What the extra feature does in the lowest-loss candidate: ``"ignored"``, ``"dedicated"``
    or ``"antipodal"`` (``"polygon"`` where the triangle wins, which on r in [0.1, 10] it never
    does).

    Args:
        relative_importance: ``r > 0``, a number or an array (a grid).
        density: ``p`` in (0, 1], a number or an array of the same shape.
        n_features: 2 (``2 -> 1``) or 3 (``3 -> 2``).

    Returns:
        An array of strings of the grid's shape.
    """
    losses = candidate_losses(relative_importance, density, n_features=n_features)
    names = list(losses)
    best = np.argmin(np.stack([losses[k] for k in names]), axis=0)
    return np.vectorize(lambda i: _CANDIDATE_PHASE[names[i]], otypes=[object])(best).astype(str)


def boundaries(
    n_features: int = 2, *, importance_range=(0.1, 10.0), n_points: int = 200
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The lines between the phases, as ``(relative_importance, density)`` curves.

    ``2 -> 1``: ``p = 4r/(2 + 5r)`` for ``r <= 1``, ``p = 4/(5 + 2r)`` for ``r >= 1``, and
    ``r = 1`` from the triple point ``p = 4/7`` up to 1. ``3 -> 2``: the same curve for
    ``r <= 1`` (extra feature ignored above, antipodal with a weight-1 feature below), and the
    whole line ``r = 1`` (for ``r > 1`` the extra feature always has a dimension of its own:
    one weight-1 feature is ignored above ``p = 4/7``, the two weight-1 features share a
    dimension as an antipodal pair below it).

    Args:
        n_features: 2 or 3.
        importance_range: ``(low, high)``, ``0 < low < 1 < high``: the span of ``r`` drawn.
        n_points: points per curve, at least 2.
    """
    n = _setting(n_features)
    lo, hi = (_importance(v, "importance_range") for v in _pair(importance_range))
    lo, hi = float(lo), float(hi)
    if not lo < 1 < hi:
        raise _validate.fail("importance_range", importance_range, "(low, high) with 0 < low < 1 < high")
    k = _validate.integer(n_points, "n_points", minimum=2)
    below = np.geomspace(lo, 1.0, k)
    above = np.geomspace(1.0, hi, k)
    if n == 2:
        return [
            (below, 4 * below / (2 + 5 * below)),
            (above, 4 / (5 + 2 * above)),
            (np.ones(2), np.array([4 / 7, 1.0])),
        ]
    return [(below, 4 * below / (2 + 5 * below)), (np.ones(2), np.array([0.0, 1.0]))]


def _pair(value):
    try:
        items = list(value)
    except TypeError as err:
        raise _validate.fail("importance_range", value, "a pair (low, high)") from err
    if len(items) != 2:
        raise _validate.fail("importance_range", value, "a pair (low, high)", f"{len(items)} entries")
    return items


def near_boundary(relative_importance, density, *, n_features: int = 2, margin: float = 0.15) -> np.ndarray:
    """Boolean, per cell: does the theory's phase change within ``margin`` (in log10 units) of
    the cell, moving ``r`` or ``p`` (or both) by up to ``± margin``? Such cells are left out when
    trained models are compared with the theory. A density moved above 1 is held at 1.

    Args:
        relative_importance, density, n_features: as in `candidate_losses`.
        margin: a number >= 0, in decades.
    """
    r, p = _grid(relative_importance, density)
    m = _validate.real(margin, "margin", low=0.0)
    here = phase(r, p, n_features=n_features)
    near = np.zeros(here.shape, dtype=bool)
    for dr in np.linspace(-m, m, 7):
        for dp in np.linspace(-m, m, 7):
            moved = phase(r * 10**dr, np.minimum(p * 10**dp, 1.0), n_features=n_features)
            near |= moved != here
    return near


def classify_geometry(W) -> np.ndarray:
    """What each feature of trained models does, one of `GEOMETRIES`.

    ``"ignored"``: norm at most `metrics.REPRESENTED_NORM`; ``"antipodal"``: a represented
    partner at cosine below ``-ANTIPODAL_COS``; ``"dedicated"``: every other represented feature
    at ``|cos|`` below ``DEDICATED_COS``; ``"polygon"``: any other sharing of its direction.

    Args:
        W: ``(..., hidden, feature)`` weights of finite numbers.

    Returns:
        An array of strings of shape ``(..., feature)``.
    """
    arr = _validate.real_array(W, "W")
    if arr.ndim < 2 or 0 in arr.shape[-2:]:
        raise _validate.fail(
            "W", W, "an array of shape (..., hidden, feature), not empty", f"shape {arr.shape}"
        )
    norms = metrics.feature_norms(arr)  # (..., feature)
    kept = norms > metrics.REPRESENTED_NORM
    unit = arr / np.where(norms > 0, norms, 1.0)[..., None, :]
    cos = np.swapaxes(unit, -1, -2) @ unit  # (..., feature, feature)
    n = arr.shape[-1]
    others = kept[..., None, :] & ~np.eye(n, dtype=bool)  # (..., i, j): j represented, j != i
    antipodal = (others & (cos < -ANTIPODAL_COS)).any(axis=-1)
    alone = ~(others & (np.abs(cos) >= DEDICATED_COS)).any(axis=-1)
    out = np.full(norms.shape, "polygon", dtype=object)
    out[alone] = "dedicated"
    out[antipodal] = "antipodal"
    out[~kept] = "ignored"
    return out.astype(str)
