"""The models and data of "Superposition in richer settings" (issue 13): the neuron model, the
absolute-value model, correlated and anticorrelated feature groups, U[-1, 1] values, finite
unit-norm data sets, and their training through the one `train` (the generic step).

Science tests here are miniatures of T9-T11 (science-targets.md) that train in seconds; the
chapter asserts the full signatures on its own results.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import ToyModelConfig, training
from toy_lib.model import _loss_per_instance, _predict, _target
from toy_lib.training import _GenericStep, _init_params

QUICK = dict(device="cpu", progress=False)


def _cos(W: torch.Tensor, i: int, j: int) -> float:
    """Cosine between the columns (features) ``i`` and ``j`` of a ``(hidden, feature)`` matrix."""
    W = W.double()
    return (W[:, i] @ W[:, j] / (W[:, i].norm() * W[:, j].norm())).item()


# --------------------------------------------------------------------------- forward passes


def test_neuron_forward_on_a_hand_computed_example():
    # one instance, 2 neurons, 3 features
    W = torch.tensor([[[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]]])
    b = torch.tensor([[0.1, -0.2, 0.3]])
    x = torch.tensor([[[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]]])
    # sample 0: W x = [0.5, 1.0] -> ReLU -> [0.5, 1.0]; Wᵀ h = [0.5, 1.5, -0.75]; + b -> ReLU
    # sample 1: W x = [0.5, -1.0] -> ReLU -> [0.5, 0.0]; Wᵀ h = [0.5, -0.5, 0.25]; + b -> ReLU
    expected = torch.tensor([[[0.6, 1.3, 0.0], [0.6, 0.0, 0.55]]])
    torch.testing.assert_close(toy_lib.neuron_forward(W, b, x), expected)
    # the ReLU on the hidden layer is what makes it differ from the tied model
    tied = toy_lib.forward(W, b, x)
    assert not torch.allclose(tied, expected)
    torch.testing.assert_close(tied[0, 0], expected[0, 0])  # no negative neuron on sample 0


def test_abs_forward_on_a_hand_computed_example():
    # 2 features, 2 neurons: neuron 0 reads +x0, neuron 1 reads -x0; both write to output 0
    W1 = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])  # (instance, hidden, feature)
    W2 = torch.tensor([[[1.0, 1.0], [0.0, 0.5]]])  # (instance, feature, hidden)
    b = torch.tensor([[0.0, -0.1]])
    x = torch.tensor([[[0.7, 0.3], [-0.4, -0.9]]])
    # sample 0: h = [0.7, 0]: y' = [0.7, ReLU(0 - 0.1)] ; sample 1: h = [0, 0.4]: y' = [0.4, 0.1]
    expected = torch.tensor([[[0.7, 0.0], [0.4, 0.1]]])
    torch.testing.assert_close(toy_lib.abs_forward(W1, W2, b, x), expected)
    torch.testing.assert_close(toy_lib.abs_forward(W1, W2, b, x)[..., 0], x.abs()[..., 0])


def test_the_modules_compute_the_functions():
    gen = torch.Generator().manual_seed(0)
    W1, W2 = torch.randn(3, 4, 6, generator=gen), torch.randn(3, 6, 4, generator=gen)
    b = torch.randn(3, 6, generator=gen)
    x = torch.rand(3, 8, 6, generator=gen) * 2 - 1
    neuron = toy_lib.NeuronModel(W1, b)
    torch.testing.assert_close(neuron(x), toy_lib.neuron_forward(W1, b, x))
    torch.testing.assert_close(neuron.hidden(x), torch.relu(toy_lib.hidden(W1, x)))
    absm = toy_lib.AbsModel(W1, W2, b)
    torch.testing.assert_close(absm(x), toy_lib.abs_forward(W1, W2, b, x))
    assert torch.all(absm.hidden(x) >= 0) and absm.hidden(x).shape == (3, 8, 4)
    assert torch.equal(toy_lib.AbsModel(W1, W2).b, torch.zeros(3, 6))
    assert torch.equal(toy_lib.NeuronModel(W1).b, torch.zeros(3, 6))


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda W, x: toy_lib.neuron_forward(W, torch.zeros(2, 5), x[:, :, :4]), ["x=", "feature axis"]),
        (
            lambda W, x: toy_lib.abs_forward(W, W, torch.zeros(2, 5), x),
            ["W2=", "(instance, feature, hidden)"],
        ),
        (lambda W, x: toy_lib.AbsModel(W, W.transpose(1, 2)[:1]), ["W2=", "instance axis"]),
        (lambda W, x: toy_lib.NeuronModel(W[0]), ["W=", "(instance, hidden, feature)"]),
    ],
)
def test_the_new_models_name_the_argument_and_the_axis(call, fragments):
    W, x = torch.randn(2, 3, 5), torch.rand(2, 8, 5)
    with pytest.raises(ValueError) as info:
        call(W, x)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


# --------------------------------------------------------------------------- the generic step


MODELS = [
    dict(model="tied"),
    dict(model="tied", activation="linear", value_range=(-1, 1)),
    dict(model="neuron"),
    dict(model="abs"),
]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "tensor"])
@pytest.mark.parametrize("kind", MODELS, ids=lambda k: "-".join(str(v) for v in k.values()))
def test_the_generic_gradient_equals_autograd(kind, compiled):
    """The hand-written generic step against autograd on the summed loss, in float64."""
    if compiled:
        pytest.importorskip("numba")
    gen = torch.Generator().manual_seed(1)
    n_inst, n_feat, batch = 4, 7, 64
    cfg = ToyModelConfig(n_features=n_feat, n_hidden=3, n_instances=n_inst,
                         feature_probability=[1.0, 0.5, 0.2, 0.05], **kind)  # fmt: skip
    importance = torch.rand(n_inst, n_feat, generator=gen)
    init = _init_params(cfg, gen)
    init["b"] = 0.3 * torch.randn(n_inst, n_feat, generator=gen)
    prob = torch.tensor(cfg.probability_matrix(), dtype=torch.float32)
    x = toy_lib.generate_batch(prob, batch, generator=gen, value_range=cfg.value_range)
    y = _target(cfg.model, x)
    step = _GenericStep(cfg, init, importance, batch, lambda: (x, y))
    step.compiled = compiled
    loss = torch.empty(n_inst)
    grad = step(0, loss)[0].clone()

    ref_params = {k: v.double().requires_grad_() for k, v in init.items()}
    out = _predict(cfg.model, cfg.activation, ref_params, x.double())
    ref_loss = _loss_per_instance(y.double(), out, importance.double())
    ref_loss.sum().backward()
    torch.testing.assert_close(loss.double(), ref_loss.detach(), rtol=1e-5, atol=1e-9)
    for name, g in step.params(grad).items():
        ref = ref_params[name].grad
        torch.testing.assert_close(g.double(), ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
    assert torch.equal(step(1, loss)[0], grad)  # the same batch gives the same gradient


def test_only_the_plain_tied_model_takes_the_hand_written_step():
    hand = training.__dict__["_hand_written"]
    assert hand(ToyModelConfig())
    assert hand(ToyModelConfig(activation="linear"))
    for kind in (dict(model="neuron"), dict(model="abs"), dict(correlated=[(0, 1)]),
                 dict(anticorrelated=[(0, 1)]), dict(dataset_size=10),
                 dict(activation="linear", value_range=(-1, 1))):  # fmt: skip
        assert not hand(ToyModelConfig(feature_probability=0.3, **kind)), kind


def test_the_tied_model_trains_alike_through_either_step(monkeypatch):
    """Same data distribution, same recipe: the generic step's losses match the hand-written
    step's to within the noise between random streams."""
    cfg = ToyModelConfig(n_features=5, n_hidden=2, n_instances=3, feature_probability=[1.0, 0.1, 0.02],
                         importance=0.9 ** np.arange(5))  # fmt: skip
    kwargs = dict(steps=1500, batch_size=256, lr=1e-2, restarts=2, eval_batch_size=1 << 15, **QUICK)
    fast = toy_lib.train(cfg, **kwargs)
    monkeypatch.setitem(training.__dict__, "_hand_written", lambda config: False)
    generic = toy_lib.train(cfg, **kwargs)
    np.testing.assert_allclose(generic.final_loss.numpy(), fast.final_loss.numpy(), rtol=0.1)
    late_fast = fast.loss_history[-300:].mean(0)
    late_generic = generic.loss_history[-300:].mean(0)
    np.testing.assert_allclose(late_generic.numpy(), late_fast.numpy(), rtol=0.1)
    # and the same start: the initialisation does not depend on the step
    early = slice(0, 1)
    assert torch.allclose(generic.loss_history[early], fast.loss_history[early], rtol=0.5)


