"""The Matryoshka SAE (Bussmann et al. 2025; Nabeshima 2024): a BatchTopK SAE whose dictionary is
trained as a set of nested dictionaries.

The latents are ordered, and ``prefix_widths`` ``w_1 < w_2 < … < w_m = d_sae`` cut the dictionary
into nested prefixes: latents ``0 … w_1 - 1``, then ``0 … w_2 - 1``, ..., then all of them. The
encoder is BatchTopK's (`toy_lib.sae._batchtopk`): one set of latents ``f`` for the whole
dictionary. Each prefix reconstructs the input on its own, from its own latents only,

    ``x̂_m = Σ_{j < w_m} f_j W_dec[j] + b_dec``,

and the loss adds up their reconstruction errors, weighted by ``prefix_weights`` ``α_m``
(default 1 each):

    ``L = Σ_m α_m · mean_batch ||x - x̂_m||²``  (+ the AuxK loss, as for BatchTopK).

The first prefix has to reconstruct the input with few latents, so its latents learn the broad,
frequent directions (a parent feature); the later ones add detail (the children) without being
able to take the parent's direction away from the early latents, because the early prefix would
then reconstruct worse. The reported ``"mse"`` is the whole dictionary's (the last prefix);
``"nested"`` is the weighted sum. Inference is BatchTopK's: one threshold for all latents.
"""

from __future__ import annotations

import torch

from ._base import LossOutput, squared_error
from ._batchtopk import BatchTopKSAE


class MatryoshkaSAE(BatchTopKSAE):
    """``"matryoshka"``: BatchTopK with the summed reconstruction error of nested prefixes."""

    name = "matryoshka"

    def __init__(self, config, device="cpu"):
        super().__init__(config, device)
        self.widths = tuple(config.prefix_widths)
        #: ``(prefix,)`` the weight of each prefix's error
        self.weights = torch.tensor(config.prefix_weights, dtype=torch.float32, device=self.device)

    def prefix_reconstructions(self, params: dict, f: torch.Tensor) -> torch.Tensor:
        """Each prefix's reconstruction: ``(instance, batch, d_sae) -> (prefix, instance, batch, d_in)``,
        ``x̂_m = f[..., :w_m] W_dec[:, :w_m] + b_dec`` (built up group by group)."""
        out, x_hat, start = [], params["b_dec"][:, None, :], 0
        for width in self.widths:
            x_hat = x_hat + torch.bmm(f[..., start:width], params["W_dec"][:, start:width])
            out.append(x_hat)
            start = width
        return torch.stack(out)

    def loss(self, params, x, *, penalty_scale=1.0, dead=None):
        z = self.pre_activations(params, x)
        f = self.batch_top_k(torch.relu(z))
        x_hats = self.prefix_reconstructions(params, f)
        errors = torch.stack([squared_error(x, x_hat) for x_hat in x_hats])  # (prefix, instance)
        nested = (self.weights[:, None] * errors).sum(0)
        out = self.output(params, x, z, f, x_hats[-1], dead)  # mse (the whole dictionary) and AuxK
        out.loss = out.loss - out.parts["mse"] + nested
        out.parts["nested"] = nested
        return LossOutput(out.loss, f, x_hats[-1], out.parts)
