"""toy_lib.sae: each architecture's forward pass and straight-through gradients on hand-computed
examples, the compiled CPU step against autograd, resampling, the unit-norm decoder,
batched = separate runs, reproducibility, data sources, bad input, the result cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import SAEConfig, cached_train_sae, train_sae
from toy_lib.sae import _ARCHITECTURES as ARCHITECTURES
from toy_lib.sae import _cpu_step
from toy_lib.sae import _data as sources
from toy_lib.sae._data import instance_seeds
from toy_lib.sae._jumprelu import JumpReLUFunction, StepFunction
from toy_lib.sae.training import _Trainer
from toy_lib.training import TrainingDiverged, _AdamW

# A hand-checkable SAE: d_in 2, d_sae 3, one instance.
W_ENC = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]])  # (1, d_in, d_sae)
W_DEC = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])  # (1, d_sae, d_in), unit rows
B_ENC = torch.tensor([[0.0, -0.5, 0.0]])
B_DEC = torch.tensor([[0.5, 0.0]])
X = torch.tensor([[[1.5, 1.0]]])  # x - b_dec = (1, 1): z = (1, 0.5, 0)


def params(**extra):
    p = {"W_enc": W_ENC.clone(), "W_dec": W_DEC.clone(), "b_enc": B_ENC.clone(), "b_dec": B_DEC.clone()}
    p.update(extra)
    return p


def arch(name, **kw):
    return ARCHITECTURES[name](SAEConfig(2, 3, architecture=name, **kw))


# --------------------------------------------------------------------------- forward passes by hand


def test_relu_forward_and_loss_by_hand():
    a = arch("relu", l1_coefficient=0.1)
    out = a.loss(params(), X)
    torch.testing.assert_close(out.f, torch.tensor([[[1.0, 0.5, 0.0]]]))
    torch.testing.assert_close(out.x_hat, torch.tensor([[[1.5, 0.5]]]))  # (1, 0) + 0.5 (0, 1) + b_dec
    torch.testing.assert_close(out.loss, torch.tensor([0.25 + 0.1 * 1.5]))  # ||(0, 0.5)||² + λ ||f||₁


def test_topk_keeps_the_k_largest_pre_activations():
    out = arch("topk", k=1).loss(params(), X)
    torch.testing.assert_close(out.f, torch.tensor([[[1.0, 0.0, 0.0]]]))
    torch.testing.assert_close(out.loss, torch.tensor([1.0]))  # x̂ = (1.5, 0): error (0, 1), no penalty
    two = arch("topk", k=2).encode(params(), X)
    torch.testing.assert_close(two, torch.tensor([[[1.0, 0.5, 0.0]]]))


def test_batchtopk_ranks_over_the_batch_and_estimates_a_threshold():
    a = arch("batchtopk", k=1)
    x = torch.tensor([[[1.5, 1.0], [0.5, 0.0]]])  # the second input sits at b_dec: z = b_enc
    p = params(threshold=torch.tensor([-1.0]))
    out = a.loss(p, x)
    # k · batch = 2 activations kept over the batch, both from the first input
    torch.testing.assert_close(out.f, torch.tensor([[[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]]))
    a.after_batch(p, out)
    torch.testing.assert_close(p["threshold"], torch.tensor([0.5]))  # the smallest kept activation
    # inference: a latent fires above the threshold
    torch.testing.assert_close(a.encode(p, X), torch.tensor([[[1.0, 0.0, 0.0]]]))
    a.update_buffers(p, torch.tensor([1.5]))
    torch.testing.assert_close(p["threshold"], torch.tensor([0.5 + 0.01 * 1.0]))  # running average


def test_gated_forward_and_gradients_by_hand():
    a = arch("gated", l1_coefficient=0.1)
    p = params(r_mag=torch.tensor([[math.log(2.0), 0.0, 0.0]]), b_mag=torch.tensor([[0.0, 0.1, 0.0]]))
    for v in p.values():
        v.requires_grad_(True)
    out = a.loss(p, X)
    # gate open where π_gate = z > 0: latents 0 and 1; magnitudes exp(r) · (1, 1, 0) + b_mag
    torch.testing.assert_close(out.f, torch.tensor([[[2.0, 1.1, 0.0]]]))
    out.loss.sum().backward()
    # b_enc only moves the gate: the L1 term (λ per open latent) and the frozen-decoder
    # reconstruction from ReLU(π_gate) = (1, 0.5, 0): x̂ = (1.5, 0.5), error (0, -0.5)
    torch.testing.assert_close(p["b_enc"].grad, torch.tensor([[0.1 + 0.0, 0.1 - 1.0, 0.0]]))
    # W_dec's gradient comes from the main reconstruction only: 2 f_j (x̂ - x), x̂ - x = (1, 0.1)
    expected = 2 * torch.tensor([[2.0], [1.1], [0.0]]) * torch.tensor([[1.0, 0.1]])
    torch.testing.assert_close(p["W_dec"].grad[0], expected)


def test_jumprelu_forward_by_hand():
    a = arch("jumprelu", l0_coefficient=0.1, jumprelu_threshold_init=0.8)
    out = a.loss(params(log_threshold=torch.full((1, 3), math.log(0.8))), X)
    torch.testing.assert_close(out.f, torch.tensor([[[1.0, 0.0, 0.0]]]))  # only z = 1 clears θ = 0.8
    torch.testing.assert_close(out.loss, torch.tensor([1.0 + 0.1 * 1]))  # error (0, 1), one latent fires


def test_jumprelu_straight_through_gradients():
    z = torch.tensor([[[1.0, 0.5]]], requires_grad=True)
    theta = torch.tensor([[[0.9, 0.2]]], requires_grad=True)
    eps = 0.4
    JumpReLUFunction.apply(z, theta, eps).sum().backward()
    # latent 0: |z - θ| / ε = 0.25 < 1/2 -> -(θ/ε); latent 1: 0.75 -> 0. ∂/∂z = H(z - θ)
    torch.testing.assert_close(theta.grad, torch.tensor([[[-0.9 / 0.4, 0.0]]]))
    torch.testing.assert_close(z.grad, torch.tensor([[[1.0, 1.0]]]))
    z.grad, theta.grad = None, None
    StepFunction.apply(z, theta, eps).sum().backward()
    torch.testing.assert_close(theta.grad, torch.tensor([[[-1 / 0.4, 0.0]]]))
    torch.testing.assert_close(z.grad, torch.zeros(1, 1, 2))


# --------------------------------------------------------------------------- the compiled step

CASES = [
    ("relu", {}),
    ("topk", dict(k=[1, 2, 3], aux_k=2)),
    ("batchtopk", dict(k=[1, 2, 3])),
    ("gated", {}),
    ("jumprelu", dict(jumprelu_bandwidth=0.5, jumprelu_threshold_init=0.3)),
]


@pytest.mark.skipif(not toy_lib._cpu_kernels.AVAILABLE, reason="needs Numba")
@pytest.mark.parametrize("name,kw", CASES)
def test_compiled_step_matches_autograd(name, kw):
    torch.manual_seed(1)
    n, batch, d, s = 3, 64, 2, 5
    x = torch.rand(n, batch, d)
    x[:, :20] = 0  # exactly-zero inputs take the compiled path's shortcut
    cfg = SAEConfig(d, s, n_instances=n, architecture=name, **kw)
    a = ARCHITECTURES[name](cfg)
    spots = _cpu_step.layout(d, s, a.extra_parameters)
    flat = torch.randn(n, max(b for _, b, _ in spots.values())) * 0.5
    since = torch.zeros(n, s)
    since[:, 1] = 1000  # latent 1 dead, for AuxK
    ref = flat.clone().requires_grad_(True)
    out = a.loss({**_cpu_step.views(ref, spots), "threshold": torch.full((n,), -1.0)}, x, dead=since >= 500)
    out.loss.sum().backward()
    grad = torch.zeros_like(flat)
    loss = _cpu_step.CpuStep(a, spots, batch)(x, flat, grad, since, 500, 1.0)
    np.testing.assert_allclose(loss, out.loss.detach().numpy(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref.grad, rtol=1e-4, atol=1e-5)
    fired = (out.f > 0).any(1)
    assert torch.equal(since == 0, fired)  # bookkeeping: fired latents reset, the rest count up


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def toy():
    cfg = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, feature_probability=0.05)
    return toy_lib.train(cfg, steps=1500, seed=0, device="cpu", eval_batch_size=1024)


@pytest.mark.parametrize("name,kw", CASES)
def test_decoder_rows_stay_unit_norm(toy, name, kw):
    cfg = SAEConfig(2, 5, n_instances=3, architecture=name, **kw)
    r = train_sae(
        cfg, toy, steps=60, batch_size=128, device="cpu", snapshot_steps=[0, 30, 60], eval_batch_size=256
    )
    torch.testing.assert_close(r.W_dec.norm(dim=-1), torch.ones(3, 5))
    torch.testing.assert_close(r.W_dec_snapshots.norm(dim=-1), torch.ones(3, 3, 5))
    assert r.W_dec_snapshots.shape == (3, 3, 5, 2) and r.snapshot_steps == (0, 30, 60)
    assert r.loss_history.shape == (60, 3) and torch.isfinite(r.loss_history).all()
    f = r.encode(torch.randn(7, 2))
    assert f.shape == (3, 7, 5) and r.decode(f).shape == (3, 7, 2)


def test_torch_path_keeps_the_decoder_unit_norm_too(monkeypatch, toy):
    monkeypatch.setattr(_cpu_step, "available", lambda config, device: False)
    r = train_sae(
        SAEConfig(2, 5, n_instances=2), toy, steps=40, batch_size=64, device="cpu", eval_batch_size=64
    )
    torch.testing.assert_close(r.W_dec.norm(dim=-1), torch.ones(2, 5))


def test_same_seed_bitwise_and_batched_equals_separate(toy):
    cfg = SAEConfig(2, 5, n_instances=3, l1_coefficient=[0.1, 0.4, 0.8])
    kw = dict(steps=50, batch_size=128, device="cpu", eval_batch_size=256)
    a, b = train_sae(cfg, toy, seed=3, **kw), train_sae(cfg, toy, seed=3, **kw)
    assert torch.equal(a.W_dec, b.W_dec) and torch.equal(a.loss_history, b.loss_history)
    assert not torch.equal(a.W_dec, train_sae(cfg, toy, seed=4, **kw).W_dec)
    for i, s in enumerate(instance_seeds(3, 3)):
        alone = train_sae(SAEConfig(2, 5, l1_coefficient=cfg.l1_coefficient[i]), toy, seed=[s], **kw)
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            assert torch.equal(getattr(alone, name)[0], getattr(a, name)[i]), (i, name)
        assert torch.equal(alone.loss_history[:, 0], a.loss_history[:, i])


def test_batched_equals_separate_on_a_tensor():
    data = torch.randn(500, 3)
    cfg = SAEConfig(3, 4, n_instances=2, architecture="topk", k=[1, 2])
    kw = dict(steps=30, batch_size=32, device="cpu", eval_batch_size=64)
    both = train_sae(cfg, data, seed=7, **kw)
    for i, s in enumerate(instance_seeds(7, 2)):
        alone = train_sae(SAEConfig(3, 4, architecture="topk", k=cfg.k[i]), data, seed=[s], **kw)
        assert torch.equal(alone.W_dec[0], both.W_dec[i])


def test_resampling_revives_dead_latents():
    # Data along +e0 only: a latent whose encoder reads e0 negatively never fires, so it gets no
    # gradient and stays dead unless it is resampled.
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(2000, 2, generator=gen) * torch.tensor([1.0, 0.0])
    cfg = SAEConfig(2, 4, n_instances=4, l1_coefficient=0.5)
    kw = dict(
        steps=400,
        batch_size=64,
        device="cpu",
        dead_window=50,
        eval_batch_size=256,
        b_dec_init="zeros",
        tied_init=False,
    )
    off = train_sae(cfg, data, **kw)
    on = train_sae(cfg, data, resample_dead=True, resample_every=100, **kw)
    assert off.dead.sum() >= 3 and off.n_resampled.sum() == 0
    assert on.n_resampled.sum() >= 3
    assert on.dead.sum() < off.dead.sum()
    assert (on.firing_rate > 0).sum() > (off.firing_rate > 0).sum()  # revived latents fire


def test_resampling_per_instance_equals_separate_runs_and_select_takes_them_apart():
    # The runs with and without resampling of the same starts, as one batched program: each
    # instance is bitwise the run it would be alone, and `select` hands each half back with its
    # own settings and record.
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(2000, 2, generator=gen) * torch.tensor([1.0, 0.0])
    kw = dict(steps=300, batch_size=64, device="cpu", dead_window=50, eval_batch_size=256)
    kw.update(b_dec_init="zeros", tied_init=False, resample_every=100, snapshot_steps=[0, 300])
    seeds = instance_seeds(3, 3)
    both = train_sae(
        SAEConfig(2, 4, n_instances=6, l1_coefficient=[0.5, 0.4, 0.3] * 2),
        data,
        seed=seeds + seeds,
        resample_dead=[True] * 3 + [False] * 3,
        **kw,
    )
    on = train_sae(
        SAEConfig(2, 4, n_instances=3, l1_coefficient=[0.5, 0.4, 0.3]),
        data,
        seed=3,  # the same per-instance seeds, derived
        resample_dead=True,
        **kw,
    )
    off = train_sae(SAEConfig(2, 4, n_instances=3, l1_coefficient=[0.5, 0.4, 0.3]), data, seed=seeds, **kw)
    assert on.n_resampled.sum() > 0 and off.n_resampled.sum() == 0
    for half, alone in [(both.select(range(3)), on), (both.select([3, 4, 5]), off)]:
        for name in ("W_enc", "W_dec", "b_enc", "b_dec", "final_loss", "firing_rate", "dead", "n_resampled"):
            assert torch.equal(getattr(half, name), getattr(alone, name)), name
        assert torch.equal(half.loss_history, alone.loss_history)
        assert torch.equal(half.W_dec_snapshots, alone.W_dec_snapshots)
        assert half.config.l1_coefficient == alone.config.l1_coefficient and half.config.n_instances == 3
        assert half.recipe["seed"] == seeds
    assert both.select([4]).recipe["resample_dead"] == [False]
    assert torch.equal(both.select([5, 0]).W_dec, both.W_dec[[5, 0]])
    # an integer seed: select records the instances' own seeds, as train_sae derived them
    assert on.select([1]).recipe["seed"] == [seeds[1]]
    with pytest.raises(ValueError, match=r"instances=6: expected an integer from 0 to 5"):
        both.select([0, 6])
    with pytest.raises(ValueError, match=r"instances=\[\]: expected at least one instance index"):
        both.select([])
    with pytest.raises(
        ValueError, match=r"resample_dead=\[True\]: expected True, False, or one of them per instance \(6\)"
    ):
        train_sae(both.config, data, steps=1, resample_dead=[True])
    with pytest.raises(ValueError, match=r"resample_dead='yes': expected True or False"):
        train_sae(both.config, data, steps=1, resample_dead=["yes"] * 6)


def _trainer_with_dead_latents():
    cfg = SAEConfig(2, 3, n_instances=2)
    a = ARCHITECTURES["relu"](cfg)
    data = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0]]).repeat(10, 1)
    seeds = instance_seeds(0, 2)
    source = sources.TensorActivations(data, 2, 30, seeds, "cpu")
    init = {
        "W_enc": W_ENC.repeat(2, 1, 1),
        "W_dec": W_DEC.repeat(2, 1, 1),
        "b_enc": B_ENC.repeat(2, 1),
        "b_dec": torch.zeros(2, 2),
    }
    t = _Trainer(
        a,
        init,
        source,
        batch_size=30,
        steps=100,
        normalize_decoder=True,
        penalty_warmup_steps=0,
        dead_window=10,
        resample_dead=True,
        resample_every=10,
        resample_scale=0.2,
        snapshot_steps=(),
        seeds=seeds,
        dev=torch.device("cpu"),
    )
    t.x = data[None].expand(2, -1, -1).contiguous()
    t.since_fired[0, 2] = 50  # latent 2 of instance 0 is dead; nothing else
    opt = _AdamW(t.flat.detach(), weight_decay=0.0)
    opt.exp_avg.fill_(1.0)
    opt.exp_avg_sq.fill_(1.0)
    return t, opt


def test_resampling_sets_directions_from_badly_reconstructed_inputs_and_resets_adam():
    t, opt = _trainer_with_dead_latents()
    before = {k: v.clone() for k, v in t.params().items()}
    t.resample(opt)
    p = t.params()
    new_dir = p["W_dec"][0, 2]
    assert torch.isclose(new_dir.norm(), torch.tensor(1.0))
    # the input it came from is (3, 0) or (0, 2) (a zero input is reconstructed exactly... or not at all)
    assert min((new_dir - torch.tensor(v)).norm() for v in ([1.0, 0.0], [0.0, 1.0])) < 1e-5
    alive_norm = before["W_enc"][0, :, :2].norm(dim=0).mean()
    torch.testing.assert_close(p["W_enc"][0, :, 2], 0.2 * alive_norm * new_dir)
    assert p["b_enc"][0, 2] == 0
    # everything else untouched
    for name in ("W_enc", "W_dec", "b_enc"):
        keep = before[name].clone()
        axis = {"W_enc": 2, "W_dec": 1, "b_enc": 1}[name]
        assert torch.equal(keep[1], p[name][1])
        assert torch.equal(
            keep[0].index_select(axis - 1, torch.tensor([0, 1])),
            p[name][0].index_select(axis - 1, torch.tensor([0, 1])),
        )
    moments = _cpu_step.views(opt.exp_avg, t.spots)
    assert (
        (moments["W_dec"][0, 2] == 0).all()
        and (moments["W_enc"][0, :, 2] == 0).all()
        and moments["b_enc"][0, 2] == 0
    )
    assert (
        (moments["W_dec"][0, :2] == 1).all()
        and (moments["W_dec"][1] == 1).all()
        and (moments["b_dec"] == 1).all()
    )
    assert (_cpu_step.views(opt.exp_avg_sq, t.spots)["W_dec"][0, 2] == 0).all()
    assert t.since_fired[0, 2] == 0 and t.n_resampled.tolist() == [1, 0]


# --------------------------------------------------------------------------- data sources


def test_iterables_cycle_and_iterators_run_out():
    chunks = [torch.randn(50, 2), torch.randn(30, 2, dtype=torch.float16)]
    r = train_sae(SAEConfig(2, 3), chunks, steps=10, batch_size=32, device="cpu")
    assert torch.isfinite(r.final_loss).all()
    with pytest.raises(ValueError, match="ran out after 80 rows"):
        train_sae(SAEConfig(2, 3), iter(chunks), steps=10, batch_size=32, device="cpu")
    per_instance = [torch.randn(2, 40, 2)]
    train_sae(SAEConfig(2, 3, n_instances=2), per_instance, steps=3, batch_size=16, device="cpu")


def test_a_toy_model_feeds_saes_one_to_one():
    cfg = toy_lib.ToyModelConfig(n_features=4, n_hidden=2, n_instances=2, feature_probability=[0.1, 0.2])
    toy = toy_lib.train(cfg, steps=20, device="cpu", eval_batch_size=64)
    r = train_sae(
        SAEConfig(2, 4, n_instances=2), toy, steps=5, batch_size=32, device="cpu", eval_batch_size=64
    )
    assert r.W_dec.shape == (2, 4, 2)
    with pytest.raises(ValueError, match="1 instance"):
        train_sae(SAEConfig(2, 4, n_instances=3), toy, steps=5, device="cpu")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(architecture="topk", k=6), r"k=6: expected an integer from 1 to 5"),
        (dict(architecture="topk", k=0), r"k=0: expected an integer from 1 to 5"),
        (dict(architecture="batchtopk"), r"k=None: expected an integer from 1 to d_sae = 5"),
        (dict(l1_coefficient=-0.1), r"l1_coefficient=-0.1: expected a non-negative finite number"),
        (
            dict(architecture="jumprelu", n_instances=2, l0_coefficient=[0.1, -1.0]),
            r"l0_coefficient=.*non-negative",
        ),
        (dict(architecture="resnet"), r"architecture='resnet': expected one of 'relu', 'topk'"),
        (
            dict(architecture="topk", k=2, l1_coefficient=0.1),
            r"l1_coefficient=0.1: expected None for architecture='topk'",
        ),
        (dict(architecture="topk", k=2, aux_k=9), r"aux_k=9: expected an integer from 1 to 5"),
        (dict(n_instances=2, l1_coefficient=[0.1, 0.2, 0.3]), r"l1_coefficient=.*one per instance \(2\)"),
        (dict(d_sae=0), r"d_sae=0: expected a positive integer"),
    ],
)
def test_bad_configurations_are_named(kwargs, match):
    kw = dict(d_in=2, d_sae=5)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SAEConfig(**kw)


def test_bad_data_and_arguments_are_named(toy):
    cfg = SAEConfig(2, 5)
    with pytest.raises(ValueError, match=r"data=.*expected rows of width d_in = 2.*got width 3"):
        train_sae(cfg, torch.randn(10, 3), steps=1)
    with pytest.raises(ValueError, match=r"data=.*toy model with d_in = 3"):
        train_sae(SAEConfig(3, 5), toy, steps=1)
    with pytest.raises(
        ValueError,
        match=r"data=\[\]: expected an iterable that yields tensors holding at least one row, got nothing",
    ):
        train_sae(cfg, [], steps=1)
    bad = torch.randn(10, 2)
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"data=.*expected finite numbers, got nan at index \(4, 1\)"):
        train_sae(cfg, bad, steps=1)
    with pytest.raises(ValueError, match=r"data \(tensor 2 of the iterable\)=.*expected finite numbers"):
        train_sae(cfg, [torch.randn(10, 2), bad], steps=3, batch_size=8)
    with pytest.raises(ValueError, match=r"data=.*one set of rows per SAE instance \(1\)"):
        train_sae(cfg, torch.randn(2, 10, 2), steps=1)
    with pytest.raises(ValueError, match=r"data='abc': expected a TrainResult"):
        train_sae(cfg, "abc", steps=1)
    with pytest.raises(ValueError, match=r"config=.*expected an SAEConfig"):
        train_sae({"d_in": 2}, toy, steps=1)
    with pytest.raises(ValueError, match=r"steps=0: expected a positive integer"):
        train_sae(cfg, toy, steps=0)
    with pytest.raises(ValueError, match=r"seed=.*one per instance \(1\)"):
        train_sae(cfg, toy, steps=1, seed=[1, 2])
    with pytest.raises(
        ValueError, match=r"snapshot_steps=7: expected a sequence of distinct steps from 0 to steps = 5"
    ):
        train_sae(cfg, toy, steps=5, snapshot_steps=[7])
    with pytest.raises(ValueError, match=r"b_dec_init='median'"):
        train_sae(cfg, toy, steps=1, b_dec_init="median")


def test_a_diverging_run_names_instance_and_step():
    data = torch.full((100, 2), 1e20)
    data[:, 1] = 0
    with pytest.raises(
        TrainingDiverged, match=r"train_sae: the loss of instance 0 became inf at step 0"
    ) as err:
        train_sae(
            SAEConfig(2, 3, n_instances=2), data, steps=3, batch_size=8, device="cpu", b_dec_init="zeros"
        )
    assert err.value.step == 0 and err.value.instance == 0


# --------------------------------------------------------------------------- the result cache


def test_cached_train_sae_trains_once_and_keys_the_data(tmp_path, monkeypatch, toy):
    monkeypatch.setenv("TOY_LIB_CACHE_DIR", str(tmp_path))
    calls = []
    from toy_lib import cache

    real = cache.train_sae
    monkeypatch.setattr(cache, "train_sae", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = SAEConfig(2, 3, n_instances=2, architecture="jumprelu")
    kw = dict(steps=20, batch_size=32, device="cpu", eval_batch_size=64, snapshot_steps=[0, 20])
    first = cached_train_sae(cfg, toy, **kw)
    again = cached_train_sae(cfg, toy, progress=False, **kw)
    assert len(calls) == 1
    for name in ("W_enc", "W_dec", "loss_history", "firing_rate", "W_dec_snapshots"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name
    assert torch.equal(first.extra["log_threshold"], again.extra["log_threshold"])
    assert again.config.architecture == "jumprelu" and again.snapshot_steps == (0, 20)
    data = torch.randn(64, 2)
    cached_train_sae(cfg, data, **kw)
    data2 = data.clone()
    data2[0, 0] += 1
    cached_train_sae(cfg, data2, **kw)
    assert len(calls) == 3  # a tensor is keyed by its contents
    with pytest.raises(
        ValueError, match=r"data=<generator.*: expected a TrainResult, a tensor.*got generator"
    ):
        cached_train_sae(cfg, (t for t in [data]), **kw)