# --------------------------------------------------------------------------- data


def _draw(n=100_000, seed=0, **options):
    prob = options.pop("prob")
    return toy_lib.generate_batch(torch.as_tensor(prob, dtype=torch.float32), n,
                                  generator=torch.Generator().manual_seed(seed), **options)  # fmt: skip


def _close(got: float, expected: float, n: int, what: str) -> None:
    sigma = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    assert abs(got - expected) < 5 * sigma + 1e-6, f"{what}: {got} vs {expected} (n = {n})"


def test_correlated_groups_are_active_together_with_their_probability():
    prob = [[0.3, 0.3, 0.3, 0.1, 0.1, 0.2], [0.05, 0.05, 0.05, 0.5, 0.5, 0.2]]
    n = 50_000
    x = _draw(n, prob=prob, correlated=[(0, 1, 2), (3, 4)])
    active = (x != 0).double()
    for i in range(2):
        for f in range(6):
            _close(active[i, :, f].mean().item(), prob[i][f], n, f"rate of feature {f}, instance {i}")
        assert torch.equal(active[i, :, 0], active[i, :, 1]) and torch.equal(active[i, :, 1], active[i, :, 2])
        assert torch.equal(active[i, :, 3], active[i, :, 4])
        # the groups are independent of each other and of the free feature
        _close((active[i, :, 0] * active[i, :, 3]).mean().item(), prob[i][0] * prob[i][3], n, "groups")
        _close((active[i, :, 0] * active[i, :, 5]).mean().item(), prob[i][0] * prob[i][5], n, "free")
    # each active member draws its own value, uniform on [0, 1]
    both = active[0, :, 0] > 0
    v0, v1 = x[0, both, 0].double(), x[0, both, 1].double()
    assert abs(np.corrcoef(v0, v1)[0, 1]) < 0.05
    assert abs(v0.mean().item() - 0.5) < 0.01 and abs(v0.var().item() - 1 / 12) < 0.005


