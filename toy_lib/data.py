"""Synthetic sparse data: each feature is active with its own probability, with value U[0, 1].

Every batch has shape ``(instance, batch, feature)``: the instance axis comes first everywhere
in toy_lib, so that one tensor program trains many independent models at once.

Options of `generate_batch` (and of a `ToyModelConfig`) change the distribution:

- ``correlated`` groups: the features of a group are active together or not at all, with the
  group's probability; each active feature draws its own value.
- ``anticorrelated`` groups: at most one feature of a group is active; feature ``i`` is the
  active one with its own probability ``p_i`` (so the group is active with ``Σ p_i <= 1``).
- ``value_range=(-1, 1)``: an active value is uniform on [-1, 1] rather than [0, 1]. It is the
  U[0, 1] value ``v`` mapped by ``2v`` below 1/2 and ``2v - 2`` above, which is uniform on
  [-1, 1) and keeps 0 at 0, so no extra random numbers are needed.
- ``unit_norm=True``: each sample is rescaled to unit length (an all-zero sample stays zero).

The independent features are drawn as below; the groups afterwards: one uniform number ``u``
per group and sample, and member ``i`` of a group is active when ``u`` falls in its interval:
``[0, p)`` for every member of a correlated group (so all or none), consecutive intervals of
widths ``p_1, p_2, ...`` for an anticorrelated one (so at most one).

How a batch is drawn (the internal ``_BatchSampler``). The definition is "each entry ``x[i, b, f]`` is
independently non-zero with probability ``p[i, f]``, and then uniform on [0, 1]". Drawing two
dense random tensors and comparing one with ``p`` follows it literally, but spends two random
numbers and several passes over memory on every entry, most of which end up zero. The sampler
has two backends, both with exactly that distribution:

- ``"numba"`` (the default on the CPU when Numba is installed): a compiled kernel
  (``toy_lib/_cpu_kernels.py``) that spends one 64-bit counter-based random number per entry,
  40 bits for the coin and 24 for the value, and writes the batch in one pass on every core.
  Probabilities are resolved to 2^-40: one below that is 0 for this backend.
  Instances whose probabilities are all at most 3% instead jump from one active entry to the
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

from . import _cpu_kernels, _validate

__all__ = ["generate_batch"]

# Instances whose largest feature probability exceeds this are drawn entry by entry, and so are
# batches with at most SMALL entries in all, where the fixed cost of the sparse path dominates.
DENSE_ABOVE = 0.5
SMALL = 2**17
BACKENDS = ("numba", "torch")
# The smallest non-zero probability of the "numba" backend (its coins have 40 bits).
NUMBA_RESOLUTION = 2.0**-40
# A sparse instance's candidate buffer overflows with probability below exp(-TAIL_LOG) per batch.
TAIL_LOG = math.log(1e15)


def _candidate_capacity(n_trials: int, q: float) -> int:
    """Candidates to draw so that ``n_trials`` Bernoulli(``q``) trials are covered.

    Covering fails only if more than the capacity of the trials succeed; Bernstein's inequality
    bounds that probability by ``exp(-TAIL_LOG)``.
    """
    mean = n_trials * q
    slack = TAIL_LOG / 3 + math.sqrt(TAIL_LOG**2 / 9 + 2 * TAIL_LOG * mean * (1 - q))
    return int(min(n_trials, math.ceil(mean + slack) + 1))


def _resolve_backend(backend: str | None, device: torch.device) -> str:
    """The sampler backend to use: ``backend`` checked, or the default for ``device``."""
    if backend is None:
        return "numba" if device.type == "cpu" and _cpu_kernels.AVAILABLE else "torch"
    if backend not in BACKENDS:
        raise _validate.fail("backend", backend, f"one of {', '.join(map(repr, BACKENDS))} or None")
    if backend == "numba" and device.type != "cpu":
        raise _validate.fail(
            "backend", backend, "'torch' or None for a probability tensor that is not on the CPU", str(device)
        )
    if backend == "numba" and not _cpu_kernels.AVAILABLE:
        raise _validate.fail(
            "backend", backend, "'torch' or None: Numba is not installed (pip install numba)"
        )
    return backend


class _BatchSampler:
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
        self.device = dev = feature_probability.device
        self.dtype = feature_probability.dtype
        self.batch_size = batch_size
        n_inst, n_feat = feature_probability.shape
        self.shape = (n_inst, batch_size, n_feat)
        n_trials = batch_size * n_feat  # entries per instance
        self._n_trials, self._n_feat = n_trials, n_feat
        self.backend = _resolve_backend(backend, dev)
        self.truncated = torch.zeros((), dtype=torch.int64, device=dev)

        p = feature_probability.detach().to("cpu", torch.float64).numpy()
        if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
            raise ValueError("feature_probability: expected values in [0, 1]")

        if self.backend == "numba":
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
            self._keys = _cpu_kernels.instance_keys(seed, n_inst)
            # float32 probabilities, as the model holds them, in float64 for the thresholds
            p32 = p.astype(np.float32).astype(np.float64)
            # The kernel resolves a probability to 2^-40 (its coins have 40 bits), and its jumps
            # between actives overflow 64-bit positions when q < ~1e-17: probabilities below
            # 2^-40 are 0 for this backend (an entry would be active less than once in 10^12).
            p32[p32 < NUMBA_RESOLUTION] = 0.0
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
        caps = np.array([_candidate_capacity(n_trials, q[i]) for i in sparse], dtype=np.int64)
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

    def stream(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, int]:
        """For a compiled step that draws its batch itself (``"numba"`` backend only).

        Returns the tables ``(p40, inv_log1m_q, thin40)`` and the instance keys of
        `toy_lib._cpu_kernels.sample_batch`, and the number of the next batch, which this call
        uses up (the next `sample` returns the batch after it).
        """
        if self.backend != "numba":
            raise ValueError(f"stream: the {self.backend!r} backend has no compiled stream; expected 'numba'")
        number = self._step
        self._step += 1
        return self._tables, self._keys, number

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


if _cpu_kernels.AVAILABLE:
    from numba import njit

    @njit(cache=True, boundscheck=False)
    def _signed_copy(src, dst):  # pragma: no cover - compiled
        """``dst = 2 src`` below 1/2, ``2 src - 2`` from 1/2 (U[0, 1) -> U[-1, 1), 0 stays 0), flat."""
        for k in range(src.shape[0]):
            v = src[k] + src[k]
            dst[k] = v - np.float32(2.0) if v >= np.float32(1.0) else v

    @njit(cache=True, boundscheck=False)
    def _fill_groups(u, lo, hi, members, group_of, signed, out):  # pragma: no cover - compiled
        """The grouped features of a batch, in one pass: ``u`` ``(instance, batch, groups +
        members)`` holds each group's uniform number, then each member's value; member ``m`` is
        active when ``lo[i, m] <= u[i, b, group_of[m]] < hi[i, m]``."""
        n_inst, batch, _ = u.shape
        n_groups = u.shape[2] - members.shape[0]
        for i in range(n_inst):
            for r in range(batch):
                row = u[i, r]
                for m in range(members.shape[0]):
                    g = row[group_of[m]]
                    v = np.float32(0.0)
                    if lo[i, m] <= g < hi[i, m]:
                        v = row[n_groups + m]
                        if signed:
                            v = v + v
                            if v >= np.float32(1.0):
                                v -= np.float32(2.0)
                    out[i, r, members[m]] = v


def _to_signed(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out`` := the values of ``x`` (in [0, 1)) mapped to [-1, 1) by ``2v`` below 1/2 and
    ``2v - 2`` from 1/2: uniform stays uniform, and 0 (an inactive entry) stays 0."""
    if out.device.type == "cpu" and out.dtype == torch.float32 and _cpu_kernels.AVAILABLE:
        _signed_copy(x.contiguous().view(-1).numpy(), out.view(-1).numpy())
        return out
    torch.mul(x, 2, out=out)
    return out.sub_(torch.ge(out, 1).to(out.dtype), alpha=2)


