"""The compiled pieces behind `train_sae`'s CPU fast path on a toy model's activations
(benchmarks/README.md, "(e) past 5×"): the sampler that also forms ``h = W x`` from the batch's
active entries, and the firing search on float bits. Both must give exactly what the plain
computations give."""

from __future__ import annotations

import numpy as np
import pytest

from toy_lib import _cpu_kernels

pytestmark = pytest.mark.skipif(not _cpu_kernels.AVAILABLE, reason="needs Numba (the compiled path)")


@pytest.mark.parametrize("density", [0.05, 0.02, 1.0])  # coin by coin; jumps between actives; dense
def test_sample_hidden_draws_the_same_batch_and_sums_h_in_feature_order(density):
    n, batch, n_feat, n_hid = 3, 257, 20, 5
    p = np.full((n, n_feat), density)
    p[1, ::3] = density / 2  # an instance with unequal probabilities (thinning when it jumps)
    p40, inv_log1m_q, thin40 = _cpu_kernels.thresholds(p)
    keys = _cpu_kernels.instance_keys(7, n)
    Wt = np.random.default_rng(0).standard_normal((n, n_feat, n_hid)).astype(np.float32)
    x_ref = np.empty((n, batch, n_feat), np.float32)
    x = np.empty_like(x_ref)
    h = np.full((n, batch, n_hid), np.nan, np.float32)  # every entry must be written
    for step in (0, 5):
        _cpu_kernels.sample_batch(p40, inv_log1m_q, thin40, keys, step, x_ref)
        _cpu_kernels.sample_hidden(p40, inv_log1m_q, thin40, keys, step, x, Wt, h)
        np.testing.assert_array_equal(x, x_ref)  # the very batch `sample_batch` draws
        expected = np.zeros_like(h)  # h summed feature by feature, in float32, in order
        for f in range(n_feat):
            expected += x[:, :, f, None] * Wt[:, None, f, :]
        np.testing.assert_array_equal(h, expected)
        empty = ~(x != 0).any(-1)
        assert (h[empty] == 0).all()
        if density < 1:
            assert empty.any() and (~empty).any(), "the batch should have rows with and without actives"


def test_sample_hidden_with_no_active_entry_gives_zeros():
    n, batch, n_feat, n_hid = 2, 16, 4, 3
    p40, inv_log1m_q, thin40 = _cpu_kernels.thresholds(np.zeros((n, n_feat)))
    x = np.ones((n, batch, n_feat), np.float32)
    h = np.ones((n, batch, n_hid), np.float32)
    Wt = np.ones((n, n_feat, n_hid), np.float32)
    keys = _cpu_kernels.instance_keys(1, n)
    _cpu_kernels.sample_hidden(p40, inv_log1m_q, thin40, keys, 0, x, Wt, h)
    assert (x == 0).all() and (h == 0).all()


def test_the_firing_search_on_float_bits_is_the_plain_one():
    from toy_lib.sae import _cpu_step

    rng = np.random.default_rng(3)
    s, nr = 9, 70
    f = (rng.standard_normal((s, nr)) * rng.choice([1e-38, 1e-3, 1.0, 1e30], (s, nr))).astype(np.float32)
    f[0] = 0.0  # a latent that never fires
    f[1] = -np.abs(f[1])  # negatives only
    f[2, :5] = [np.inf, np.nan, 0.0, -0.0, np.float32(1e-45)]  # infinity, NaN, ±0, the least subnormal
    f[3] = np.where(f[3] > 0, np.inf, f[3])  # positive only at infinity: not a firing value below inf
    f[4] = np.nan
    for cols in (nr, 13, 1):
        active, fired = np.zeros(s, np.bool_), np.zeros(s, np.bool_)
        small = _cpu_step._firing(f, active, fired, cols, s)
        expected_least = []
        for j in range(s):
            values = [v for v in f[j, :cols] if v > 0 and v < np.inf]
            expected_least.append(min(values) if values else np.inf)
        np.testing.assert_array_equal(active, np.isfinite(expected_least))
        np.testing.assert_array_equal(fired, active)
        assert small == min(expected_least)