def test_anticorrelated_groups_have_at_most_one_active_feature():
    prob = [[0.2, 0.3, 0.4, 0.25, 0.25, 0.1], [0.01, 0.02, 0.03, 0.5, 0.5, 0.9]]
    n = 50_000
    x = _draw(n, prob=prob, anticorrelated=[(0, 1, 2), (3, 4)])
    active = (x != 0).double()
    assert active[:, :, :3].sum(-1).max() <= 1 and active[:, :, 3:5].sum(-1).max() <= 1
    for i in range(2):
        for f in range(6):
            _close(active[i, :, f].mean().item(), prob[i][f], n, f"rate of feature {f}, instance {i}")
        _close(active[i, :, :3].sum(-1).mean().item(), sum(prob[i][:3]), n, "group of three")
    # probabilities summing to 1: exactly one of the pair is active in every sample
    assert torch.all(active[1, :, 3:5].sum(-1) == 1)


def test_values_in_minus_one_one_are_uniform_with_the_same_activity():
    n = 200_000
    x = _draw(n, prob=[[0.4, 0.1, 0.1]], value_range=(-1, 1), correlated=[(1, 2)])
    active = x != 0
    for f, p in enumerate([0.4, 0.1, 0.1]):
        _close(active[0, :, f].double().mean().item(), p, n, f"rate of feature {f}")
    for f in range(3):
        v = x[0, active[0, :, f], f].double().numpy()
        assert v.min() >= -1 and v.max() < 1
        assert abs(v.mean()) < 5 * math.sqrt(1 / 3 / len(v)), "not centred"
        assert abs(v.var() - 1 / 3) < 0.01, "not uniform on [-1, 1] (variance 1/3)"
        quartiles = np.quantile(v, [0.25, 0.5, 0.75])
        np.testing.assert_allclose(quartiles, [-0.5, 0.0, 0.5], atol=0.02)


@pytest.mark.parametrize(
    "options",
    [dict(correlated=((0, 1), (2, 3, 4))), dict(anticorrelated=((0, 1), (2, 3, 4)), value_range=(-1, 1)),
     dict(correlated=((0, 1),), anticorrelated=((2, 3),), value_range=(-1, 1))],
)  # fmt: skip
def test_the_compiled_group_pass_draws_the_same_batches_as_the_tensor_program(options):
    """On the CPU one compiled pass writes the groups; elsewhere (a GPU) tensor operations do,
    from the same uniform numbers: the two must agree exactly."""
    pytest.importorskip("numba")
    from toy_lib.data import _FeatureSampler

    prob = torch.tensor([[0.2] * 6, [0.05] * 6, [0.45] * 6])
    compiled = _FeatureSampler(prob, 500, generator=torch.Generator().manual_seed(1), **options)
    tensor = _FeatureSampler(prob, 500, generator=torch.Generator().manual_seed(1), **options)
    tensor._compiled = False
    assert compiled._compiled
    for _ in range(3):
        assert torch.equal(compiled.sample(), tensor.sample())


