"""Compiled CPU kernels (Numba) for the two passes of a training step that are not matrix products.

A training step on the CPU spends its time in three kinds of work: drawing the sparse batch,
five batched matrix products, and the element-wise passes between them. The products go to
PyTorch (MKL) and are as fast as this machine allows; the other two are written here as loops
that Numba compiles, so that each runs as a single pass over memory on every core:

- `sample_batch`: draws a batch entry by entry from a counter-based random number generator
  (below), or, for very sparse instances, jumps from one active entry to the next;
- `residual`: turns the pre-activations ``z`` into ``∂L/∂z`` in place and adds up each
  instance's loss, in one pass instead of five.

Random numbers. Entry ``(instance i, step t, row r, feature f)`` of the batch is a pure
function of the seed and of those four integers: a 64-bit key per instance and step
(``mix64(key_i ^ t·M1)``) plus the entry's position times the golden-ratio increment, passed
through ``mix64``, the finaliser of SplitMix64 (Steele, Lea & Flood 2014). This is exactly the
sequence SplitMix64 generates, and counter-based: no state is carried from one entry to the next,
so the loop over features vectorises, instances run in parallel, and the batch is the same
whichever thread draws it. Each 64-bit number gives both the coin and the value of its entry:

- the top 40 bits ``c`` decide activity: active when ``c < p·2^40``, i.e. with probability
  ``p`` exactly for every float32 ``p ≥ 2^-16`` (and within ``2^-41`` below that);
- the low 24 bits ``v`` give the value ``v·2^-24``: uniform on the grid of ``torch.rand``,
  independent of the coin.

Sparse instances (every probability at most `SPARSE_AT_MOST`) are drawn as `BatchSampler` draws
them on a GPU: the gaps between successive successes of Bernoulli(``q``) trials (``q`` the
instance's largest probability) are Geometric(``q``), from 53-bit uniforms by inversion, and a
success at feature ``f`` is kept with probability ``p_f / q`` (thinning). The cost is proportional
to the number of active entries. Below about 5% density it is cheaper than a coin per entry.
"""

from __future__ import annotations

import math

import numpy as np

try:  # Numba is a dependency; without it toy_lib falls back to its PyTorch path.
    from numba import njit, prange

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    AVAILABLE = False


def numba_module():
    """The ``numba`` module when the compiled kernels are available, else ``None``."""
    if not AVAILABLE:
        return None
    import numba

    return numba


# Instances whose largest probability is at most this jump from one active entry to the next.
SPARSE_AT_MOST = 0.05

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # the golden-ratio increment of SplitMix64
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
SPARSE_DOMAIN = np.uint64(0xD1B54A32D192ED03)  # separates the candidates' stream from the coins'


