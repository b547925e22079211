"""Training many toy models at once, and keeping the best of several restarts.

All instances (every setting times every restart) live in one ``(instance, hidden, feature)``
parameter and are trained by one optimiser in one batched tensor program. The loss that is
back-propagated is the sum over instances of each instance's own loss, so every instance gets
exactly the gradient it would get if it were trained alone.

The training step is written out by hand rather than left to autograd: the same arithmetic as
``loss_per_instance(x, forward(W, b, x), importance).sum().backward()`` followed by
``torch.optim.AdamW``, in fewer passes over memory, with buffers reused from step to step and
nothing that waits for the device. It takes one of two paths:

- on the CPU, with Numba installed: ``_CpuStep``: the batch comes from the compiled sampler,
  five batched matrix products run in PyTorch (MKL), and everything between them is one
  compiled pass (``toy_lib/_cpu_kernels.py``);
- elsewhere (a GPU, or no Numba): ``_loss_and_grad``, a handful of tensor operations.

Those two paths are the specialisation for the tied model on fresh independent U[0, 1]
features (`_hand_written`). Every other model and data option of `ToyModelConfig` (the neuron
and absolute-value models, correlated groups, U[-1, 1] values, finite data sets) takes
``_GenericStep``: any model written as ``act(h A + b)`` with a hidden layer ``h = act_h(V x)``,
its gradient by hand in the same plan (five products around one element-wise pass, compiled on
the CPU), on batches from the data's own sampler or the fixed training set.

All of them end in the one-tensor ``_AdamW``. Every trainer of toy_lib runs its steps in
`optimise`, the one training loop, which stops with `TrainingDiverged` when a loss becomes NaN or
infinite; restarts, seeds, devices and the result type (`TrainResult`) are shared by every path.
The tests check each step against autograd, the paths against each other, and the optimiser
against torch's; ``benchmarks/bench_trainer.py`` and ``benchmarks/bench_richer.py`` measure what
they cost.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import _cpu_kernels, _validate
from .config import ToyModelConfig
from .data import _BatchSampler, _draw, _FeatureSampler
from .model import (
    PARAMETERS,
    AbsModel,
    NeuronModel,
    ToyModel,
    _loss_per_instance,
    _predict,
    _target,
    init_weights,
)

__all__ = ["train", "TrainResult", "TrainingDiverged", "lr_factor", "pick_device", "optimise"]

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("constant", "linear", "cosine", "warmup_cosine")
WARMUP_FRACTION = 0.05
# Batches of fewer numbers than this (instance × feature × batch) train on one CPU thread:
# splitting a pass over ~10^5 numbers between threads saves microseconds, and costs a
# synchronisation per operation that a busy machine stretches to milliseconds.
SINGLE_THREAD_BELOW = 2**20
# The autograd path (finite data sets, the neuron and absolute-value models) runs a dozen torch
# operations a step, each its own parallel region; on a machine whose cores are busy, every
# region waits for a descheduled thread. Measured on the double-descent run with T = 1,000
# (2 instances x 1,000 features x 1,000 samples, 2 cores, load 5): 48 s for 1,000 steps on two
# threads against 6 s on one. Below this size it runs on one thread.
AUTOGRAD_SINGLE_THREAD_BELOW = 2**23
#: Samples per step when `train`'s ``batch_size`` is None and the data are fresh at every step.
DEFAULT_BATCH = 1024
#: The largest learning rate accepted: AdamW's first step moves a weight by up to ``lr / (1 - 0.9)``,
#: which must fit in float32.
MAX_LR = 1e37
# Work estimates for the size guard (`_validate.check_work`), in units of about one multiply-add:
# the fixed cost of a training step, and of one chunk of the final evaluation.
STEP_OVERHEAD = 10**5
EVAL_CHUNK = 4096
CHUNK_OVERHEAD = 2 * 10**6


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` picks CUDA, then Apple's MPS, then the CPU.

    Args:
        device: ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"`` or a
            ``torch.device``.

    Raises:
        ValueError: naming ``device``, for a device this machine does not have (``"cuda"``
            without CUDA) or that toy_lib does not support (``"tpu"``).
    """
    return _validate.device(device)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``.

    ``constant``: 1. ``linear``: ``1 - step/steps``. ``cosine``: half a cosine from 1 to 0.
    ``warmup_cosine``: linear warm-up over the first 5% of steps, then half a cosine to 0.
    Every factor lies in [0, 1].

    Args:
        schedule: ``"constant"``, ``"linear"``, ``"cosine"`` or ``"warmup_cosine"``.
        step: an integer from 0 to ``steps - 1``.
        steps: a positive integer, the length of the run.

    Raises:
        ValueError: naming the argument, for an unknown schedule or a step outside the run.
    """
    schedule = _validate.choice(schedule, "schedule", SCHEDULES)
    steps = _validate.integer(steps, "steps", minimum=1)
    step = _validate.integer(step, "step", minimum=0, maximum=steps - 1)
    return _lr_factor(schedule, step, steps)


def _lr_factor(schedule: str, step: int, steps: int) -> float:
    """`lr_factor` without the checks (the training loop calls it at every step)."""
    frac = step / steps
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - frac
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    if schedule == "warmup_cosine":
        warmup = max(1, int(WARMUP_FRACTION * steps))
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    raise _validate.fail("schedule", schedule, f"one of {', '.join(map(repr, SCHEDULES))}")


@contextmanager
def _cpu_threads(n: int | None):
    """Run the block with ``n`` CPU threads for torch (``None``: leave torch's setting alone);
    Numba's kernels get as many as torch then has, so that ``torch.set_num_threads`` governs
    both. Both settings are restored afterwards."""
    before = torch.get_num_threads()
    numba = _cpu_kernels.numba_module()
    before_numba = numba.get_num_threads() if numba else None
    if n is not None:
        torch.set_num_threads(n)
    if numba:
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if numba:
            numba.set_num_threads(before_numba)


@dataclass
class TrainResult:
    """What `train` returns. All tensors are on the CPU.

    Attributes:
        config: the configuration that was trained (one instance per setting).
        params: the trained parameters by name (the lowest-loss restart of each setting):
            ``W`` ``(instance, hidden, feature)`` and ``b`` ``(instance, feature)`` for the
            tied and neuron models; ``W1`` ``(instance, hidden, feature)``, ``W2``
            ``(instance, feature, hidden)`` and ``b`` for the abs model. ``result.W``,
            ``result.b`` (and ``result.W1``, ``result.W2``) read them.
        loss_history: ``(step, instance)`` training loss of each kept instance at every step.
        final_loss: ``(instance,)`` loss of each kept instance on ``eval_batch_size`` fresh
            samples: for a finite data set (``config.dataset_size``), the test loss.
        restart_losses: ``(instance, restart)`` the loss every restart of every setting was
            ranked by: on fresh samples, or for a finite data set, on the training set.
        best_restart: ``(instance,)`` index of the restart that was kept.
        recipe: the training arguments, for the record.
    """

    config: ToyModelConfig
    params: dict[str, torch.Tensor]
    loss_history: torch.Tensor
    final_loss: torch.Tensor
    restart_losses: torch.Tensor
    best_restart: torch.Tensor
    recipe: dict

    def _param(self, name: str) -> torch.Tensor:
        if name not in self.params:
            have = ", ".join(self.params)
            raise AttributeError(
                f"TrainResult.{name}: the {self.config.model!r} model has no parameter {name!r}; "
                f"its parameters are {have} (result.params)"
            )
        return self.params[name]

    W = property(lambda self: self._param("W"), doc="``(instance, hidden, feature)``: ``params['W']``.")
    b = property(lambda self: self._param("b"), doc="``(instance, feature)``: ``params['b']``.")
    W1 = property(lambda self: self._param("W1"), doc="``(instance, hidden, feature)``: the abs model's W1.")
    W2 = property(lambda self: self._param("W2"), doc="``(instance, feature, hidden)``: the abs model's W2.")

    def model(self) -> nn.Module:
        """The trained instances as a module (on the CPU): a `ToyModel`, `NeuronModel` or
        `AbsModel`, as ``config.model`` says."""
        if self.config.model == "neuron":
            return NeuronModel(self.params["W"], self.params["b"])
        if self.config.model == "abs":
            return AbsModel(self.params["W1"], self.params["W2"], self.params["b"])
        return ToyModel(self.params["W"], self.params["b"], self.config.activation)

    def training_set(self) -> torch.Tensor | None:
        """The finite training set, ``(instance, sample, feature)`` unit-norm samples (drawn
        again from the seed, bit for bit what was trained on); None for a config without
        ``dataset_size`` (fresh batches every step)."""
        if self.config.dataset_size is None:
            return None
        return _training_set(self.config, self.recipe["seed"])


def _training_set(config: ToyModelConfig, seed: int) -> torch.Tensor:
    """The finite training set of every setting of ``config``: ``(instance, dataset_size,
    feature)``, unit-norm samples. Drawn on the CPU with the ``"torch"`` backend, so that it does
    not depend on the device trained on or on whether Numba is installed."""
    prob = torch.tensor(config.probability_matrix(), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed + 3)
    return _draw(
        prob, config.dataset_size, generator=gen, backend="torch", **_data_options(config, True)
    ).clone()


def _data_options(config: ToyModelConfig, unit_norm: bool) -> dict:
    """The options of `_FeatureSampler` for ``config``'s data; empty for plain data (independent
    U[0, 1] features, no rescaling), which `_BatchSampler` draws alone."""
    options = dict(
        correlated=config.correlated,
        anticorrelated=config.anticorrelated,
        value_range=config.value_range,
        unit_norm=unit_norm,
    )
    plain = not config.correlated and not config.anticorrelated and config.value_range == (0.0, 1.0)
    return {} if plain and not unit_norm else options


def _train_arguments(
    config,
    steps,
    batch_size,
    lr,
    optimizer,
    schedule,
    seed,
    device,
    restarts,
    eval_batch_size,
    progress,
) -> dict:
    """`train`'s arguments checked and in normal form (Python numbers, a ``torch.device``).

    The one place that reads them: `train` trains with the result, and `toy_lib.cached_train`
    keys stored results by it, so ``steps=5`` and ``steps=np.int64(5)`` are the same run.
    """
    config = _validate.instance_of(config, "config", ToyModelConfig)
    return dict(
        config=config,
        steps=_validate.integer(steps, "steps", minimum=1),
        batch_size=_batch_size(batch_size, config),
        lr=_check_lr(lr),
        optimizer=_validate.choice(optimizer, "optimizer", OPTIMIZERS),
        schedule=_validate.choice(schedule, "schedule", SCHEDULES),
        seed=_validate.seed(seed),
        device=_validate.device(device),
        restarts=_validate.integer(restarts, "restarts", minimum=1),
        eval_batch_size=_validate.integer(eval_batch_size, "eval_batch_size", minimum=1),
        progress=_validate.flag(progress, "progress", allow_none=True),
    )


def _batch_size(batch_size, config: ToyModelConfig) -> int:
    """``batch_size`` checked; ``None`` is `DEFAULT_BATCH`, or the whole of a finite data set
    (which trains full-batch: any other batch size is refused)."""
    T = config.dataset_size
    if T is None:
        return DEFAULT_BATCH if batch_size is None else _validate.integer(batch_size, "batch_size", minimum=1)
    expected = (
        f"None or {T} (config.dataset_size): a finite data set trains full-batch, on every sample "
        "at every step"
    )
    if batch_size is None:
        return T
    if _validate.integer(batch_size, "batch_size", minimum=1, expected=expected) != T:
        raise _validate.fail("batch_size", batch_size, expected)
    return T


def _check_lr(lr) -> float:
    return _validate.real(
        lr, "lr", low=0.0, low_open=True, high=MAX_LR, expected="a positive finite number <= 1e37"
    )


def _check_size(args: dict) -> None:
    """Refuse, before anything is allocated, a run that cannot fit in memory or would take hours."""
    config, dev = args["config"], args["device"]
    steps, batch, n_eval, k = args["steps"], args["batch_size"], args["eval_batch_size"], args["restarts"]
    n_inst = config.n_instances * k
    n_hidden, n_feat = config.n_hidden, config.n_features
    sizes = {"config.n_instances": config.n_instances, "config.n_features": n_feat, "restarts": k}
    chunk = min(EVAL_CHUNK, n_eval)
    # bytes of float32 numbers, by the arguments that set them
    # the abs model has two weight matrices; the generic step's autograd keeps a few more
    # (instance, batch, feature) tensors than the hand-written one
    n_mat = 2 if config.model == "abs" else 1
    terms = {
        ("steps",): steps * n_inst,  # the loss history
        (): 8 * n_inst * (n_mat * n_hidden + 1) * n_feat,  # parameters, gradients, optimiser state
        ("batch_size",): n_inst * batch * (2 * n_mat * n_hidden + 1 + 12 * n_feat),  # a step's batch
        ("eval_batch_size",): n_inst * chunk * (n_hidden + 8 * n_feat),  # an evaluation chunk
    }
    values = {"steps": steps, "batch_size": batch, "eval_batch_size": n_eval}
    largest = max(terms, key=terms.get)
    blame = {name: values[name] for name in largest}
    _validate.check_memory(4 * sum(terms.values()), dev, {**blame, "config.n_hidden": n_hidden, **sizes})
    per_sample = n_inst * n_feat * (n_mat * n_hidden + 8)
    step_work = steps * (batch * per_sample + STEP_OVERHEAD)
    eval_work = 3 * n_eval * per_sample + -(-n_eval // EVAL_CHUNK) * CHUNK_OVERHEAD
    if eval_work > step_work:
        blame = {"eval_batch_size": n_eval, **sizes}
    else:
        blame = {"steps": steps, "batch_size": batch, **sizes}
    _validate.check_work(step_work + eval_work, blame, device=dev)


def _progress(total: int, show: bool | None):
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="step", leave=False)


@torch.no_grad()
def _evaluate(
    config: ToyModelConfig,
    params: dict[str, torch.Tensor],
    prob: torch.Tensor,
    importance: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    chunk: int = EVAL_CHUNK,
) -> torch.Tensor:
    """Per-instance loss of the model ``config.model`` with ``params`` on ``n_samples`` fresh
    samples of ``config``'s data (unit-norm for a finite data set), drawn in chunks.

    The samples are drawn on the ``generator``'s device and moved to ``prob``'s.
    """
    total = torch.zeros(prob.shape[0], device=prob.device, dtype=prob.dtype)
    prob_gen = prob.to(generator.device)
    options = _data_options(config, unit_norm=config.dataset_size is not None)
    done = 0
    while done < n_samples:
        size = min(chunk, n_samples - done)
        x = _draw(prob_gen, size, generator=generator, **options).to(prob.device)
        out = _predict(config.model, config.activation, params, x)
        total += _loss_per_instance(_target(config.model, x), out, importance) * size
        done += size
    return total / n_samples


class _StepBuffers:
    """Tensors a training step reuses, so that memory stays flat however many steps run."""

    def __init__(self, n_inst: int, n_hidden: int, batch_size: int, n_feat: int, device, dtype):
        self.h1 = torch.empty(n_inst, n_hidden + 1, batch_size, device=device, dtype=dtype)
        self.z = torch.empty(n_inst, n_feat, batch_size, device=device, dtype=dtype)
        self.active = torch.empty(n_inst, n_feat, batch_size, device=device, dtype=dtype)


def _loss_and_grad(
    Wb: torch.Tensor,
    xt: torch.Tensor,
    sqrt_weight: torch.Tensor,
    activation: str,
    buffers: _StepBuffers | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of every instance and its gradient, by hand, in a few passes over the batch.

    With ``W = Wb[:, :-1]`` and ``b = Wb[:, -1]``, the loss is
    ``L_i = mean_{b, f} I[i, f] (x - act(Wᵀ W x + b))²`` and the result equals autograd's
    gradient of ``sum_i L_i``. Writing ``s = sqrt(I / (batch · feature))`` (``sqrt_weight``) and
    ``z = Wᵀ h + b`` with ``h = W x``:

    - ``e = s ⊙ (act(z) - x)``, so ``L_i = ||e_i||²``;
    - ``∂L/∂z = 2 s ⊙ r`` with ``r = e ⊙ act'(z)``;
    - ``∂L/∂Wb = 2 s ⊙ r [h, 1]ᵀ`` (the read-out, bias included) plus
      ``∂L/∂W += 2 ((W ⊙ s) r) xᵀ`` (the write-in, through ``h``).

    The scale ``s`` rides on the small matrix ``Wb ⊙ s`` rather than on the batch (a ReLU
    commutes with a positive scale), and the batch is held feature-major, ``(instance, feature,
    batch)``, so that every pass over it runs along the long batch axis.

    Args:
        Wb: ``(instance, hidden + 1, feature)``: ``W`` with the bias as a last row.
        xt: ``(instance, feature, batch)``: the batch, transposed.
        sqrt_weight: ``(instance, feature, 1)``, ``sqrt(importance / (batch · feature))``.
        activation: ``"relu"`` or ``"linear"``.
        buffers: work space reused from step to step (allocated when ``None``).

    Returns:
        ``loss``: ``(instance,)``; ``grad``: ``(instance, hidden + 1, feature)``.
    """
    n_inst, n_feat, batch_size = xt.shape
    n_hidden = Wb.shape[1] - 1
    if buffers is None:
        buffers = _StepBuffers(n_inst, n_hidden, batch_size, n_feat, xt.device, xt.dtype)
    h1, z = buffers.h1, buffers.z
    torch.bmm(Wb, xt, out=h1)  # [h; b·x]: (instance, hidden + 1, batch)
    h1[:, n_hidden] = 1.0  # [h; 1]
    Ws = Wb * sqrt_weight.transpose(1, 2)  # (instance, hidden + 1, feature)
    torch.bmm(Ws.transpose(1, 2), h1, out=z)  # s ⊙ z: (instance, feature, batch)
    if activation == "relu":
        z.clamp_min_(0)  # s ⊙ relu(z), as s >= 0
        active = torch.sign(z, out=buffers.active)  # relu'(z): 1 where z > 0, else 0
    elif activation != "linear":
        raise ValueError(f"activation={activation!r}: expected 'relu' or 'linear'")
    e = z.addcmul_(xt, sqrt_weight, value=-1)
    loss = torch.linalg.vector_norm(e.view(n_inst, -1), dim=1).square_()
    r = e.mul_(active) if activation == "relu" else e
    grad = torch.bmm(h1, r.transpose(1, 2)).mul_(sqrt_weight.transpose(1, 2)).mul_(2)  # read-out
    dh = torch.bmm(Ws[:, :n_hidden], r)  # half of ∂L/∂h: (instance, hidden, batch)
    grad[:, :n_hidden].add_(torch.bmm(dh, xt.transpose(1, 2)), alpha=2)  # write-in
    return loss, grad