class _FeatureSampler:
    """`_BatchSampler` with the options of the module: groups, the value range, unit norm.

    ``correlated`` and ``anticorrelated`` are checked tuples of groups (tuples of feature
    indices), ``feature_probability`` agrees with them (`_validate.group_probabilities`).
    `sample` returns ``(instance, batch, feature)``, overwritten by the next call.
    """

    def __init__(
        self,
        feature_probability: torch.Tensor,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        backend: str | None = None,
        correlated: tuple = (),
        anticorrelated: tuple = (),
        value_range: tuple[float, float] = (0.0, 1.0),
        unit_norm: bool = False,
    ):
        prob = feature_probability
        dev = self.device = prob.device
        self.generator = generator
        n_inst, n_feat = prob.shape
        grouped = [f for group in (*correlated, *anticorrelated) for f in group]
        self.shape = (n_inst, batch_size, n_feat)
        self.signed = tuple(value_range) == (-1.0, 1.0)
        self.unit_norm = unit_norm
        self.plain = not grouped and not self.signed and not unit_norm
        self._out = None if self.plain else torch.zeros(self.shape, device=dev, dtype=prob.dtype)
        if len(grouped) < n_feat:
            independent = prob.clone()
            independent[:, grouped] = 0  # the grouped features are drawn below
            self.base = _BatchSampler(independent, batch_size, generator=generator, backend=backend)
            self.backend, self.truncated = self.base.backend, self.base.truncated
        else:  # every feature is in a group: nothing for the base sampler to draw
            self.base = None
            self.backend = _resolve_backend(backend, dev)
            self.truncated = torch.zeros((), dtype=torch.int64, device=dev)

        # Every group draws one uniform number u per sample; member m of group g[m] is active when
        # lo[m] <= u < hi[m]: [0, p) for every member of a correlated group (all or none), and
        # consecutive intervals of widths p_i for an anticorrelated one (at most one).
        groups = (*correlated, *anticorrelated)
        p64 = prob.detach().to("cpu", torch.float64)
        lo, hi = [], []
        for g in correlated:
            lo += [torch.zeros(n_inst, dtype=torch.float64)] * len(g)
            hi += [p64[:, g[0]]] * len(g)
        for g in anticorrelated:
            bounds = torch.cumsum(p64[:, list(g)], dim=1)
            lo += [bounds[:, i] - p64[:, f] for i, f in enumerate(g)]
            hi += [bounds[:, i] for i in range(len(g))]
        self.n_groups, self.n_members = len(groups), len(grouped)
        if grouped:
            self.members = torch.tensor(grouped, dtype=torch.long, device=dev)
            self.group_of = torch.tensor([j for j, g in enumerate(groups) for _ in g], device=dev)
            self.lo = torch.stack(lo, dim=1)[:, None, :].to(dev, torch.float32)  # (instance, 1, member)
            self.hi = torch.stack(hi, dim=1)[:, None, :].to(dev, torch.float32)
            # one draw per step: the groups' uniform numbers, then the members' values
            self._u = torch.empty(n_inst, batch_size, self.n_groups + self.n_members, device=dev)
            if dev.type == "cpu":  # NumPy's generator (faster than torch's on the CPU), seeded from torch's
                seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
                self._np_rng = np.random.Generator(np.random.SFC64(seed))
        # on the CPU with Numba, the groups are written by one compiled pass (`_fill_groups`)
        self._compiled = (
            bool(grouped) and dev.type == "cpu" and prob.dtype == torch.float32 and _cpu_kernels.AVAILABLE
        )
        if self._compiled:
            self._lo_np, self._hi_np = self.lo[:, 0].contiguous().numpy(), self.hi[:, 0].contiguous().numpy()
            self._members_np = self.members.numpy()
            self._group_of_np = self.group_of.numpy()

    def _draw_uniform(self) -> torch.Tensor:
        """Fill the buffer of uniform numbers on [0, 1) (float32, on the grid of ``torch.rand``)."""
        if self.device.type == "cpu":
            self._np_rng.random(out=self._u.numpy(), dtype=np.float32)
        else:
            self._u.uniform_(generator=self.generator)
        return self._u

    def sample(self) -> torch.Tensor:
        """The next batch, ``(instance, batch, feature)``; overwritten by the next call."""
        if self.base is None:
            out = self._out  # every column is a group's, written below
        else:
            x = self.base.sample()
            if self.plain:
                return x
            out = _to_signed(x, self._out) if self.signed else self._out.copy_(x)
        if self.n_members and self._compiled:
            _fill_groups(
                self._draw_uniform().numpy(), self._lo_np, self._hi_np, self._members_np, self._group_of_np,
                self.signed, out.numpy(),
            )  # fmt: skip
        elif self.n_members:
            u = self._draw_uniform()
            per_member = u[:, :, : self.n_groups].index_select(2, self.group_of)
            active = torch.ge(per_member, self.lo).logical_and_(torch.lt(per_member, self.hi))
            values = u[:, :, self.n_groups :]
            if self.signed:
                values = _to_signed(values, torch.empty_like(values))
            out.index_copy_(2, self.members, values.mul(active))
        if self.unit_norm:
            norms = torch.linalg.vector_norm(out, dim=2, keepdim=True)
            out.div_(norms.clamp_min_(torch.finfo(out.dtype).tiny))
        return out


