"""Measurements of a toy model's geometry, on weights ``W`` of shape ``(..., hidden, feature)``;
and, in the last section, of sparse autoencoders (L0, reconstruction, firing, matching to the
true feature directions).

Every function accepts one model ``(hidden, feature)`` or a batch ``(instance, hidden,
feature)`` (any leading axes), as a torch tensor or a NumPy array, and returns a NumPy array
with the leading axes kept. Column ``W[..., :, i]`` is the direction of feature ``i``;
``Ŵ_i = W_i / ||W_i||``.

Weights must be finite: a NaN or an infinity is refused with a ``ValueError`` (never reported as
an "unlearned" feature). For finite weights every function returns finite numbers, whatever
their scale: a feature whose norm is below `ZERO_NORM` is not learned and gets 0 where a formula
would divide by its norm, and an all-zero ``W`` has 0 dimensions per feature.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _validate

__all__ = [
    "feature_norms",
    "feature_dimensionality",
    "superposition_score",
    "dimensions_per_feature",
    "represented",
    "feature_angles_2d",
    "angular_gaps_2d",
    "ZERO_NORM",
    "REPRESENTED_NORM",
    "l0",
    "mse",
    "explained_variance",
    "firing_rates",
    "dead_fraction",
    "shrinkage",
    "norm_ratio",
    "cosine_matrix",
    "max_cosines",
    "mmcs",
    "recovered_fraction",
    "mcc",
    "matching",
]

#: Norms below this count as zero (the feature is not learned).
ZERO_NORM = 1e-6
#: A feature is "represented" when its norm exceeds this.
REPRESENTED_NORM = 0.5


def _as_weights(W) -> np.ndarray:
    """``W`` as a float64 copy ``(..., hidden, feature)`` of finite numbers, or a clear error."""
    arr = _validate.real_array(W, "W")
    if arr.ndim < 2:
        raise _validate.fail("W", W, "an array of shape (..., hidden, feature)", f"shape {arr.shape}")
    if arr.shape[-2] == 0 or arr.shape[-1] == 0:
        raise _validate.fail(
            "W",
            W,
            "an array of shape (..., hidden, feature) with at least one hidden dimension and feature",
            f"shape {arr.shape}",
        )
    return arr


def _scaled(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(W / s, s)`` with ``s`` the largest ``|W|`` of each model ``(..., 1, 1)`` (1 for an
    all-zero model), so that squares neither overflow nor underflow whatever the scale."""
    scale = np.abs(arr).max(axis=(-2, -1), keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    return arr / scale, scale


def feature_norms(W) -> np.ndarray:
    """``||W_i||`` for every feature: shape ``(..., feature)``.

    Args:
        W: ``(..., hidden, feature)`` weights of finite numbers.
    """
    unit, scale = _scaled(_as_weights(W))
    return _validate.finite_result(np.linalg.norm(unit, axis=-2) * scale[..., 0], "feature_norms", {"W": W})


def _check_gram(arr: np.ndarray, W) -> None:
    """Refuse weights whose ``(..., feature, feature)`` overlaps cannot fit in memory."""
    n_models = int(np.prod(arr.shape[:-2], dtype=np.float64))
    n_feat = arr.shape[-1]
    _validate.check_memory(4 * 8 * n_models * n_feat**2, torch.device("cpu"), {"W": W, "features": n_feat})


def _overlaps(unit: np.ndarray):
    """Norms ``(..., feature)`` and the squared projections ``(Ŵ_i · W_j)²``: ``(..., i, j)``,
    both for weights scaled so that their largest entry is 1 (see `_scaled`)."""
    norms = np.linalg.norm(unit, axis=-2)
    safe = np.where(norms > 0, norms, 1.0)
    direction = unit / safe[..., None, :]
    gram = np.swapaxes(direction, -1, -2) @ unit  # (..., i, j) = Ŵ_i · W_j
    return norms, gram**2


def _with_overlaps(W):
    """``W`` checked, then ``(arr, scale, norms, sq)``: the weights, the scale of `_scaled`, and
    `_overlaps` of the scaled weights."""
    arr = _as_weights(W)
    _check_gram(arr, W)
    unit, scale = _scaled(arr)
    norms, sq = _overlaps(unit)
    return arr, scale, norms, sq


def _learned(arr: np.ndarray) -> np.ndarray:
    """Boolean ``(..., feature)``: the features whose norm is at least `ZERO_NORM`."""
    return feature_norms(arr) > ZERO_NORM


def feature_dimensionality(W) -> np.ndarray:
    """``D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)²`` with the sum including ``j = i``.

    1 for a feature with a dimension to itself, 1/2 for an antipodal pair, 2/3 for a triangle
    in a plane, 2/5 for a pentagon, 3/4 for a tetrahedron; 0 for a feature that is not learned
    (norm below `ZERO_NORM`), so an all-zero ``W`` gives zeros. Always in [0, 1].

    Args:
        W: ``(..., hidden, feature)`` weights of finite numbers.

    Returns:
        ``(..., feature)``.
    """
    arr, _, norms, sq = _with_overlaps(W)  # D is unchanged by scaling W
    learned = _learned(arr)
    denom = np.where(learned, sq.sum(axis=-1), 1.0)
    return np.where(learned, norms**2 / denom, 0.0)


def superposition_score(W) -> np.ndarray:
    """``Σ_{j≠i} (Ŵ_i · W_j)²``: how much other features share feature ``i``'s direction.

    0 when no other feature overlaps it, and 0 for a feature that is not learned (norm below
    `ZERO_NORM`; an all-zero ``W`` gives zeros).

    Args:
        W: ``(..., hidden, feature)`` weights of finite numbers.

    Returns:
        ``(..., feature)``.
    """
    arr, scale, _, sq = _with_overlaps(W)
    n = sq.shape[-1]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
        off = (sq * (1.0 - np.eye(n))).sum(axis=-1) * scale[..., 0] ** 2
    score = np.where(_learned(arr), off, 0.0)
    return _validate.finite_result(score, "superposition_score", {"W": W})


def dimensions_per_feature(W) -> np.ndarray:
    """``m / ||W||_F²``: hidden dimensions per (unit of) feature; shape ``(...)``.

    ``m`` is the number of hidden dimensions. A model that learned nothing (every feature's
    norm below `ZERO_NORM`, an all-zero ``W`` for instance) gives 0, as `feature_dimensionality`
    gives 0 to a feature that is not learned, rather than the infinity of the formula.

    Args:
        W: ``(..., hidden, feature)`` weights of finite numbers.
    """
    arr = _as_weights(W)
    unit, scale = _scaled(arr)
    with np.errstate(over="ignore", under="ignore"):  # 0 or infinity are handled below
        frob = (unit**2).sum(axis=(-2, -1)) * scale[..., 0, 0] ** 2
    anything = _learned(arr).any(axis=-1)
    result = np.where(anything, arr.shape[-2] / np.where(anything & (frob > 0), frob, 1.0), 0.0)
    return _validate.finite_result(result, "dimensions_per_feature", {"W": W})


def represented(W, threshold: float = REPRESENTED_NORM) -> np.ndarray:
    """Boolean ``(..., feature)``: ``||W_i|| > threshold`` (`REPRESENTED_NORM` = 0.5 by convention).

    Args:
        W: ``(..., hidden, feature)`` weights of finite numbers.
        threshold: a finite number >= 0.
    """
    threshold = _validate.real(threshold, "threshold", low=0.0)
    return feature_norms(W) > threshold


def feature_angles_2d(W) -> np.ndarray:
    """Angle in degrees, in [0, 360), of each feature's direction in a 2-D hidden space.

    A feature with no direction (a zero column) has angle 0.

    Args:
        W: ``(..., 2, feature)`` weights of finite numbers.

    Returns:
        ``(..., feature)``.
    """
    arr = _as_weights(W)
    if arr.shape[-2] != 2:
        raise _validate.fail(
            "W", W, "2 hidden dimensions, for angles in a plane", f"{arr.shape[-2]} (shape {arr.shape})"
        )
    unit, _ = _scaled(arr)
    angles = np.degrees(np.arctan2(unit[..., 1, :], unit[..., 0, :])) % 360.0
    return np.where(angles >= 360.0, 0.0, angles)  # -tiny % 360 rounds to 360


def angular_gaps_2d(W, min_norm: float = REPRESENTED_NORM) -> list[np.ndarray] | np.ndarray:
    """Sorted angular gaps (degrees) between consecutive represented features around the circle.

    For a single model ``(2, feature)`` returns one array; for ``(instance, 2, feature)`` a list
    with one array per instance (instances may represent different numbers of features). The
    gaps of each model sum to 360; a regular pentagon gives five gaps of 72; a model that
    represents no feature gives an empty array.

    Args:
        W: ``(2, feature)`` or ``(instance, 2, feature)`` weights of finite numbers.
        min_norm: a finite number >= 0; features with a larger norm count as represented.
    """
    min_norm = _validate.real(min_norm, "min_norm", low=0.0)
    arr = _as_weights(W)
    if arr.ndim > 3:
        raise _validate.fail(
            "W", W, "an array of shape (2, feature) or (instance, 2, feature)", f"shape {arr.shape}"
        )
    angles = feature_angles_2d(arr)
    norms = feature_norms(arr)
    flat_angles = angles.reshape(-1, angles.shape[-1])
    flat_norms = norms.reshape(-1, norms.shape[-1])
    out = []
    for a, n in zip(flat_angles, flat_norms):
        kept = np.sort(a[n > min_norm])
        if len(kept) == 0:
            out.append(np.zeros(0))
            continue
        gaps = np.diff(np.concatenate([kept, kept[:1] + 360.0]))
        out.append(np.sort(gaps))
    return out[0] if arr.ndim == 2 else out


# --------------------------------------------------------------------------- sparse autoencoders
#
# Measurements of an SAE against its data and, on toy data, against the true feature directions.
# Activations and reconstructions are ``(..., batch, d)`` (usually ``(instance, batch, d)``);
# direction sets are ``(..., n, d)``, one direction per row (an SAE's ``W_dec`` as it is; a toy
# model's features as ``W.transpose(-1, -2)``), and their leading axes broadcast against each
# other. Each function returns a NumPy array with the leading axes kept. Inputs must be finite
# real numbers with at least one entry on every axis; a result that would overflow is refused.


def _as_batch(a, name: str, axes: tuple[str, ...]) -> np.ndarray:
    """``a`` as a float64 copy ``(..., *axes)`` of finite real numbers, or a clear error."""
    arr = _validate.real_array(a, name)
    spelled = "(..., " + ", ".join(axes) + ")"
    if arr.ndim < len(axes):
        raise _validate.fail(name, a, f"an array of shape {spelled}", f"shape {arr.shape}")
    if 0 in arr.shape:
        raise _validate.fail(
            name,
            a,
            f"an array of shape {spelled} with at least one entry on every axis",
            f"shape {arr.shape}",
        )
    return arr


def _pair(x, x_hat, axes=("batch", "d")) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``x_hat`` checked by `_as_batch`, of one shape."""
    a, b = _as_batch(x, "x", axes), _as_batch(x_hat, "x_hat", axes)
    if a.shape != b.shape:
        raise _validate.fail("x_hat", x_hat, f"an array of the shape of x, {a.shape}", f"shape {b.shape}")
    return a, b


def _scaled_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` divided by one scale per batch (the largest ``|entry|`` of either over the
    last two axes), so that sums of squares neither overflow nor underflow; ratios are unchanged."""
    scale = np.maximum(
        np.abs(a).max(axis=(-2, -1), keepdims=True), np.abs(b).max(axis=(-2, -1), keepdims=True)
    )
    scale = np.where(scale > 0, scale, 1.0)
    return a / scale, b / scale


def l0(acts) -> np.ndarray:
    """Mean number of non-zero entries per input: ``(..., batch, d) -> (...)``.

    Of an SAE's latents ``f`` ``(instance, batch, d_sae)``: its L0, one per instance. Of the true
    features ``x`` ``(instance, batch, feature)`` of toy data: the data's true L0, the mean number
    of active features per input (``Σ_i p_i`` in expectation).

    Args:
        acts: ``(..., batch, d)`` finite real numbers (latents or features).
    """
    return (_as_batch(acts, "acts", ("batch", "d")) != 0).sum(-1).mean(-1)


def mse(x, x_hat) -> np.ndarray:
    """``mean_batch ||x - x̂||²``, summed over ``d`` and averaged over the inputs (the reconstruction
    term of the SAE loss): ``(..., batch, d) -> (...)``, e.g. ``(instance, batch, d_in) ->
    (instance,)``.

    Args:
        x: ``(..., batch, d)`` the inputs.
        x_hat: their reconstructions, of the same shape.
    """
    x, x_hat = _pair(x, x_hat)
    return _validate.finite_result(((x - x_hat) ** 2).sum(-1).mean(-1), "mse", {"x": x, "x_hat": x_hat})


def explained_variance(x, x_hat) -> np.ndarray:
    """``1 - Σ ||x - x̂||² / Σ ||x - mean(x)||²`` over the batch: ``(..., batch, d) -> (...)``, e.g.
    ``(instance, batch, d_in) -> (instance,)``.

    Measured against the mean of ``x`` (pooled over the batch), not against zero: a reconstruction
    that returns the mean for every input scores 0, a perfect one 1. A batch whose inputs are all
    the same has no variance to explain: it scores 1 if reconstructed exactly, and is refused
    otherwise (the ratio would be infinite).

    Args:
        x: ``(..., batch, d)`` the inputs.
        x_hat: their reconstructions, of the same shape.
    """
    a, b = _scaled_pair(*_pair(x, x_hat))
    resid = ((a - b) ** 2).sum((-1, -2))
    total = ((a - a.mean(-2, keepdims=True)) ** 2).sum((-1, -2))
    if np.any((total == 0) & (resid > 0)):
        raise _validate.fail(
            "x",
            x,
            "inputs that vary over the batch (explained variance divides by their variance)",
            "inputs that are all the same",
        )
    return 1.0 - resid / np.where(total > 0, total, 1.0)


def firing_rates(f) -> np.ndarray:
    """Fraction of inputs on which each latent is non-zero: ``(..., batch, d_sae) -> (..., d_sae)``,
    e.g. ``(instance, batch, d_sae) -> (instance, d_sae)``.

    Args:
        f: ``(..., batch, d_sae)`` an SAE's latents.
    """
    return (_as_batch(f, "f", ("batch", "d_sae")) != 0).mean(-2)


def dead_fraction(f) -> np.ndarray:
    """Fraction of latents that are zero on every input of the batch: ``(..., batch, d_sae) ->
    (...)``, e.g. ``(instance, batch, d_sae) -> (instance,)``.

    "Dead over this batch": state the batch (or, for `toy_lib.SAEResult.dead`, the training window)
    next to the number.

    Args:
        f: ``(..., batch, d_sae)`` an SAE's latents.
    """
    return (firing_rates(f) == 0).mean(-1)


def shrinkage(x, x_hat) -> np.ndarray:
    """``E||x̂||² / E[x · x̂]`` over the batch: ``(..., batch, d) -> (...)``, e.g. ``(instance,
    batch, d_in) -> (instance,)``.

    1 when the reconstruction has the right length on average; below 1 when it comes out short (an
    L1 penalty shrinks it). For ``x̂ = c x`` it is ``c``; an all-zero reconstruction has shrinkage
    0. A reconstruction that does not point along ``x`` on average (``E[x · x̂] <= 0`` while
    ``x̂ ≠ 0``) has no meaningful shrinkage and is refused.

    Args:
        x: ``(..., batch, d)`` the inputs.
        x_hat: their reconstructions, of the same shape.
    """
    a, b = _scaled_pair(*_pair(x, x_hat))
    along = (a * b).sum((-1, -2))
    length = (b**2).sum((-1, -2))
    if np.any((along <= 0) & (length > 0)):
        raise _validate.fail(
            "x_hat", x_hat, "a reconstruction that points along x on average (E[x · x̂] > 0)", "E[x · x̂] <= 0"
        )
    return length / np.where(along > 0, along, 1.0)


def norm_ratio(x, x_hat) -> np.ndarray:
    """Mean ``||x̂|| / ||x||`` over the inputs with ``x ≠ 0``: ``(..., batch, d) -> (...)``, e.g.
    ``(instance, batch, d_in) -> (instance,)``; 0 when every ``x`` is 0.

    Args:
        x: ``(..., batch, d)`` the inputs.
        x_hat: their reconstructions, of the same shape.
    """
    x, x_hat = _pair(x, x_hat)
    nx = _row_norms(x)
    keep = nx > 0
    ratio = _row_norms(x_hat) / np.where(keep, nx, 1.0)
    out = (ratio * keep).sum(-1) / np.maximum(keep.sum(-1), 1)
    return _validate.finite_result(out, "norm_ratio", {"x": x, "x_hat": x_hat})


def _row_norms(a: np.ndarray) -> np.ndarray:
    """``||a_r||`` of every row, without overflow or underflow in the squares."""
    m = np.abs(a).max(-1)
    safe = np.where(m > 0, m, 1.0)
    return np.linalg.norm(a / safe[..., None], axis=-1) * m


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """Each row of ``a`` divided by its norm; rows of norm at most `ZERO_NORM` become 0."""
    m = np.abs(a).max(-1, keepdims=True)
    scaled = a / np.where(m > 0, m, 1.0)
    n = np.linalg.norm(scaled, axis=-1, keepdims=True)
    return np.where(n * m > ZERO_NORM, scaled / np.where(n > 0, n, 1.0), 0.0)


def _cosines(a, b, name_a: str, name_b: str) -> np.ndarray:
    A = _as_batch(a, name_a, ("n", "d"))
    B = _as_batch(b, name_b, ("n", "d"))
    if A.shape[-1] != B.shape[-1]:
        raise _validate.fail(
            name_b,
            b,
            f"rows of width {A.shape[-1]}, as {name_a} has",
            f"width {B.shape[-1]} (shape {B.shape})",
        )
    try:
        lead = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError as err:
        raise _validate.fail(
            name_b, b, f"leading axes that broadcast against {name_a}'s {A.shape[:-2]}", f"{B.shape[:-2]}"
        ) from err
    n = int(np.prod(lead, dtype=np.float64)) * A.shape[-2] * B.shape[-2]
    _validate.check_memory(3 * 8 * n, torch.device("cpu"), {name_a: a, name_b: b})
    return _unit_rows(A) @ np.swapaxes(_unit_rows(B), -1, -2)


def cosine_matrix(a, b) -> np.ndarray:
    """Cosines between the rows of ``a`` and of ``b``: ``(..., n_a, d), (..., n_b, d) -> (...,
    n_a, n_b)``, e.g. true features ``(feature, d_in)`` against decoders ``(instance, d_sae,
    d_in)`` gives ``(instance, feature, d_sae)``; a row of norm at most `ZERO_NORM` has cosine 0
    with everything.

    Args:
        a: ``(..., n_a, d)`` directions, one per row.
        b: ``(..., n_b, d)`` directions, one per row; the leading axes broadcast against ``a``'s.
    """
    return _cosines(a, b, "a", "b")


def max_cosines(true_directions, learned_directions) -> np.ndarray:
    """For each true direction, its largest cosine with any learned one: ``(..., n_true)``, e.g.
    ``(instance, feature)`` for true features ``(feature, d_in)`` and decoders ``(instance,
    d_sae, d_in)``.

    Swap the arguments for the reverse matching (each latent's best true feature), which exposes
    dead latents (no match) and duplicates (two latents with the same best match).

    Args:
        true_directions: ``(..., n_true, d)``, one direction per row (a toy model's ``Wᵀ``).
        learned_directions: ``(..., n_learned, d)`` (an SAE's ``W_dec``).
    """
    return _cosines(true_directions, learned_directions, "true_directions", "learned_directions").max(-1)


def mmcs(true_directions, learned_directions) -> np.ndarray:
    """Mean max cosine similarity: the mean over true directions of `max_cosines`: ``(...)``, e.g.
    ``(instance,)``.

    A learned direction may serve several true ones, so a dictionary that hedges or duplicates can
    still score high; `mcc` matches one to one.

    Args:
        true_directions: ``(..., n_true, d)``, one direction per row (a toy model's ``Wᵀ``).
        learned_directions: ``(..., n_learned, d)`` (an SAE's ``W_dec``).
    """
    return max_cosines(true_directions, learned_directions).mean(-1)


def recovered_fraction(true_directions, learned_directions, threshold: float = 0.9) -> np.ndarray:
    """Fraction of true directions whose best cosine with a learned one exceeds ``threshold``:
    ``(...)``, e.g. ``(instance,)``.

    Args:
        true_directions: ``(..., n_true, d)``, one direction per row (a toy model's ``Wᵀ``).
        learned_directions: ``(..., n_learned, d)`` (an SAE's ``W_dec``).
        threshold: a cosine from -1 to 1.
    """
    threshold = _validate.real(threshold, "threshold", low=-1.0, high=1.0)
    return (max_cosines(true_directions, learned_directions) > threshold).mean(-1)


def _assignments(
    true_directions, learned_directions, *, names=("true_directions", "learned_directions"), signed=False
):
    """``(cosines (..., n_true, n_learned), flattened to (-1, n_true, n_learned), [(rows, cols) of a
    maximal one-to-one matching]``; the cosines in absolute value unless ``signed``."""
    from scipy.optimize import linear_sum_assignment

    cos = _cosines(true_directions, learned_directions, *names)
    if not signed:
        cos = np.abs(cos)
    flat = cos.reshape(-1, *cos.shape[-2:])
    return cos, flat, [linear_sum_assignment(c, maximize=True) for c in flat]


def mcc(true_directions, learned_directions) -> np.ndarray:
    """Mean ``|cosine|`` of a one-to-one matching of true and learned directions that maximises it
    (the Hungarian algorithm, `scipy.optimize.linear_sum_assignment`): ``(...)``, e.g.
    ``(instance,)``.

    ``min(n_true, n_learned)`` pairs are matched; unlike `mmcs`, one latent cannot stand for two
    features, so duplicates and dead latents lower the score.

    Args:
        true_directions: ``(..., n_true, d)``, one direction per row (a toy model's ``Wᵀ``).
        learned_directions: ``(..., n_learned, d)`` (an SAE's ``W_dec``).
    """
    cos, flat, pairs = _assignments(true_directions, learned_directions)
    out = np.array([c[rows, cols].mean() for c, (rows, cols) in zip(flat, pairs)])
    return out.reshape(cos.shape[:-2])


def matching(true_directions, learned_directions) -> np.ndarray:
    """The index of the learned direction matched to each true one by `mcc`'s one-to-one matching
    (-1 for a true direction left unmatched when there are fewer learned ones): ``(...,
    n_true)`` integers, e.g. ``(instance, feature)``.

    Args:
        true_directions: ``(..., n_true, d)``, one direction per row (a toy model's ``Wᵀ``).
        learned_directions: ``(..., n_learned, d)`` (an SAE's ``W_dec``).
    """
    cos, flat, pairs = _assignments(true_directions, learned_directions)
    out = np.full((len(flat), cos.shape[-2]), -1, dtype=np.int64)
    for i, (rows, cols) in enumerate(pairs):
        out[i, rows] = cols
    return out.reshape(cos.shape[:-1])


# --------------------------------------------------------------------------- dimensionality plateaus
#
# With many features of equal importance in few dimensions (n >> m), a trained model stores
# its features in small geometries of equal-norm features spread evenly in a few dimensions,
# and each geometry gives its features one dimensionality D = (dimensions) / (features):
# these are the plateau values of `feature_dimensionality` (Elhage et al. 2022).

#: The plateau values of the feature dimensionality and the geometry that gives each, as
#: ``(D, name, n_features, n_dimensions)`` with ``D = n_dimensions / n_features``.
PLATEAU_GEOMETRIES = (
    (1.0, "a dimension of its own", 1, 1),
    (3 / 4, "tetrahedron", 4, 3),
    (2 / 3, "triangle", 3, 2),
    (1 / 2, "antipodal pair", 2, 1),
    (2 / 5, "pentagon", 5, 2),
    (3 / 8, "square antiprism", 8, 3),
)
#: The plateau values alone, largest first (1, 3/4, 2/3, 1/2, 2/5, 3/8).
DIMENSIONALITY_PLATEAUS = tuple(value for value, *_ in PLATEAU_GEOMETRIES)
#: How close to a plateau value a dimensionality must be to count as on it.
PLATEAU_TOLERANCE = 0.03


def _plateau_values(values) -> np.ndarray:
    arr = _validate.real_array(values, "values", ndim=(1,))
    if arr.size == 0 or arr.min() <= 0 or arr.max() > 1:
        raise _validate.fail("values", values, "a non-empty list of plateau values in (0, 1]")
    return arr


def _tolerance(tol) -> float:
    return _validate.real(tol, "tol", low=0.0, high=0.5, low_open=True, expected="a number in (0, 0.5]")


def _dimensionalities(D) -> np.ndarray:
    arr = _validate.real_array(D, "D")
    if arr.size and (arr.min() < 0 or arr.max() > 1 + 1e-9):
        bad = arr[(arr < 0) | (arr > 1 + 1e-9)].flat[0]
        raise _validate.fail("D", D, "feature dimensionalities in [0, 1]", f"{bad:g}")
    return arr


def nearest_plateau(D, values=DIMENSIONALITY_PLATEAUS) -> np.ndarray:
    """The plateau value closest to each dimensionality: same shape as ``D``.

    Args:
        D: feature dimensionalities in [0, 1] (`feature_dimensionality`), any shape, such as
            ``(instance, feature)``.
        values: the plateau values, in (0, 1] (default `DIMENSIONALITY_PLATEAUS`).
    """
    arr, vals = _dimensionalities(D), _plateau_values(values)
    return vals[np.abs(arr[..., None] - vals).argmin(axis=-1)] if arr.size else arr


def near_plateau(D, tol: float = PLATEAU_TOLERANCE, values=DIMENSIONALITY_PLATEAUS) -> np.ndarray:
    """Boolean, same shape as ``D``: each dimensionality within ``tol`` of one of the plateau values.

    Args:
        D: feature dimensionalities in [0, 1] (`feature_dimensionality`), any shape, such as
            ``(instance, feature)``.
        tol: a number in (0, 0.5] (default `PLATEAU_TOLERANCE` = 0.03).
        values: the plateau values, in (0, 1] (default `DIMENSIONALITY_PLATEAUS`).
    """
    tol = _tolerance(tol)
    arr = _dimensionalities(D)
    return np.abs(arr - nearest_plateau(arr, values)) <= tol


def plateau_fraction(D, tol: float = PLATEAU_TOLERANCE, values=DIMENSIONALITY_PLATEAUS) -> float:
    """The fraction of the dimensionalities ``D`` (any shape, at least one) within ``tol`` of a
    plateau value. Pass the represented features only (`represented`): a feature that is not
    learned has D = 0, on no plateau.

    Args:
        D: feature dimensionalities in [0, 1], at least one, any shape (``(feature,)`` of one
            model, ``(instance, feature)`` of several).
        tol: a number in (0, 0.5] (default `PLATEAU_TOLERANCE` = 0.03).
        values: the plateau values, in (0, 1] (default `DIMENSIONALITY_PLATEAUS`).
    """
    arr = _dimensionalities(D)
    if arr.size == 0:
        raise _validate.fail("D", D, "at least one dimensionality", "none")
    return float(near_plateau(arr, tol, values).mean())


def longest_run(mask) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of consecutive ``True`` entries of a 1-D boolean
    sequence (the first such run when several are equally long), so that ``mask[start:stop]``
    is all true; ``(0, 0)`` when no entry is true.

    Used on a sweep ordered by sparsity: ``longest_run(abs(dpf - 0.5) < 0.04)`` finds the
    contiguous range of sparsities over which the dimensions per feature stick at 1/2.

    Args:
        mask: a 1-D sequence of booleans (a list, a NumPy array or a torch tensor).
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.ndim != 1 or arr.dtype != np.bool_:
        got = f"shape {arr.shape} and dtype {arr.dtype}"
        raise _validate.fail("mask", mask, "a 1-D sequence of booleans", got)
    best, start = (0, 0), None
    for i, flag in enumerate(np.append(arr, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


__all__ += [
    "PLATEAU_GEOMETRIES",
    "DIMENSIONALITY_PLATEAUS",
    "PLATEAU_TOLERANCE",
    "nearest_plateau",
    "near_plateau",
    "plateau_fraction",
    "longest_run",
]


# --------------------------------------------------------------------------- evaluating part B
#
# The pathologies of SAEs on data with known directions (the chapter "Evaluating SAEs"): how
# stable a dictionary is across seeds, how much of given directions a decoder, an encoder or a
# bias carries, and feature absorption (a latent silent exactly when a more specific feature
# fires).


def seed_stability(dec_a, dec_b, threshold: float = 0.9) -> np.ndarray:
    """Fraction of the latents of one SAE that have a partner in another, trained on the same
    data from another seed: ``(...)``, e.g. ``(instance,)`` for decoders ``(instance, d_sae,
    d_in)``.

    The latents of the two dictionaries are paired one to one so that the sum of the cosines of
    the pairs is largest (the Hungarian algorithm, `scipy.optimize.linear_sum_assignment`, as in
    `mcc`; the signed cosine, because a latent that writes ``-v`` is not one that writes ``v``),
    and a pair counts as matched when its cosine exceeds ``threshold``. The count is divided by
    ``d_sae`` of ``dec_a``: 1 when every latent of ``dec_a`` reappears in ``dec_b``. A decoder row
    of norm at most `ZERO_NORM` matches nothing.

    Args:
        dec_a: ``(..., d_sae_a, d_in)`` the first SAE's decoder directions, one per row.
        dec_b: ``(..., d_sae_b, d_in)`` the second's; the leading axes broadcast against
            ``dec_a``'s.
        threshold: a cosine in [0, 1) above which a pair counts as matched (a zero row, cosine
            0 with everything, then never counts).
    """
    threshold = _validate.real(
        threshold, "threshold", low=0.0, high=1.0, high_open=True, expected="a cosine in [0, 1)"
    )
    cos, flat, matches = _assignments(dec_a, dec_b, names=("dec_a", "dec_b"), signed=True)
    out = np.array([(c[rows, cols] > threshold).sum() / c.shape[0] for c, (rows, cols) in zip(flat, matches)])
    return out.reshape(cos.shape[:-2])


def components(vectors, directions) -> np.ndarray:
    """How much of each direction each vector carries: the dot product of every row of
    ``vectors`` with every direction scaled to unit norm: ``(..., n, d), (k, d) or (..., k, d)
    -> (..., n, k)``.

    Unlike `cosine_matrix`, the vectors keep their length: a decoder row ``0.97 p + 0.24 c`` has
    components 0.97 and 0.24 along the unit features ``p`` and ``c``. For an encoder ``W_enc``
    ``(instance, d_in, d_sae)`` pass ``W_enc.transpose(-1, -2)`` (one row per latent); for a bias
    ``b_dec`` ``(instance, d_in)`` pass ``b_dec[:, None, :]``.

    Args:
        vectors: ``(..., n, d)`` one vector per row.
        directions: ``(..., k, d)`` one direction per row (its length does not matter); the
            leading axes broadcast against ``vectors``'.

    Raises:
        ValueError: naming the argument, for a direction of zero length (it has no direction),
            rows of different widths, or NaN or infinite entries.
    """
    V = _as_batch(vectors, "vectors", ("n", "d"))
    D = _as_batch(directions, "directions", ("k", "d"))
    if V.shape[-1] != D.shape[-1]:
        raise _validate.fail(
            "directions", directions, f"rows of width {V.shape[-1]}, as vectors has", f"shape {D.shape}"
        )
    if np.any(_row_norms(D) <= ZERO_NORM):
        raise _validate.fail("directions", directions, "directions of non-zero length", "a zero row")
    try:
        np.broadcast_shapes(V.shape[:-2], D.shape[:-2])
    except ValueError as err:
        raise _validate.fail(
            "directions",
            directions,
            f"leading axes that broadcast against vectors' {V.shape[:-2]}",
            f"{D.shape[:-2]}",
        ) from err
    return V @ np.swapaxes(_unit_rows(D), -1, -2)


def absorption_fraction(f, child_fires) -> np.ndarray:
    """For each latent, the fraction of the inputs on which a given (child) feature fires that
    the latent is silent on: ``(..., batch, d_sae), (batch,) or (..., batch) -> (..., d_sae)``.

    Feature absorption (Chanin et al. 2024): with a parent feature that fires whenever its child
    does, an SAE can save sparsity by letting the child's latent carry the parent's direction
    and switching the parent's latent off whenever the child fires. Then the parent's latent,
    which should fire on every input where the parent is present, is silent on the child's
    inputs: its `absorption_fraction` there is near 1 (0 for a clean parent latent). Read the
    parent latent's entry; the child latent's entry is near 0 either way.

    Args:
        f: ``(..., batch, d_sae)`` an SAE's latents on some inputs (`toy_lib.SAEResult.encode`).
        child_fires: ``(batch,)`` or ``(..., batch)`` booleans (or 0/1 numbers): whether the
            child feature is active on each input, e.g. ``features[:, child] > 0``. At least one
            input must have it on.
    """
    acts = _as_batch(f, "f", ("batch", "d_sae"))
    if isinstance(child_fires, torch.Tensor):
        child_fires = child_fires.detach().cpu().numpy()
    mask = np.asarray(child_fires)
    if mask.dtype != np.bool_:
        values = _validate.real_array(child_fires, "child_fires")
        if not np.isin(values, (0.0, 1.0)).all():
            raise _validate.fail("child_fires", child_fires, "booleans or 0/1 numbers", "other values")
        mask = values.astype(bool)
    if mask.ndim < 1 or mask.shape[-1] != acts.shape[-2]:
        raise _validate.fail(
            "child_fires",
            child_fires,
            f"one boolean per input, (..., {acts.shape[-2]}) as f has {acts.shape[-2]} inputs",
            f"shape {mask.shape}",
        )
    try:
        mask = np.broadcast_to(mask, acts.shape[:-1])
    except ValueError as err:
        raise _validate.fail(
            "child_fires",
            child_fires,
            f"leading axes that broadcast against f's {acts.shape[:-2]}",
            f"shape {mask.shape}",
        ) from err
    count = mask.sum(-1)
    if np.any(count == 0):
        raise _validate.fail(
            "child_fires", child_fires, "at least one input on which the child fires", "none"
        )
    silent = ((acts == 0) & mask[..., None]).sum(-2)
    return silent / count[..., None]


__all__ += ["seed_stability", "components", "absorption_fraction"]