class _CpuStep:
    """`_loss_and_grad` on the CPU, with its element-wise work compiled (`toy_lib._cpu_kernels`).

    `step` is one training step: it draws the next batch from the ``"numba"`` sampler and
    returns the gradient. Two specialisations, chosen by the model's size:

    - tiny models (`_cpu_kernels.tiny_fits`: the phase diagrams' 2 -> 1 and 3 -> 2, the 5 -> 2
      pentagons): one generated kernel (`_cpu_kernels.tiny_step`) draws each instance's batch
      and computes its loss and gradient without leaving registers; five products per instance
      would cost more in MKL's calls than in arithmetic;
    - otherwise the product path, chunk by chunk of instances (`_chunk`), each chunk small
      enough that its batch and pre-activations stay in one core's L2 cache while they are
      used: draw the chunk's batch ``x``, ``(instance, batch, feature)``; five matrix
      products (PyTorch, i.e. MKL) around one compiled pass: ``h = W x``, ``z = Wᵀ h``; then
      `_cpu_kernels.residual` adds the bias, turns ``z`` into ``∂L/∂z`` in place, sums the loss
      and the bias gradient; then ``∂L/∂W = h ∂zᵀ`` (read-out) ``+ (W ∂z) xᵀ`` (write-in).

    Threads: with ``workers > 1``, that many worker threads (`_workers`) take chunks of
    instances in turn, each running MKL and the kernels on one thread, and the caller runs
    torch on one thread meanwhile (`train` does): one hand-over per step instead of one per
    operation, no OpenMP pool left spinning on the cores the workers need, and an instance's
    arithmetic does not depend on which worker does it, so the result does not depend on the
    number of threads. Each step uses one worker or all of them, whichever was faster when the
    step last timed both (`_choose_workers`).

    `__call__` runs the product path on a given batch. The same arithmetic as `loss_and_grad`,
    checked against it in the tests.
    """

    def __init__(
        self, n_inst: int, n_hidden: int, batch_size: int, n_feat: int, weight: torch.Tensor, workers: int = 1
    ):
        self.shape = (n_inst, n_hidden, batch_size, n_feat)
        self.workers = workers
        self.tiny = _cpu_kernels.tiny_fits(n_feat, n_hidden)
        self.grad = torch.empty(n_inst, n_hidden + 1, n_feat)
        self.weight = weight.to(torch.float32).contiguous().numpy()  # (instance, feature)
        if self.tiny:
            per_chunk = _cpu_kernels.TINY_CHUNK
        else:
            per_chunk = max(1, _cpu_kernels.CHUNK_NUMBERS // (batch_size * n_feat))
        self.chunks = [(a, min(a + per_chunk, n_inst)) for a in range(0, n_inst, per_chunk)]
        self.buffers: list[dict] = []  # the product path's, one set per worker, made when first used
        # how many workers the steps use (see _choose_workers)
        self.using = self.best = workers
        self.steps_done, self.trials, self.times = 0, [], {}

    def step(self, Wb: torch.Tensor, sampler: _BatchSampler, activation: str, loss: np.ndarray, tick=None):
        """Draw the next batch from ``sampler`` and return the gradient ``(instance, hidden + 1,
        feature)`` for it; writes each instance's loss into ``loss``. ``tick(name)``, if given, is
        called as each phase ends (``benchmarks/profile_step.py`` times them)."""
        n_inst, n_hidden, batch_size, n_feat = self.shape
        tables, keys, number = sampler.stream()
        self.using = self._choose_workers()
        start = time.perf_counter()
        if self.tiny:
            # every instance drawn coin by coin (see tiny_step)
            kernel = _cpu_kernels.tiny_step(n_feat, n_hidden, activation == "relu")
            args = (Wb.numpy(), tables[0], keys, number, self.weight, batch_size, loss, self.grad.numpy())
            self._run(lambda worker, a, b: kernel(*args, a, b))
            (tick or _no_tick)("tiny kernel (sample, forward, residual, backward)")
        else:
            self._products(Wb, activation, loss, tick, draw=(tables, keys, number))
        self._timed(self.using, time.perf_counter() - start)
        return self.grad

    #: Every this many steps, the step times itself on one worker and on all of them, ...
    RETIME_EVERY = 250
    #: ... this many steps each, and uses the faster until it times them again.
    TRIALS = 3

    def _choose_workers(self) -> int:
        """How many workers this step uses: one or all of them, whichever was faster when last
        timed. Other jobs on the machine come and go, and two threads that wait on each other
        on a busy machine can be many times slower than one (``benchmarks/README.md``); the
        result does not depend on the choice (tested), so the step may as well be fast."""
        if self.workers == 1 or len(self.chunks) == 1:
            return 1
        if self.steps_done % self.RETIME_EVERY == 1:  # step 0 warms up (compiles, allocates)
            self.trials = [n for _ in range(self.TRIALS) for n in (1, self.workers)]
            self.times = {1: [], self.workers: []}
        self.steps_done += 1
        return self.trials.pop() if self.trials else self.best

    def _timed(self, workers: int, seconds: float) -> None:
        if workers in self.times:
            self.times[workers].append(seconds)
            if not self.trials and all(len(t) >= self.TRIALS for t in self.times.values()):
                self.best = min(self.times, key=lambda n: sorted(self.times[n])[len(self.times[n]) // 2])
                self.times = {}

    @classmethod
    def evaluate(
        cls, Wb, prob, importance, activation: str, n_samples: int, generator, workers: int, chunk: int = 4096
    ) -> torch.Tensor:
        """`evaluate` by the compiled step: each instance's loss ``(instance,)`` on ``n_samples``
        fresh samples drawn from ``generator``, in chunks of ``chunk`` (the step's gradient is
        computed and dropped; for tiny models that is cheaper than the tensor program's calls)."""
        n_inst, n_feat = prob.shape
        total = np.zeros(n_inst)
        loss = np.empty(n_inst, dtype=np.float32)
        done = 0
        while done < n_samples:
            size = min(chunk, n_samples - done)
            sampler = _BatchSampler(prob, size, generator=generator)
            step = cls(n_inst, Wb.shape[1] - 1, size, n_feat, importance / (size * n_feat), workers)
            step.step(Wb, sampler, activation, loss)
            total += loss * size
            done += size
        return torch.from_numpy(total / n_samples).to(torch.float32)

    def __call__(
        self, Wb: torch.Tensor, x: torch.Tensor, activation: str, loss: np.ndarray, tick=None
    ) -> torch.Tensor:
        """The gradient ``(instance, hidden + 1, feature)`` for batch ``x`` by the product path,
        on all the workers; writes each instance's loss into ``loss``."""
        self.using = self.workers
        return self._products(Wb, activation, loss, tick, x=x)

    def _run(self, chunk_fn) -> None:
        """``chunk_fn(worker, a, b)`` for every chunk ``(a, b)``, on ``self.using`` workers."""
        workers = min(self.using, len(self.chunks))
        if workers == 1:
            for a, b in self.chunks:
                chunk_fn(0, a, b)
            return
        chunks = iter(self.chunks)  # shared: each worker takes the next chunk when it is free

        def work(worker):
            for a, b in chunks:
                chunk_fn(worker, a, b)

        for done in [_workers().submit(work, w) for w in range(workers)]:
            done.result()

    def _products(self, Wb, activation, loss, tick, x=None, draw=None) -> torch.Tensor:
        n_hidden = self.shape[1]
        # MKL multiplies contiguous matrices faster than views with odd strides; these are small.
        W = Wb[:, :n_hidden].contiguous()
        bias = Wb[:, n_hidden].contiguous()
        args = (W, bias, activation == "relu", loss, x, draw)
        if min(self.using, len(self.chunks)) == 1:  # phase by phase for the profile
            self._run(lambda worker, a, b: self._chunk(self._buffers(0), a, b, *args, tick or _no_tick))
        else:
            for w in range(self.using):
                self._buffers(w)  # made here, not in the workers
            self._run(lambda worker, a, b: self._chunk(self.buffers[worker], a, b, *args, _no_tick))
            (tick or _no_tick)(f"product path on {self.using} worker threads")
        return self.grad

    def _buffers(self, worker: int) -> dict:
        while len(self.buffers) <= worker:
            _, n_hidden, batch_size, n_feat = self.shape
            k = max(b - a for a, b in self.chunks)
            self.buffers.append(
                dict(
                    x=torch.empty(k, batch_size, n_feat),
                    h=torch.empty(k, n_hidden, batch_size),
                    z=torch.empty(k, batch_size, n_feat),
                    dh=torch.empty(k, n_hidden, batch_size),
                )
            )
        return self.buffers[worker]

    def _chunk(self, buffers, a, b, W, bias, relu, loss, x, draw, tick) -> None:
        """Instances ``a`` to ``b - 1``: their batch (drawn, or ``x[a:b]``), loss and gradient."""
        n_hidden = self.shape[1]
        k = b - a
        h, z, dh = buffers["h"][:k], buffers["z"][:k], buffers["dh"][:k]
        if x is None:
            (p40, inv_log1m_q, thin40), keys, number = draw
            xs = buffers["x"][:k]
            _cpu_kernels.sample_instances(
                p40[a:b], inv_log1m_q[a:b], thin40[a:b], keys[a:b], number, xs.numpy()
            )
            tick("sample the batch")
        else:
            xs = x[a:b]
        grad = self.grad[a:b]
        torch.bmm(W[a:b], xs.transpose(1, 2), out=h)  # h = W x, hidden-major: (instance, hidden, batch)
        torch.bmm(h.transpose(1, 2), W[a:b], out=z)  # Wᵀ h: (instance, batch, feature)
        tick("products: forward")
        _cpu_kernels.residual(
            z.numpy(),
            xs.numpy(),
            bias[a:b].numpy(),
            self.weight[a:b],
            relu,
            loss[a:b],
            grad[:, n_hidden].numpy(),
        )
        tick("compiled residual pass")
        torch.bmm(h, z, out=grad[:, :n_hidden])  # read-out: h ∂zᵀ
        torch.bmm(W[a:b], z.transpose(1, 2), out=dh)  # ∂L/∂h = W ∂z: (instance, hidden, batch)
        grad[:, :n_hidden].baddbmm_(dh, xs)  # write-in: + ∂h xᵀ
        tick("products: backward")


_WORKERS = None


def _forget_workers() -> None:
    global _WORKERS
    _WORKERS = None


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_forget_workers)


def _workers():
    """The CPU step's worker threads (one per core), each set to run torch and MKL on one thread."""
    global _WORKERS
    if _WORKERS is None:
        from concurrent.futures import ThreadPoolExecutor

        # torch.set_num_threads in a thread sets that thread's OpenMP and MKL thread counts; the
        # caller's setting is left as it was (tested)
        _WORKERS = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1,
            thread_name_prefix="toy_lib",
            initializer=torch.set_num_threads,
            initargs=(1,),
        )
    return _WORKERS


def _no_tick(name: str) -> None:
    pass


class _AdamW:
    """``torch.optim.AdamW`` (or Adam, with ``weight_decay=0``) on one tensor, step by step.

    The same update as PyTorch's (``lerp`` for the first moment, bias corrections folded into
    the step size and the denominator), with the learning rate passed at each step so that a
    schedule costs nothing. Its state is two tensors the shape of the parameter.
    """

    def __init__(
        self,
        param: torch.Tensor,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.param, self.weight_decay, self.betas, self.eps = param, weight_decay, betas, eps
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lr: float) -> None:
        beta1, beta2 = self.betas
        self.t += 1
        if self.weight_decay:
            self.param.mul_(1 - lr * self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias1 = 1 - beta1**self.t
        bias2_sqrt = math.sqrt(1 - beta2**self.t)
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-lr / bias1)


#: How often (in steps) `optimise` looks for a non-finite loss: rarely enough that a GPU is never
#: made to wait, often enough that a diverged run stops within seconds.
CHECK_EVERY = 256


class TrainingDiverged(FloatingPointError):
    """The loss of some instance became NaN or infinite during training (try a smaller ``lr``).

    Attributes:
        step: the first step (0-based) at which a loss was not finite.
        instance: the first instance whose loss was not finite at that step, counted over every
            instance trained together (for `train`: every restart of every setting).
        value: that loss (NaN or infinity), or None where unknown.
        setting: for `train`, the setting of the config that instance belongs to
            (``instance // restarts``); None otherwise.
        restart: for `train`, which restart of its setting that instance is
            (``instance % restarts``); None otherwise.
    """

    def __init__(
        self,
        message: str,
        step: int,
        instance: int,
        *,
        value: float | None = None,
        setting: int | None = None,
        restart: int | None = None,
    ):
        super().__init__(message)
        self.step, self.instance, self.value = step, instance, value
        self.setting, self.restart = setting, restart


def _first_non_finite(history: torch.Tensor, start: int, stop: int) -> tuple[int, int] | None:
    """``(step, instance)`` of the first non-finite loss in ``history[start:stop]``, or None."""
    bad = ~torch.isfinite(history[start:stop])
    if not bool(bad.any()):
        return None
    step, instance = (int(i) for i in torch.nonzero(bad)[0])
    return start + step, instance


def _check_params(params) -> tuple[int, torch.device]:
    """``optimise``'s parameters: the number of instances and the device they share."""
    if not isinstance(params, (list, tuple)) or not params:
        raise _validate.fail("params", params, "a non-empty list of tensors")
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor) or not p.is_floating_point() or p.ndim == 0 or p.numel() == 0:
            raise _validate.fail(
                f"params[{i}]", p, "a non-empty floating tensor with the instance axis first"
            )
    n_inst = params[0].shape[0]
    for i, p in enumerate(params):
        if p.shape[0] != n_inst:
            raise _validate.fail(
                f"params[{i}]", p, f"{n_inst} entries on the instance axis, as params[0] has", f"{p.shape[0]}"
            )
    dev = _validate.same_device({f"params[{i}]": p for i, p in enumerate(params)})
    return n_inst, dev


