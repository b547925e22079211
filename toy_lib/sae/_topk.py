"""The TopK SAE (Makhzani & Frey 2013; Gao et al. 2024): keep the ``k`` largest pre-activations of
each input and zero the rest.

``f = ReLU(TopK_k(z))`` with ``z = W_enc (x - b_dec) + b_enc``; the loss is the reconstruction
error alone, because the sparsity is fixed by ``k``: no penalty pulls the kept latents down, so a
TopK SAE does not shrink its reconstructions.

AuxK (optional, ``aux_k``): latents that have not fired for a while (`train_sae`'s
``dead_window``) get no gradient at all, because they are never among the top ``k``. The auxiliary
loss asks the ``aux_k`` largest pre-activations *among the dead latents* to reconstruct the
residual ``e = x - x̂`` (held fixed), ``||e - W_dec f_aux||²``, scaled by ``aux_coefficient``.
That gives dead latents a gradient towards what the live ones miss.

With a large dictionary (the real-model chapter's 3072 latents) the decoder is applied sparsely:
the ``k`` kept latents of each input select ``k`` rows of ``W_dec`` (`torch.nn.functional.embedding_bag`),
instead of multiplying by a matrix of mostly zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._base import LossOutput, SAEArchitecture, squared_error

#: From this dictionary size on, and when ``k`` is below an eighth of it, decode sparsely.
SPARSE_DECODE_FROM = 256


def sparse_decode(params: dict, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``x̂ = Σ_j values_j W_dec[j] + b_dec`` over the given latents only.

    Args:
        values, indices: ``(instance, batch, k)``: the kept latents' activations and indices.

    Returns:
        ``(instance, batch, d_in)``.
    """
    W_dec = params["W_dec"]
    n_inst, d_sae, d_in = W_dec.shape
    _, batch, k = indices.shape
    offset = (torch.arange(n_inst, device=indices.device) * d_sae)[:, None, None]
    flat = (indices + offset).reshape(n_inst * batch, k)
    out = F.embedding_bag(
        flat, W_dec.reshape(n_inst * d_sae, d_in), per_sample_weights=values.reshape(-1, k), mode="sum"
    )
    return out.view(n_inst, batch, d_in) + params["b_dec"][:, None, :]


class TopKSAE(SAEArchitecture):
    """``"topk"``: the ``k`` largest pre-activations per input (``k`` may differ per instance)."""

    name = "topk"

    def __init__(self, config, device="cpu"):
        super().__init__(config, device)
        k = torch.as_tensor(config._k_vector(), device=self.device)
        self.k_max = int(k.max())
        #: ``(instance, 1, k_max)``: which of the ``k_max`` ranks each instance keeps.
        self.rank_mask = (torch.arange(self.k_max, device=self.device) < k[:, None])[:, None, :]
        self.sparse = config.d_sae >= SPARSE_DECODE_FROM and 8 * self.k_max <= config.d_sae

    def top_k(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, indices)`` of each input's kept latents, ``(instance, batch, k_max)``; the
        values are ReLU'd and zero beyond an instance's own ``k``."""
        values, indices = z.topk(self.k_max, dim=-1, sorted=False if self.rank_mask.all() else True)
        return torch.relu(values) * self.rank_mask, indices

    def encode(self, params, x):
        values, indices = self.top_k(self.pre_activations(params, x))
        return torch.zeros(*values.shape[:2], self.config.d_sae, device=x.device, dtype=values.dtype).scatter(
            -1, indices, values
        )

    def loss(self, params, x, *, penalty_scale=1.0, dead=None):
        z = self.pre_activations(params, x)
        values, indices = self.top_k(z)
        f = torch.zeros_like(z).scatter(-1, indices, values)
        x_hat = sparse_decode(params, values, indices) if self.sparse else self.decode(params, f)
        return self.output(params, x, z, f, x_hat, dead)

    def output(self, params, x, z, f, x_hat, dead) -> LossOutput:
        """The reconstruction error, plus the AuxK loss when ``aux_k`` is set and ``dead`` given."""
        mse = squared_error(x, x_hat)
        parts = {"mse": mse}
        loss = mse
        if self.config.aux_k is not None and dead is not None:
            aux = self.aux_loss(params, z, x - x_hat.detach(), dead)
            parts["aux"] = aux
            loss = loss + self.config.aux_coefficient * aux
        return LossOutput(loss, f, x_hat, parts)

    def aux_loss(self, params, z, residual, dead) -> torch.Tensor:
        """AuxK: ``mean_batch ||e - W_dec f_aux||²`` with ``f_aux`` the ``aux_k`` largest
        pre-activations among the dead latents (ReLU'd); 0 for an instance with no dead latent."""
        masked = z.masked_fill(~dead[:, None, :], float("-inf"))
        k_aux = self.config.aux_k
        values, indices = masked.topk(k_aux, dim=-1)
        values = torch.relu(values.nan_to_num(neginf=0.0))  # fewer dead latents than aux_k: zeros
        f_aux = torch.zeros_like(z).scatter(-1, indices, values)
        recon = torch.bmm(f_aux, params["W_dec"])  # no b_dec: the residual has none
        return squared_error(residual, recon)
