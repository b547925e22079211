"""`toy_lib.train_transcoder`: the forward pass and loss by hand, a small problem it solves,
batched instances equal separate runs, and every bad input refused with the argument named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib.sae.transcoder import _loss

ARGS = dict(steps=300, batch_size=256, lr=3e-3, device="cpu", progress=False)


def _result(architecture="relu", **settings):
    """A transcoder 2 -> 3 latents -> 2 with hand-set weights."""
    cfg = toy_lib.SAEConfig(2, 3, architecture=architecture, **settings)
    return toy_lib.TranscoderResult(
        config=cfg,
        W_enc=torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]]),
        b_enc=torch.tensor([[0.0, -0.5, 0.0]]),
        W_dec=torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]]),
        b_dec=torch.tensor([[0.1, -0.1]]),
        loss_history=torch.zeros(1, 1),
        final_loss=torch.zeros(1),
        final_mse=torch.zeros(1),
        recipe={},
    )


def test_forward_and_loss_by_hand():
    r = _result(l1_coefficient=0.5)
    x = torch.tensor([[2.0, 1.0]])
    # z = [2, 1 - 0.5, 2 - 1] = [2, 0.5, 1]; no b_dec is subtracted from the input
    np.testing.assert_allclose(r.encode(x)[0, 0].numpy(), [2.0, 0.5, 1.0])
    # y_hat = 2 (1, 0) + 0.5 (0, 1) + 1 (0.6, 0.8) + (0.1, -0.1) = (2.7, 1.2)
    np.testing.assert_allclose(r.predict(x)[0, 0].numpy(), [2.7, 1.2], rtol=1e-6)
    y = torch.tensor([[[3.0, 1.0]]])
    params = dict(W_enc=r.W_enc, b_enc=r.b_enc, W_dec=r.W_dec, b_dec=r.b_dec)
    loss, mse = _loss(r.config, params, x[None], y, torch.tensor([0.5]))
    assert float(mse[0]) == pytest.approx(0.3**2 + 0.2**2)
    assert float(loss[0]) == pytest.approx(0.13 + 0.5 * 3.5)  # + λ ||f||₁
    # TopK keeps the k = 1 largest pre-activation, and has no penalty
    top = _result("topk", k=1)
    np.testing.assert_allclose(top.encode(x)[0, 0].numpy(), [2.0, 0.0, 0.0])
    loss, mse = _loss(top.config, params, x[None], y, torch.tensor([0.0]))
    assert float(loss[0]) == pytest.approx(float(mse[0])) == pytest.approx((3 - 2.1) ** 2 + 1.1**2)
    # a negative pre-activation stays off
    np.testing.assert_allclose(r.encode(torch.tensor([[-1.0, 0.0]]))[0, 0].numpy(), [0.0, 0.0, 0.0])


def _sparse_problem(n=4000, seed=0):
    """Three sparse non-negative features in 3 dims; the target writes feature i, doubled, on
    output unit perm[i] of 4 (a sparse code a transcoder with 3 ReLU latents can copy)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=gen) * (torch.rand(n, 3, generator=gen) < 0.1)
    basis = torch.linalg.qr(torch.randn(3, 3, generator=gen))[0]
    y = torch.zeros(n, 4)
    y[:, [2, 0, 3]] = 2 * x
    return x @ basis.T, y, basis


