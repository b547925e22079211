"""`train_transcoder`: sparse latents that read one activation and predict another (Dunefsky et
al. 2024), batched over instances like `train_sae` and trained by the same loop,
`toy_lib.training.optimise`.

A transcoder reads an input ``x`` (width ``d_in``) and predicts a target ``y`` (width ``d_out``),
for instance the input and the output of an MLP:

- ``f = sparsify(W_enc x + b_enc)``: ``"relu"`` (ReLU, with an L1 penalty ``λ ||f||₁`` in the
  loss) or ``"topk"`` (the ``k`` largest pre-activations);
- ``ŷ = W_dec f + b_dec``;
- the loss of one pair is ``||y - ŷ||²`` (+ the L1 penalty).

Unlike an SAE the encoder does not subtract ``b_dec`` first: input and output live in different
spaces. Shapes, instance axis first: ``W_enc`` ``(instance, d_in, d_sae)``, ``b_enc``
``(instance, d_sae)``, ``W_dec`` ``(instance, d_sae, d_out)``, ``b_dec`` ``(instance, d_out)``.
The training tricks are `train_sae`'s: decoder rows held at unit norm (so the L1 penalty cannot
be dodged), the same learning-rate schedules, and one seed per instance (its initialisation and
its batches), so that instance ``i`` of a batched run equals a run of that instance alone with
``seed=[recipe["instance_seeds"][i]]``. There is no resampling of dead latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import _validate as check
from ..training import SCHEDULES, _check_lr, optimise
from . import _data as sources
from ._topk import TopKSAE
from .config import SAEConfig

__all__ = ["TranscoderResult", "train_transcoder"]

#: The SAE architectures a transcoder can use.
TRANSCODER_ARCHITECTURES = ("relu", "topk")


def _latents(config: SAEConfig, W_enc, b_enc, x: torch.Tensor, topk: TopKSAE | None = None) -> torch.Tensor:
    """``(instance, batch, d_in) -> (instance, batch, d_sae)``: the sparse latents (for TopK, the
    ReLU of the ``k`` largest pre-activations, through ``topk``, built once by the caller)."""
    z = torch.einsum("ibd,ids->ibs", x, W_enc) + b_enc[:, None, :]
    if config.architecture == "relu":
        return torch.relu(z)
    values, indices = (topk or TopKSAE(config, z.device)).top_k(z)
    return torch.zeros_like(z).scatter(-1, indices, values)


def _predict(f, W_dec, b_dec) -> torch.Tensor:
    return torch.einsum("ibs,iso->ibo", f, W_dec) + b_dec[:, None, :]


def _loss(config: SAEConfig, params: dict, x, y, penalty, topk=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and the squared error of every instance, ``(instance,)`` each."""
    f = _latents(config, params["W_enc"], params["b_enc"], x, topk)
    mse = (y - _predict(f, params["W_dec"], params["b_dec"])).square().sum(-1).mean(-1)
    loss = mse + (penalty[:, None] * f.sum(-1)).mean(-1) if config.architecture == "relu" else mse
    return loss, mse


@dataclass
class TranscoderResult:
    """What `train_transcoder` returns (on the CPU).

    Attributes:
        config: the `SAEConfig` (``d_in`` the input width, ``d_sae`` the number of latents).
        W_enc: ``(instance, d_in, d_sae)``, column ``j`` what latent ``j`` reads.
        b_enc: ``(instance, d_sae)``.
        W_dec: ``(instance, d_sae, d_out)``, row ``j`` (of unit norm) what latent ``j`` writes.
        b_dec: ``(instance, d_out)``.
        loss_history: ``(steps, instance)`` the training loss of every step.
        final_loss: ``(instance,)`` the loss on 16,384 pairs drawn from the data after training.
        final_mse: ``(instance,)`` ``mean ||y - ŷ||²`` on the same pairs.
        recipe: the training arguments and ``instance_seeds``.
    """

    config: SAEConfig
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    loss_history: torch.Tensor
    final_loss: torch.Tensor
    final_mse: torch.Tensor
    recipe: dict

    def _inputs(self, x) -> torch.Tensor:
        x = sources.check_activations(x, "x", self.config.d_in, self.config.n_instances)
        return x.float().expand(self.config.n_instances, *x.shape[-2:]) if x.ndim == 2 else x.float()

    @torch.no_grad()
    def encode(self, x) -> torch.Tensor:
        """The latents: ``x`` ``(N, d_in)`` or ``(instance, N, d_in)`` -> ``(instance, N, d_sae)``."""
        return _latents(self.config, self.W_enc, self.b_enc, self._inputs(x))

    @torch.no_grad()
    def predict(self, x) -> torch.Tensor:
        """The prediction ``ŷ``: ``(N, d_in)`` or ``(instance, N, d_in)`` -> ``(instance, N, d_out)``."""
        return _predict(self.encode(x), self.W_dec, self.b_dec)


def _check_pairs(config: SAEConfig, inputs, targets) -> torch.Tensor:
    """Inputs and targets checked and joined, ``(N, d_in + d_out)`` or ``(instance, N, ...)``, so
    that one row index draws a pair."""
    n = config.n_instances
    x = sources.check_activations(inputs, "inputs", config.d_in, n)
    if (
        not isinstance(targets, torch.Tensor | np.ndarray)
        or targets.ndim not in (2, 3)
        or targets.shape[-1] < 1
    ):
        raise check.fail(
            "targets",
            targets,
            "a tensor or NumPy array (N, d_out) or (instance, N, d_out) with d_out >= 1",
            f"shape {tuple(targets.shape)}" if hasattr(targets, "shape") else type(targets).__name__,
        )
    y = sources.check_activations(targets, "targets", int(targets.shape[-1]), n)
    if x.shape[-2] != y.shape[-2]:
        raise check.fail(
            "targets",
            targets,
            f"one target row per input row ({x.shape[-2]} inputs)",
            f"{y.shape[-2]} rows",
        )
    if x.ndim != y.ndim:
        x, y = (x.expand(n, *x.shape) if x.ndim == 2 else x), (y.expand(n, *y.shape) if y.ndim == 2 else y)
    return torch.cat([x.float(), y.float()], -1)


