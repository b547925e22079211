"""Internal to `toy_lib.sae`: where an SAE's training activations come from: a trained toy model, a tensor, or any iterable of
tensors. Each source hands `train_sae` one batch ``(instance, batch, d_in)`` per step.

- `ToyActivations`: the hidden vectors ``h = W x`` of a trained toy model (a `TrainResult`), with
  ``x`` drawn fresh at every step from the toy model's own data distribution. A toy model with
  one instance feeds every SAE instance; one with as many instances as the SAE feeds them one to
  one.
- `TensorActivations`: rows of a tensor ``(N, d_in)`` (shared by every instance) or
  ``(instance, N, d_in)`` (one set per instance), drawn uniformly with replacement.
- `IterableActivations`: the rows of the tensors an iterable yields, in order, ``batch_size`` at a
  time; a tensor ``(N, d_in)`` feeds every instance, ``(instance, N, d_in)`` one set each.

Randomness. Each SAE instance ``i`` has its own seed (`instance_seeds`), and the toy and tensor
sources draw instance ``i``'s batches from streams seeded by it alone. On the CPU, instance ``i``
of a batched run therefore sees exactly the batches it would see trained alone with that seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from .. import _cpu_kernels
from .. import _validate as check
from ..data import _BatchSampler
from ..training import TrainResult

#: Streams of one instance: initialisation, training data, evaluation data, resampling choices.
INIT, DATA, EVAL, RESAMPLE = range(4)


def check_seed(seed, n_instances: int) -> int | tuple[int, ...]:
    """`train_sae`'s ``seed`` in normal form: one integer from 0 to 2**63 - 1, or a tuple of one
    per instance (given as a list, a tuple, or a 1-d NumPy array or tensor)."""
    expected = f"an integer from 0 to 2**63 - 1, or a sequence of one per instance ({n_instances})"
    if isinstance(seed, (list, tuple)) or (isinstance(seed, (np.ndarray, torch.Tensor)) and seed.ndim > 0):
        shape = tuple(seed.shape) if hasattr(seed, "shape") else (len(seed),)
        if (
            len(shape) != 1
            or shape[0] != n_instances
            or getattr(seed, "device", None) == torch.device("meta")
        ):
            raise check.fail("seed", seed, expected, f"shape {shape}")
        values = seed.tolist() if isinstance(seed, (np.ndarray, torch.Tensor)) else seed
        if isinstance(seed, np.ndarray) and seed.dtype.kind not in "iu":
            values = list(seed)  # keep NumPy floats and bools as such, so they are refused
        return tuple(
            check.integer(s, "seed", minimum=0, maximum=check.MAX_SEED, expected=expected) for s in values
        )
    return check.integer(seed, "seed", minimum=0, maximum=check.MAX_SEED, expected=expected)


def instance_seeds(seed, n_instances: int) -> list[int]:
    """One seed per instance: ``seed`` itself if it is a sequence of ``n_instances`` integers, else
    ``n_instances`` seeds derived from the integer ``seed`` (by SplitMix64, so that the runs of two
    nearby seeds share no instance)."""
    seed = check_seed(seed, n_instances)
    if isinstance(seed, tuple):
        return list(seed)
    base = seed
    keys = _cpu_kernels.instance_keys(base, n_instances)  # distinct 64-bit numbers
    return [int(k >> np.uint64(1)) for k in keys]  # below 2**63


def stream_seed(instance_seed: int, stream: int) -> int:
    """The seed of one of an instance's streams (`INIT`, `DATA`, `EVAL`, `RESAMPLE`)."""
    key = _cpu_kernels.instance_keys(instance_seed, stream + 1)[stream]
    return int(key >> np.uint64(1))


def generators(seeds: list[int], stream: int, device) -> list[torch.Generator]:
    """One torch generator per instance for ``stream``, on ``device``."""
    return [torch.Generator(device=device).manual_seed(stream_seed(s, stream)) for s in seeds]