def test_unit_norm_samples():
    x = _draw(5000, prob=[[0.3] * 8, [0.02] * 8], unit_norm=True, anticorrelated=[(0, 1)])
    norms = x.norm(dim=-1)
    nonzero = (x != 0).any(-1)
    torch.testing.assert_close(norms[nonzero], torch.ones(int(nonzero.sum())))
    assert torch.all(norms[~nonzero] == 0) and (~nonzero[1]).any()  # an empty sample stays empty


def test_the_training_set_is_finite_unit_norm_shared_by_restarts_and_trained_full_batch():
    T = 12
    cfg = ToyModelConfig(n_features=20, n_hidden=2, n_instances=2, feature_probability=[0.1, 0.3],
                         dataset_size=T)  # fmt: skip
    result = toy_lib.train(cfg, steps=300, lr=1e-2, restarts=3, eval_batch_size=4096, **QUICK)
    assert result.recipe["batch_size"] == T
    data = result.training_set()
    assert data.shape == (2, T, 20)
    norms = data.norm(dim=-1)
    torch.testing.assert_close(norms[norms > 0], torch.ones(int((norms > 0).sum())))
    assert torch.equal(data, result.training_set())  # drawn again, bit for bit
    # each kept instance's ranked loss is its loss on that very training set
    out = result.model()(data)
    train_loss = _loss_per_instance(data, out, torch.ones(2, 20)).detach()
    kept = result.restart_losses.gather(1, result.best_restart[:, None])[:, 0]
    torch.testing.assert_close(train_loss, kept, rtol=1e-5, atol=1e-8)
    # every restart of a setting trained on the same set: their final ranked losses are close to
    # each other's scale, and the final loss is a test loss on fresh data (not the training loss)
    assert not torch.allclose(result.final_loss, kept)
    assert (
        toy_lib.ToyModelConfig().dataset_size is None
        and toy_lib.train(ToyModelConfig(), steps=2, batch_size=8, eval_batch_size=8, **QUICK).training_set()
        is None
    )


def test_a_finite_data_set_trains_full_batch_only():
    cfg = ToyModelConfig(n_features=5, dataset_size=16)
    with pytest.raises(ValueError, match=r"batch_size=8: expected None or 16 \(config.dataset_size\)"):
        toy_lib.train(cfg, steps=2, batch_size=8, **QUICK)
    assert toy_lib.train(cfg, steps=2, batch_size=16, eval_batch_size=8, **QUICK).recipe["batch_size"] == 16


def test_restarts_share_their_setting_s_training_set(monkeypatch):
    seen = []
    real = training.__dict__["_training_set"]
    monkeypatch.setitem(training.__dict__, "_training_set",
                        lambda config, seed: seen.append(config.n_instances) or real(config, seed))  # fmt: skip
    cfg = ToyModelConfig(n_features=6, n_instances=2, feature_probability=0.3, dataset_size=5)
    toy_lib.train(cfg, steps=3, restarts=4, eval_batch_size=8, **QUICK)
    assert seen == [2]  # drawn once per setting, then repeated for the 4 restarts


# --------------------------------------------------------------------------- restarts, determinism


@pytest.mark.parametrize(
    "kind",
    [dict(model="abs", feature_probability=0.3), dict(model="neuron", feature_probability=0.2),
     dict(correlated=[(0, 1)], feature_probability=0.1), dict(dataset_size=20, feature_probability=0.2)],
    ids=["abs", "neuron", "correlated", "finite"],
)  # fmt: skip
def test_the_generic_path_keeps_the_lowest_loss_restart_and_is_reproducible(kind):
    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=2, **kind)
    args = dict(steps=150, lr=1e-2, restarts=3, seed=5, eval_batch_size=2048, **QUICK)
    if "dataset_size" not in kind:
        args["batch_size"] = 128
    a, b = toy_lib.train(cfg, **args), toy_lib.train(cfg, **args)
    assert a.restart_losses.shape == (2, 3)
    np.testing.assert_array_equal(a.best_restart, a.restart_losses.argmin(dim=1))
    if "dataset_size" not in kind:
        np.testing.assert_allclose(a.final_loss, a.restart_losses.min(dim=1).values)
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        assert torch.equal(a.params[name], b.params[name]), name
    assert torch.equal(a.loss_history, b.loss_history)
    c = toy_lib.train(cfg, **{**args, "seed": 6})
    assert not torch.equal(a.params["b"], c.params["b"])


