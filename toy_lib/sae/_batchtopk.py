"""The BatchTopK SAE (Bussmann, Leask & Nanda 2024): keep the ``k × batch`` largest activations of
the whole batch, so that an input may use more latents than ``k`` and another fewer, with ``k`` on
average.

During training: ``a = ReLU(z)`` for every input and latent of the batch; the ``k · batch`` largest
entries of ``a`` are kept, the rest set to zero. The loss is the reconstruction error (plus AuxK,
as for TopK). Activations tied with the smallest kept one are kept too. At inference the batch is no longer a fixed thing to rank over, so a latent fires
when its activation exceeds a threshold ``θ`` (one per instance): a running average, over the
training batches, of the smallest activation that was kept (``threshold_rate`` sets its rate).
That makes the inference encoder a JumpReLU with one threshold for all latents.
"""

from __future__ import annotations

import torch

from ._topk import TopKSAE


class BatchTopKSAE(TopKSAE):
    """``"batchtopk"``: ``k × batch`` activations per batch; ``threshold`` for inference."""

    name = "batchtopk"
    buffers = ("threshold",)

    def __init__(self, config, device="cpu"):
        super().__init__(config, device)
        self.steps_sparsely = False  # `TopKSAE.sparse_step` selects per input, not per batch

    def init_extra(self, params):
        n_inst = params["W_enc"].shape[0]
        # -1 marks "not estimated yet": the first batch sets it.
        return {"threshold": torch.full((n_inst,), -1.0, device=params["W_enc"].device)}

    def encode(self, params, x):
        a = torch.relu(self.pre_activations(params, x))
        return a * (a > params["threshold"][:, None, None].clamp_min(0))

    def batch_top_k(self, a: torch.Tensor) -> torch.Tensor:
        """``a`` with every entry below the ``k_i · batch``-th largest of its instance set to zero.

        Entries tied with that value are all kept: identical inputs (a sparse toy model produces
        many exactly-zero ones) get identical latents, whatever order they come in.
        """
        n_inst, batch, d_sae = a.shape
        flat = a.reshape(n_inst, batch * d_sae)
        values = flat.topk(self.k_max * batch, dim=-1).values  # sorted, largest first
        threshold = values.gather(-1, self.k_batch(batch) - 1)  # (instance, 1)
        keep = (flat >= threshold) & (flat > 0)
        return (flat * keep).view(n_inst, batch, d_sae)

    def k_batch(self, batch: int) -> torch.Tensor:
        """``(instance, 1)``: the number of activations each instance keeps in a batch."""
        return (self.rank_mask.sum(-1) * batch).view(-1, 1)

    def loss(self, params, x, *, penalty_scale=1.0, dead=None):
        z = self.pre_activations(params, x)
        f = self.batch_top_k(torch.relu(z))
        return self.output(params, x, z, f, self.decode(params, f), dead)

    @torch.no_grad()
    def after_batch(self, buffers, out):
        f = out.f.detach()
        smallest = f.masked_fill(f <= 0, float("inf")).amin(dim=(1, 2))  # (instance,)
        self.update_buffers(
            buffers, torch.where(torch.isfinite(smallest), smallest, torch.zeros_like(smallest))
        )

    @torch.no_grad()
    def update_buffers(self, buffers, smallest):
        """``θ ← θ + rate (smallest − θ)``; the first batch sets ``θ`` to its smallest kept value."""
        theta = buffers["threshold"]
        smallest = smallest.to(theta.device)
        rate = self.config.threshold_rate
        theta.copy_(torch.where(theta < 0, smallest, theta + rate * (smallest - theta)))