class ToyActivations:
    """``h = W x`` of a trained toy model, ``x`` drawn fresh each step from its data distribution.

    Args:
        result: the trained toy model (`TrainResult`), with 1 instance or ``n_instances``.
        n_instances: SAE instances to feed.
        batch_size: inputs per instance per step.
        seeds: one seed per SAE instance.
        device: where the batches go.
    """

    def __init__(self, result: TrainResult, n_instances: int, batch_size: int, seeds: list[int], device):
        n_toy = result.W.shape[0]
        if n_toy not in (1, n_instances):
            raise check.fail(
                "data",
                f"TrainResult with {n_toy} instances",
                "a toy model with 1 instance"
                + (f" (it feeds every SAE) or {n_instances} (one each)" if n_instances > 1 else ""),
            )
        self.result, self.device = result, torch.device(device)
        self.batch_size = batch_size
        self.d_in = result.W.shape[1]
        self.n_features = result.W.shape[2]
        index = torch.zeros(n_instances, dtype=torch.long) if n_toy == 1 else torch.arange(n_instances)
        self.W = result.W.detach()[index].to(self.device, torch.float32)  # (instance, hidden, feature)
        self.Wt = self.W.transpose(1, 2).contiguous()  # (instance, feature, hidden)
        self.prob = torch.tensor(result.config.probability_matrix(), dtype=torch.float32)[index]
        self.seeds = seeds
        self.compiled = self.device.type == "cpu" and _cpu_kernels.AVAILABLE
        self._samplers: dict[int, object] = {}
        self._step = dict.fromkeys((INIT, DATA, EVAL, RESAMPLE), 0)
        if not self.compiled:  # the compiled path keeps its buffers with its sampler
            self._h = torch.empty(n_instances, batch_size, self.d_in, device=self.device)

    def _sampler(self, stream: int, size: int):
        """The sampler of ``stream`` for batches of ``size``: on the compiled path the instances'
        keys, the thresholds and the buffers ``x``, ``h``; else a `_BatchSampler`."""
        key = (stream, size)
        if key not in self._samplers:
            if self.compiled:  # one counter-based stream per instance (toy_lib/_cpu_kernels.py)
                keys = np.array(
                    [_cpu_kernels.instance_keys(stream_seed(s, stream), 1)[0] for s in self.seeds],
                    dtype=np.uint64,
                )
                p32 = self.prob.numpy().astype(np.float64)
                n = len(self.seeds)
                x, h = torch.empty(n, size, self.n_features), torch.empty(n, size, self.d_in)
                self._samplers[key] = (keys, _cpu_kernels.thresholds(p32), x, h)
            else:
                gen = torch.Generator(device=self.device).manual_seed(stream_seed(self.seeds[0], stream))
                self._samplers[key] = _BatchSampler(self.prob.to(self.device), size, generator=gen)
        return self._samplers[key]

    def features_and_batch(self, stream: int = DATA, size: int | None = None):
        """``(x, h)``: true features ``(instance, size, feature)`` and ``h = W x``
        ``(instance, size, hidden)`` (fresh tensors each call except for training batches, which
        the next one overwrites). On the compiled path one kernel draws ``x`` and sums ``h`` over
        its active entries only (`_cpu_kernels.sample_hidden`)."""
        size = size or self.batch_size
        reuse = stream == DATA and size == self.batch_size
        sampler = self._sampler(stream, size)
        if self.compiled:
            keys, (p40, inv_log1m_q, thin40), x, h = sampler
            arrays = (x.numpy(), self.Wt.numpy(), h.numpy())
            _cpu_kernels.sample_hidden(p40, inv_log1m_q, thin40, keys, self._step[stream], *arrays)
            self._step[stream] += 1
            return (x, h) if reuse else (x.clone(), h.clone())
        x = sampler.sample()
        if reuse:
            return x, torch.bmm(x, self.Wt, out=self._h)
        return x.clone(), torch.bmm(x, self.Wt)

    def batch(self) -> torch.Tensor:
        """The next training batch ``(instance, batch, d_in)`` (overwritten by the next call)."""
        return self.features_and_batch(DATA)[1]

    def sample(self, size: int, stream: int) -> torch.Tensor:
        """``size`` fresh inputs per instance from another stream (evaluation, ``b_dec``'s start)."""
        return self.features_and_batch(stream, size)[1]


