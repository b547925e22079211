"""Metrics on hand-built geometries whose answers are known exactly."""

import math

import numpy as np
import pytest
import torch

from toy_lib import metrics


def polygon(k: int, radius: float = 1.0) -> np.ndarray:
    """k unit vectors evenly spread around the circle, as a (2, k) matrix."""
    a = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(a), np.sin(a)])


def tetrahedron() -> np.ndarray:
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float).T
    return v / np.sqrt(3)


@pytest.mark.parametrize(
    "W, expected",
    [
        (np.eye(3), 1.0),  # orthogonal: a dimension each
        (np.array([[1.0, -1.0]]), 0.5),  # antipodal pair in 1-D
        (polygon(3), 2 / 3),  # triangle in a plane
        (polygon(5, radius=1.13), 2 / 5),  # pentagon; scale does not matter
        (tetrahedron(), 3 / 4),  # tetrahedron in 3-D
        (np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), None),  # mixed: pair + alone
    ],
    ids=["orthogonal", "antipodal", "triangle", "pentagon", "tetrahedron", "mixed"],
)
def test_feature_dimensionality_of_known_geometries(W, expected):
    D = metrics.feature_dimensionality(W)
    if expected is None:
        np.testing.assert_allclose(D, [0.5, 1.0, 0.5], atol=1e-12)
    else:
        np.testing.assert_allclose(D, expected, atol=1e-12)


def test_unlearned_feature_has_dimensionality_zero_and_does_not_disturb_others():
    W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(metrics.feature_dimensionality(W), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(metrics.superposition_score(W), [0.0, 0.0, 0.0])


def test_batched_input_keeps_instance_axis_and_accepts_torch():
    W = torch.tensor(np.stack([polygon(5), np.concatenate([np.eye(2), np.zeros((2, 3))], 1)]))
    D = metrics.feature_dimensionality(W)
    assert D.shape == (2, 5)
    np.testing.assert_allclose(D[0], 0.4, atol=1e-12)
    np.testing.assert_allclose(D[1], [1, 1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(metrics.feature_norms(W)[1], [1, 1, 0, 0, 0])


def test_dimensions_per_feature():
    assert metrics.dimensions_per_feature(np.eye(3)) == pytest.approx(1.0)
    assert metrics.dimensions_per_feature(polygon(5)) == pytest.approx(2 / 5)
    assert metrics.dimensions_per_feature(np.array([[1.0, -1.0]])) == pytest.approx(1 / 2)


def test_superposition_score_of_pentagon():
    # Σ_{j≠i} cos²(2πk/5) over the other four vertices = 5/2 − 1 = 3/2 for unit vectors.
    np.testing.assert_allclose(metrics.superposition_score(polygon(5)), 1.5, atol=1e-12)
    np.testing.assert_allclose(metrics.superposition_score(np.eye(4)), 0.0)


def test_angles_and_gaps_of_pentagon_and_digon():
    np.testing.assert_allclose(metrics.feature_angles_2d(polygon(4)), [0, 90, 180, 270], atol=1e-9)
    np.testing.assert_allclose(metrics.angular_gaps_2d(polygon(5)), 72.0, atol=1e-9)
    W = np.array([[1.0, -1.0, 0.01], [0.0, 0.0, 0.0]])  # third feature not represented
    np.testing.assert_allclose(metrics.angular_gaps_2d(W), [180.0, 180.0])
    triangle = np.concatenate([polygon(3), np.zeros((2, 2))], axis=1)  # two unlearned features
    gaps = metrics.angular_gaps_2d(np.stack([polygon(5), triangle]))
    assert [len(g) for g in gaps] == [5, 3]
    assert math.isclose(gaps[1].sum(), 360.0)


def test_represented_threshold():
    W = np.array([[0.6, 0.4, 0.0], [0.0, 0.0, 0.0]])
    assert metrics.represented(W).tolist() == [True, False, False]


def test_bad_shapes_are_named():
    with pytest.raises(
        ValueError,
        match=r"W=array\(\[1., 1., 1.\]\): expected .*\(\.\.\., hidden, feature\), got shape \(3,\)",
    ):
        metrics.feature_dimensionality(np.ones(3))
    with pytest.raises(ValueError, match="W=.*: expected 2 hidden dimensions, for angles in a plane, got 3"):
        metrics.feature_angles_2d(np.ones((3, 4)))