def test_result_names_its_parameters():
    cfg = ToyModelConfig(n_features=3, n_hidden=4, n_instances=2, model="abs")
    result = toy_lib.train(cfg, steps=3, batch_size=8, eval_batch_size=8, **QUICK)
    assert {k: tuple(v.shape) for k, v in result.params.items()} == {
        "W1": (2, 4, 3),
        "W2": (2, 3, 4),
        "b": (2, 3),
    }
    assert result.W1 is result.params["W1"] and result.W2 is result.params["W2"]
    with pytest.raises(
        AttributeError, match="the 'abs' model has no parameter 'W'; its parameters are W1, W2, b"
    ):
        result.W  # noqa: B018
    assert isinstance(result.model(), toy_lib.AbsModel)
    x = toy_lib.generate_batch(torch.full((2, 3), 0.5), 16, value_range=(-1, 1))
    torch.testing.assert_close(result.model()(x), toy_lib.abs_forward(result.W1, result.W2, result.b, x))
    neuron = toy_lib.train(ToyModelConfig(model="neuron"), steps=3, batch_size=8, eval_batch_size=8, **QUICK)
    assert isinstance(neuron.model(), toy_lib.NeuronModel) and neuron.W.shape == (1, 2, 5)


def test_sae_training_refuses_a_model_it_cannot_read():
    result = toy_lib.train(ToyModelConfig(model="neuron"), steps=2, batch_size=8, eval_batch_size=8, **QUICK)
    with pytest.raises(ValueError, match="data=.*expected a tied toy model trained on fresh independent"):
        toy_lib.train_sae(toy_lib.SAEConfig(d_in=2, d_sae=4), result, steps=2, device="cpu")


# --------------------------------------------------------------------------- science in miniature


def test_abs_model_gives_each_feature_a_positive_and_a_negative_neuron():
    """T11 in miniature (3 -> 6, dense): |x| = ReLU(x) + ReLU(-x), one neuron for each sign."""
    cfg = ToyModelConfig(n_features=3, n_hidden=6, feature_probability=1.0, model="abs")
    result = toy_lib.train(cfg, steps=2000, batch_size=256, lr=3e-3, restarts=4, seed=0, **QUICK)
    assert result.final_loss.item() < 1e-3, result.restart_losses
    W1, W2 = result.W1[0], result.W2[0]  # (hidden, feature), (feature, hidden)
    for f in range(3):
        pos = int(W1[:, f].argmax())
        neg = int(W1[:, f].argmin())
        assert W1[pos, f] > 0.5 and W1[neg, f] < -0.5, f"feature {f}: {W1[:, f]}"
        assert W2[f, pos] > 0.5 and W2[f, neg] > 0.5, f"feature {f} read out: {W2[f]}"
        # each of the two neurons reads (almost) only this feature
        for j in (pos, neg):
            others = [g for g in range(3) if g != f]
            assert W1[j, others].abs().max() < 0.1 * W1[j, f].abs()


def test_correlated_pairs_sit_orthogonal_and_anticorrelated_pairs_antipodal():
    """T9 in miniature: four features in two dimensions at p = 0.05."""
    args = dict(steps=2000, batch_size=256, lr=3e-3, restarts=4, seed=0, **QUICK)
    corr = toy_lib.train(
        ToyModelConfig(n_features=4, feature_probability=0.05, correlated=[(0, 1), (2, 3)]), **args
    )
    anti = toy_lib.train(ToyModelConfig(n_features=4, feature_probability=0.05, anticorrelated=[(0, 1), (2, 3)]),
                         **args)  # fmt: skip
    for W in (corr.W[0], anti.W[0]):
        assert torch.all(W.norm(dim=0) > 0.8), "every feature represented"
    assert abs(_cos(corr.W[0], 0, 1)) < 0.1 and abs(_cos(corr.W[0], 2, 3)) < 0.1
    assert _cos(anti.W[0], 0, 1) < -0.9 and _cos(anti.W[0], 2, 3) < -0.9


def test_neuron_model_is_monosemantic_when_dense():
    """T10 in miniature: at p = 0.75 each of the five most important features owns a neuron."""
    cfg = ToyModelConfig(n_features=10, n_hidden=5, feature_probability=0.75,
                         importance=0.75 ** np.arange(10), model="neuron")  # fmt: skip
    result = toy_lib.train(cfg, steps=2000, batch_size=512, lr=5e-3, restarts=2, seed=0, **QUICK)
    W = result.W[0]  # (neuron, feature)
    norms = W.norm(dim=0)
    share = W.abs().max(dim=0).values / norms
    assert torch.all(norms[:5] > 0.8) and torch.all(share[:5] > 0.9), (norms, share)
    assert torch.all(norms[5:] < 0.2), norms
    assert len(set(W[:, :5].abs().argmax(dim=0).tolist())) == 5, "one neuron per feature"
