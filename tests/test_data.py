"""Sparse batch generation: density, value distribution, shapes and seeding.

Every statistical test runs on both sampler backends: the compiled ``"numba"`` kernel that
`train` uses on the CPU, and the ``"torch"`` tensor program that it uses on a GPU.
"""

import numpy as np
import pytest
import torch

from toy_lib import ToyModelConfig, generate_batch

N_SAMPLES = 200_000  # per instance; >= 100k as the foundation issue asks


@pytest.fixture(params=["numba", "torch"])
def backend(request) -> str:
    return request.param


def _prob(cfg: ToyModelConfig) -> torch.Tensor:
    return torch.tensor(cfg.probability_matrix(), dtype=torch.float32)


def _density_tolerance(p: np.ndarray, n: int) -> np.ndarray:
    """Five standard errors of a Bernoulli mean, plus a tiny floor."""
    return 5 * np.sqrt(p * (1 - p) / n) + 1e-4


def _check_density(cfg: ToyModelConfig, backend: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = generate_batch(_prob(cfg), N_SAMPLES, generator=gen, backend=backend)
    assert x.shape == (cfg.n_instances, N_SAMPLES, cfg.n_features)
    density = (x != 0).double().mean(dim=1).numpy()  # (instance, feature)
    p = cfg.probability_matrix()
    np.testing.assert_array_less(np.abs(density - p), _density_tolerance(p, N_SAMPLES))
    return x


def test_density_scalar_probability(backend):
    _check_density(ToyModelConfig(n_features=6, n_hidden=2, n_instances=2, feature_probability=0.05), backend)


def test_density_per_instance_probability(backend):
    _check_density(
        ToyModelConfig(n_features=5, n_hidden=2, n_instances=4, feature_probability=[1.0, 0.3, 0.05, 0.0]),
        backend,
    )


def test_density_per_feature_probability(backend):
    probs = np.array([[0.9, 0.5, 0.1, 0.01, 0.002], [0.002, 0.01, 0.1, 0.5, 0.9]])
    _check_density(
        ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=probs), backend
    )


def test_active_values_are_uniform_on_unit_interval(backend):
    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=2, feature_probability=0.3)
    x = _check_density(cfg, backend, seed=1)
    vals = x[x != 0].double().numpy()
    assert vals.min() >= 0.0 and vals.max() <= 1.0
    # Mean 1/2 and variance 1/12 of U[0, 1], within a few standard errors.
    n = len(vals)
    assert abs(vals.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(vals.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    # Deciles: each tenth of [0, 1] holds a tenth of the values.
    counts = np.histogram(vals, bins=10, range=(0, 1))[0] / n
    np.testing.assert_array_less(np.abs(counts - 0.1), 5 * np.sqrt(0.09 / n))


def test_active_values_are_independent_of_the_feature(backend):
    probs = np.array([[0.8, 0.05]])
    cfg = ToyModelConfig(n_features=2, n_hidden=1, n_instances=1, feature_probability=probs)
    x = _check_density(cfg, backend, seed=2)[0]
    for f in range(2):
        vals = x[:, f][x[:, f] != 0].double()
        assert abs(vals.mean().item() - 0.5) < 5 * np.sqrt(1 / 12 / len(vals))


def test_probability_one_and_zero_are_exact(backend):
    cfg = ToyModelConfig(n_features=3, n_hidden=1, n_instances=2, feature_probability=[1.0, 0.0])
    x = generate_batch(_prob(cfg), 10_000, generator=torch.Generator().manual_seed(0), backend=backend)
    assert torch.all(x[1] == 0)
    assert (x[0] == 0).double().mean() < 1e-3  # only exact zeros of U[0, 1] could remain


def test_seed_reproduces_the_batch_and_another_seed_does_not(backend):
    cfg = ToyModelConfig(n_features=5, n_hidden=2, n_instances=3, feature_probability=0.2)
    a = generate_batch(_prob(cfg), 4096, generator=torch.Generator().manual_seed(7), backend=backend)
    b = generate_batch(_prob(cfg), 4096, generator=torch.Generator().manual_seed(7), backend=backend)
    c = generate_batch(_prob(cfg), 4096, generator=torch.Generator().manual_seed(8), backend=backend)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("batch_size", [0, -3, 2.0, True])
def test_bad_batch_size_is_named(batch_size):
    with pytest.raises(ValueError, match=f"batch_size={batch_size!r}.*positive integer"):
        generate_batch(torch.full((1, 2), 0.5), batch_size)


def test_bad_probability_shape_is_named():
    with pytest.raises(
        ValueError, match=r"feature_probability=.*expected .*\(instance, feature\), got shape \(5,\)"
    ):
        generate_batch(torch.full((5,), 0.5), 8)


def test_bad_backend_is_named():
    with pytest.raises(ValueError, match="backend='jax'.*'numba', 'torch'"):
        generate_batch(torch.full((1, 2), 0.5), 8, backend="jax")


def test_the_numba_backend_refuses_a_gpu_tensor():
    # (no GPU here: the backend's own check, which generate_batch runs for any device)
    from toy_lib.data import _resolve_backend

    with pytest.raises(
        ValueError, match="backend='numba': expected 'torch' or None .* not on the CPU, got cuda"
    ):
        _resolve_backend("numba", torch.device("cuda"))


def test_the_numba_batch_does_not_depend_on_the_number_of_threads():
    numba = pytest.importorskip("numba")
    prob = torch.tensor([[1.0, 0.5, 0.2], [0.04, 0.01, 0.0], [0.3, 0.3, 0.3]])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = generate_batch(prob, 5000, generator=torch.Generator().manual_seed(3), backend="numba")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = generate_batch(prob, 5000, generator=torch.Generator().manual_seed(3), backend="numba")
    finally:
        numba.set_num_threads(before)
    assert torch.equal(one, many)