def mix64_numpy(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (NumPy, for the instance keys)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def instance_keys(seed: int, n_instances: int) -> np.ndarray:
    """One 64-bit key per instance, from a 64-bit seed."""
    with np.errstate(over="ignore"):
        counters = np.uint64(seed) + (np.arange(n_instances, dtype=np.uint64) + np.uint64(1)) * GAMMA
    return mix64_numpy(counters)


def thresholds(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampler's tables for ``(instance, feature)`` probabilities ``p`` (float64).

    Returns ``p40`` (coin thresholds ``p·2^40``), ``inv_log1m_q`` (``1 / log(1 - q)`` for the
    sparse instances, 0 for the others) and ``thin40`` (``(p / q)·2^40``; all ``2^40`` for
    instances that are not sparse).
    """
    q = p.max(axis=1) if p.shape[1] else np.zeros(p.shape[0])
    sparse = (q > 0) & (q <= float(np.float32(SPARSE_AT_MOST)))  # p arrives as float32
    p40 = np.rint(p * 2.0**40).astype(np.uint64)
    inv_log1m_q = np.zeros(p.shape[0])
    inv_log1m_q[sparse] = 1.0 / np.log1p(-q[sparse])
    ratio = np.ones_like(p)
    ratio[sparse] = p[sparse] / q[sparse][:, None]
    thin40 = np.rint(ratio * 2.0**40).astype(np.uint64)
    return p40, inv_log1m_q, thin40


if AVAILABLE:

    @njit(inline="always")
    def _mix64(z):
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))

    @njit(fastmath=True, cache=True, boundscheck=False)
    def _coin_per_entry(P, key, xi):  # pragma: no cover - compiled
        # fastmath lets LLVM vectorise the conversions; nothing here can be NaN or infinite
        batch, n_feat = xi.shape
        inv24 = np.float32(1.0 / 16777216.0)
        low24 = np.uint64(0xFFFFFF)
        sh24 = np.uint64(24)
        for r in range(batch):
            xr = xi[r]
            row = key + np.uint64(r * n_feat) * GAMMA
            for f in range(n_feat):
                u = _mix64(row + np.uint64(f) * GAMMA)
                v = np.float32(u & low24) * inv24
                xr[f] = v if (u >> sh24) < P[f] else np.float32(0.0)

    @njit(cache=True, boundscheck=False)
    def _jump_between_actives(T, il, key, xi):  # pragma: no cover - compiled
        batch, n_feat = xi.shape
        inv24 = np.float32(1.0 / 16777216.0)
        inv53 = 1.0 / 9007199254740992.0
        low24 = np.uint64(0xFFFFFF)
        sh24 = np.uint64(24)
        sh11 = np.uint64(11)
        key = _mix64(key ^ SPARSE_DOMAIN)
        flat = xi.reshape(-1)
        flat[:] = 0.0
        total = batch * n_feat
        c = np.uint64(0)
        u = _mix64(key)
        # Geometric gaps by inversion: floor(log(1 - u) / log(1 - q)), u on the 2^-53 grid
        pos = int(math.floor(math.log1p(-float(u >> sh11) * inv53) * il))
        while pos < total:
            c += np.uint64(1)
            u = _mix64(key + c * GAMMA)
            if (u >> sh24) < T[pos % n_feat]:  # thinning: keep with probability p_f / q
                flat[pos] = np.float32(u & low24) * inv24
            c += np.uint64(1)
            u = _mix64(key + c * GAMMA)
            pos += 1 + int(math.floor(math.log1p(-float(u >> sh11) * inv53) * il))

    @njit(parallel=True, cache=True, boundscheck=False)
    def sample_batch(p40, inv_log1m_q, thin40, keys, step, x):  # pragma: no cover - compiled
        """Fill ``x`` ``(instance, batch, feature)`` with batch number ``step`` (see the module)."""
        for i in prange(x.shape[0]):
            key = _mix64(keys[i] ^ (np.uint64(step) * M1))
            if inv_log1m_q[i] == 0.0:
                _coin_per_entry(p40[i], key, x[i])
            else:
                _jump_between_actives(thin40[i], inv_log1m_q[i], key, x[i])

    @njit(parallel=True, fastmath=True, cache=True, boundscheck=False)
    def residual(z, x, bias, weight, relu, loss, grad_bias):  # pragma: no cover - compiled
        """The element-wise middle of a training step, in one pass over the batch.

        With ``z`` the products ``Wᵀ W x`` (without the bias), ``x`` the batch (both
        ``(instance, batch, feature)``), ``bias`` ``(instance, feature)`` and ``weight``
        ``w = importance / (batch · feature)`` ``(instance, feature)``, writes, in place,
        ``z := ∂L/∂z = 2 w (act(z + b) - x) act'(z + b)``, each instance's loss
        ``Σ w (act(z + b) - x)²`` into ``loss`` ``(instance,)`` and ``∂L/∂b = Σ_batch ∂L/∂z``
        into ``grad_bias`` ``(instance, feature)``.
        """
        n_inst, batch, n_feat = z.shape
        for i in prange(n_inst):
            w = weight[i]
            b = bias[i]
            gb = grad_bias[i]
            gb[:] = 0.0
            total = 0.0
            for r in range(batch):
                zr = z[i, r]
                xr = x[i, r]
                part = np.float32(0.0)
                for f in range(n_feat):
                    zz = zr[f] + b[f]
                    e = (max(zz, np.float32(0.0)) if relu else zz) - xr[f]
                    we = w[f] * e
                    part += we * e
                    d = (we + we) if (zz > 0 or not relu) else np.float32(0.0)
                    zr[f] = d
                    gb[f] += d
                total += part
            loss[i] = total