class TensorActivations:
    """Rows of a tensor, drawn uniformly with replacement, a batch per step.

    Args:
        data: ``(N, d_in)`` shared by every instance, or ``(instance, N, d_in)``; any floating
            dtype (float16 is converted batch by batch). It stays where it is; batches move to
            ``device``.
        n_instances, batch_size, seeds, device: as for `ToyActivations`.
    """

    def __init__(self, data: torch.Tensor, n_instances: int, batch_size: int, seeds: list[int], device):
        self.data, self.device, self.batch_size = data, torch.device(device), batch_size
        self.shared = data.ndim == 2
        self.n_rows = data.shape[-2]
        self.d_in = data.shape[-1]
        self.n_instances = n_instances
        self._gens = {s: generators(seeds, s, data.device) for s in (DATA, EVAL, INIT)}
        self._index = torch.empty(n_instances, batch_size, dtype=torch.long, device=data.device)

    def _rows(self, stream: int, size: int) -> torch.Tensor:
        index = self._index if size == self.batch_size and stream == DATA else None
        if index is None:
            index = torch.empty(self.n_instances, size, dtype=torch.long, device=self.data.device)
        for i, gen in enumerate(self._gens[stream]):
            torch.randint(self.n_rows, (size,), generator=gen, device=self.data.device, out=index[i])
        if self.shared:
            rows = self.data[index]
        else:
            rows = self.data[torch.arange(self.n_instances, device=self.data.device)[:, None], index]
        return rows.to(self.device, torch.float32, non_blocking=True)

    def batch(self) -> torch.Tensor:
        return self._rows(DATA, self.batch_size)

    def sample(self, size: int, stream: int) -> torch.Tensor:
        return self._rows(stream, size)


class IterableActivations:
    """The rows of the tensors an iterable yields, in order, ``batch_size`` rows per step.

    A tensor may hold any number of rows; they are cut into batches across tensor boundaries. When
    the iterable runs out it is read again from the start if it can be (a list, a tuple, any
    re-iterable container); a one-shot iterator (a generator) that runs out raises an error. Each
    tensor is checked for NaN and infinity as it arrives.

    Args:
        data: the iterable; it yields ``(N, d_in)`` tensors (every instance gets the same rows) or
            ``(instance, N, d_in)`` tensors (one set per instance), the same kind throughout.
        n_instances, batch_size, device: as for `ToyActivations`.
        d_in: the width the SAE expects.
    """

    def __init__(self, data: Iterable, n_instances: int, batch_size: int, d_in: int, device):
        self.data, self.device = data, torch.device(device)
        self.n_instances, self.batch_size, self.d_in = n_instances, batch_size, d_in
        self.one_shot = iter(data) is data
        self._iter: Iterator = iter(data)
        self._pending: list[torch.Tensor] = []  # (instance, n, d_in) pieces not yet used
        self._n_pending = 0
        self._count = 0  # tensors read so far
        self._rows_read = 0
        self.last: torch.Tensor | None = None
        self._replay: torch.Tensor | None = None
        self.shared: bool | None = None

    def _next_tensor(self) -> torch.Tensor:
        try:
            item = next(self._iter)
        except StopIteration:
            if self._rows_read == 0:  # nothing, or only empty tensors: it would never fill a batch
                raise check.fail(
                    "data",
                    self.data,
                    "an iterable that yields tensors holding at least one row",
                    "nothing" if self._count == 0 else f"{self._count} tensor(s) without rows",
                ) from None
            if self.one_shot:
                raise ValueError(
                    f"data: the iterator ran out after {self._rows_read} rows: expected at least "
                    "steps × batch_size rows (pass a list or another re-iterable container to read "
                    "it again from the start, or a longer iterator)"
                ) from None
            self._iter = iter(self.data)
            return self._next_tensor()
        self._count += 1
        name = f"data (tensor {self._count} of the iterable)"
        tensor = check_activations(item, name, self.d_in, self.n_instances, allow_empty=True)
        shared = tensor.ndim == 2
        if self.shared is None:
            self.shared = shared
        elif self.shared != shared:
            raise check.fail(
                name, item, "the same kind of tensor as the first: (N, d_in) or (instance, N, d_in)"
            )
        self._rows_read += tensor.shape[-2]
        return tensor if not shared else tensor[None]

    def batch(self) -> torch.Tensor:
        if self._replay is not None:  # the batch that `sample` peeked at to start b_dec
            batch, self._replay = self._replay, None
            self.last = batch
            return batch
        while self._n_pending < self.batch_size:
            piece = self._next_tensor()
            if piece.shape[-2]:
                self._pending.append(piece)
                self._n_pending += piece.shape[-2]
        taken, need = [], self.batch_size
        while need:
            piece = self._pending[0]
            n = min(need, piece.shape[-2])
            taken.append(piece[:, :n])
            if n == piece.shape[-2]:
                self._pending.pop(0)
            else:
                self._pending[0] = piece[:, n:]
            need -= n
        self._n_pending -= self.batch_size
        rows = torch.cat(taken, dim=1) if len(taken) > 1 else taken[0]
        rows = rows.to(self.device, torch.float32, non_blocking=True)
        batch = rows.expand(self.n_instances, -1, -1) if rows.shape[0] == 1 else rows
        self.last = batch
        return batch

    def sample(self, size: int, stream: int) -> torch.Tensor:
        """An iterable has no independent streams: for `INIT` (the start of ``b_dec``), the first
        batch, which training then uses as its first batch; for `EVAL`, the last training batch."""
        if stream == EVAL and self.last is not None:
            return self.last
        batch = self.batch()
        self._replay = batch
        return batch