def test_it_solves_a_small_problem_and_its_latents_line_up():
    inputs, targets, basis = _sparse_problem()
    cfg = toy_lib.SAEConfig(3, 3, n_instances=4, l1_coefficient=0.003)
    r = toy_lib.train_transcoder(cfg, inputs, targets, **{**ARGS, "steps": 1500, "lr": 1e-2})
    best = int(r.final_loss.argmin())
    mean_norm2 = float(targets.square().sum(-1).mean())
    assert float(r.final_mse[best]) < 0.01 * mean_norm2, r.final_mse
    assert r.loss_history.shape == (1500, 4)
    assert r.W_enc.shape == (4, 3, 3) and r.W_dec.shape == (4, 3, 4) and r.b_dec.shape == (4, 4)
    np.testing.assert_allclose(r.W_dec.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    enc = toy_lib.metrics.cosine_matrix(basis.T, r.W_enc[best].T)  # (feature, latent)
    dec = toy_lib.metrics.cosine_matrix(torch.eye(4)[[2, 0, 3]], r.W_dec[best])
    assert (enc.max(-1) > 0.95).all() and (dec.max(-1) > 0.95).all(), (enc, dec)
    assert (enc.argmax(-1) == dec.argmax(-1)).all()
    assert r.predict(inputs[:5]).shape == (4, 5, 4) and r.encode(inputs[:5]).shape == (4, 5, 3)


@pytest.mark.parametrize("per_instance_data", [False, True])
def test_batched_instances_equal_separate_runs(per_instance_data):
    inputs, targets, _ = _sparse_problem()
    if per_instance_data:
        inputs = torch.stack([inputs, inputs.flip(0), inputs * 0.5])
        targets = torch.stack([targets, targets.flip(0), targets * 0.5])
    l1 = [0.01, 0.02, 0.03]
    batched = toy_lib.train_transcoder(
        toy_lib.SAEConfig(3, 5, n_instances=3, l1_coefficient=l1), inputs, targets, seed=7, **ARGS
    )
    for i in range(3):
        alone = toy_lib.train_transcoder(
            toy_lib.SAEConfig(3, 5, n_instances=1, l1_coefficient=l1[i]),
            inputs[i] if per_instance_data else inputs,
            targets[i] if per_instance_data else targets,
            seed=[batched.recipe["instance_seeds"][i]],
            **ARGS,
        )
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            torch.testing.assert_close(
                getattr(alone, name)[0], getattr(batched, name)[i], atol=1e-5, rtol=1e-4
            )
        torch.testing.assert_close(alone.loss_history[:, 0], batched.loss_history[:, i], atol=1e-5, rtol=1e-4)


def test_the_same_seed_gives_the_same_transcoder_and_another_seed_another():
    inputs, targets, _ = _sparse_problem()
    cfg = toy_lib.SAEConfig(3, 4, architecture="topk", k=2)
    a, b = (toy_lib.train_transcoder(cfg, inputs, targets, seed=1, **{**ARGS, "steps": 50}) for _ in range(2))
    c = toy_lib.train_transcoder(cfg, inputs, targets, seed=2, **{**ARGS, "steps": 50})
    assert torch.equal(a.W_enc, b.W_enc) and not torch.equal(a.W_enc, c.W_enc)


GOOD = dict(inputs=torch.rand(50, 2), targets=torch.rand(50, 3))


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(config="relu"), "config"),
        (dict(config=toy_lib.SAEConfig(2, 4, architecture="batchtopk", k=1)), "config.architecture"),
        (dict(config=toy_lib.SAEConfig(2, 4, architecture="gated")), "config.architecture"),
        (dict(inputs=torch.rand(50, 3)), "inputs"),  # width disagrees with config.d_in
        (dict(inputs=torch.rand(50)), "inputs"),
        (dict(inputs=torch.rand(2, 50, 2)), "inputs"),  # 2 instances, the config has 1
        (dict(inputs="h"), "inputs"),
        (dict(targets=torch.rand(49, 3)), "targets"),  # N disagrees
        (dict(targets=torch.rand(50)), "targets"),
        (dict(targets=[[1.0]]), "targets"),
        (dict(inputs=torch.tensor([[math.nan, 0.0]] * 50)), "inputs"),
        (dict(targets=torch.tensor([[0.0, math.inf, 1.0]] * 50)), "targets"),
        (dict(steps=0), "steps"),
        (dict(steps=1.5), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1e-3), "lr"),
        (dict(lr=math.nan), "lr"),
        (dict(seed=-1), "seed"),
        (dict(seed=[1, 2]), "seed"),
        (dict(schedule="fast"), "schedule"),
        (dict(device="tpu"), "device"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(change, name):
    args = dict(config=toy_lib.SAEConfig(2, 4), **GOOD, steps=5, progress=False, device="cpu")
    args.update(change)
    config, inputs, targets = args.pop("config"), args.pop("inputs"), args.pop("targets")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        toy_lib.train_transcoder(config, inputs, targets, **args)


def test_k_larger_than_the_dictionary_is_refused():
    with pytest.raises(ValueError, match="k"):
        toy_lib.train_transcoder(toy_lib.SAEConfig(2, 4, architecture="topk", k=5), **GOOD, steps=5)


def test_encode_and_predict_refuse_bad_inputs():
    r = _result(l1_coefficient=0.5)
    for bad in (torch.rand(4, 3), torch.tensor([[math.nan, 1.0]]), "x", torch.rand(2, 4, 2)):
        with pytest.raises(ValueError, match="x"):
            r.encode(bad)
        with pytest.raises(ValueError, match="x"):
            r.predict(bad)


@pytest.mark.parametrize(
    "targets, got",
    [
        (torch.zeros(50, 0), "got shape (50, 0)"),
        ([[0.0] * 3] * 50, "got list"),
        (torch.zeros(50), "got shape (50,)"),
    ],
)
def test_targets_of_the_wrong_kind_are_named_as_such(targets, got):
    with pytest.raises(
        ValueError,
        match=r"^targets=.*expected a tensor or NumPy array \(N, d_out\).*d_out >= 1, "
        + got.replace("(", r"\(").replace(")", r"\)"),
    ):
        toy_lib.train_transcoder(toy_lib.SAEConfig(2, 3), torch.zeros(50, 2), targets, steps=1)
