"""What every SAE architecture shares: the parameters, the affine encoder and decoder, the loss
surface that `train_sae` calls.

Shapes, with the instance axis first everywhere (one independent SAE per instance):

- ``W_enc``: ``(instance, d_in, d_sae)``; column ``W_enc[i, :, j]`` reads latent ``j``;
- ``W_dec``: ``(instance, d_sae, d_in)``; row ``W_dec[i, j]`` is the direction latent ``j`` writes;
- ``b_enc``: ``(instance, d_sae)``; ``b_dec``: ``(instance, d_in)``;
- a batch ``x``: ``(instance, batch, d_in)``; latents ``f``: ``(instance, batch, d_sae)``.

Internal to `toy_lib.sae` (readers use `toy_lib.SAEConfig`, `toy_lib.train_sae` and
`toy_lib.SAEResult`). An architecture is a small class (one module each: ``_relu``, ``_topk``,
``_batchtopk``, ``_gated``, ``_jumprelu``) with the same three methods: `SAEArchitecture.encode` (inference),
`SAEArchitecture.decode`, and `SAEArchitecture.loss` (training: the loss of every instance, the
latents, and the parts of the loss). A new architecture subclasses `SAEArchitecture`, overrides
what differs, and is registered by name in ``toy_lib/sae/__init__.py`` (``_ARCHITECTURES``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The four parameters every architecture has, in the order `train_sae` passes them to the optimiser.
CORE_PARAMETERS = ("W_enc", "W_dec", "b_enc", "b_dec")


@dataclass
class LossOutput:
    """What `SAEArchitecture.loss` returns for one batch.

    Attributes:
        loss: ``(instance,)`` the loss of each instance (what is minimised; their sum is
            back-propagated, so each instance gets its own gradient).
        f: ``(instance, batch, d_sae)`` the latents.
        x_hat: ``(instance, batch, d_in)`` the reconstruction.
        parts: named ``(instance,)`` terms of the loss (``"mse"``, ``"sparsity"``, ``"aux"``).
    """

    loss: torch.Tensor
    f: torch.Tensor
    x_hat: torch.Tensor
    parts: dict


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``mean_batch ||x - x̂||²``, one value per instance: ``(instance, batch, d) -> (instance,)``."""
    return (x - x_hat).square().sum(-1).mean(-1)


class SAEArchitecture:
    """The interface every architecture implements; the ReLU SAE's encoder and decoder.

    Subclasses set `name`, list their extra trained parameters in `extra_parameters` (each
    ``(instance, d_sae)``, one number per latent) and their estimated-but-not-trained quantities
    in `buffers`, and override `sparsify`/`encode`/`loss` as they need.

    Args:
        config: the `SAEConfig` (sizes and this architecture's settings).
        device: where the per-instance settings (penalties, ``k``) live.
    """

    name = ""
    #: Trained parameters beyond `CORE_PARAMETERS`, each ``(instance, d_sae)``.
    extra_parameters: tuple[str, ...] = ()
    #: Quantities estimated during training but not trained by gradient, each ``(instance,)``.
    buffers: tuple[str, ...] = ()
    #: Whether `train_sae` trains it with the hand-written sparse step (large TopK SAEs only).
    steps_sparsely = False

    def __init__(self, config, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        #: ``(instance, 1, 1)`` sparsity coefficient of each instance.
        self.penalty = torch.tensor(config._penalty(), dtype=torch.float32, device=self.device)[:, None, None]

    # ------------------------------------------------------------------ parameters
    def init_extra(self, params: dict) -> dict:
        """Initial values of `extra_parameters` and `buffers` (given the core parameters)."""
        return {}

    def reset_latents(self, params: dict, instance: int, latents: torch.Tensor) -> None:
        """Put the extra parameters of resampled ``latents`` of ``instance`` back to their start."""

    # ------------------------------------------------------------------ the forward pass
    def pre_activations(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        """``z = W_enc (x - b_dec) + b_enc``: ``(instance, batch, d_in) -> (instance, batch, d_sae)``."""
        centred = x - params["b_dec"][:, None, :]
        return torch.baddbmm(params["b_enc"][:, None, :], centred, params["W_enc"])

    def encode(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        """The latents ``f`` of inputs ``x`` at inference: ``(instance, batch, d_in) ->
        (instance, batch, d_sae)``. The ReLU SAE's: ``f = ReLU(z)``."""
        return torch.relu(self.pre_activations(params, x))

    def decode(self, params: dict, f: torch.Tensor) -> torch.Tensor:
        """``x̂ = W_dec f + b_dec``: ``(instance, batch, d_sae) -> (instance, batch, d_in)``."""
        return torch.baddbmm(params["b_dec"][:, None, :], f, params["W_dec"])

    # ------------------------------------------------------------------ training
    def loss(self, params: dict, x: torch.Tensor, *, penalty_scale: float = 1.0, dead=None) -> LossOutput:
        """The training loss of every instance on batch ``x`` (``(instance, batch, d_in)``).

        Args:
            params: the parameters (and buffers), by name.
            x: the batch.
            penalty_scale: multiplies the sparsity coefficient (the penalty warm-up of `train_sae`).
            dead: ``(instance, d_sae)`` bool, the latents currently counted dead (AuxK uses them),
                or None.
        """
        raise NotImplementedError

    @torch.no_grad()
    def after_batch(self, buffers: dict, out: LossOutput) -> None:
        """Update the `buffers` after a training batch, from its latents; default: nothing."""

    @torch.no_grad()
    def update_buffers(self, buffers: dict, smallest: torch.Tensor) -> None:
        """Update the `buffers` from ``smallest`` ``(instance,)``, the smallest non-zero latent of
        each instance in the batch (what the CPU fast path reports); default: nothing."""