def check_activations(
    value, name: str, d_in: int, n_instances: int, *, allow_empty: bool = False
) -> torch.Tensor:
    """A tensor of activations ``(N, d_in)`` or ``(instance, N, d_in)``, checked: real numbers
    (integers become float32), the right width and instance count, finite and within float32's
    range (training batches are float32), at least one row unless ``allow_empty``."""
    expected = f"a tensor (N, d_in) or (instance, N, d_in) of real numbers with d_in = {d_in}"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise check.fail(name, value, expected, f"dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))
    elif not isinstance(value, torch.Tensor):
        raise check.fail(name, value, expected, type(value).__name__)
    if value.layout != torch.strided:
        raise check.fail(name, value, expected, f"a {value.layout} tensor (use .to_dense())")
    if value.device.type == "meta":
        raise check.fail(name, value, expected, "a tensor on the meta device (it holds no numbers)")
    if value.is_complex() or value.dtype == torch.bool:
        raise check.fail(name, value, expected, f"dtype {value.dtype}")
    if not value.is_floating_point():
        value = value.float()
    if value.ndim not in (2, 3):
        raise check.fail(name, value, expected, f"shape {tuple(value.shape)}")
    if value.shape[-1] != d_in:
        raise check.fail(
            name, value, f"rows of width d_in = {d_in} (the SAEConfig's)", f"width {value.shape[-1]}"
        )
    if value.ndim == 3 and value.shape[0] != n_instances:
        raise check.fail(
            name,
            value,
            f"one set of rows per SAE instance ({n_instances}) on the first axis",
            f"{value.shape[0]}",
        )
    if value.shape[-2] == 0 and not allow_empty:
        raise check.fail(name, value, expected + " and at least one row", "no rows")
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise check.fail(name, value, "finite numbers", f"{value[where].item()} at index {where}")
    if (
        value.dtype == torch.float64
        and value.numel()
        and float(value.abs().max()) > float(torch.finfo(torch.float32).max)
    ):
        raise check.fail(
            name, value, "numbers within the range of float32 (training batches are float32)", "larger ones"
        )
    return value.detach()


def make_source(data, config, batch_size: int, seeds: list[int], device):
    """The source for ``data``: a `TrainResult`, a tensor, or an iterable of tensors."""
    n_inst, d_in = config.n_instances, config.d_in
    if isinstance(data, TrainResult):
        toy = data.config
        if (
            toy.model != "tied"
            or toy.dataset_size is not None
            or toy.value_range != (0.0, 1.0)
            or (toy.correlated or toy.anticorrelated)
        ):
            raise check.fail(
                "data",
                f"TrainResult of a {toy.model!r} model",
                "a tied toy model trained on fresh independent U[0, 1] features (the activations "
                "h = W x of another model or data set: pass them as a tensor)",
            )
        if data.W.shape[1] != d_in:
            raise check.fail(
                "data",
                f"TrainResult with hidden size {data.W.shape[1]}",
                f"a toy model with d_in = {d_in} hidden dimensions",
            )
        return ToyActivations(data, n_inst, batch_size, seeds, device)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return TensorActivations(
            check_activations(data, "data", d_in, n_inst), n_inst, batch_size, seeds, device
        )
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise check.fail(
            "data",
            data,
            "a TrainResult, a tensor (N, d_in) or (instance, N, d_in), or an iterable of such tensors",
        )
    return IterableActivations(data, n_inst, batch_size, d_in, device)