def _check_grads(grads, params) -> None:
    """The gradients a ``step_fn`` returned: one per parameter, each of its parameter's shape."""
    if not isinstance(grads, (list, tuple)) or len(grads) != len(params):
        raise _validate.fail(
            "step_fn", grads, f"step_fn to return a list of {len(params)} gradient(s), one per parameter"
        )
    for i, (g, p) in enumerate(zip(grads, params)):
        if not isinstance(g, torch.Tensor) or g.shape != p.shape:
            shape = tuple(getattr(g, "shape", ()))
            raise _validate.fail(
                f"step_fn's gradient {i}",
                g,
                f"a tensor of shape {tuple(p.shape)}, as params[{i}]",
                f"{shape}",
            )


def optimise(
    params: list[torch.Tensor],
    step_fn,
    *,
    steps: int,
    lr: float,
    schedule: str,
    weight_decay: float,
    progress: bool | None,
    caller: str,
    after_step=None,
) -> torch.Tensor:
    """The one training loop of toy_lib: every trainer (`train`, `train_sae`) runs its steps here.

    At each step, ``step_fn(step, loss_out)`` computes the gradients of the per-instance losses
    for the current batch and writes each instance's loss into ``loss_out`` (a ``(instance,)``
    row of the history); it returns one gradient per tensor of ``params``. Each parameter then
    takes an AdamW step (``torch.optim.AdamW``'s update) at the scheduled learning rate, and
    ``after_step(step, optimisers)``, if given, runs (a trainer's constraints: unit-norm decoder
    columns, resampling, ...).

    Every parameter carries the instance axis first, so one call trains every instance at once.
    Every `CHECK_EVERY` steps, and at the end, the loop looks for a non-finite loss and stops
    with `TrainingDiverged` naming the instance and the step, rather than return garbage.

    This is the building block for a trainer of your own (toy_lib's `train` and its SAE
    trainer are written on it); a reader who only trains toy models calls `train`.

    Args:
        params: the tensors to train, updated in place: a non-empty list of floating tensors,
            each ``(instance, ...)`` with the same number of instances, on one device.
        step_fn: ``(step, loss_out) -> [grad for each of params]``; each gradient has its
            parameter's shape.
        steps, lr, schedule: the number of steps, base learning rate and its schedule
            (`lr_factor`).
        weight_decay: decoupled weight decay, >= 0 (0 gives Adam), with ``lr * weight_decay < 1``.
        progress: show a progress bar; ``None`` shows one only when stderr is a terminal.
        caller: the public function's name, for messages.
        after_step: ``(step, optimisers)`` called after every update, or None.

    Returns:
        ``(step, instance)`` loss history, on the parameters' device.

    Raises:
        ValueError: naming the argument, for arguments of the wrong kind, or a ``step_fn``
            that returns the wrong number or shapes of gradients.
        TrainingDiverged: when a loss becomes NaN or infinite.
    """
    n_inst, dev = _check_params(params)
    steps = _validate.integer(steps, "steps", minimum=1)
    lr = _check_lr(lr)
    schedule = _validate.choice(schedule, "schedule", SCHEDULES)
    weight_decay = _validate.real(weight_decay, "weight_decay", low=0.0)
    if lr * weight_decay >= 1:
        raise ValueError(
            f"lr={lr!r}, weight_decay={weight_decay!r}: expected lr * weight_decay < 1 (the decay multiplies "
            f"the weights by 1 - lr * weight_decay at every step), got {lr * weight_decay:g}; try a smaller lr"
        )
    progress = _validate.flag(progress, "progress", allow_none=True)
    if not isinstance(caller, str):
        raise _validate.fail(
            "caller", caller, "the name of the calling function (a str)", type(caller).__name__
        )
    _validate.function(step_fn, "step_fn")
    _validate.function(after_step, "after_step", allow_none=True)
    _validate.check_memory(4 * steps * n_inst, dev, {"steps": steps, "params": params[0]})
    history = torch.empty(steps, n_inst, device=dev)
    optimisers = [_AdamW(p, weight_decay=weight_decay) for p in params]
    bar = _progress(steps, progress)
    checked = 0
    try:
        for step in range(steps):
            grads = step_fn(step, history[step])
            if step == 0:
                _check_grads(grads, params)
            rate = lr * _lr_factor(schedule, step, steps)
            for opt, grad in zip(optimisers, grads):
                opt.step(grad, rate)
            if after_step is not None:
                after_step(step, optimisers)
            if step + 1 - checked >= CHECK_EVERY or step == steps - 1:
                bad = _first_non_finite(history, checked, step + 1)
                if bad is not None:
                    at, inst = bad
                    value = history[at, inst].item()
                    raise TrainingDiverged(
                        f"{caller}: the loss of instance {inst} became {value} at step "
                        f"{at} (lr={lr!r}): training diverged; try a smaller lr",
                        at,
                        inst,
                        value=value,
                    )
                checked = step + 1
            if bar is not None and (step % 100 == 99 or step == steps - 1):
                bar.update(step + 1 - bar.n)
    finally:
        if bar is not None:
            bar.close()
    return history


