"""Evaluating sparse autoencoders on a toy model whose features are known (the chapter
"Evaluating SAEs").

- `pareto_front`: which (L0, error) points no other point beats on both.
- `spliced_losses`, `loss_recovered`: the toy model's loss with the SAE's reconstruction spliced
  in place of its hidden vector ``h``, against the clean model and a zero- or mean-ablated ``h``.
- `intervene`: scale one latent of an SAE's code for some inputs and run the toy model on the
  edited reconstruction (the causal test).

The toy model is a trained tied model (`toy_lib.TrainResult` with ``config.model == "tied"``):
``h = W x``, ``x' = act(Wᵀ h + b)``. The SAE (`toy_lib.SAEResult`) reads ``h``.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _validate as check
from .model import _loss_per_instance
from .sae.result import SAEResult
from .training import TrainResult

__all__ = ["ABLATIONS", "pareto_front", "spliced_losses", "loss_recovered", "intervene"]

#: What replaces ``h`` in the ablated baseline of `loss_recovered`.
ABLATIONS = ("zero", "mean")


def pareto_front(l0, error) -> np.ndarray:
    """Mask of the non-dominated points of a sparsity–reconstruction trade-off.

    Point ``i`` is dominated when some point ``j`` has ``l0[j] <= l0[i]`` and
    ``error[j] <= error[i]``, with at least one of the two strictly smaller. Lower is better on
    both axes. Leading axes are batches of separate sets of points: ``(..., point) -> (...,
    point)``.

    Args:
        l0: ``(..., point)`` finite real numbers (mean active latents per input).
        error: ``(..., point)`` finite real numbers, the same shape (e.g. the MSE).

    Returns:
        ``(..., point)`` bool: True for the points on the frontier.

    Raises:
        ValueError: naming the argument, for non-finite values, an empty point axis or shapes
            that differ.
    """
    a = check.real_array(l0, "l0")
    b = check.real_array(error, "error")
    if a.ndim == 0 or a.shape[-1] == 0:
        raise check.fail("l0", l0, "an array (..., point) with at least one point", f"shape {a.shape}")
    if a.shape != b.shape:
        raise check.fail("error", error, f"an array of the same shape as l0, {a.shape}", f"shape {b.shape}")
    check.check_memory(4 * a.size * a.shape[-1], torch.device("cpu"), {"l0": l0})  # (..., point, point)
    no_worse = (a[..., None, :] <= a[..., :, None]) & (b[..., None, :] <= b[..., :, None])  # [i, j]: j vs i
    better = (a[..., None, :] < a[..., :, None]) | (b[..., None, :] < b[..., :, None])
    return ~(no_worse & better).any(-1)


def _model(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """``(W (instance, hidden, feature), b (instance, feature), importance, activation)``."""
    check.instance_of(model, "model", TrainResult, "a trained toy model (toy_lib.TrainResult)")
    if model.config.model != "tied":
        raise check.fail(
            "model", model, "a tied toy model (config.model='tied')", f"model={model.config.model!r}"
        )
    importance = torch.as_tensor(model.config.importance_matrix(), dtype=torch.float32)
    return model.W.float(), model.b.float(), importance, model.config.activation


def _inputs(model, sae, x, instance) -> tuple:
    W, b, importance, activation = _model(model)
    check.instance_of(sae, "sae", SAEResult, "trained SAEs (toy_lib.SAEResult)")
    n_inst, n_hidden, n_feat = W.shape
    i = check.integer(instance, "instance", minimum=0, maximum=n_inst - 1)
    if sae.config.d_in != n_hidden:
        raise check.fail(
            "sae", sae, f"SAEs with d_in = {n_hidden} (the model's hidden size)", f"d_in = {sae.config.d_in}"
        )
    xs = check.as_tensor(x, "x", ("batch", "feature"), dtype=torch.float32).detach().cpu()
    if xs.shape[1] != n_feat:
        raise check.fail(
            "x", x, f"a tensor (batch, feature) with feature = {n_feat}", f"shape {tuple(xs.shape)}"
        )
    return W[i], b[i], importance[i], activation, xs


def _readout(W, b, activation, h) -> torch.Tensor:
    """``act(h Wᵀ... )``: the toy model's output for hidden vectors ``h`` ``(..., hidden)``."""
    out = h @ W + b
    return torch.relu(out) if activation == "relu" else out


