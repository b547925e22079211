"""Training many toy models at once, and keeping the best of several restarts.

All instances (every setting times every restart) live in one ``(instance, hidden, feature)``
parameter and are trained by one optimiser in one batched tensor program. The loss that is
back-propagated is the sum over instances of each instance's own loss, so every instance gets
exactly the gradient it would get if it were trained alone.

The training step is written out by hand rather than left to autograd: the same arithmetic as
``loss_per_instance(x, forward(W, b, x), importance).sum().backward()`` followed by
``torch.optim.AdamW``, in fewer passes over memory, with buffers reused from step to step and
nothing that waits for the device. It takes one of two paths:

- on the CPU, with Numba installed: `_CpuStep`: the batch comes from the compiled sampler, five
  batched matrix products run in PyTorch (MKL), and everything between them is one compiled
  pass (``toy_lib/_cpu_kernels.py``);
- elsewhere (a GPU, or no Numba): `loss_and_grad`, a handful of tensor operations.

Both end in the one-tensor `AdamW`. The tests check the step against autograd, the two paths
against each other, and the optimiser against torch's; ``benchmarks/bench_trainer.py`` measures
what it buys.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from . import _cpu_kernels
from .config import ToyModelConfig
from .data import BatchSampler, generate_batch
from .model import ToyModel, init_weights, loss_per_instance

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("constant", "linear", "cosine", "warmup_cosine")
WARMUP_FRACTION = 0.05
# Batches of fewer numbers than this (instance × feature × batch) train on one CPU thread:
# splitting a pass over ~10^5 numbers between threads saves microseconds, and costs a
# synchronisation per operation that a busy machine stretches to milliseconds.
SINGLE_THREAD_BELOW = 2**20


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` picks CUDA, then Apple's MPS, then the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``.

    ``constant``: 1. ``linear``: ``1 - step/steps``. ``cosine``: half a cosine from 1 to 0.
    ``warmup_cosine``: linear warm-up over the first 5% of steps, then half a cosine to 0.
    """
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
    raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(map(repr, SCHEDULES))}")


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
        W: ``(instance, hidden, feature)`` weights (the lowest-loss restart of each setting).
        b: ``(instance, feature)`` biases.
        loss_history: ``(step, instance)`` training loss of each kept instance at every step.
        final_loss: ``(instance,)`` loss of each kept instance on a fresh evaluation batch.
        restart_losses: ``(instance, restart)`` final loss of every restart of every setting.
        best_restart: ``(instance,)`` index of the restart that was kept.
        recipe: the training arguments, for the record.
    """

    config: ToyModelConfig
    W: torch.Tensor
    b: torch.Tensor
    loss_history: torch.Tensor
    final_loss: torch.Tensor
    restart_losses: torch.Tensor
    best_restart: torch.Tensor
    recipe: dict

    def model(self) -> ToyModel:
        """The trained instances as a `ToyModel` (on the CPU)."""
        return ToyModel(self.W, self.b, self.config.activation)


def _check_args(steps, batch_size, lr, optimizer, schedule, restarts, eval_batch_size) -> None:
    for name, value in [
        ("steps", steps),
        ("batch_size", batch_size),
        ("restarts", restarts),
        ("eval_batch_size", eval_batch_size),
    ]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name}={value!r}: expected a positive integer")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr={lr!r}: expected a positive finite number")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: expected one of {', '.join(map(repr, OPTIMIZERS))}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(map(repr, SCHEDULES))}")


def _progress(total: int, show: bool | None):
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="step", leave=False)


@torch.no_grad()
def evaluate(
    model: ToyModel,
    prob: torch.Tensor,
    importance: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    chunk: int = 4096,
) -> torch.Tensor:
    """Per-instance loss of ``model`` on ``n_samples`` fresh samples, drawn in chunks.

    The samples are drawn on the ``generator``'s device and moved to ``prob``'s.
    """
    total = torch.zeros(prob.shape[0], device=prob.device, dtype=prob.dtype)
    prob_gen = prob.to(generator.device)
    done = 0
    while done < n_samples:
        size = min(chunk, n_samples - done)
        x = generate_batch(prob_gen, size, generator=generator).to(prob.device)
        total += loss_per_instance(x, model(x), importance) * size
        done += size
    return total / n_samples


class _StepBuffers:
    """Tensors a training step reuses, so that memory stays flat however many steps run."""

    def __init__(self, n_inst: int, n_hidden: int, batch_size: int, n_feat: int, device, dtype):
        self.h1 = torch.empty(n_inst, n_hidden + 1, batch_size, device=device, dtype=dtype)
        self.z = torch.empty(n_inst, n_feat, batch_size, device=device, dtype=dtype)
        self.active = torch.empty(n_inst, n_feat, batch_size, device=device, dtype=dtype)


def loss_and_grad(
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
    """`loss_and_grad` on the CPU, with its element-wise work compiled (`toy_lib._cpu_kernels`).

    The batch ``x`` is ``(instance, batch, feature)``, as the ``"numba"`` sampler writes it. Five
    batched matrix products (PyTorch, i.e. MKL) around one compiled pass: ``h = W x``,
    ``z = Wᵀ h``; then `residual` adds the bias, turns ``z`` into ``∂L/∂z`` in place, sums the
    loss and the bias gradient; then ``∂L/∂W = h ∂zᵀ`` (read-out) ``+ (W ∂z) xᵀ`` (write-in).
    The same arithmetic as `loss_and_grad`, checked against it in the tests.
    """

    def __init__(self, n_inst: int, n_hidden: int, batch_size: int, n_feat: int, weight: torch.Tensor):
        self.h = torch.empty(n_inst, batch_size, n_hidden)
        self.z = torch.empty(n_inst, batch_size, n_feat)
        self.dh = torch.empty(n_inst, batch_size, n_hidden)
        self.read_out = torch.empty(n_inst, n_hidden, n_feat)
        self.write_in = torch.empty(n_inst, n_hidden, n_feat)
        self.grad = torch.empty(n_inst, n_hidden + 1, n_feat)
        self.weight = weight.to(torch.float32).contiguous().numpy()  # (instance, feature)

    def __call__(
        self, Wb: torch.Tensor, x: torch.Tensor, activation: str, loss: np.ndarray, tick=None
    ) -> torch.Tensor:
        """The gradient ``(instance, hidden + 1, feature)`` for batch ``x``; writes each
        instance's loss into ``loss``. ``tick(name)``, if given, is called as each phase ends
        (``benchmarks/profile_step.py`` times them)."""
        tick = tick or _no_tick
        n_hidden = Wb.shape[1] - 1
        # MKL multiplies contiguous matrices faster than views with odd strides; these are small.
        W = Wb[:, :n_hidden].contiguous()
        Wt = W.transpose(1, 2).contiguous()
        bias = Wb[:, n_hidden].contiguous()
        h, z, grad = self.h, self.z, self.grad
        torch.bmm(x, Wt, out=h)  # h = W x
        torch.bmm(h, W, out=z)  # Wᵀ h
        tick("products: forward")
        _cpu_kernels.residual(
            z.numpy(),
            x.numpy(),
            bias.numpy(),
            self.weight,
            activation == "relu",
            loss,
            grad[:, n_hidden].numpy(),
        )
        tick("compiled residual pass")
        torch.bmm(h.transpose(1, 2), z, out=self.read_out)
        torch.bmm(z, Wt, out=self.dh)  # ∂L/∂h
        torch.bmm(self.dh.transpose(1, 2), x, out=self.write_in)
        torch.add(self.read_out, self.write_in, out=grad[:, :n_hidden])
        tick("products: backward")
        return grad


def _no_tick(name: str) -> None:
    pass


class AdamW:
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


def train(
    config: ToyModelConfig,
    *,
    steps: int = 10_000,
    batch_size: int = 1024,
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
    (per instance) and zero bias.

    With ``restarts=k``, each setting is trained from ``k`` different initialisations as extra
    instances in the same tensor program; after training, each restart's loss is measured on a
    fresh batch of ``eval_batch_size`` samples and the lowest-loss restart of every setting is
    kept. Small models often land in local minima; the papers do the same.

    Args:
        config: sizes, probabilities, importances and activation of the settings.
        steps, batch_size, lr: the usual.
        optimizer: ``"adamw"`` (weight decay 0.01) or ``"adam"``.
        schedule: ``"constant"``, ``"linear"``, ``"cosine"`` or ``"warmup_cosine"``
            (see `lr_factor`).
        seed: seeds the initialisation and the data; the same seed gives bitwise-identical
            weights on the CPU.
        device: ``None`` picks CUDA, then MPS, then the CPU.
        restarts: initialisations per setting; the lowest final loss is kept.
        eval_batch_size: samples used to measure the final loss.
        progress: show a progress bar; ``None`` shows one only when stderr is a terminal
            (so it is silent in the book build).

    Returns:
        A `TrainResult` with one instance per setting of ``config``.
    """
    if not isinstance(config, ToyModelConfig):
        raise ValueError(f"config={config!r}: expected a ToyModelConfig")
    _check_args(steps, batch_size, lr, optimizer, schedule, restarts, eval_batch_size)
    dev = pick_device(device)
    full = config.with_restarts(restarts) if restarts > 1 else config
    n_inst, n_hidden, n_feat = full.n_instances, full.n_hidden, full.n_features

    init_gen = torch.Generator(device="cpu").manual_seed(seed)
    # MPS has no float64 for the sampler: draw the data on the CPU and move each batch over.
    data_dev = torch.device("cpu") if dev.type == "mps" else dev
    data_gen = torch.Generator(device=data_dev).manual_seed(seed + 1)
    W0 = init_weights(n_inst, n_hidden, n_feat, generator=init_gen)
    # The parameters: W with the bias as one more row, (instance, hidden + 1, feature).
    Wb = torch.cat([W0, torch.zeros(n_inst, 1, n_feat)], dim=1).to(dev)
    prob = torch.tensor(full.probability_matrix(), dtype=torch.float32, device=dev)
    importance = torch.tensor(full.importance_matrix(), dtype=torch.float32, device=dev)

    sampler = BatchSampler(prob.to(data_dev), batch_size, generator=data_gen)
    opt = AdamW(Wb, weight_decay=0.01 if optimizer == "adamw" else 0.0)
    # On the CPU with Numba: the compiled step; elsewhere the tensor program of `loss_and_grad`.
    compiled = dev.type == "cpu" and sampler.backend == "numba"
    if compiled:
        cpu_step = _CpuStep(n_inst, n_hidden, batch_size, n_feat, importance / (batch_size * n_feat))
    else:
        buffers = _StepBuffers(n_inst, n_hidden, batch_size, n_feat, dev, torch.float32)
        sqrt_weight = (importance / (batch_size * n_feat)).sqrt()[:, :, None]

    history = torch.empty(steps, n_inst, device=dev)
    bar = _progress(steps, progress)
    small = n_inst * n_feat * batch_size < SINGLE_THREAD_BELOW
    with _cpu_threads(1 if small and "cpu" in (dev.type, data_dev.type) else None):
        for step in range(steps):
            if compiled:
                grad = cpu_step(Wb, sampler.sample(), full.activation, history[step].numpy())
            else:
                xt = sampler.sample().transpose(1, 2).to(dev)  # (instance, feature, batch)
                loss, grad = loss_and_grad(Wb, xt, sqrt_weight, full.activation, buffers)
                history[step] = loss
            opt.step(grad, lr * lr_factor(schedule, step, steps))
            if bar is not None and (step % 100 == 99 or step == steps - 1):
                bar.update(step + 1 - bar.n)
    if bar is not None:
        bar.close()
    if sampler.truncated.item():
        raise RuntimeError(
            "train: a batch overflowed the sampler's candidate buffer (probability "
            "below 1e-15 per batch); please report it"
        )
    model = ToyModel(Wb[:, :n_hidden], Wb[:, n_hidden], activation=full.activation)

    eval_gen = torch.Generator(device=data_dev).manual_seed(seed + 2)
    final = evaluate(model, prob, importance, eval_batch_size, eval_gen)

    k = restarts
    n_set = config.n_instances
    restart_losses = final.reshape(n_set, k)
    best = restart_losses.argmin(dim=1)
    keep = torch.arange(n_set, device=dev) * k + best
    return TrainResult(
        config=config,
        W=model.W.detach()[keep].cpu(),
        b=model.b.detach()[keep].cpu(),
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