def generate_batch(
    feature_probability: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    backend: str | None = None,
    correlated=(),
    anticorrelated=(),
    value_range=(0, 1),
    unit_norm: bool = False,
) -> torch.Tensor:
    """Draw a batch of sparse feature vectors.

    By default each entry ``x[i, b, f]`` is independently non-zero with probability
    ``feature_probability[i, f]``; a non-zero entry is uniform on [0, 1]. How it is drawn
    cheaply is described in the module's documentation, with the options below.

    Args:
        feature_probability: ``(instance, feature)`` probabilities in [0, 1]: a torch tensor
            (its device and floating dtype set those of the batch; an integer tensor is read as
            float32, so a tensor of ones means "always active"), or a NumPy array or nested
            list (read as a float32 CPU tensor).
        batch_size: number of samples per instance, a positive integer.
        generator: a seeded ``torch.Generator`` on the batch's device (on the CPU for a tensor
            on Apple's MPS, whose batches are drawn on the CPU and moved), for reproducible
            batches; ``None`` uses torch's global generator.
        backend: ``"numba"`` (CPU only), ``"torch"`` or ``None`` (the default for the device:
            ``"numba"`` on the CPU when Numba is installed, else ``"torch"``); it draws the
            independent features.
        correlated: groups of feature indices that are active together (``[(0, 1), (2, 3)]``),
            each with at least two features and equal probabilities within the group.
        anticorrelated: groups of feature indices of which at most one is active at a time,
            each with at least two features and probabilities summing to at most 1. No
            feature may be in two groups.
        value_range: ``(0, 1)`` or ``(-1, 1)``: the uniform range of an active value.
        unit_norm: rescale every sample ``x[i, b, :]`` to unit length (zero samples stay zero).

    Returns:
        ``x``: ``(instance, batch, feature)``.

    Raises:
        ValueError: naming the argument, for probabilities that are not an ``(instance,
            feature)`` array of finite numbers in [0, 1], a ``batch_size`` that is not a
            positive integer or whose batch cannot fit in memory, a generator on another
            device, an unknown backend, a group of one feature, overlapping groups, indices
            outside the features, probabilities that disagree with their groups, or a value
            range other than the two above.
    """
    prob = _validate.as_tensor(feature_probability, "feature_probability", ("instance", "feature"))
    prob = prob.detach()
    if bool(((prob < 0) | (prob > 1)).any()):
        bad = prob[(prob < 0) | (prob > 1)].flatten()[0].item()
        raise _validate.fail(
            "feature_probability", feature_probability, "probabilities in [0, 1]", f"{bad:g}"
        )
    batch_size = _validate.integer(batch_size, "batch_size", minimum=1)
    if backend is not None and not isinstance(backend, str):
        raise _validate.fail("backend", backend, f"one of {', '.join(map(repr, BACKENDS))} or None")
    dev = _validate.device(prob.device, "feature_probability's device")
    draw_dev = torch.device("cpu") if dev.type == "mps" else dev  # MPS has no float64 for the gaps
    _validate.generator(generator, "generator", on=draw_dev)
    n_inst, n_feat = prob.shape
    given = {"correlated": correlated, "anticorrelated": anticorrelated}
    groups = {name: _validate.feature_groups(value, name, n_feat) for name, value in given.items()}
    _validate.disjoint_groups(groups, given)
    _validate.group_probabilities(
        prob.to("cpu", torch.float64).numpy(),
        groups["correlated"],
        groups["anticorrelated"],
        feature_probability,
    )
    options = dict(
        **groups,
        value_range=_validate.value_range(value_range),
        unit_norm=_validate.flag(unit_norm, "unit_norm"),
    )
    # the batch, its contiguous copy, and the torch backend's two buffers of uniform numbers
    _validate.check_memory(
        4 * n_inst * batch_size * n_feat * max(4, prob.element_size()),
        draw_dev,
        {"batch_size": batch_size, "feature_probability": prob},
    )
    return _draw(prob.to(draw_dev), batch_size, generator=generator, backend=backend, **options).to(dev)


def _draw(
    prob: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None,
    backend: str | None = None,
    **options,
) -> torch.Tensor:
    """`generate_batch` without the checks: ``(instance, batch, feature)`` for valid arguments
    (``options``: those of `_FeatureSampler`)."""
    if options:
        sampler = _FeatureSampler(prob, batch_size, generator=generator, backend=backend, **options)
    else:
        sampler = _BatchSampler(prob, batch_size, generator=generator, backend=backend)
    x = sampler.sample().contiguous()
    if sampler.truncated.item():
        raise RuntimeError("generate_batch: a sparse instance overflowed its candidate buffer")
    return x
