"""The fast training path: the sparse sampler's statistics, the hand-written gradient and optimiser.

Speed itself is measured by benchmarks/bench_trainer.py, never here.
"""

import math

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import data
from toy_lib.data import BatchSampler, candidate_capacity
from toy_lib.model import forward, loss_per_instance
from toy_lib.train import AdamW, loss_and_grad


def _prob(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize(
    "backend, p",
    [
        # Every probability <= 0.5 and a batch above data.SMALL: the torch backend's
        # geometric-gap path with thinning (p / max p < 1) draws every instance.
        ("torch", [[0.5, 0.2, 0.05, 0.01], [0.001, 0.3, 0.3, 0.1]]),
        # Every probability <= SPARSE_AT_MOST: the numba backend jumps between active entries.
        ("numba", [[0.05, 0.02, 0.01, 0.001], [0.0005, 0.03, 0.03, 0.01]]),
    ],
)
def test_sparse_instances_with_per_feature_probabilities_use_thinning_and_keep_the_density(backend, p):
    p = np.array(p)
    n = 100_000
    sampler = BatchSampler(_prob(p), n, generator=torch.Generator().manual_seed(0), backend=backend)
    if backend == "torch":
        assert p.size * n > data.SMALL
        assert sampler._n_cand > 0 and sampler._thin and len(sampler._dense) == 0
    else:
        _, inv_log1m_q, thin40 = sampler._tables
        assert np.all(inv_log1m_q < 0) and np.any(thin40 < 2**40)  # sparse, thinned
    x = sampler.sample()
    density = (x != 0).double().mean(dim=1).numpy()
    np.testing.assert_array_less(np.abs(density - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-4)
    vals = x[x != 0].double()
    assert abs(vals.mean().item() - 0.5) < 5 * np.sqrt(1 / 12 / len(vals))


@pytest.mark.parametrize("backend, p", [("torch", 0.1), ("numba", 0.1), ("numba", 0.03)])
def test_active_entries_are_independent_across_the_batch_and_features(backend, p):
    # Successive entries of a random sequence run along the batch within a feature (torch), or
    # along the features within a sample (numba): activity must be uncorrelated either way,
    # and the number of active features per sample Binomial(n_features, p).
    n_feat, n = 50, 20_000
    gen = torch.Generator().manual_seed(1)
    x = BatchSampler(torch.full((1, n_feat), p), n, generator=gen, backend=backend).sample()
    a = (x[0] != 0).double()  # (batch, feature)
    along_batch = np.corrcoef(a[:-1].flatten(), a[1:].flatten())[0, 1]
    along_features = np.corrcoef(a[:, :-1].flatten(), a[:, 1:].flatten())[0, 1]
    tol = 5 / np.sqrt(a.numel())
    assert abs(along_batch) < tol and abs(along_features) < tol
    counts = a.sum(dim=1).numpy()
    assert abs(counts.mean() - n_feat * p) < 5 * np.sqrt(n_feat * p * (1 - p) / n)
    assert abs(counts.var() - n_feat * p * (1 - p)) < 0.05 * n_feat * p * (1 - p)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_each_batch_is_fresh_and_the_previous_entries_are_cleared(backend):
    gen = torch.Generator().manual_seed(2)
    sampler = BatchSampler(torch.full((3, 40), 0.02), 4096, generator=gen, backend=backend)
    first = sampler.sample().clone()
    second = sampler.sample()
    assert not torch.equal(first, second)
    for x in (first, second):  # no entries left over from the batch before
        assert abs((x != 0).double().mean().item() - 0.02) < 5 * np.sqrt(0.02 * 0.98 / x.numel())


def test_candidate_buffer_overflow_is_counted_and_refused(monkeypatch):
    # With almost no slack, some batches need more candidates than the buffer holds: the
    # sampler must say so, and generate_batch must refuse, instead of returning a thinner batch.
    monkeypatch.setattr(data, "TAIL_LOG", 1e-6)
    prob = torch.full((4, 100), 0.05)
    sampler = BatchSampler(prob, 2048, generator=torch.Generator().manual_seed(3), backend="torch")
    for _ in range(20):
        sampler.sample()
    assert sampler.truncated.item() > 0
    with pytest.raises(RuntimeError, match="overflowed"):
        for seed in range(20):
            toy_lib.generate_batch(prob, 2048, generator=torch.Generator().manual_seed(seed), backend="torch")


def _log_binomial_tail(n: int, q: float, k: int) -> float:
    """log P(Binomial(n, q) >= k), summed exactly in log space."""
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + j * math.log(q)
        + (n - j) * math.log1p(-q)
        for j in range(k, n + 1)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


@pytest.mark.parametrize("n, q", [(1024 * 5, 0.5), (200_000, 0.05), (20_480, 0.01), (1024, 1e-4)])
def test_capacity_overflows_with_probability_below_1e_15(n, q):
    cap = candidate_capacity(n, q)
    assert cap <= n
    assert _log_binomial_tail(n, q, cap) < math.log(1e-15)
    assert cap < n * q + 60 * math.sqrt(n * q) + 40  # and not absurdly large


def test_capacity_is_every_trial_when_all_succeed():
    assert candidate_capacity(1000, 1.0) == 1000


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_hand_written_gradient_equals_autograd(activation):
    gen = torch.Generator().manual_seed(4)
    n_inst, n_hidden, n_feat, batch = 5, 3, 7, 64
    prob = torch.tensor([1.0, 0.9, 0.3, 0.05, 0.0])[:, None].expand(n_inst, n_feat).clone()
    importance = torch.rand(n_inst, n_feat, generator=gen, dtype=torch.float64)
    importance[1, 2] = 0.0
    x = toy_lib.generate_batch(prob, batch, generator=gen).double()
    W = torch.randn(n_inst, n_hidden, n_feat, generator=gen, dtype=torch.float64)
    b = 0.3 * torch.randn(n_inst, n_feat, generator=gen, dtype=torch.float64)

    Wb = torch.cat([W, b[:, None]], dim=1)
    sqrt_weight = (importance / (batch * n_feat)).sqrt()[:, :, None]
    loss, grad = loss_and_grad(Wb, x.transpose(1, 2).contiguous(), sqrt_weight, activation)

    W_ref, b_ref = W.clone().requires_grad_(), b.clone().requires_grad_()
    ref = loss_per_instance(x, forward(W_ref, b_ref, x, activation), importance)
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad[:, :n_hidden], W_ref.grad, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(grad[:, n_hidden], b_ref.grad, rtol=1e-10, atol=1e-13)


def test_bad_activation_is_named():
    with pytest.raises(ValueError, match="activation='tanh'"):
        loss_and_grad(torch.zeros(1, 2, 3), torch.zeros(1, 3, 4), torch.ones(1, 3, 1), "tanh")


@pytest.mark.parametrize("weight_decay", [0.01, 0.0])
def test_optimiser_matches_torch_adamw_bitwise(weight_decay):
    gen = torch.Generator().manual_seed(5)
    mine = torch.randn(4, 3, 6, generator=gen)
    theirs = mine.clone().requires_grad_()
    opt = AdamW(mine, weight_decay=weight_decay)
    ref = (torch.optim.AdamW if weight_decay else torch.optim.Adam)(
        [theirs], lr=1e-3, weight_decay=weight_decay
    )
    for step in range(100):
        grad = torch.randn(4, 3, 6, generator=gen)
        lr = 1e-3 * (1 - step / 100)
        opt.step(grad, lr)
        for group in ref.param_groups:
            group["lr"] = lr
        theirs.grad = grad.clone()
        ref.step()
    assert torch.equal(mine, theirs.detach())


@pytest.fixture
def step_threads(monkeypatch):
    """(torch threads, Numba threads) seen at every call of `train`'s compiled CPU step."""
    numba = pytest.importorskip("numba")
    seen = []
    real = toy_lib.train.__globals__["_CpuStep"]

    class Spy(real):
        def __call__(self, *args, **kwargs):
            seen.append((torch.get_num_threads(), numba.get_num_threads()))
            return super().__call__(*args, **kwargs)

    monkeypatch.setitem(toy_lib.train.__globals__, "_CpuStep", Spy)
    return seen


def test_small_training_runs_single_threaded_and_restores_the_setting(step_threads):
    import numba

    before = torch.get_num_threads(), numba.get_num_threads()
    cfg = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.1)
    toy_lib.train(cfg, steps=3, batch_size=64, device="cpu", eval_batch_size=64)
    assert step_threads == [(1, 1)] * 3
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


def test_torch_thread_setting_governs_the_compiled_kernels_too(step_threads):
    before = torch.get_num_threads()
    cfg = toy_lib.ToyModelConfig(n_features=64, n_hidden=4, n_instances=8, feature_probability=0.5)
    assert 8 * 64 * 4096 >= toy_lib.train.__globals__["SINGLE_THREAD_BELOW"]  # not a small problem
    try:
        torch.set_num_threads(1)
        toy_lib.train(cfg, steps=2, batch_size=4096, device="cpu", eval_batch_size=64)
    finally:
        torch.set_num_threads(before)
    assert [numba_threads for _, numba_threads in step_threads] == [1, 1]


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_compiled_cpu_step_equals_the_tensor_program(activation):
    # The CPU step (five products and the compiled residual pass) against `loss_and_grad`, which
    # is checked against autograd above; float32, so the tolerance is float32's.
    pytest.importorskip("numba")
    from toy_lib.train import _CpuStep

    gen = torch.Generator().manual_seed(6)
    n_inst, n_hidden, n_feat, batch = 4, 3, 9, 128
    prob = torch.tensor([1.0, 0.5, 0.1, 0.02])[:, None].expand(n_inst, n_feat).clone()
    importance = torch.rand(n_inst, n_feat, generator=gen)
    x = toy_lib.generate_batch(prob, batch, generator=gen, backend="numba")
    Wb = torch.randn(n_inst, n_hidden + 1, n_feat, generator=gen) * 0.5
    weight = importance / (batch * n_feat)
    loss = np.empty(n_inst, dtype=np.float32)
    grad = _CpuStep(n_inst, n_hidden, batch, n_feat, weight)(Wb, x, activation, loss)
    ref_loss, ref_grad = loss_and_grad(
        Wb, x.transpose(1, 2).contiguous(), weight.sqrt()[:, :, None], activation
    )
    torch.testing.assert_close(torch.from_numpy(loss), ref_loss, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-7)


def test_the_compiled_and_tensor_training_paths_reach_the_same_loss(monkeypatch):
    # The same recipe through both training loops on the CPU (different random streams, so not
    # the same weights): the final losses must agree to within the noise between seeds.
    pytest.importorskip("numba")
    cfg = toy_lib.ToyModelConfig(
        n_features=5,
        n_hidden=2,
        n_instances=3,
        feature_probability=[1.0, 0.1, 0.01],
        importance=0.9 ** np.arange(5),
    )
    kwargs = dict(steps=3000, batch_size=256, lr=1e-2, device="cpu", restarts=2, eval_batch_size=1 << 16)
    compiled = toy_lib.train(cfg, **kwargs)
    monkeypatch.setattr(data, "resolve_backend", lambda backend, device: "torch")
    tensor = toy_lib.train(cfg, **kwargs)
    np.testing.assert_allclose(compiled.final_loss.numpy(), tensor.final_loss.numpy(), rtol=0.1)
