"""The sparse training step of a large TopK SAE (`toy_lib.sae._topk.TopKSAE.sparse_step`, which
`train_sae` uses for TopK SAEs whose decoder is applied sparsely and that have no AuxK loss): the
same loss and gradients as autograd through `TopKSAE.loss`, and the same training run."""

from __future__ import annotations

import pytest
import torch

import toy_lib
from toy_lib.sae import _ARCHITECTURES, SAEConfig


def _params(n, d_in, d_sae, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(n, d_in, d_sae, generator=gen) / d_in**0.5,
        "W_dec": torch.randn(n, d_sae, d_in, generator=gen) / d_in**0.5,
        "b_enc": torch.randn(n, d_sae, generator=gen) * 0.1,
        "b_dec": torch.randn(n, d_in, generator=gen) * 0.1,
    }


@pytest.mark.parametrize("k", [8, (4, 16)])  # one k, and a different k per instance
def test_the_sparse_step_has_autograds_loss_and_gradients(k):
    n, d_in, d_sae = 2, 24, 256
    config = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, n_instances=n)
    arch = _ARCHITECTURES["topk"](config)
    assert arch.sparse, "this configuration should take the sparse path"
    params = _params(n, d_in, d_sae)
    x = torch.randn(n, 300, d_in, generator=torch.Generator().manual_seed(1))
    grads = {name: torch.full_like(p, float("nan")) for name, p in params.items()}  # all overwritten
    loss, fired = arch.sparse_step(params, x, grads)

    leaves = {name: p.clone().requires_grad_(True) for name, p in params.items()}
    out = arch.loss(leaves, x)
    out.loss.sum().backward()
    torch.testing.assert_close(loss, out.loss.detach())
    for name, leaf in leaves.items():
        torch.testing.assert_close(grads[name], leaf.grad, atol=1e-6, rtol=1e-4, msg=name)
    assert torch.equal(fired, (out.f > 0).any(1))
    assert not fired.all(), "some latents should stay silent on this batch: the test would be weak"


def test_train_sae_takes_the_sparse_path_and_matches_autograd(monkeypatch):
    """A short run with the sparse step equals the same run through autograd, step for step."""
    from toy_lib.sae import _topk

    config = SAEConfig(d_in=16, d_sae=256, architecture="topk", k=8)
    data = torch.randn(2000, 16, generator=torch.Generator().manual_seed(2))
    calls = []
    original = _topk.TopKSAE.sparse_step

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(_topk.TopKSAE, "sparse_step", counting)
    sparse = toy_lib.train_sae(config, data, steps=20, batch_size=128, seed=3, device="cpu")
    assert len(calls) == 20
    monkeypatch.setattr(_topk, "SPARSE_DECODE_FROM", 10**9)  # the dense path with autograd
    dense = toy_lib.train_sae(config, data, steps=20, batch_size=128, seed=3, device="cpu")
    assert len(calls) == 20, "the dense run must not use the sparse step"
    torch.testing.assert_close(sparse.loss_history, dense.loss_history, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sparse.W_dec, dense.W_dec, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(sparse.W_enc, dense.W_enc, atol=1e-4, rtol=1e-3)
    assert torch.equal(sparse.dead, dense.dead)


def test_auxk_and_batchtopk_keep_the_autograd_path(monkeypatch):
    from toy_lib.sae import _topk

    def refuse(*args, **kwargs):
        raise AssertionError("the sparse step must not run")

    monkeypatch.setattr(_topk.TopKSAE, "sparse_step", refuse)
    data = torch.randn(500, 16, generator=torch.Generator().manual_seed(4))
    for config in (
        SAEConfig(d_in=16, d_sae=256, architecture="topk", k=8, aux_k=16),
        SAEConfig(d_in=16, d_sae=256, architecture="batchtopk", k=8),
    ):
        result = toy_lib.train_sae(config, data, steps=3, batch_size=64, seed=0, device="cpu")
        assert torch.isfinite(result.loss_history).all()