def train(
    config: ToyModelConfig,
    *,
    steps: int = 10_000,
    batch_size: int | None = None,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    schedule: str = "constant",
    seed: int = 0,
    device: str | torch.device | None = None,
    restarts: int = 1,
    eval_batch_size: int = 16_384,
    progress: bool | None = None,
) -> TrainResult:
    """Train every instance of ``config`` at once; keep the best of ``restarts`` per setting.

    The recipe defaults to the original notebook's: batch 1024, 10,000 steps, lr 1e-3, AdamW
    with PyTorch's default weight decay 0.01, constant learning rate, Xavier-normal weights
    (per instance, every weight matrix) and zero bias.

    Every model and data option of `ToyModelConfig` trains here, through one loop (`optimise`),
    one optimiser, the same restarts, seeds and devices. The tied model on fresh independent
    U[0, 1] features takes a hand-written step (the module's docstring); every other model or
    data option takes a generic step whose gradient autograd computes.

    With ``restarts=k``, each setting is trained from ``k`` different initialisations as extra
    instances in the same tensor program; after training, each restart's loss is measured on a
    fresh batch of ``eval_batch_size`` samples and the lowest-loss restart of every setting is
    kept. Small models often land in local minima; the papers do the same. With a finite data
    set (``config.dataset_size``), the restarts of a setting share its training set, every step
    uses all of it (full-batch), restarts are ranked by their loss on it, and ``final_loss``
    is the loss on fresh unit-norm samples: the test loss.

    Args:
        config: the model, sizes, probabilities, importances and data of the settings.
        steps: a positive integer (any NumPy or torch integer form).
        batch_size: samples per instance per step, a positive integer; ``None`` (the default)
            is 1024, or the whole training set for a ``config`` with ``dataset_size`` (which
            accepts no other batch size).
        lr: the base learning rate, a positive finite number (at most 1e37; with
            ``"adamw"``, below 100, so that the weight decay of 0.01 shrinks the weights).
        optimizer: ``"adamw"`` (weight decay 0.01) or ``"adam"``.
        schedule: ``"constant"``, ``"linear"``, ``"cosine"`` or ``"warmup_cosine"``
            (see `lr_factor`).
        seed: an integer from 0 to 2**63 - 1; seeds the initialisation and the data; the same
            seed gives bitwise-identical weights on the CPU.
        device: ``None`` picks CUDA, then MPS, then the CPU; else ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"`` or ``"mps"`` (checked before anything starts).
        restarts: initialisations per setting; the lowest final loss is kept.
        eval_batch_size: samples used to measure the final loss.
        progress: show a progress bar; ``None`` shows one only when stderr is a terminal
            (so it is silent in the book build).

    Returns:
        A `TrainResult` with one instance per setting of ``config``: its parameters by name
        (weights ``W`` of shape ``(instance, hidden, feature)`` and biases ``b``
        ``(instance, feature)``; for the abs model ``W1``, ``W2`` ``(instance, feature,
        hidden)`` and ``b``), the loss history ``(step, instance)`` and every restart's final
        loss ``(instance, restart)``.

    Raises:
        ValueError: naming the argument, the value and what was expected, for any argument of
            the wrong kind, a device this machine does not have, or a run that cannot fit in
            memory or would take more than several hours (estimated before anything is
            allocated; see ``toy_lib._validate.MAX_WORK``).
        TrainingDiverged: when the loss of some instance becomes NaN or infinite; the message
            names the setting, the restart and the step.
    """
    args = _train_arguments(
        config, steps, batch_size, lr, optimizer, schedule, seed, device, restarts, eval_batch_size, progress
    )
    _check_size(args)
    steps, batch_size, lr, seed = args["steps"], args["batch_size"], args["lr"], args["seed"]
    optimizer, schedule, restarts = args["optimizer"], args["schedule"], args["restarts"]
    eval_batch_size, progress, dev = args["eval_batch_size"], args["progress"], args["device"]
    full = config.with_restarts(restarts) if restarts > 1 else config
    n_inst, n_hidden, n_feat = full.n_instances, full.n_hidden, full.n_features

    init_gen = torch.Generator(device="cpu").manual_seed(seed)
    # MPS has no float64 for the sampler: draw the data on the CPU and move each batch over.
    data_dev = torch.device("cpu") if dev.type == "mps" else dev
    data_gen = torch.Generator(device=data_dev).manual_seed(seed + 1)
    init = _init_params(full, init_gen)
    prob = torch.tensor(full.probability_matrix(), dtype=torch.float32, device=dev)
    importance = torch.tensor(full.importance_matrix(), dtype=torch.float32, device=dev)
    finite = full.dataset_size is not None
    if finite:  # every setting's training set, shared by its restarts: (instance, sample, feature)
        x_train = _training_set(config, seed).repeat_interleave(restarts, dim=0).to(dev)
        y_train = _target(full.model, x_train)

    sampler = None
    compiled = False
    small = n_inst * n_feat * batch_size < SINGLE_THREAD_BELOW
    if _hand_written(full):
        # The parameters: W with the bias as one more row, (instance, hidden + 1, feature).
        Wb = torch.cat([init["W"], init["b"][:, None]], dim=1).to(dev)
        params = [Wb]

        def trained() -> dict[str, torch.Tensor]:
            return {"W": Wb[:, :n_hidden], "b": Wb[:, n_hidden]}

        sampler = _BatchSampler(prob.to(data_dev), batch_size, generator=data_gen)
        # On the CPU with Numba: the compiled step; elsewhere the tensor program of `_loss_and_grad`.
        compiled = dev.type == "cpu" and sampler.backend == "numba"
        if compiled:
            # its own worker threads, as many as torch may use (one for small problems)
            workers = 1 if small else torch.get_num_threads()
            cpu_step = _CpuStep(
                n_inst, n_hidden, batch_size, n_feat, importance / (batch_size * n_feat), workers
            )

            def step_fn(step: int, loss_out: torch.Tensor) -> list[torch.Tensor]:
                return [cpu_step.step(Wb, sampler, full.activation, loss_out.numpy())]

        else:
            buffers = _StepBuffers(n_inst, n_hidden, batch_size, n_feat, dev, torch.float32)
            sqrt_weight = (importance / (batch_size * n_feat)).sqrt()[:, :, None]

            def step_fn(step: int, loss_out: torch.Tensor) -> list[torch.Tensor]:
                xt = sampler.sample().transpose(1, 2).to(dev)  # (instance, feature, batch)
                loss, grad = _loss_and_grad(Wb, xt, sqrt_weight, full.activation, buffers)
                loss_out.copy_(loss)
                return [grad]

    else:
        if finite:

            def draw() -> tuple[torch.Tensor, torch.Tensor]:
                return x_train, y_train

        else:
            sampler = _FeatureSampler(
                prob.to(data_dev), batch_size, generator=data_gen, **_data_options(full, unit_norm=False)
            )

            def draw() -> tuple[torch.Tensor, torch.Tensor]:
                x = sampler.sample().to(dev)
                return x, _target(full.model, x)

        init = {name: t.to(dev) for name, t in init.items()}
        small = n_inst * n_feat * batch_size < AUTOGRAD_SINGLE_THREAD_BELOW
        step_fn = _GenericStep(full, init, importance, batch_size, draw)
        params = [step_fn.flat]
        trained = step_fn.params

    # the compiled step runs torch on one thread: its workers are its threads
    with _cpu_threads(1 if (small or compiled) and "cpu" in (dev.type, data_dev.type) else None):
        try:
            history = optimise(
                params,
                step_fn,
                steps=steps,
                lr=lr,
                schedule=schedule,
                weight_decay=0.01 if optimizer == "adamw" else 0.0,
                progress=progress,
                caller="train",
            )
        except TrainingDiverged as err:
            setting, restart = divmod(err.instance, restarts)
            raise TrainingDiverged(
                f"train: the loss of setting {setting} (restart {restart} of {restarts}; instance "
                f"{err.instance} of the {n_inst} trained together) became {err.value} at step "
                f"{err.step} of {steps} (lr={lr!r}): training diverged; try a smaller lr",
                err.step,
                err.instance,
                value=err.value,
                setting=setting,
                restart=restart,
            ) from None
    if sampler is not None and sampler.truncated.item():
        raise RuntimeError(
            "train: a batch overflowed the sampler's candidate buffer (probability "
            "below 1e-15 per batch); please report it"
        )
    with torch.no_grad():
        final_params = {name: t.detach() for name, t in trained().items()}
        eval_gen = torch.Generator(device=data_dev).manual_seed(seed + 2)
        if compiled:  # the compiled step measures the loss too
            with _cpu_threads(1):
                final = _CpuStep.evaluate(
                    Wb, prob, importance, full.activation, eval_batch_size, eval_gen, workers
                )
        else:
            final = _evaluate(full, final_params, prob, importance, eval_batch_size, eval_gen)
        if finite:  # restarts are ranked by what they were trained on, not by the test set
            out = _predict(full.model, full.activation, final_params, x_train)
            ranked = _loss_per_instance(y_train, out, importance)
        else:
            ranked = final

    k = restarts
    n_set = config.n_instances
    restart_losses = ranked.reshape(n_set, k)
    best = restart_losses.argmin(dim=1)
    keep = torch.arange(n_set, device=dev) * k + best
    return TrainResult(
        config=config,
        params={name: t[keep].cpu() for name, t in final_params.items()},
        loss_history=history[:, keep].cpu(),
        final_loss=final[keep].cpu(),
        restart_losses=restart_losses.cpu(),
        best_restart=best.cpu(),
        recipe=dict(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            schedule=schedule,
            seed=seed,
            restarts=restarts,
            eval_batch_size=eval_batch_size,
            device=str(dev),
        ),
    )


