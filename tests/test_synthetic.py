"""toy_lib.synthetic: data sets with known feature directions (the ground truth of the SAE
evaluation chapters). Statistical checks use 200,000 samples: a frequency of 0.25 then has a
standard error of about 0.001, and every tolerance below is at least five of those."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from toy_lib import synthetic

N = 200_000


def hierarchical():
    """The Matryoshka toy: 3 parents with 3 exclusive children each, 8 independent features."""
    probs = [0.15] * 3 + [0.2] * 9 + [0.05] * 8
    parents = [-1] * 3 + [0] * 3 + [1] * 3 + [2] * 3 + [-1] * 8
    return synthetic.SyntheticFeatures(20, probs, parents=parents, exclusive=True)


def test_shapes_and_activations_are_features_times_directions():
    data = synthetic.SyntheticFeatures(50, [0.25, 0.2], parents=[-1, 0])
    features, acts = data.sample(1000, seed=3)
    assert features.shape == (1000, 2) and acts.shape == (1000, 50)
    assert features.dtype == acts.dtype == torch.float32
    assert torch.allclose(acts, features @ torch.from_numpy(data.directions))
    assert data.directions.shape == (2, 50) and data.directions.dtype == np.float32


def test_same_seed_same_tensors_other_seed_other_tensors():
    data = synthetic.independent(10, 8, 0.3, magnitude=(0.0, 1.0))
    a, b, c = data.sample(500, seed=1), data.sample(500, seed=1), data.sample(500, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("kind", ["orthogonal", "basis", "random"])
def test_directions_are_unit_and_orthogonal_where_asked(kind):
    data = synthetic.independent(12, 20, 0.1, directions=kind, seed=4)
    d = data.directions.astype(np.float64)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    gram = d @ d.T
    if kind != "random":
        assert np.allclose(gram, np.eye(12), atol=1e-5)
    else:
        assert np.abs(gram - np.eye(12)).max() > 0.01  # random directions are not orthogonal
    if kind == "basis":
        assert np.array_equal(d, np.eye(12, 20))


def test_given_directions_are_normalised():
    data = synthetic.SyntheticFeatures(2, [0.5, 0.5], directions=[[3.0, 4.0], [0.0, 2.0]])
    assert np.allclose(data.directions, [[0.6, 0.8], [0.0, 1.0]])


def test_child_fires_only_with_its_parent_at_its_conditional_rate():
    data = synthetic.SyntheticFeatures(50, [0.25, 0.2], parents=[-1, 0])
    f = data.sample(N, seed=0)[0] > 0
    assert not (f[:, 1] & ~f[:, 0]).any()
    assert abs(f[:, 0].float().mean() - 0.25) < 0.006
    assert abs(f[:, 1][f[:, 0]].float().mean() - 0.2) < 0.01
    assert np.allclose(data.marginal_probabilities, [0.25, 0.05]) and data.true_l0 == pytest.approx(0.3)


def test_exclusive_children_never_fire_together_and_keep_their_rates():
    data = hierarchical()
    f = data.sample(N, seed=0)[0] > 0
    for parent in range(3):
        kids = f[:, 3 + 3 * parent : 6 + 3 * parent]
        assert kids.sum(1).max() == 1
        assert not (kids.any(1) & ~f[:, parent]).any()
    empirical = f.float().mean(0).numpy()
    assert np.allclose(empirical, data.marginal_probabilities, atol=0.005)
    assert f.sum(1).float().mean().item() == pytest.approx(data.true_l0, abs=0.02)


def test_grandchildren_follow_the_parent_chain_in_any_index_order():
    data = synthetic.SyntheticFeatures(5, [0.5] * 4, parents=[3, -1, 0, 1])
    f = data.sample(N, seed=0)[0] > 0
    assert np.allclose(data.marginal_probabilities, [0.125, 0.5, 0.0625, 0.25])
    assert np.allclose(f.float().mean(0).numpy(), data.marginal_probabilities, atol=0.006)
    assert not (f[:, 2] & ~f[:, 0]).any() and not (f[:, 0] & ~f[:, 3]).any()


@pytest.mark.parametrize("rho, sign", [(0.8, 1), (-0.5, -1)])
def test_correlation_makes_features_fire_together_or_apart_and_keeps_rates(rho, sign):
    data = synthetic.SyntheticFeatures(6, [0.3, 0.3], correlation=[[1, rho], [rho, 1]])
    f = (data.sample(N, seed=0)[0] > 0).float()
    assert np.allclose(f.mean(0).numpy(), 0.3, atol=0.006)
    both = (f[:, 0] * f[:, 1]).mean().item()
    assert sign * (both - 0.09) > 0.03  # independent firing would give 0.3 * 0.3


def test_uniform_magnitudes_stay_in_range():
    f = synthetic.independent(4, 4, 0.5, magnitude=(0.5, 2.0)).sample(10_000)[0]
    active = f[f > 0]
    assert active.min() >= 0.5 and active.max() < 2.0 and abs(active.mean() - 1.25) < 0.02


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(d_in=0, probabilities=[0.5]), "d_in"),
        (dict(d_in=4, probabilities=[]), "probabilities"),
        (dict(d_in=4, probabilities=[0.5, 1.5]), "probabilities"),
        (dict(d_in=4, probabilities=[0.5, 0.0]), "probabilities"),
        (dict(d_in=4, probabilities=[0.5, float("nan")]), "probabilities"),
        (dict(d_in=4, probabilities=[0.5, 0.5], parents=[-1]), "parents"),
        (dict(d_in=4, probabilities=[0.5, 0.5], parents=[-1, 1]), "parents[1]"),
        (dict(d_in=4, probabilities=[0.5, 0.5], parents=[-1, 2]), "parents[1]"),
        (dict(d_in=4, probabilities=[0.5, 0.5, 0.5], parents=[1, 2, 0]), "parents"),
        (dict(d_in=4, probabilities=[0.5, 0.6, 0.6], parents=[-1, 0, 0], exclusive=True), "probabilities"),
        (dict(d_in=4, probabilities=[0.5], exclusive=1), "exclusive"),
        (dict(d_in=2, probabilities=[0.5] * 3), "directions"),
        (dict(d_in=4, probabilities=[0.5], directions="spiral"), "directions"),
        (dict(d_in=4, probabilities=[0.5], directions=[[1.0, 0.0]]), "directions"),
        (dict(d_in=2, probabilities=[0.5], directions=[[0.0, 0.0]]), "directions"),
        (dict(d_in=4, probabilities=[0.5], magnitude=0.0), "magnitude"),
        (dict(d_in=4, probabilities=[0.5], magnitude=(1.0, 0.5)), "magnitude"),
        (dict(d_in=4, probabilities=[0.5, 0.5], correlation=[[1.0]]), "correlation"),
        (dict(d_in=4, probabilities=[0.5, 0.5], correlation=[[1, 2], [2, 1]]), "correlation"),
        (dict(d_in=4, probabilities=[0.5, 0.5], correlation=[[1, 1], [1, 1]]), "correlation"),
        (dict(d_in=4, probabilities=[0.5], seed=-1), "seed"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match="^" + re.escape(name) + "="):
        synthetic.SyntheticFeatures(**kwargs)


def test_bad_sample_and_shorthand_arguments():
    data = synthetic.independent(3, 3, 0.2)
    with pytest.raises(ValueError, match=r"^n=0: expected a positive integer"):
        data.sample(0)
    with pytest.raises(ValueError, match=r"^seed="):
        data.sample(10, seed=1.5)
    with pytest.raises(ValueError, match=r"^probabilities=.*one per feature"):
        synthetic.independent(3, 3, [0.2, 0.2])
    with pytest.raises(ValueError, match=r"^n_features="):
        synthetic.independent(0, 3, 0.2)