@torch.no_grad()
def spliced_losses(model, sae, x, *, instance: int = 0) -> dict:
    """The toy model's loss on inputs ``x`` with its hidden vector ``h = W x`` left alone, replaced
    by each SAE's reconstruction, by zero, and by its mean over ``x``.

    The loss is the model's own: the importance-weighted squared error of its output against
    ``x``, averaged over the batch and the features (`toy_lib.loss_per_instance`).

    Args:
        model: the trained toy model (`toy_lib.TrainResult`, a tied model).
        sae: trained SAEs (`toy_lib.SAEResult`) with ``d_in`` equal to the model's hidden size.
        x: ``(batch, feature)`` true feature values (e.g. from `toy_lib.generate_batch`).
        instance: which of the model's instances the SAEs were trained on.

    Returns:
        ``{"clean": float, "sae": (sae_instance,) array, "zero": float, "mean": float}``.

    Raises:
        ValueError: naming the argument, for a model that is not a tied toy model, SAEs of the
            wrong width, ``x`` of the wrong shape or not finite, an instance out of range.
    """
    W, b, importance, activation, xs = _inputs(model, sae, x, instance)
    h = xs @ W.T  # (batch, hidden)

    def loss(h_used: torch.Tensor) -> torch.Tensor:
        out = _readout(W, b, activation, h_used)
        out = out if out.ndim == 3 else out[None]
        return _loss_per_instance(xs[None].expand_as(out), out, importance[None].expand(out.shape[0], -1))

    h_sae = sae.reconstruct(h)  # (sae_instance, batch, hidden)
    result = {
        "clean": float(loss(h)[0]),
        "sae": loss(h_sae).numpy().astype(np.float64),
        "zero": float(loss(torch.zeros_like(h))[0]),
        "mean": float(loss(h.mean(0, keepdim=True).expand_as(h))[0]),
    }
    check.finite_result(
        np.array([result["clean"], result["zero"], result["mean"], *result["sae"]]),
        "spliced_losses",
        {"x": x},
    )
    return result


def loss_recovered(model, sae, x, *, ablation: str = "zero", instance: int = 0) -> np.ndarray:
    """Fraction of the loss that ablating ``h`` costs and splicing in the SAE wins back:
    ``(L_ablate − L_sae) / (L_ablate − L_clean)``, one per SAE instance.

    1 means the model does as well on the SAE's reconstruction as on its own ``h``; 0 as well as
    with ``h`` ablated; below 0, worse than ablating. The baseline matters, so name it:
    ``ablation="zero"`` sets ``h = 0``, ``"mean"`` sets ``h`` to its mean over ``x``.

    Args:
        model: the trained toy model (`toy_lib.TrainResult`, a tied model).
        sae: trained SAEs (`toy_lib.SAEResult`) reading the model's ``h``.
        x: ``(batch, feature)`` true feature values.
        ablation: ``"zero"`` or ``"mean"``.
        instance: which of the model's instances the SAEs read.

    Returns:
        ``(sae_instance,)`` float array.

    Raises:
        ValueError: as `spliced_losses`; an unknown ``ablation``; an ablation that costs nothing
            (``L_ablate = L_clean``: the ratio is undefined).
    """
    ablation = check.choice(ablation, "ablation", ABLATIONS)
    losses = spliced_losses(model, sae, x, instance=instance)
    gap = losses[ablation] - losses["clean"]
    if gap <= 0:
        raise check.fail(
            "ablation",
            ablation,
            "an ablation that raises the model's loss on x (else nothing is there to recover)",
            f"L_ablate - L_clean = {gap:.3g}",
        )
    return (losses[ablation] - losses["sae"]) / gap


@torch.no_grad()
def intervene(
    model,
    sae,
    x,
    latent: int,
    scale: float,
    *,
    sae_instance: int = 0,
    instance: int = 0,
    keep_error: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy model's output before and after scaling one latent of an SAE's code.

    For each input, ``h = W x`` is encoded, latent ``latent`` is multiplied by ``scale`` (0
    switches it off), and the edited code is decoded. With ``keep_error`` the SAE's
    reconstruction error is added back, ``h' = h + decode(f') − decode(f)``, so that the only
    change to ``h`` is the latent's own: the output before the edit is then the clean model's.

    Args:
        model: the trained toy model (`toy_lib.TrainResult`, a tied model).
        sae: trained SAEs (`toy_lib.SAEResult`) reading the model's ``h``.
        x: ``(batch, feature)`` true feature values.
        latent: the latent to scale, from 0 to ``d_sae - 1``.
        scale: a finite real number.
        sae_instance: which SAE of ``sae``.
        instance: which of the model's instances the SAEs read.
        keep_error: add the reconstruction error back (else ``h' = decode(f')`` and the output
            before is the model's on the plain reconstruction).

    Returns:
        ``(before, after)``: the model's outputs, each ``(batch, feature)``.

    Raises:
        ValueError: as `spliced_losses`; a latent or SAE instance out of range; a scale that is
            not a finite number.
    """
    W, b, _, activation, xs = _inputs(model, sae, x, instance)
    j = check.integer(latent, "latent", minimum=0, maximum=sae.config.d_sae - 1)
    k = check.integer(sae_instance, "sae_instance", minimum=0, maximum=sae.config.n_instances - 1)
    s = check.real(scale, "scale")
    keep = check.flag(keep_error, "keep_error")
    h = xs @ W.T
    f = sae.encode(h)[k]  # (batch, d_sae)
    edited = f.clone()
    edited[:, j] *= s
    if not bool(torch.isfinite(edited).all()):
        raise check.fail("scale", scale, "a scale that keeps the latent's activations finite in float32")
    rec, rec_edited = sae.decode(f)[k], sae.decode(edited)[k]
    before_h, after_h = (h, h + rec_edited - rec) if keep else (rec, rec_edited)
    before, after = _readout(W, b, activation, before_h), _readout(W, b, activation, after_h)
    check.finite_result(after, "intervene", {"x": x, "scale": scale})
    return before, after