def _hand_written(config: ToyModelConfig) -> bool:
    """Whether `train` takes the hand-written step (`_CpuStep` or `_loss_and_grad`): the tied
    model on fresh batches of independent U[0, 1] features. Everything else takes `_GenericStep`."""
    return (
        config.model == "tied" and config.dataset_size is None and not _data_options(config, unit_norm=False)
    )


def _init_params(config: ToyModelConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The starting parameters of ``config``'s model, by name, on the CPU: every weight matrix
    Xavier-normal per instance (`init_weights`), drawn in the order of `PARAMETERS`; biases 0."""
    n_inst, n_hidden, n_feat = config.n_instances, config.n_hidden, config.n_features
    shapes = {"W": (n_hidden, n_feat), "W1": (n_hidden, n_feat), "W2": (n_feat, n_hidden)}
    params = {}
    for name in PARAMETERS[config.model]:
        if name == "b":
            params[name] = torch.zeros(n_inst, n_feat)
        else:
            params[name] = init_weights(n_inst, *shapes[name], generator=generator)
    return params


class _GenericStep:
    """The training step of every model and data set but the hand-written case (`_hand_written`).

    Every model's output is ``act(h A + b)`` with a hidden layer ``h = act_h(V x)`` and a
    read-out ``A`` (`toy_lib.model._readout`): tied ``V = W``, ``act_h`` the identity,
    ``A = W``; neuron the same with ``act_h = ReLU``; abs ``V = W₁``, ``act_h = ReLU``,
    ``A = W₂ᵀ``. With ``w = importance / (batch · feature)``, the loss of an instance is
    ``L = Σ w (act(z + b) - y)²`` with ``z = h A`` and target ``y``, and its gradient:

    1. one pass (`_output_residual`) gives ``L``, ``∂L/∂z`` (in place of ``z``) and
       ``∂L/∂b = Σ_batch ∂L/∂z``;
    2. ``∂L/∂A = hᵀ ∂z`` (the read-out) and ``∂L/∂h = ∂z Aᵀ``;
    3. ``∂L/∂(Vx) = ∂L/∂h ⊙ act_h'`` and ``∂L/∂V = (∂L/∂(Vx))ᵀ x`` (the write-in).

    For the tied and neuron models ``∂L/∂W`` is the sum of the read-out and write-in parts.
    Five batched matrix products and one element-wise pass over the large ``(instance, batch,
    feature)`` tensors, compiled on the CPU: the same plan as the tied model's hand-written step,
    for any of the three models and any data. The tests check the gradient against autograd's.

    The parameters live side by side in one flat ``(instance, n)`` tensor (`flat`), and so do
    their gradients, so that `optimise` takes one AdamW step over all of them; `params` views
    each with its shape.

    Args:
        config: the configuration trained (restarts included).
        init: the starting parameters by name (`_init_params`), on the training device.
        importance: ``(instance, feature)``.
        batch_size: samples per instance per step.
        draw: ``() -> (x, y)``, the batch and the target, each ``(instance, batch, feature)``.
    """

    def __init__(self, config: ToyModelConfig, init: dict, importance: torch.Tensor, batch_size: int, draw):
        self.model, self.relu, self.draw = config.model, config.activation == "relu", draw
        n_inst, n_hidden, n_feat = config.n_instances, config.n_hidden, config.n_features
        self.names = PARAMETERS[config.model]
        self.shapes = [tuple(init[name].shape[1:]) for name in self.names]
        pieces = [init[name].reshape(n_inst, -1) for name in self.names]
        self.flat = torch.cat(pieces, dim=1).contiguous()
        self.grad = torch.zeros_like(self.flat)
        self.bounds = np.cumsum([0] + [p.shape[1] for p in pieces]).tolist()
        self.weight = (importance / (batch_size * n_feat)).contiguous()
        dev = self.flat.device
        self.pre = torch.empty(n_inst, batch_size, n_hidden, device=dev)
        self.z = torch.empty(n_inst, batch_size, n_feat, device=dev)
        self.loss = torch.empty(n_inst, device=dev)
        self.grad_b = torch.empty(n_inst, n_feat, device=dev)
        self.compiled = dev.type == "cpu" and _cpu_kernels.AVAILABLE

    def params(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every parameter by name, as a view of ``flat`` (by default the trained `flat`)."""
        flat = self.flat if flat is None else flat
        return {
            name: flat[:, a:b].view(flat.shape[0], *shape)
            for name, shape, a, b in zip(self.names, self.shapes, self.bounds, self.bounds[1:])
        }

    def __call__(self, step: int, loss_out: torch.Tensor) -> list[torch.Tensor]:
        x, y = self.draw()
        # contiguous copies of the (small) parameters: the products run faster on them
        p = {name: t.contiguous() for name, t in self.params().items()}
        g = self.params(self.grad)
        abs_model = self.model == "abs"
        V = p["W1"] if abs_model else p["W"]
        A = p["W2"].transpose(1, 2) if abs_model else p["W"]  # (instance, hidden, feature)
        pre = torch.bmm(x, V.transpose(1, 2), out=self.pre)  # V x: (instance, batch, hidden)
        h = torch.relu(pre) if self.model != "tied" else pre
        z = torch.bmm(h, A, out=self.z)
        _output_residual(z, y, p["b"], self.weight, self.relu, self.loss, self.grad_b, self.compiled)
        g["b"].copy_(self.grad_b)
        read_out = torch.bmm(h.transpose(1, 2), z)  # ∂L/∂A = hᵀ ∂z: (instance, hidden, feature)
        dh = torch.bmm(z, A.transpose(1, 2))  # ∂L/∂h: (instance, batch, hidden)
        if self.model != "tied":
            dh.masked_fill_(pre <= 0, 0.0)  # through the hidden ReLU
        write_in = torch.bmm(dh.transpose(1, 2), x)  # ∂L/∂V: (instance, hidden, feature)
        if abs_model:
            g["W2"].copy_(read_out.transpose(1, 2))
            g["W1"].copy_(write_in)
        else:
            torch.add(read_out, write_in, out=g["W"])
        loss_out.copy_(self.loss)
        return [self.grad]


def _output_residual(
    z: torch.Tensor,
    y: torch.Tensor,
    bias: torch.Tensor,
    weight: torch.Tensor,
    relu: bool,
    loss: torch.Tensor,
    grad_b: torch.Tensor,
    compiled: bool,
) -> None:
    """The output half of a step in one pass. With ``z`` ``(instance, batch, feature)`` the
    products ``h A`` (without the bias ``b``), ``y`` the target and ``w`` = ``weight``
    ``(instance, feature)``: writes ``∂L/∂z = 2 w (act(z + b) - y) act'(z + b)`` into ``z``, each
    instance's loss ``Σ w (act(z + b) - y)²`` into ``loss`` ``(instance,)`` and ``∂L/∂b`` into
    ``grad_b`` ``(instance, feature)``. Compiled (`_cpu_kernels.residual`) where ``compiled``,
    else tensor operations with the same arithmetic."""
    if compiled:
        _cpu_kernels.residual(
            z.numpy(), y.contiguous().numpy(), bias.contiguous().numpy(), weight.numpy(), relu,
            loss.numpy(), grad_b.numpy(),
        )  # fmt: skip
        return
    z.add_(bias[:, None, :])
    e = (torch.relu(z) if relu else z.clone()).sub_(y)
    we = e * weight[:, None, :]
    torch.sum(we.mul(e), dim=(1, 2), out=loss)
    if relu:
        we.masked_fill_(z <= 0, 0.0)
    torch.mul(we, 2, out=z)
    torch.sum(z, dim=1, out=grad_b)
