"""The gated SAE (Rajamanoharan et al. 2024a): one path decides *which* latents fire, another *how
much*, so that the sparsity penalty does not shrink the magnitudes.

- gate: ``π_gate = W_enc (x - b_dec) + b_enc``; latent ``j`` fires when ``π_gate_j > 0``;
- magnitude: ``π_mag = exp(r_mag) ⊙ (W_enc (x - b_dec)) + b_mag``: the same encoder directions,
  rescaled per latent by ``exp(r_mag)``, with a bias of its own;
- ``f = 1[π_gate > 0] ⊙ ReLU(π_mag)``, ``x̂ = W_dec f + b_dec``.

The step ``1[π_gate > 0]`` passes no gradient, so the gate path learns only from two extra terms:
the L1 penalty on ``ReLU(π_gate)``, and an auxiliary reconstruction from ``ReLU(π_gate)`` through a
*frozen* copy of the decoder (``W_dec``, ``b_dec`` detached), which keeps the gate's
pre-activations meaningful. Loss: ``||x - x̂||² + λ ||ReLU(π_gate)||₁ + ||x - x̂_frozen(ReLU(π_gate))||²``.
The magnitudes ``f`` themselves carry no penalty, which is why gated SAEs do not shrink.
"""

from __future__ import annotations

import torch

from ._base import LossOutput, SAEArchitecture, squared_error


class GatedSAE(SAEArchitecture):
    """``"gated"``: gate and magnitude paths sharing encoder directions; L1 on the gate."""

    name = "gated"
    extra_parameters = ("r_mag", "b_mag")

    def init_extra(self, params):
        b_enc = params["b_enc"]
        return {"r_mag": torch.zeros_like(b_enc), "b_mag": torch.zeros_like(b_enc)}

    def reset_latents(self, params, instance, latents):
        params["r_mag"][instance, latents] = 0.0
        params["b_mag"][instance, latents] = 0.0

    def paths(self, params, x) -> tuple[torch.Tensor, torch.Tensor]:
        """``(π_gate, π_mag)``, each ``(instance, batch, d_sae)``."""
        centred = x - params["b_dec"][:, None, :]
        read = torch.bmm(centred, params["W_enc"])
        pi_gate = read + params["b_enc"][:, None, :]
        pi_mag = read * params["r_mag"].exp()[:, None, :] + params["b_mag"][:, None, :]
        return pi_gate, pi_mag

    def encode(self, params, x):
        pi_gate, pi_mag = self.paths(params, x)
        return (pi_gate > 0) * torch.relu(pi_mag)

    def loss(self, params, x, *, penalty_scale=1.0, dead=None):
        pi_gate, pi_mag = self.paths(params, x)
        f = (pi_gate > 0) * torch.relu(pi_mag)  # the comparison passes no gradient to the gate
        x_hat = self.decode(params, f)
        mse = squared_error(x, x_hat)
        via_gate = torch.relu(pi_gate)
        l1 = (via_gate.sum(-1, keepdim=True) * self.penalty).mean(-2).squeeze(-1)
        frozen = torch.baddbmm(params["b_dec"].detach()[:, None, :], via_gate, params["W_dec"].detach())
        aux = squared_error(x, frozen)
        loss = mse + penalty_scale * l1 + aux
        return LossOutput(loss, f, x_hat, {"mse": mse, "sparsity": l1, "aux": aux})
