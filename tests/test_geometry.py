"""toy_lib.geometry: shapes, errors for bad input, determinism, and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import geometry
from toy_lib.geometry import _pack_loss_and_grad

# --------------------------------------------------------------------------- rotations and probes


def test_random_rotation_is_a_rotation_and_reproducible():
    R = geometry.random_rotation(7, seed=3)
    assert R.shape == (7, 7) and R.dtype == torch.float64
    assert torch.allclose(R.T @ R, torch.eye(7, dtype=torch.float64), atol=1e-12)
    assert torch.linalg.det(R).item() == pytest.approx(1.0)
    assert torch.equal(R, geometry.random_rotation(7, seed=3))
    assert not torch.equal(R, geometry.random_rotation(7, seed=4))


def test_rotating_a_toy_models_hidden_space_changes_nothing_it_computes():
    W = torch.randn(1, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    b = -0.1 * torch.ones(1, 6, dtype=torch.float64)
    x = toy_lib.generate_batch(torch.full((1, 6), 0.3, dtype=torch.float64), 50)
    R = geometry.random_rotation(4, seed=0)
    assert torch.allclose(toy_lib.forward(W, b, x), toy_lib.forward(R @ W, b, x), atol=1e-12)


def test_top_feature_share_known_answers():
    assert np.array_equal(geometry.top_feature_share(np.eye(3)), np.ones(3))
    assert geometry.top_feature_share([[1.0, 1.0, 1.0, 1.0]]) == pytest.approx([0.25])
    assert geometry.top_feature_share([[0.0, 0.0], [3.0, -4.0]]).tolist() == pytest.approx([0.0, 16 / 25])
    assert geometry.top_feature_share(np.ones((2, 3, 4))).shape == (2, 3)


def _sparse_layer(n_batch=4000, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = toy_lib.generate_batch(torch.full((1, 4), 0.25, dtype=torch.float64), n_batch, generator=gen)[0]
    return x, x > 0


def test_probe_reads_features_and_is_deterministic():
    x, present = _sparse_layer()
    h = x @ geometry.random_rotation(4, seed=1).T
    probe = geometry.train_probe(h, present, steps=200)
    assert probe.weight.shape == (4, 4) and probe.bias.shape == (4,)
    assert probe.loss_history.shape == (200, 4)
    assert probe.accuracy(h, present).min() > 0.95
    assert probe.loss_history[-1].max() < probe.loss_history[0].min(), "training lowers the loss"
    again = geometry.train_probe(h, present, steps=200)
    assert torch.equal(probe.weight, again.weight) and torch.equal(probe.bias, again.bias)
    # labels as 0/1 numbers give the same probe as booleans
    assert torch.equal(geometry.train_probe(h, present.double(), steps=200).weight, probe.weight)


def test_single_neuron_accuracy_known_answers():
    x, present = _sparse_layer()
    # one neuron per feature: each feature is read perfectly by its own neuron
    acc = geometry.single_neuron_accuracy(x, present)
    assert acc.shape == (4, 4)
    assert np.array_equal(np.diag(acc), np.ones(4))
    # a neuron that sees nothing of a feature does no better than the majority answer
    majority = np.maximum(present.double().mean(0).numpy(), 1 - present.double().mean(0).numpy())
    assert np.all(acc >= majority[None, :] - 1e-12)
    # a tiny example by hand: the rule "present when below 0.5" is right on all four
    a = torch.tensor([[0.1], [0.2], [0.9], [1.0]], dtype=torch.float64)
    y = torch.tensor([[1], [1], [0], [0]])
    assert geometry.single_neuron_accuracy(a, y).tolist() == [[1.0]]
    # ties cannot be split: identical activations must get the same answer
    a_tied = torch.zeros(4, 1, dtype=torch.float64)
    assert geometry.single_neuron_accuracy(a_tied, y).tolist() == [[0.5]]


# --------------------------------------------------------------------------- random directions


def test_random_unit_vectors_shapes_norms_and_seeds():
    V = geometry.random_unit_vectors(5, 3, seed=0)
    assert V.shape == (3, 5) and V.dtype == torch.float64
    assert torch.allclose(V.norm(dim=0), torch.ones(5, dtype=torch.float64))
    assert torch.equal(V, geometry.random_unit_vectors(5, 3, seed=0))
    assert not torch.equal(V, geometry.random_unit_vectors(5, 3, seed=1))
    stack = geometry.random_unit_vectors(5, 3, draws=4, seed=0)
    assert stack.shape == (4, 3, 5)


def test_cosines_known_answers():
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    three = torch.stack([angles.cos(), angles.sin()])
    C = geometry.cosine_matrix(3.0 * three)
    assert torch.allclose(C, torch.tensor([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1.0]]).double())
    assert float(geometry.max_abs_cosine(three)) == pytest.approx(0.5)
    assert float(geometry.max_abs_cosine(torch.eye(4))) == 0.0
    assert geometry.max_abs_cosine(np.stack([np.eye(3), np.ones((3, 3)) + np.eye(3)])).shape == (2,)


def test_cosine_tail_known_answers():
    # in 3 dimensions the cosine of a random pair is uniform on [-1, 1] (Archimedes)
    for t in (0.0, 0.3, 0.9):
        assert geometry.cosine_tail(t, 3) == pytest.approx(1 - t, abs=1e-6)
    # in 2 dimensions the angle is uniform: P(|cos| > t) = arccos(t) / (pi/2)
    assert geometry.cosine_tail(0.5, 2) == pytest.approx(math.acos(0.5) / (math.pi / 2), abs=1e-6)
    # for large d, close to a normal tail with variance 1/d
    d, t = 2000, 0.05
    assert geometry.cosine_tail(t, d) == pytest.approx(math.erfc(t * math.sqrt(d / 2)), rel=0.05)
    assert geometry.cosine_tail(1.0, 10) == 0.0


def test_predicted_max_abs_cosine_known_answers():
    # two directions in 3 dimensions: |cos| is uniform on [0, 1], so the median is 1/2
    assert geometry.predicted_max_abs_cosine(2, 3) == pytest.approx(0.5, abs=1e-6)
    # three directions, three pairs: t^3 = 1/2 if the pairs were independent
    assert geometry.predicted_max_abs_cosine(3, 3) == pytest.approx(0.5 ** (1 / 3), abs=1e-6)


def test_the_prediction_matches_measured_random_directions():
    measured = np.median(geometry.max_abs_cosine(geometry.random_unit_vectors(50, 200, draws=60, seed=2)))
    assert measured == pytest.approx(geometry.predicted_max_abs_cosine(50, 200), rel=0.05)


# --------------------------------------------------------------------------- how many fit


def test_random_fit_count_is_reproducible_and_near_its_prediction():
    counts = geometry.random_fit_count(1024, 0.1, draws=15, seed=0)
    assert counts.shape == (15,) and counts.dtype == np.int64 and counts.min() >= 1
    assert np.array_equal(counts, geometry.random_fit_count(1024, 0.1, draws=15, seed=0))
    predicted = geometry.predicted_random_count(1024, 0.1)
    assert predicted / 2 <= np.median(counts) <= 2 * predicted


def test_random_fit_count_counts_the_vectors_before_the_first_bad_pair():
    # in 2 dimensions a second direction with |cos| <= 0.05 of the first is rare
    # (probability 1 - arccos(0.05) / (pi/2), about 3%): the count is mostly 1, never above 2
    counts = geometry.random_fit_count(2, 0.05, draws=100, seed=0)
    assert np.mean(counts == 1) > 0.9 and counts.max() <= 2


def test_predicted_random_count_grows_with_dim():
    counts = [geometry.predicted_random_count(d, 0.1) for d in (64, 256, 1024, 2048)]
    assert counts == sorted(counts) and counts[0] >= 1 and counts[-1] > 100


def test_packing_bound_known_answers():
    assert geometry.packing_bound(10, 0.1) == pytest.approx(11.0)  # the simplex: 11 vectors, cos -0.1
    assert geometry.packing_bound(50, 0.1) == pytest.approx(99.0)
    assert geometry.packing_bound(100, 0.1) == math.inf
    # at a tiny threshold the bound tends to d
    assert geometry.packing_bound(7, 1e-6) == pytest.approx(7.0)
    # the simplex meets it: d + 1 vectors in d dimensions with every cosine -1/d
    d = 10
    simplex = torch.eye(d + 1, dtype=torch.float64) - 1 / (d + 1)
    basis = torch.linalg.svd(simplex).U[:, :d]  # the simplex lives in a d-dimensional subspace
    W = basis.T @ simplex
    assert float(geometry.max_abs_cosine(W)) == pytest.approx(1 / d)


def test_pack_loss_gradient_matches_autograd():
    V = geometry.random_unit_vectors(7, 3, seed=0)[None]
    loss, grad = _pack_loss_and_grad(V, 0.2)
    leaf = V.clone().requires_grad_(True)
    G = leaf.transpose(1, 2) @ leaf
    excess = torch.relu(G.abs() - 0.2) * (1 - torch.eye(7, dtype=torch.float64))
    excess.square().sum().backward()
    tangent = leaf.grad - V * (V * leaf.grad).sum(dim=1, keepdim=True)
    assert loss.item() == pytest.approx(excess.square().sum().item())
    assert torch.allclose(grad, tangent, atol=1e-12)


def test_pack_vectors_fits_when_there_is_room_and_is_deterministic():
    packing = geometry.pack_vectors(36, 32, threshold=0.1, seed=0)
    assert packing.W.shape == (32, 36)
    assert torch.allclose(packing.W.norm(dim=0), torch.ones(36, dtype=torch.float64))
    assert packing.fits and packing.max_abs_cos <= 0.1
    assert packing.max_abs_cos == pytest.approx(float(geometry.max_abs_cosine(packing.W)))
    assert packing.loss_history.shape == (600,)
    again = geometry.pack_vectors(36, 32, threshold=0.1, seed=0)
    assert torch.equal(packing.W, again.W), "the same arguments give bitwise the same packing"


def test_pack_vectors_cannot_beat_the_simplex():
    packing = geometry.pack_vectors(4, 3, threshold=0.2, steps=2000, seed=0)
    assert not packing.fits
    assert packing.max_abs_cos == pytest.approx(1 / 3, abs=1e-3)


def test_pack_count_known_answers_and_bounds():
    for d in (1, 3, 9):
        result = geometry.pack_count(d, 0.1)
        assert result.count == d and result.attempts == {}, "below d = 10 the bound leaves room for d"
    result = geometry.pack_count(16, 0.1, seed=0)
    assert 16 < result.count <= geometry.packing_bound(16, 0.1)
    assert result.W.shape == (16, result.count)
    assert float(geometry.max_abs_cosine(result.W)) <= 0.1
    assert all(n > 16 for n in result.attempts)
    assert (result.count + 1 in result.attempts and result.attempts[result.count + 1] > 0.1) or (
        result.count + 1 > geometry.packing_bound(16, 0.1)
    ), "the search stops where the next count fails"
    assert geometry.pack_count(16, 0.1, seed=0).count == result.count


# --------------------------------------------------------------------------- interference


def test_interference_known_answers():
    W, _ = geometry.hand_built_polygon(3)
    x = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    leak = geometry.interference(W[0], x)
    assert torch.allclose(leak, torch.tensor([[0.0, -0.5, -0.5], [-0.5, -0.5, -1.0]], dtype=torch.float64))
    # with an instance axis, the same
    assert torch.allclose(geometry.interference(W, x[None])[0], leak)
    # orthogonal directions never interfere
    assert torch.equal(
        geometry.interference(torch.eye(4), torch.rand(5, 4)), torch.zeros(5, 4, dtype=torch.float64)
    )


def test_expected_interference_formulas():
    assert geometry.expected_interference(0.5, 0.9) == pytest.approx(0.25 * 0.01 / 3)
    assert geometry.expected_interference(0.5, 0.9, clipped=False) == pytest.approx(0.25 * 0.1 / 3)
    assert geometry.expected_interference(-0.5, 0.9, 0.5) == pytest.approx(0.25 * 0.1 * 0.5 / 3)


@pytest.mark.parametrize("clipped", [True, False])
def test_simulated_interference_agrees_with_the_formula(clipped):
    mean, se = geometry.simulate_interference(0.4, 0.7, batch_size=200_000, seed=3, clipped=clipped)
    assert abs(mean - geometry.expected_interference(0.4, 0.7, clipped=clipped)) <= 4 * se
    assert (mean, se) == geometry.simulate_interference(0.4, 0.7, batch_size=200_000, seed=3, clipped=clipped)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 8])
def test_hand_built_polygon_reconstructs_every_one_hot_input(n):
    W, b = geometry.hand_built_polygon(n)
    assert W.shape == (1, 2, n) and b.shape == (1, n)
    one_hot = torch.eye(n, dtype=torch.float64)[None]
    assert torch.allclose(toy_lib.forward(W, b, one_hot), one_hot, atol=1e-12)
    norms = W[0].norm(dim=0)
    assert torch.allclose(norms, norms[0].expand(n))
    assert bool((b <= 0).all())


def test_hand_built_pentagon_on_two_hot_inputs():
    W, b = geometry.hand_built_polygon(5)
    x = torch.zeros(1, 2, 5, dtype=torch.float64)
    x[0, 0, [0, 1]] = 1.0
    x[0, 1, [0, 2]] = 1.0
    out = toy_lib.forward(W, b, x)[0]
    r2 = 1 / (1 - math.cos(2 * math.pi / 5))
    assert out[0, :2].tolist() == pytest.approx([r2, r2]) and out[0, 2:].abs().max() < 1e-12
    assert out[1, 0] == 0 and out[1, 2] == 0
    assert out[1, 1].item() == pytest.approx(r2 - 1)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: geometry.random_unit_vectors(5, 0), "dim=0: expected a positive integer"),
        (lambda: geometry.random_unit_vectors(0, 3), "n_vectors=0"),
        (lambda: geometry.random_unit_vectors(5, 3, draws=0), "draws=0"),
        (lambda: geometry.random_unit_vectors(5, 2.5), "dim=2.5"),
        (lambda: geometry.random_unit_vectors(5, 3, seed=-1), "seed=-1"),
        (lambda: geometry.random_rotation(0), "dim=0"),
        (lambda: geometry.max_abs_cosine(torch.ones(3, 1)), "at least 2 vectors"),
        (lambda: geometry.max_abs_cosine(torch.ones(3)), "expected a matrix (dim, vector)"),
        (lambda: geometry.max_abs_cosine(torch.ones(2, 2, 2, 2)), "expected a matrix (dim, vector)"),
        (lambda: geometry.cosine_matrix(torch.tensor([[1.0, 0.0], [0.0, 0.0]])), "zero column"),
        (lambda: geometry.max_abs_cosine([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
        (lambda: geometry.cosine_tail(1.5, 10), "threshold=1.5"),
        (lambda: geometry.cosine_tail(0.5, 1), "dim=1"),
        (lambda: geometry.predicted_max_abs_cosine(1, 10), "n_vectors=1: expected an integer >= 2"),
        (lambda: geometry.random_fit_count(64, 0.0), "threshold=0.0: expected a number in (0, 1)"),
        (lambda: geometry.random_fit_count(64, 1.0), "threshold=1.0: expected a number in (0, 1)"),
        (lambda: geometry.packing_bound(0, 0.1), "dim=0"),
        (lambda: geometry.packing_bound(10, -0.1), "threshold=-0.1"),
        (lambda: geometry.pack_vectors(1, 4), "n_vectors=1: expected an integer >= 2"),
        (lambda: geometry.pack_vectors(5, 4, lr=0), "lr=0"),
        (lambda: geometry.pack_count(8, 1.2), "threshold=1.2"),
        (lambda: geometry.pack_count(0), "dim=0"),
        (lambda: geometry.interference(torch.ones(4), torch.ones(2, 4)), "W="),
        (lambda: geometry.interference(torch.ones(2, 4), torch.ones(3, 5)), "feature axis"),
        (lambda: geometry.interference(torch.ones(2, 4), torch.ones(4)), "x="),
        (lambda: geometry.expected_interference(1.5, 0.9), "cos=1.5"),
        (lambda: geometry.expected_interference(0.5, 1.0), "sparsity_i=1.0: expected a sparsity in [0, 1)"),
        (lambda: geometry.expected_interference(0.5, 0.9, clipped=1), "clipped=1: expected True or False"),
        (lambda: geometry.simulate_interference(0.5, 0.9, batch_size=1), "batch_size=1"),
        (lambda: geometry.hand_built_polygon(1), "n_features=1: expected an integer >= 2"),
        (lambda: geometry.top_feature_share(torch.ones(4)), "W="),
        (lambda: geometry.train_probe(torch.ones(5, 2), torch.ones(4, 1)), "batch axis"),
        (lambda: geometry.train_probe(torch.ones(5, 2), 2 * torch.ones(5, 1)), "0 or 1"),
        (lambda: geometry.train_probe(torch.ones(5, 2), torch.ones(5, 1), steps=0), "steps=0"),
        (lambda: geometry.single_neuron_accuracy(torch.ones(5), torch.ones(5, 1)), "activations="),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value), str(info.value)


# --------------------------------------------------------------------------- adversarial gain


def test_adversarial_gain_hand_checked_cases():
    # orthonormal features: the output moves exactly as far as the input (gain 1)
    x = torch.rand(1, 16, 3, generator=torch.Generator().manual_seed(0)) + 0.5
    gain = geometry.adversarial_gain(torch.eye(3)[None], torch.zeros(1, 3), x, epsilon=0.05)
    assert gain.shape == (1,) and gain[0] == pytest.approx(1.0, abs=1e-6)
    # two features on one line: W^T W = [[1, 1], [1, 1]], largest singular value 2
    both = geometry.adversarial_gain(
        torch.ones(1, 1, 2), torch.zeros(1, 2), torch.full((1, 4, 2), 0.5), epsilon=0.01
    )
    assert both[0] == pytest.approx(2.0, abs=1e-4)
    # every output held below zero by a bias of -1: a push of 0.1 moves nothing
    off = geometry.adversarial_gain(torch.eye(2)[None], -torch.ones(1, 2), torch.zeros(1, 4, 2), epsilon=0.1)
    assert off[0] == 0.0


def test_adversarial_gain_is_batched_and_reproducible():
    gen = torch.Generator().manual_seed(3)
    W, b, x = (
        torch.randn(3, 2, 5, generator=gen),
        -0.1 * torch.rand(3, 5, generator=gen),
        torch.rand(3, 8, 5, generator=gen),
    )
    together = geometry.adversarial_gain(W, b, x)
    assert np.array_equal(together, geometry.adversarial_gain(W, b, x))
    alone = [geometry.adversarial_gain(W[i : i + 1], b[i : i + 1], x[i : i + 1], seed=i)[0] for i in range(3)]
    assert together == pytest.approx(alone, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epsilon=0.0), r"^epsilon=0\.0: expected a positive finite number"),
        (dict(steps=0), r"^steps=0: expected a positive integer"),
        (dict(seed=-1), r"^seed=-1"),
        (dict(x=torch.zeros(1, 4, 3)), r"^x=.*feature"),
        (dict(b=torch.zeros(2, 2)), r"^b=.*instance"),
        (dict(x=torch.full((1, 4, 2), float("nan"))), r"^x=.*finite"),
    ],
)
def test_adversarial_gain_bad_arguments(kwargs, message):
    args = dict(W=torch.eye(2)[None], b=torch.zeros(1, 2), x=torch.zeros(1, 4, 2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        geometry.adversarial_gain(args.pop("W"), args.pop("b"), args.pop("x"), **args)
