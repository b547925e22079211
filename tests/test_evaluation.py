"""toy_lib.evaluation on hand-checked cases: the Pareto mask, loss recovered with both ablations,
the latent intervention, the dead-latent record of training, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import evaluation
from toy_lib.sae import SAEConfig, SAEResult


def toy_model(W, b) -> toy_lib.TrainResult:
    """A tied toy model with the given weights, one instance (no training)."""
    W, b = torch.as_tensor(W, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    config = toy_lib.ToyModelConfig(n_features=W.shape[1], n_hidden=W.shape[0])
    return toy_lib.TrainResult(
        config=config,
        params={"W": W[None], "b": b[None]},
        loss_history=torch.zeros(1, 1),
        final_loss=torch.zeros(1),
        restart_losses=torch.zeros(1, 1),
        best_restart=torch.zeros(1, dtype=torch.long),
        recipe={},
    )


def relu_saes(W_enc, W_dec) -> SAEResult:
    """ReLU SAEs with the given weights ``(instance, ...)`` and zero biases."""
    W_enc, W_dec = torch.as_tensor(W_enc, dtype=torch.float32), torch.as_tensor(W_dec, dtype=torch.float32)
    n, d_in, d_sae = W_enc.shape
    zeros = torch.zeros(n)
    return SAEResult(
        config=SAEConfig(d_in, d_sae, n_instances=n),
        W_enc=W_enc,
        W_dec=W_dec,
        b_enc=torch.zeros(n, d_sae),
        b_dec=torch.zeros(n, d_in),
        extra={},
        loss_history=torch.zeros(1, n),
        final_loss=zeros,
        final_mse=zeros,
        final_l0=zeros,
        firing_rate=torch.zeros(n, d_sae),
        dead=torch.zeros(n, d_sae, dtype=torch.bool),
        n_resampled=torch.zeros(n, dtype=torch.long),
    )


EYE = torch.eye(2)
MODEL = toy_model(EYE, [0.0, 0.0])  # x' = ReLU(x): a perfect model of non-negative features
# instance 0 a perfect SAE; instance 1 halves every reconstruction
SAES = relu_saes(torch.stack([EYE, EYE]), torch.stack([EYE, 0.5 * EYE]))
X = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


# --------------------------------------------------------------------------- pareto_front


def test_pareto_front_by_hand():
    l0, err = [1.0, 2.0, 3.0, 2.0, 4.0], [3.0, 2.0, 1.0, 3.0, 1.0]
    # (2, 3) is beaten by (1, 3) and (2, 2); (4, 1) by (3, 1): equal error, fewer latents
    np.testing.assert_array_equal(evaluation.pareto_front(l0, err), [True, True, True, False, False])
    # identical points do not dominate each other
    np.testing.assert_array_equal(evaluation.pareto_front([1, 1], [2, 2]), [True, True])
    assert evaluation.pareto_front([5.0], [0.1]).tolist() == [True]


def test_pareto_front_batched_sets_are_separate():
    l0 = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    err = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(evaluation.pareto_front(l0, err), [[True] * 3, [True, False, False]])
    mask = evaluation.pareto_front(torch.tensor(l0), torch.tensor(err))  # tensors too
    assert mask.dtype == bool and mask.shape == (2, 3)


@pytest.mark.parametrize(
    "l0, err, match",
    [
        ([1.0, np.nan], [1.0, 2.0], "l0="),
        ([1.0, 2.0], [1.0, np.inf], "error="),
        ([], [], "l0=.*at least one point"),
        (1.0, 1.0, "l0=.*at least one point"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "error=.*same shape as l0"),
        ("ab", [1.0], "l0="),
    ],
)
def test_pareto_front_bad_inputs(l0, err, match):
    with pytest.raises(ValueError, match=match):
        evaluation.pareto_front(l0, err)


def test_pareto_front_refuses_a_comparison_too_large_for_memory():
    big = np.zeros((1, 10**6))  # 10^12 pairs
    with pytest.raises(ValueError, match="l0=.*fit in memory"):
        evaluation.pareto_front(big, big)


# --------------------------------------------------------------------------- loss recovered


def test_spliced_losses_by_hand():
    losses = evaluation.spliced_losses(MODEL, SAES, X)
    assert losses["clean"] == pytest.approx(0.0)
    np.testing.assert_allclose(losses["sae"], [0.0, 0.125])  # mean((x - x/2)^2) = 0.25 / 2
    assert losses["zero"] == pytest.approx(0.5)  # mean(x^2)
    assert losses["mean"] == pytest.approx(0.25)  # h = (0.5, 0.5) for both inputs


def test_loss_recovered_by_hand_with_both_ablations():
    np.testing.assert_allclose(evaluation.loss_recovered(MODEL, SAES, X, ablation="zero"), [1.0, 0.75])
    np.testing.assert_allclose(evaluation.loss_recovered(MODEL, SAES, X, ablation="mean"), [1.0, 0.5])
    # an SAE worse than ablating scores below zero: reconstruct h as -h
    flipped = relu_saes(torch.stack([EYE]), torch.stack([-EYE]))
    lr = evaluation.loss_recovered(MODEL, flipped, X + 0.5, ablation="mean")
    assert lr[0] < 0


def test_loss_recovered_weights_by_importance():
    model = toy_model(EYE, [0.0, 0.0])
    object.__setattr__(
        model, "config", toy_lib.ToyModelConfig(n_features=2, n_hidden=2, importance=[1.0, 0.0])
    )
    half_first = relu_saes(torch.stack([EYE]), torch.tensor([[[0.5, 0.0], [0.0, 0.0]]]))
    # feature 1 carries no weight: only feature 0's half is lost, 0.25 of its zero-ablation loss
    lr = evaluation.loss_recovered(model, half_first, X, ablation="zero")
    np.testing.assert_allclose(lr, [0.75])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(model="toy"), "model=.*TrainResult"),
        (dict(sae="sae"), "sae=.*SAEResult"),
        (dict(x=torch.ones(2, 3)), "x=.*feature = 2"),
        (dict(x=torch.ones(2)), "x="),
        (dict(x=torch.tensor([[np.nan, 1.0]])), "x="),
        (dict(x=torch.zeros(0, 2)), "x=.*empty"),
        (dict(instance=1), "instance="),
        (dict(ablation="random"), "ablation=.*'zero', 'mean'"),
        (dict(x=torch.zeros(3, 2)), "ablation=.*raises the model's loss"),
        (dict(sae=relu_saes(torch.ones(1, 3, 2), torch.ones(1, 2, 3))), "sae=.*d_in = 2"),
    ],
)
def test_loss_recovered_bad_inputs(kwargs, match):
    args = dict(model=MODEL, sae=SAES, x=X, ablation="zero", instance=0) | kwargs
    with pytest.raises(ValueError, match=match):
        evaluation.loss_recovered(args.pop("model"), args.pop("sae"), args.pop("x"), **args)


def test_a_model_that_is_not_tied_is_refused():
    model = toy_model(EYE, [0.0, 0.0])
    object.__setattr__(model, "config", toy_lib.ToyModelConfig(n_features=2, n_hidden=2, model="neuron"))
    with pytest.raises(ValueError, match="model=.*tied"):
        evaluation.spliced_losses(model, SAES, X)


# --------------------------------------------------------------------------- intervene


def test_intervene_by_hand():
    x = torch.tensor([[0.7, 0.3]])
    before, after = evaluation.intervene(MODEL, SAES, x, latent=0, scale=0.0)
    torch.testing.assert_close(before, x)
    torch.testing.assert_close(after, torch.tensor([[0.0, 0.3]]))
    _, doubled = evaluation.intervene(MODEL, SAES, x, latent=0, scale=2.0)
    torch.testing.assert_close(doubled, torch.tensor([[1.4, 0.3]]))


def test_intervene_keeps_the_reconstruction_error_unless_asked_not_to():
    x = torch.tensor([[0.8, 0.4]])
    # the halving SAE: with the error kept, "before" is the clean model and an edit moves h by
    # the latent's own contribution only
    before, after = evaluation.intervene(MODEL, SAES, x, 1, 0.0, sae_instance=1)
    torch.testing.assert_close(before, x)
    torch.testing.assert_close(after, torch.tensor([[0.8, 0.2]]))  # 0.4 - 0.5 * 0.4
    before, after = evaluation.intervene(MODEL, SAES, x, 1, 0.0, sae_instance=1, keep_error=False)
    torch.testing.assert_close(before, torch.tensor([[0.4, 0.2]]))
    torch.testing.assert_close(after, torch.tensor([[0.4, 0.0]]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(latent=2), "latent=.*from 0 to 1"),
        (dict(latent=-1), "latent="),
        (dict(latent=0.5), "latent="),
        (dict(scale=np.nan), "scale="),
        (dict(scale="big"), "scale="),
        (dict(sae_instance=2), "sae_instance=.*from 0 to 1"),
        (dict(keep_error=1), "keep_error=.*True or False"),
        (dict(x=torch.ones(1, 5)), "x="),
        (dict(scale=1e38, x=torch.tensor([[1e3, 0.0]])), "scale=.*finite"),
    ],
)
def test_intervene_bad_inputs(kwargs, match):
    args = dict(x=torch.tensor([[0.7, 0.3]]), latent=0, scale=0.0) | kwargs
    with pytest.raises(ValueError, match=match):
        evaluation.intervene(MODEL, SAES, args.pop("x"), args.pop("latent"), args.pop("scale"), **args)


# --------------------------------------------------------------------------- the dead-latent record


def test_train_sae_records_dead_latents_at_the_snapshot_steps():
    """With a huge L1 penalty every latent dies; the record says when (none at step 0, before
    dead_window steps have passed), and `select` keeps it."""
    toy = toy_lib.train(toy_lib.ToyModelConfig(5, 2, feature_probability=0.1), steps=50, device="cpu")
    cfg = SAEConfig(2, 4, n_instances=2, l1_coefficient=[0.0, 50.0])
    r = toy_lib.train_sae(
        cfg, toy, steps=300, batch_size=64, lr=0.05, dead_window=100, snapshot_steps=[0, 50, 300], device="cpu",
        eval_batch_size=256,
    )  # fmt: skip
    assert r.dead_snapshots.shape == (3, 2, 4) and r.dead_snapshots.dtype == torch.bool
    assert not r.dead_snapshots[:2].any()  # fewer than dead_window steps: nothing can be dead yet
    torch.testing.assert_close(r.dead_snapshots[-1], r.dead)  # the last snapshot is the final record
    assert r.dead_snapshots[-1, 1].all() and not r.dead_snapshots[-1, 0].all()
    torch.testing.assert_close(r.select([1]).dead_snapshots, r.dead_snapshots[:, [1]])
    without = toy_lib.train_sae(cfg, toy, steps=5, batch_size=16, device="cpu", eval_batch_size=64)
    assert without.dead_snapshots is None


# --------------------------------------------------------------------------- the plots of the chapter


@pytest.mark.parametrize(
    "fn, kwargs, name, fragment",
    [
        ("pareto_frontier", dict(l0=[[1.0]], error=[[0.1]], labels="L1"), "labels=", "list of strings"),
        (
            "pareto_frontier",
            dict(l0=[[1.0]], error=[[0.1], [0.2]], labels=["L1"]),
            "error=",
            "one 1-D array per label",
        ),
        (
            "pareto_frontier",
            dict(l0=[[1.0, 2.0]], error=[[0.1]], labels=["L1"]),
            "error[0]=",
            "the shape of l0[0]",
        ),
        ("pareto_frontier", dict(l0=[[1.0]], error=[[0.0]], labels=["L1"]), "error[0]=", "positive"),
        ("pareto_frontier", dict(l0=[[np.nan]], error=[[0.1]], labels=["L1"]), "l0[0]=", "finite"),
        (
            "pareto_frontier",
            dict(l0=[[1.0]] * 8, error=[[0.1]] * 8, labels=list("abcdefgh")),
            "labels=",
            "at most 7",
        ),
        ("pareto_frontier", dict(l0=[[1.0]], error=[[0.1]], labels=["L1"], ylabel=3), "ylabel=", "a string"),
        (
            "dead_latent_curves",
            dict(steps=[0, 1], dead_fraction=[[0.0, 1.5]], labels=["a"]),
            "dead_fraction=",
            "0 to 1",
        ),
        (
            "dead_latent_curves",
            dict(steps=[0, 1], dead_fraction=[[0.0]], labels=["a"]),
            "dead_fraction=",
            "snapshot = 2",
        ),
        (
            "dead_latent_curves",
            dict(steps=[0, 1], dead_fraction=[[0.0, 0.1]], labels=["a", "b"]),
            "labels=",
            "1 strings",
        ),
        (
            "dead_latent_curves",
            dict(steps=[[0, 1]], dead_fraction=[[0.0, 0.1]], labels=["a"]),
            "steps=",
            "(snapshot,)",
        ),
        ("intervention_effects", dict(effect=np.ones(3)), "effect=", "(edit, output)"),
        ("intervention_effects", dict(effect=np.full((2, 2), np.inf)), "effect=", "finite"),
        ("intervention_effects", dict(effect=np.ones((2, 2)), xlabel=1), "xlabel=", "a string"),
    ],
)
def test_the_chapters_plots_refuse_bad_input(fn, kwargs, name, fragment):
    import matplotlib

    matplotlib.use("Agg")
    from toy_lib import plots

    with pytest.raises(ValueError) as err:
        getattr(plots, fn)(**kwargs)
    message = str(err.value)
    assert message.startswith(name) and fragment in message and "expected" in message, message
