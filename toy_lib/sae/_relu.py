"""The standard SAE: a ReLU encoder and an L1 penalty (Bricken et al. 2023).

``f = ReLU(W_enc (x - b_dec) + b_enc)``, ``x̂ = W_dec f + b_dec``, and the loss of one input is
``||x - x̂||² + λ ||f||₁``. With the decoder's rows held at unit norm (`train_sae` does this),
``||f||₁`` measures how much the latents are used; without the constraint the SAE could shrink
``f`` and grow ``W_dec`` to dodge the penalty. The L1 penalty also pulls every active latent
towards zero, so the reconstruction comes out a little short: *shrinkage*.
"""

from __future__ import annotations

import torch

from ._base import LossOutput, SAEArchitecture, squared_error


class ReLUSAE(SAEArchitecture):
    """``"relu"``: ReLU latents, L1 penalty ``l1_coefficient``."""

    name = "relu"

    def loss(self, params, x, *, penalty_scale=1.0, dead=None):
        f = torch.relu(self.pre_activations(params, x))
        x_hat = self.decode(params, f)
        mse = squared_error(x, x_hat)
        l1 = (f.sum(-1, keepdim=True) * self.penalty).mean(-2).squeeze(-1)  # λ · mean_batch ||f||₁
        return LossOutput(mse + penalty_scale * l1, f, x_hat, {"mse": mse, "sparsity": l1})
