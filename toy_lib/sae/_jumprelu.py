"""The JumpReLU SAE (Rajamanoharan et al. 2024b): a latent fires only above a learned threshold,
and the penalty counts how many fire (L0) rather than how much (L1).

``f = z ⊙ H(z - θ)`` with ``z = W_enc (x - b_dec) + b_enc``, ``H`` the Heaviside step and ``θ > 0``
one threshold per latent (stored as ``log_threshold``). Loss: ``||x - x̂||² + λ Σ_j H(z_j - θ_j)``.

Neither ``H`` nor the jump in ``f`` has a useful derivative with respect to ``θ`` (it is zero
almost everywhere), so training uses *straight-through estimators*: in the backward pass the
derivative of the step at ``z = θ`` is replaced by a rectangle kernel of width ``ε``
(``jumprelu_bandwidth``), ``K(u) = 1[|u| < 1/2]``:

- ``∂ JumpReLU(z) / ∂θ := -(θ / ε) K((z - θ) / ε)``, ``∂ JumpReLU(z) / ∂z = H(z - θ)``;
- ``∂ H(z - θ) / ∂θ := -(1 / ε) K((z - θ) / ε)``, ``∂ H(z - θ) / ∂z := 0``.

So only inputs whose pre-activation falls within ``ε/2`` of the threshold move it: up when the
latent's firing there costs more (in L0) than it saves (in reconstruction), down otherwise.
"""

from __future__ import annotations

import math

import torch

from ._base import LossOutput, SAEArchitecture, squared_error


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel ``K(u) = 1[|u| < 1/2]`` (as the input's dtype)."""
    return (u.abs() < 0.5).to(u.dtype)


class JumpReLUFunction(torch.autograd.Function):
    """``z ⊙ H(z - θ)`` forward; the straight-through estimator of the module docstring backward.

    ``z``: ``(instance, batch, d_sae)``; ``θ``: ``(instance, 1, d_sae)``; ``ε``: a float.
    """

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = grad * (z > theta)
        grad_theta = (-(theta / eps) * rectangle((z - theta) / eps) * grad).sum(1, keepdim=True)
        return grad_z, grad_theta, None


class StepFunction(torch.autograd.Function):
    """``H(z - θ)`` forward; ``∂/∂z = 0`` and ``∂/∂θ = -(1/ε) K((z - θ)/ε)`` backward."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_theta = (-(1.0 / eps) * rectangle((z - theta) / eps) * grad).sum(1, keepdim=True)
        return torch.zeros_like(z), grad_theta, None


class JumpReLUSAE(SAEArchitecture):
    """``"jumprelu"``: learned thresholds ``θ = exp(log_threshold)``, L0 penalty ``l0_coefficient``."""

    name = "jumprelu"
    extra_parameters = ("log_threshold",)

    def init_extra(self, params):
        start = math.log(self.config.jumprelu_threshold_init)
        return {"log_threshold": torch.full_like(params["b_enc"], start)}

    def reset_latents(self, params, instance, latents):
        params["log_threshold"][instance, latents] = math.log(self.config.jumprelu_threshold_init)

    def encode(self, params, x):
        z = self.pre_activations(params, x)
        return z * (z > params["log_threshold"].exp()[:, None, :])

    def loss(self, params, x, *, penalty_scale=1.0, dead=None):
        z = self.pre_activations(params, x)
        theta = params["log_threshold"].exp()[:, None, :]
        eps = self.config.jumprelu_bandwidth
        f = JumpReLUFunction.apply(z, theta, eps)
        x_hat = self.decode(params, f)
        mse = squared_error(x, x_hat)
        l0 = (StepFunction.apply(z, theta, eps).sum(-1, keepdim=True) * self.penalty).mean(-2).squeeze(-1)
        return LossOutput(mse + penalty_scale * l0, f, x_hat, {"mse": mse, "sparsity": l0})
