"""Measurements of a toy model's geometry, on weights ``W`` of shape ``(..., hidden, feature)``.

Every function accepts one model ``(hidden, feature)`` or a batch ``(instance, hidden,
feature)`` (any leading axes), as a torch tensor or a NumPy array, and returns a NumPy array
with the leading axes kept. Column ``W[..., :, i]`` is the direction of feature ``i``;
``Ŵ_i = W_i / ||W_i||``.
"""

from __future__ import annotations

import numpy as np
import torch

#: Norms below this count as zero (the feature is not learned).
ZERO_NORM = 1e-6
#: A feature is "represented" when its norm exceeds this.
REPRESENTED_NORM = 0.5


def _as_weights(W) -> np.ndarray:
    arr = (
        W.detach().cpu().double().numpy() if isinstance(W, torch.Tensor) else np.asarray(W, dtype=np.float64)
    )
    if arr.ndim < 2:
        raise ValueError(f"W has shape {arr.shape}: expected (..., hidden, feature)")
    return arr


def feature_norms(W) -> np.ndarray:
    """``||W_i||`` for every feature: shape ``(..., feature)``."""
    return np.linalg.norm(_as_weights(W), axis=-2)


def _overlaps(W: np.ndarray):
    """Norms ``(..., feature)`` and the squared projections ``(Ŵ_i · W_j)²``: ``(..., i, j)``."""
    norms = np.linalg.norm(W, axis=-2)
    safe = np.where(norms > ZERO_NORM, norms, 1.0)
    unit = W / safe[..., None, :]
    gram = np.swapaxes(unit, -1, -2) @ W  # (..., i, j) = Ŵ_i · W_j
    return norms, gram**2


def feature_dimensionality(W) -> np.ndarray:
    """``D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)²`` with the sum including ``j = i``.

    1 for a feature with a dimension to itself, 1/2 for an antipodal pair, 2/3 for a triangle
    in a plane, 2/5 for a pentagon, 3/4 for a tetrahedron; 0 for a feature that is not learned
    (norm below ``ZERO_NORM``). Shape ``(..., feature)``.
    """
    norms, sq = _overlaps(_as_weights(W))
    denom = sq.sum(axis=-1)
    learned = norms > ZERO_NORM
    return np.where(learned, norms**2 / np.where(learned, denom, 1.0), 0.0)


def superposition_score(W) -> np.ndarray:
    """``Σ_{j≠i} (Ŵ_i · W_j)²``: how much other features share feature ``i``'s direction.

    0 when no other feature overlaps it; shape ``(..., feature)``; 0 for unlearned features.
    """
    norms, sq = _overlaps(_as_weights(W))
    n = sq.shape[-1]
    off = sq * (1.0 - np.eye(n))
    return np.where(norms > ZERO_NORM, off.sum(axis=-1), 0.0)


def dimensions_per_feature(W) -> np.ndarray:
    """``m / ||W||_F²``: hidden dimensions per (unit of) feature; shape ``(...)``."""
    arr = _as_weights(W)
    frob = (arr**2).sum(axis=(-2, -1))
    return arr.shape[-2] / frob


def represented(W, threshold: float = REPRESENTED_NORM) -> np.ndarray:
    """Boolean ``(..., feature)``: ``||W_i|| > threshold`` (0.5 by convention)."""
    return feature_norms(W) > threshold


def feature_angles_2d(W) -> np.ndarray:
    """Angle in degrees, in [0, 360), of each feature's direction in a 2-D hidden space."""
    arr = _as_weights(W)
    if arr.shape[-2] != 2:
        raise ValueError(f"W has {arr.shape[-2]} hidden dimensions: expected 2 for angles in a plane")
    return np.degrees(np.arctan2(arr[..., 1, :], arr[..., 0, :])) % 360.0


def angular_gaps_2d(W, min_norm: float = REPRESENTED_NORM) -> list[np.ndarray] | np.ndarray:
    """Sorted angular gaps (degrees) between consecutive represented features around the circle.

    For a single model ``(2, feature)`` returns one array; for ``(instance, 2, feature)`` a list
    with one array per instance (instances may represent different numbers of features). The
    gaps of each model sum to 360; a regular pentagon gives five gaps of 72.
    """
    arr = _as_weights(W)
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
