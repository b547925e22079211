"""The fast training path: the sparse sampler's statistics, the hand-written gradient and optimiser.

Speed itself is measured by benchmarks/bench_trainer.py, never here.
"""

import math

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import data
from toy_lib.data import _BatchSampler as BatchSampler
from toy_lib.data import _candidate_capacity as candidate_capacity
from toy_lib.model import forward, loss_per_instance
from toy_lib.training import _AdamW as AdamW
from toy_lib.training import _loss_and_grad as loss_and_grad


def _prob(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize(
    "backend, p",
    [
        # Every probability <= 0.5 and a batch above data.SMALL: the torch backend's
        # geometric-gap path with thinning (p / max p < 1) draws every instance.
        ("torch", [[0.5, 0.2, 0.05, 0.01], [0.001, 0.3, 0.3, 0.1]]),
        # Every probability <= SPARSE_AT_MOST: the numba backend jumps between active entries.
        ("numba", [[0.03, 0.02, 0.01, 0.001], [0.0005, 0.025, 0.025, 0.01]]),
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
    """(torch threads, the step's worker threads) seen at every call of `train`'s compiled CPU
    step."""
    pytest.importorskip("numba")
    seen = []
    real = toy_lib.training.__dict__["_CpuStep"]

    class Spy(real):
        def step(self, *args, **kwargs):
            seen.append((torch.get_num_threads(), self.workers))
            return super().step(*args, **kwargs)

    monkeypatch.setitem(toy_lib.training.__dict__, "_CpuStep", Spy)
    return seen


def test_small_training_runs_single_threaded_and_restores_the_setting(step_threads):
    import numba

    before = torch.get_num_threads(), numba.get_num_threads()
    cfg = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.1)
    toy_lib.train(cfg, steps=3, batch_size=64, device="cpu", eval_batch_size=64)
    assert step_threads == [(1, 1)] * 4  # three steps and the final evaluation
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


def test_torch_thread_setting_governs_the_compiled_kernels_too(step_threads):
    before = torch.get_num_threads()
    cfg = toy_lib.ToyModelConfig(n_features=64, n_hidden=4, n_instances=8, feature_probability=0.5)
    assert 8 * 64 * 4096 >= toy_lib.training.__dict__["SINGLE_THREAD_BELOW"]  # not a small problem
    try:
        torch.set_num_threads(1)
        toy_lib.train(cfg, steps=2, batch_size=4096, device="cpu", eval_batch_size=64)
    finally:
        torch.set_num_threads(before)
    assert step_threads == [(1, 1)] * 3  # two steps and the final evaluation


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_compiled_cpu_step_equals_the_tensor_program(activation):
    # The CPU step (five products and the compiled residual pass) against `loss_and_grad`, which
    # is checked against autograd above; float32, so the tolerance is float32's.
    pytest.importorskip("numba")
    from toy_lib.training import _CpuStep

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
    monkeypatch.setattr(data, "_resolve_backend", lambda backend, device: "torch")
    tensor = toy_lib.train(cfg, **kwargs)
    np.testing.assert_allclose(compiled.final_loss.numpy(), tensor.final_loss.numpy(), rtol=0.1)


def _coin_batch(sampler: BatchSampler, batch: int) -> tuple[np.ndarray, np.ndarray, int, torch.Tensor]:
    """The next batch of ``sampler``'s coin stream, every instance drawn coin by coin, as the
    tiny kernel draws it: ``(p40, keys, batch number, x)``."""
    from toy_lib import _cpu_kernels

    (p40, _, _), keys, number = sampler.stream()
    n_inst, n_feat = p40.shape
    x = torch.empty(n_inst, batch, n_feat)
    no_jumps = np.zeros(n_inst)
    _cpu_kernels.sample_batch(p40, no_jumps, p40, keys, number, x.numpy())
    return p40, keys, number, x


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("n_feat, n_hidden", [(2, 1), (3, 2), (5, 2), (6, 2)])
def test_tiny_kernel_equals_the_tensor_program(activation, n_feat, n_hidden):
    # The generated tiny kernel draws its own batch: it must be the coin stream's batch, and its
    # loss and gradient those of `loss_and_grad` (checked against autograd above) on it.
    pytest.importorskip("numba")
    from toy_lib import _cpu_kernels

    assert _cpu_kernels.tiny_fits(n_feat, n_hidden)
    gen = torch.Generator().manual_seed(7)
    n_inst, batch = 7, 203  # a batch that is no multiple of the vector width
    prob = torch.tensor([1.0, 0.7, 0.3, 0.1, 0.04, 0.01, 0.0])[:, None].expand(n_inst, n_feat).clone()
    importance = torch.rand(n_inst, n_feat, generator=gen)
    sampler = BatchSampler(prob, batch, generator=gen, backend="numba")
    p40, keys, number, x = _coin_batch(sampler, batch)
    assert x[0].count_nonzero() == x[0].numel() and x[-1].count_nonzero() == 0
    Wb = torch.randn(n_inst, n_hidden + 1, n_feat, generator=gen) * 0.7
    weight = importance / (batch * n_feat)
    loss = np.empty(n_inst, dtype=np.float32)
    grad = np.empty((n_inst, n_hidden + 1, n_feat), dtype=np.float32)
    kernel = _cpu_kernels.tiny_step(n_feat, n_hidden, activation == "relu")
    kernel(Wb.numpy(), p40, keys, number, weight.numpy(), batch, loss, grad, 0, n_inst)
    ref_loss, ref_grad = loss_and_grad(
        Wb.double(), x.transpose(1, 2).double(), weight.double().sqrt()[:, :, None], activation
    )
    torch.testing.assert_close(torch.from_numpy(loss).double(), ref_loss, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(torch.from_numpy(grad).double(), ref_grad, rtol=1e-4, atol=1e-7)


def test_training_is_bitwise_independent_of_the_thread_count(step_threads):
    # Large enough to run on every thread (not a "small" problem): one and two threads must give
    # the same weights bit for bit, on the tiny kernel and on the product path.
    import numba

    threads = min(2, numba.config.NUMBA_NUM_THREADS)
    for n_feat, n_hidden, n_inst in [(3, 2, 512), (24, 6, 48)]:
        cfg = toy_lib.ToyModelConfig(
            n_features=n_feat,
            n_hidden=n_hidden,
            n_instances=n_inst,
            feature_probability=np.logspace(0, -2, n_inst),
        )
        assert n_inst * n_feat * 1024 >= toy_lib.training.__dict__["SINGLE_THREAD_BELOW"]
        results = []
        before = torch.get_num_threads()
        try:
            for n in (1, threads):
                torch.set_num_threads(n)
                results.append(toy_lib.train(cfg, steps=20, device="cpu", eval_batch_size=1024))
        finally:
            torch.set_num_threads(before)
        assert torch.get_num_threads() == before
        one, many = results
        assert torch.equal(one.W, many.W) and torch.equal(one.b, many.b)
        assert torch.equal(one.loss_history, many.loss_history)
    # the step's workers are its threads; torch runs on one meanwhile
    assert {w for _, w in step_threads} == {1, threads} and {t for t, _ in step_threads} == {1}


def test_a_one_thread_setting_survives_numba_starting_its_threads():
    # In a fresh process, Numba's OpenMP layer resets OpenMP's thread count (which torch reads)
    # as its thread pool starts: torch.set_num_threads(1) made before must still hold in `train`.
    pytest.importorskip("numba")
    code = """
import numba, torch
torch.set_num_threads(1)
import toy_lib
from toy_lib import training
seen = []
class Spy(training._CpuStep):
    def step(self, *args, **kwargs):
        seen.append((torch.get_num_threads(), numba.get_num_threads(), self.workers))
        return super().step(*args, **kwargs)
training._CpuStep = Spy
cfg = toy_lib.ToyModelConfig(n_features=64, n_hidden=4, n_instances=8, feature_probability=0.5)
toy_lib.train(cfg, steps=2, batch_size=4096, device="cpu", eval_batch_size=64)
print(seen, torch.get_num_threads())
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[(1,", "1,", "1),", "(1,", "1,", "1),", "(1,", "1,", "1)]", "1"], out


@pytest.mark.parametrize("faster", [1, 2])
def test_the_step_uses_the_worker_count_that_was_faster_when_last_timed(faster):
    pytest.importorskip("numba")
    from toy_lib.training import _CpuStep

    step = _CpuStep(8, 20, 1024, 200, torch.ones(8, 200), workers=2)
    assert len(step.chunks) > 1
    used = []
    for _ in range(2 * _CpuStep.RETIME_EVERY + 5):
        n = step._choose_workers()
        used.append(n)
        step._timed(n, 1.0 if n == faster else 3.0)
    trial = 2 * _CpuStep.TRIALS
    assert used[0] == 2  # the warm-up step
    assert sorted(used[1 : 1 + trial]) == [1] * _CpuStep.TRIALS + [2] * _CpuStep.TRIALS
    settled = used[1 + trial : _CpuStep.RETIME_EVERY + 1]
    assert settled == [faster] * len(settled)
    retimed = used[_CpuStep.RETIME_EVERY + 1 : _CpuStep.RETIME_EVERY + 1 + trial]
    assert sorted(retimed) == [1] * _CpuStep.TRIALS + [2] * _CpuStep.TRIALS


def test_without_numba_training_falls_back_to_the_tensor_path():
    # Numba is optional: with it missing, toy_lib must import and train on the tensor program.
    code = """
import sys
sys.modules["numba"] = None  # as if it were not installed
import torch
import toy_lib
from toy_lib import _cpu_kernels, data
assert not _cpu_kernels.AVAILABLE and _cpu_kernels.numba_module() is None
assert data._BatchSampler(torch.full((1, 3), 0.5), 4).backend == "torch"
cfg = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=[1.0, 0.05])
result = toy_lib.train(cfg, steps=20, device="cpu", eval_batch_size=256)
print(bool(result.final_loss.isfinite().all()))
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True"], out


@pytest.mark.parametrize("n_feat, n_hidden", [(3, 2), (24, 6)])
def test_compiled_final_evaluation_equals_the_tensor_one(n_feat, n_hidden):
    # `train` measures the final loss with the compiled step on the CPU: on the same samples
    # it must be `evaluate`'s number. The tiny kernel draws every instance coin by coin, so the
    # samples are the same where `generate_batch` draws coins too (probabilities above
    # SPARSE_AT_MOST); the product path draws exactly `generate_batch`'s samples.
    pytest.importorskip("numba")
    from toy_lib import _cpu_kernels
    from toy_lib.training import _CpuStep, _evaluate

    gen = torch.Generator().manual_seed(8)
    lowest = 0.04 if _cpu_kernels.tiny_fits(n_feat, n_hidden) else 0.005
    n_inst = 6
    prob = torch.tensor(np.geomspace(1.0, lowest, n_inst), dtype=torch.float32)[:, None].expand(
        n_inst, n_feat
    )
    importance = torch.rand(n_inst, n_feat, generator=gen)
    W = torch.randn(n_inst, n_hidden, n_feat, generator=gen) * 0.5
    b = 0.2 * torch.randn(n_inst, n_feat, generator=gen)
    Wb = torch.cat([W, b[:, None]], dim=1)
    for activation in ("relu", "linear"):
        config = toy_lib.ToyModelConfig(
            n_features=n_feat,
            n_hidden=n_hidden,
            n_instances=n_inst,
            feature_probability=prob.numpy(),
            importance=importance.numpy(),
            activation=activation,
        )
        params = {"W": W, "b": b}
        ref = _evaluate(config, params, prob, importance, 5000, torch.Generator().manual_seed(9))
        got = _CpuStep.evaluate(Wb, prob, importance, activation, 5000, torch.Generator().manual_seed(9), 2)
        torch.testing.assert_close(got, ref, rtol=2e-5, atol=1e-9)


def test_the_autograd_path_runs_on_one_thread_below_its_own_threshold(monkeypatch):
    # A finite training set of 2 x 600 features x 1,000 samples: above SINGLE_THREAD_BELOW, below
    # AUTOGRAD_SINGLE_THREAD_BELOW, so the autograd step runs on one torch thread (two threads
    # made the double-descent run 8x slower on a busy 2-core machine), and the setting comes back.
    training = toy_lib.training.__dict__
    assert training["SINGLE_THREAD_BELOW"] <= 2 * 600 * 1000 < training["AUTOGRAD_SINGLE_THREAD_BELOW"]
    seen = []
    real = training["_GenericStep"]

    class Spy(real):
        def __call__(self, *args, **kwargs):
            seen.append(torch.get_num_threads())
            return super().__call__(*args, **kwargs)

    monkeypatch.setitem(training, "_GenericStep", Spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cfg = toy_lib.ToyModelConfig(n_features=600, n_hidden=2, feature_probability=0.01, dataset_size=1000)
        toy_lib.train(cfg, steps=2, restarts=2, device="cpu", progress=False)
        assert seen == [1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
