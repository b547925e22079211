"""Synthetic sparse data: each feature is active with its own probability, with value U[0, 1].

Every batch has shape ``(instance, batch, feature)``: the instance axis comes first everywhere
in toy_lib, so that one tensor program trains many independent models at once.

How a batch is drawn (`BatchSampler`). The definition is "each entry ``x[i, b, f]`` is
independently non-zero with probability ``p[i, f]``, and then uniform on [0, 1]". Drawing two
dense random tensors and comparing one with ``p`` follows it literally, but spends two random
numbers and several passes over memory on every entry, most of which end up zero. The sampler
has two backends, both with exactly that distribution:

- ``"numba"`` (the default on the CPU when Numba is installed): a compiled kernel
  (``toy_lib/_cpu_kernels.py``) that spends one 64-bit counter-based random number per entry,
  40 bits for the coin and 24 for the value, and writes the batch in one pass on every core.
  Instances whose probabilities are all at most 5% instead jump from one active entry to the
  next, as below. The batch is a pure function of the seed, the batch number and the entry's
  position, so it does not depend on how many threads draw it.
- ``"torch"`` (GPUs, or ``backend="torch"``): tensor operations that draw only what is active.
  Sparse instances (largest probability ``q ≤ 0.5``): read the ``feature × batch`` entries of an
  instance as one sequence of independent Bernoulli(``q``) trials. The gaps between successive
  successes are independent Geometric(``q``) numbers, so the active positions are the running
  sums of geometric gaps; each success draws its value. Where a feature's probability ``p`` is
  below ``q`` a success is kept with probability ``p / q`` ("thinning"), which makes that entry
  Bernoulli(``q``) × Bernoulli(``p / q``) = Bernoulli(``p``). The work is proportional to the
  number of active entries, not to the size of the batch. Dense instances (``q > 0.5``), and
  every instance of a small batch (at most ``SMALL`` entries in all): the definition,
  literally: a uniform value per entry, kept when a second uniform falls below ``p``.
  Values are float32 uniforms on the grid of ``torch.rand``; gaps come from float64 uniforms
  (53 random bits), so even a gap of thousands of entries has its exact geometric probability.
  The candidates of a sparse instance live in a buffer of fixed size, so nothing waits on the
  host and a GPU never synchronises; the buffer is large enough that a batch needs more with
  probability below 1e-15, and the sampler counts such batches in ``truncated`` (`train`
  raises if one ever occurred) rather than silently returning a shortened batch. On the CPU its
  uniform numbers come from NumPy's SFC64 generator, on a GPU from torch's generator.

Either way the same torch generator state gives the same batches; the two backends give
different (equally distributed) batches for the same seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _cpu_kernels

# Instances whose largest feature probability exceeds this are drawn entry by entry, and so are
# batches with at most SMALL entries in all, where the fixed cost of the sparse path dominates.
DENSE_ABOVE = 0.5
SMALL = 2**17
BACKENDS = ("numba", "torch")
# A sparse instance's candidate buffer overflows with probability below exp(-TAIL_LOG) per batch.
TAIL_LOG = math.log(1e15)


def _check_args(feature_probability: torch.Tensor, batch_size: int) -> None:
    if not isinstance(feature_probability, torch.Tensor) or feature_probability.ndim != 2:
        shape = tuple(getattr(feature_probability, "shape", ()))
        raise ValueError(f"feature_probability has shape {shape}: expected (instance, feature)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")


def candidate_capacity(n_trials: int, q: float) -> int:
    """Candidates to draw so that ``n_trials`` Bernoulli(``q``) trials are covered.

    Covering fails only if more than the capacity of the trials succeed; Bernstein's inequality
    bounds that probability by ``exp(-TAIL_LOG)``.
    """
    mean = n_trials * q
    slack = TAIL_LOG / 3 + math.sqrt(TAIL_LOG**2 / 9 + 2 * TAIL_LOG * mean * (1 - q))
    return int(min(n_trials, math.ceil(mean + slack) + 1))


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """The sampler backend to use: ``backend`` checked, or the default for ``device``."""
    if backend is None:
        return "numba" if device.type == "cpu" and _cpu_kernels.AVAILABLE else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {', '.join(map(repr, BACKENDS))} or None")
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"backend='numba' draws on the CPU: expected a CPU probability tensor, got {device}")
    if backend == "numba" and not _cpu_kernels.AVAILABLE:
        raise ValueError("backend='numba': Numba is not installed (pip install numba)")
    return backend


class BatchSampler:
    """Draws batches ``(instance, batch, feature)`` of sparse features, touching only what is active.

    Args:
        feature_probability: ``(instance, feature)`` probabilities in [0, 1]. Its device and
            dtype set those of the batches.
        batch_size: samples per instance.
        generator: a seeded ``torch.Generator`` (on the CPU, or on the batches' CUDA device).
        backend: ``"numba"`` (CPU only), ``"torch"``, or ``None`` for ``"numba"`` on the CPU
            when Numba is installed and ``"torch"`` otherwise (see the module).

    `sample` returns a tensor that the next call overwrites (the sampler reuses its buffers);
    clone it to keep it. The ``"numba"`` backend returns a contiguous ``(instance, batch,
    feature)`` tensor, the layout of `train`'s CPU step; the ``"torch"`` backend stores the
    batch feature-major, ``(instance, feature, batch)``, and returns its transposed view, so
    ``x.transpose(1, 2)`` has the long batch axis innermost: the layout of `train`'s GPU step.

    Attributes:
        backend: the backend in use.
        truncated: ``()`` int64 tensor on the device, the number of batches in which a sparse
            instance needed more candidates than its buffer holds (expected: 0, ever; always 0
            for the ``"numba"`` backend, which has no such buffer).
    """

    def __init__(
        self,
        feature_probability: torch.Tensor,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        backend: str | None = None,
    ):
        _check_args(feature_probability, batch_size)
        self.device = dev = feature_probability.device
        self.dtype = feature_probability.dtype
        self.batch_size = batch_size
        n_inst, n_feat = feature_probability.shape
        self.shape = (n_inst, batch_size, n_feat)
        n_trials = batch_size * n_feat  # entries per instance
        self._n_trials, self._n_feat = n_trials, n_feat
        self.backend = resolve_backend(backend, dev)
        self.truncated = torch.zeros((), dtype=torch.int64, device=dev)

        p = feature_probability.detach().to("cpu", torch.float64).numpy()
        if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
            raise ValueError("feature_probability: expected values in [0, 1]")

        if self.backend == "numba":
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
            self._keys = _cpu_kernels.instance_keys(seed, n_inst)
            # float32 probabilities, as the model holds them, in float64 for the thresholds
            p32 = p.astype(np.float32).astype(np.float64)
            self._tables = _cpu_kernels.thresholds(p32)
            self._x = torch.empty(self.shape, dtype=torch.float32)
            self._step = 0
            return

        if dev.type == "cpu":  # NumPy's generator, seeded from the torch one
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
            self._np_rng = np.random.Generator(np.random.SFC64(seed))
        else:
            self._np_rng, self._generator = None, generator
        q = p.max(axis=1) if n_feat else np.zeros(n_inst)
        dense_above = -1.0 if n_inst * n_trials <= SMALL else DENSE_ABOVE
        dense = np.flatnonzero((q > dense_above) & (q > 0))
        sparse = np.flatnonzero((q > 0) & (q <= dense_above))

        # The batch: each instance's feature × batch entries and one spare slot after them, where
        # the candidates that fall outside the batch (or are thinned away) are written.
        stride = n_trials + 1
        self._flat = torch.zeros(n_inst * stride, device=dev, dtype=self.dtype)
        self._xt = self._flat.view(n_inst, stride)[:, :n_trials].view(n_inst, n_feat, batch_size)

        # Dense instances: entry (i, f, b) is active when its coin falls below p[i, f].
        self._dense = torch.as_tensor(dense, device=dev)
        self._dense_p = torch.as_tensor(p[dense][:, :, None], device=dev, dtype=torch.float32)
        n_dense = len(dense) * n_trials
        self._dense_values = self._buffer(n_dense, torch.float32).view(len(dense), n_feat, batch_size)
        self._dense_coins = self._buffer(n_dense, torch.float32).view(len(dense), n_feat, batch_size)

        # Sparse instances: one segment of candidates per instance, laid end to end.
        caps = np.array([candidate_capacity(n_trials, q[i]) for i in sparse], dtype=np.int64)
        self._n_cand = n_cand = int(caps.sum())
        seg = np.repeat(np.arange(len(sparse)), caps)
        ends = np.cumsum(caps)
        self._seg_first = torch.as_tensor(ends - caps, device=dev)
        self._seg_last = torch.as_tensor(ends - 1, device=dev)
        self._inv_log1m_q = torch.as_tensor(1 / np.log1p(-q[sparse])[seg], device=dev)
        start = (sparse * stride).astype(np.float64)  # flat index of each instance's first entry
        self._start_minus_1 = torch.as_tensor(start - 1, device=dev)
        self._zero = torch.zeros(1, dtype=torch.float64, device=dev)
        self._spare = torch.as_tensor((start + n_trials)[seg], device=dev)  # per candidate
        # Thinning: keep a candidate at feature f with probability p[i, f] / q[i].
        ratio = p[sparse] / q[sparse][:, None]
        self._thin = bool(np.any(ratio < 1))
        self._ratio = torch.as_tensor(ratio.reshape(-1), device=dev)
        self._ratio_offset = torch.as_tensor(np.arange(len(sparse))[seg] * n_feat, device=dev)
        self._values = self._buffer(n_cand, torch.float32)
        self._u = self._buffer(n_cand, torch.float64)
        self._sums = torch.empty(n_cand, device=dev, dtype=torch.float64)
        # Two index buffers, used in turn: the previous batch's entries are cleared first.
        self._index = [torch.empty(n_cand, device=dev, dtype=torch.int64) for _ in range(2)]
        self._written: torch.Tensor | None = None

    def _buffer(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        """A reusable tensor for ``n`` uniform numbers (on the CPU, a view of a NumPy array)."""
        if self._np_rng is not None:
            return torch.from_numpy(np.empty(n, dtype=np.float32 if dtype == torch.float32 else np.float64))
        return torch.empty(n, device=self.device, dtype=dtype)

    def _fill_uniform(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` with uniforms on [0, 1): float32 on the 2^-24 grid of ``torch.rand``, or
        float64 with 53 random bits."""
        if self._np_rng is not None:
            array = out.numpy().reshape(-1)
            self._np_rng.random(out=array, dtype=array.dtype)
        else:
            out.uniform_(generator=self._generator)
        return out

    def sample(self) -> torch.Tensor:
        """The next batch, ``(instance, batch, feature)``; overwritten by the next call."""
        if self.backend == "numba":
            p40, inv_log1m_q, thin40 = self._tables
            _cpu_kernels.sample_batch(p40, inv_log1m_q, thin40, self._keys, self._step, self._x.numpy())
            self._step += 1
            return self._x if self.dtype == torch.float32 else self._x.to(self.dtype)
        xt = self._xt
        if len(self._dense):
            # The definition, literally: a uniform value, kept when a second uniform is below p.
            values = self._fill_uniform(self._dense_values)
            coins = self._fill_uniform(self._dense_coins)
            values.mul_(torch.lt(coins, self._dense_p, out=coins))
            xt.index_copy_(0, self._dense, values.to(self.dtype))

        if self._n_cand:
            flat = self._flat
            if self._written is not None:
                flat.index_fill_(0, self._written, 0)
            values = self._fill_uniform(self._values).to(self.dtype)
            # Geometric(q) gaps >= 1 by inversion (1 - u lies in (0, 1], exactly).
            gaps = self._fill_uniform(self._u).neg_().add_(1).log_().mul_(self._inv_log1m_q)
            gaps.floor_().add_(1)
            # Running sums of the gaps are the active positions. Make every segment's sums start
            # at its instance's first entry: shift the first gap of each segment by the total of
            # the segments before it (float64 holds these integers exactly).
            first, sums = self._seg_first, self._sums
            before = torch.cumsum(gaps, 0, out=sums)[first] - gaps[first]
            gaps[first] += torch.diff(self._start_minus_1 - before, prepend=self._zero)
            index = torch.cumsum(gaps, 0, out=sums)  # flat index in the buffer
            last = self._seg_last
            self.truncated += (index[last] < self._spare[last] - 1).any()
            torch.minimum(index, self._spare, out=index)  # outside the batch: to the spare slot
            if self._thin:
                # feature of each candidate: (index mod (entries + 1)) // batch; the spare slot
                # counts as the last feature (it stays the spare slot either way)
                feature = torch.remainder(index, self._n_trials + 1).div_(
                    self.batch_size, rounding_mode="floor"
                )
                feature = feature.to(torch.int64).clamp_max_(self._n_feat - 1).add_(self._ratio_offset)
                accept = self._fill_uniform(self._u) < self._ratio[feature]
                torch.where(accept, index, self._spare, out=index)
            self._index.reverse()
            written = self._index[0].copy_(index)
            flat.scatter_(0, written, values)
            self._written = written
        return xt.transpose(1, 2)


def generate_batch(
    feature_probability: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Draw a batch of sparse feature vectors.

    Each entry ``x[i, b, f]`` is independently non-zero with probability
    ``feature_probability[i, f]``; a non-zero entry is uniform on [0, 1]. How it is drawn
    cheaply is described in `BatchSampler`.

    Args:
        feature_probability: ``(instance, feature)`` probabilities in [0, 1]. Its device and
            dtype set those of the batch.
        batch_size: number of samples per instance.
        generator: a seeded ``torch.Generator`` (on the CPU, or on the batch's CUDA device), for
            reproducible batches.
        backend: ``"numba"``, ``"torch"`` or ``None`` (the default for the device; see
            `BatchSampler`).

    Returns:
        ``x``: ``(instance, batch, feature)``.
    """
    sampler = BatchSampler(feature_probability, batch_size, generator=generator, backend=backend)
    x = sampler.sample().contiguous()
    if sampler.truncated.item():
        raise RuntimeError("generate_batch: a sparse instance overflowed its candidate buffer")
    return x
