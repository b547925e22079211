"""Training many toy models at once, and keeping the best of several restarts.

All instances (every setting times every restart) live in one ``(instance, hidden, feature)``
parameter and are trained by one optimiser in one batched tensor program. The loss that is
back-propagated is the sum over instances of each instance's own loss, so every instance gets
exactly the gradient it would get if it were trained alone.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import torch

from .config import ToyModelConfig
from .data import generate_batch
from .model import ToyModel, init_weights, loss_per_instance

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("constant", "linear", "cosine", "warmup_cosine")
WARMUP_FRACTION = 0.05


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
    for name, value in [("steps", steps), ("batch_size", batch_size), ("restarts", restarts),
                        ("eval_batch_size", eval_batch_size)]:
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
def evaluate(model: ToyModel, prob: torch.Tensor, importance: torch.Tensor, n_samples: int,
             generator: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    """Per-instance loss of ``model`` on ``n_samples`` fresh samples, drawn in chunks."""
    total = torch.zeros(prob.shape[0], device=prob.device, dtype=prob.dtype)
    done = 0
    while done < n_samples:
        size = min(chunk, n_samples - done)
        x = generate_batch(prob, size, generator=generator)
        total += loss_per_instance(x, model(x), importance) * size
        done += size
    return total / n_samples


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
    n_inst = full.n_instances

    init_gen = torch.Generator(device="cpu").manual_seed(seed)
    data_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    W0 = init_weights(n_inst, full.n_hidden, full.n_features, generator=init_gen)
    model = ToyModel(W0.to(dev), activation=full.activation)
    prob = torch.tensor(full.probability_matrix(), dtype=torch.float32, device=dev)
    importance = torch.tensor(full.importance_matrix(), dtype=torch.float32, device=dev)

    if optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)

    history = torch.empty(steps, n_inst, device=dev)
    bar = _progress(steps, progress)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(schedule, step, steps)
        x = generate_batch(prob, batch_size, generator=data_gen)
        losses = loss_per_instance(x, model(x), importance)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        history[step] = losses.detach()
        if bar is not None and (step % 100 == 99 or step == steps - 1):
            bar.update(step + 1 - bar.n)
    if bar is not None:
        bar.close()

    eval_gen = torch.Generator(device=dev).manual_seed(seed + 2)
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
        recipe=dict(steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer,
                    schedule=schedule, seed=seed, restarts=restarts,
                    eval_batch_size=eval_batch_size, device=str(dev)),
    )
