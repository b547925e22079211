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
instead of multiplying by a matrix of mostly zeros. Training goes sparse too (`TopKSAE.sparse_step`,
which `train_sae` uses whenever the decoder is sparse and there is no AuxK loss): autograd would
turn the gradient of the ``k`` kept latents back into a dense ``(batch, d_sae)`` matrix and pay two
dense products with ``W_enc`` for it; by hand, ``W_enc``'s gradient is a sparse product with only
``batch × k`` non-zeros, and ``b_dec``'s part through the encoder one vector-matrix product.
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
        #: `sparse_step` trains this SAE (large, sparse, no AuxK); BatchTopK and Matryoshka, which
        #: inherit the method but not its per-input selection or loss, set False.
        self.steps_sparsely = self.sparse and config.aux_k is None

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

    def sparse_step(self, params: dict, x: torch.Tensor, grads: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of a training step and its gradients, never forming a dense ``(batch, d_sae)``
        matrix (the loss, and the gradients up to rounding, of `loss` with autograd; the tests
        check it).

        Args:
            params: the core parameters, by name.
            x: the batch, ``(instance, batch, d_in)``.
            grads: where to write each core parameter's gradient (tensors of the parameters' shapes,
                overwritten).

        Returns:
            ``(loss, fired)``: ``(instance,)`` and ``(instance, d_sae)`` bool, which latents fired
            on some input of the batch.
        """
        W_enc, W_dec, b_enc, b_dec = (params[n] for n in ("W_enc", "W_dec", "b_enc", "b_dec"))
        n_inst, batch, d_in = x.shape
        d_sae = self.config.d_sae
        with torch.no_grad():
            centred = x - b_dec[:, None, :]
            values, indices = self.top_k(torch.baddbmm(b_enc[:, None, :], centred, W_enc))
        # the decoder through autograd: embedding_bag's backward is already sparse
        kept = values.detach().requires_grad_(True)
        rows = W_dec.detach().requires_grad_(True)
        with torch.enable_grad():
            x_hat = sparse_decode({"W_dec": rows, "b_dec": b_dec.detach()}, kept, indices)
            error = x_hat - x
            loss = error.square().sum(-1).mean(-1)
            d_kept, d_rows = torch.autograd.grad(loss.sum(), [kept, rows])
        with torch.no_grad():
            d_z = d_kept * (values > 0)  # the ReLU and the instance's own k (masked values are 0)
            offset = (torch.arange(n_inst, device=x.device) * d_sae)[:, None, None]
            latent = (indices + offset).reshape(-1)  # (instance * batch * k,) into the flat latents
            row = torch.arange(n_inst * batch, device=x.device).repeat_interleave(indices.shape[-1])
            d_z_sparse = torch.sparse_coo_tensor(
                torch.stack([latent, row]),
                d_z.reshape(-1),
                (n_inst * d_sae, n_inst * batch),
                check_invariants=False,
            )
            # W_enc[i]ᵀ's gradient: Σ_b d_z[b] ⊗ centred[b]; only an instance's own rows meet its latents
            d_W_enc_t = torch.sparse.mm(d_z_sparse, centred.reshape(n_inst * batch, d_in))
            grads["W_enc"].copy_(d_W_enc_t.view(n_inst, d_sae, d_in).transpose(1, 2))
            grads["W_dec"].copy_(d_rows)
            d_b_enc = torch.zeros(n_inst * d_sae, device=x.device).index_add_(0, latent, d_z.reshape(-1))
            grads["b_enc"].copy_(d_b_enc.view(n_inst, d_sae))
            # b_dec: the decoder's bias directly, minus its part through the encoder's input
            d_b_dec = (2.0 / batch) * error.sum(1) - torch.bmm(
                grads["b_enc"][:, None, :], W_enc.transpose(1, 2)
            )[:, 0]
            grads["b_dec"].copy_(d_b_dec)
            fired = torch.zeros(n_inst * d_sae, dtype=torch.bool, device=x.device)
            fired[latent[(values > 0).reshape(-1)]] = True
        return loss.detach(), fired.view(n_inst, d_sae)

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