def train_transcoder(
    config: SAEConfig,
    inputs,
    targets,
    *,
    steps: int,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed=0,
    device=None,
    schedule: str = "constant",
    progress: bool | None = None,
) -> TranscoderResult:
    """Train ``config.n_instances`` transcoders at once to predict ``targets`` from ``inputs``.

    Args:
        config: an `SAEConfig` with ``architecture`` ``"relu"`` (its ``l1_coefficient``) or
            ``"topk"`` (its ``k``); ``d_in`` is the input width, ``d_sae`` the number of latents.
        inputs: ``(N, d_in)`` shared by every instance, or ``(instance, N, d_in)``.
        targets: ``(N, d_out)`` or ``(instance, N, d_out)``, row ``n`` the target of input row
            ``n``; ``d_out`` is read from it.
        steps: training steps; each draws ``batch_size`` pairs per instance (with replacement).
        batch_size, lr, schedule, progress, device: as for `train_sae`.
        seed: an integer, or one per instance (as for `train_sae`).

    Returns:
        A `TranscoderResult`.

    Raises:
        ValueError: naming the argument: an architecture other than relu or topk, inputs or
            targets that are not finite real tensors of the right widths and instance counts, a
            different number of input and target rows, a bad ``steps``, ``batch_size``, ``lr``,
            ``seed``, ``schedule`` or ``device``.
    """
    config = check.instance_of(config, "config", SAEConfig, "an SAEConfig (toy_lib.SAEConfig)")
    if config.architecture not in TRANSCODER_ARCHITECTURES:
        raise check.fail(
            "config.architecture",
            config.architecture,
            f"one of {TRANSCODER_ARCHITECTURES} (a transcoder uses a ReLU + L1 or a TopK encoder)",
        )
    pairs = _check_pairs(config, inputs, targets)
    steps = check.integer(steps, "steps", minimum=1)
    batch_size = check.integer(batch_size, "batch_size", minimum=1)
    lr = _check_lr(lr)
    schedule = check.choice(schedule, "schedule", SCHEDULES)
    progress = check.flag(progress, "progress", allow_none=True)
    dev = check.device(device)
    seed = sources.check_seed(seed, config.n_instances)
    seeds = sources.instance_seeds(seed, config.n_instances)
    n, d_in, d_sae = config.n_instances, config.d_in, config.d_sae
    d_out = pairs.shape[-1] - d_in
    check.check_memory(
        4 * (8 * n * d_sae * (d_in + d_out) + 6 * n * batch_size * (d_in + d_out + d_sae)),
        dev,
        {"batch_size": batch_size, "config.d_sae": d_sae},
    )
    source = sources.TensorActivations(pairs, n, batch_size, seeds, dev)
    topk = TopKSAE(config, dev) if config.architecture == "topk" else None

    W_enc, W_dec = [], []
    for gen in sources.generators(seeds, sources.INIT, "cpu"):
        rows = torch.randn(d_sae, d_out, generator=gen)
        W_dec.append(rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        W_enc.append((torch.rand(d_in, d_sae, generator=gen) * 2 - 1) / math.sqrt(d_in))
    params = {
        "W_enc": torch.stack(W_enc).to(dev),
        "b_enc": torch.zeros(n, d_sae, device=dev),
        "W_dec": torch.stack(W_dec).to(dev),
        "b_dec": source.sample(4096, sources.INIT)[..., d_in:].mean(1),
    }
    names = list(params)
    penalty = torch.tensor(config._penalty(), dtype=torch.float32, device=dev)

    def step_fn(step, loss_out):
        batch = source.batch()
        for p in params.values():
            p.grad = None
            p.requires_grad_(True)
        with torch.enable_grad():
            loss, _ = _loss(config, params, batch[..., :d_in], batch[..., d_in:], penalty, topk)
            loss.sum().backward()
        with torch.no_grad():
            loss_out.copy_(loss)
            W, g = params["W_dec"], params["W_dec"].grad  # no change of a row's length
            g.sub_((g * W).sum(-1, keepdim=True) * W)
        return [params[k].grad for k in names]

    def after_step(step, optimisers):
        with torch.no_grad():
            W = params["W_dec"]
            W.div_(W.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    history = optimise(
        [params[k] for k in names],
        step_fn,
        steps=steps,
        lr=lr,
        schedule=schedule,
        weight_decay=0.0,
        progress=progress,
        caller="train_transcoder",
        after_step=after_step,
    )
    final = {k: p.detach().requires_grad_(False) for k, p in params.items()}
    with torch.no_grad():
        batch = source.sample(16_384, sources.EVAL)
        loss, mse = _loss(config, final, batch[..., :d_in], batch[..., d_in:], penalty, topk)
    recipe = dict(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=list(seed) if isinstance(seed, tuple) else seed,
        schedule=schedule,
        device=str(dev),
        instance_seeds=seeds,
    )
    return TranscoderResult(
        config=config,
        **{k: v.cpu().clone() for k, v in final.items()},
        loss_history=history.cpu(),
        final_loss=loss.cpu(),
        final_mse=mse.cpu(),
        recipe=recipe,
    )
