"""Training: the science signatures T1 and T2 of science-targets.md, determinism, arguments.

The science tests train with the original notebook's recipe (batch 1024, 10,000 steps, lr 1e-3,
AdamW, constant lr) and assert on the lowest-loss of several restarts per setting.
"""

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import ToyModelConfig, metrics

RESTARTS = 4


@pytest.fixture(scope="module")
def t1_t2():
    """Setting 0 is T1 (uniform importance, p = 0.05); setting 1 is T2 (I_i = 0.7^i, p = 1)."""
    importance = np.stack([np.ones(5), 0.7 ** np.arange(5)])
    cfg = ToyModelConfig(
        n_features=5, n_hidden=2, n_instances=2, feature_probability=[0.05, 1.0], importance=importance
    )
    return toy_lib.train(cfg, steps=10_000, restarts=RESTARTS, seed=0, device="cpu")


def test_pentagon_at_high_sparsity(t1_t2):
    """T1: a regular pentagon, D_i = 2/5, equal norms about 1.13, negative biases."""
    W, b = t1_t2.W[0], t1_t2.b[0]
    gaps = metrics.angular_gaps_2d(W)
    assert len(gaps) == 5, f"expected all five features represented, got gaps {gaps}"
    np.testing.assert_allclose(gaps, 72.0, atol=3.0)
    D = metrics.feature_dimensionality(W)
    np.testing.assert_allclose(D, 0.40, atol=0.02)
    assert abs(D.sum() - 2.0) < 0.05
    norms = metrics.feature_norms(W)
    assert norms.max() / norms.min() < 1.05, f"norms not equal: {norms}"
    assert 1.05 < norms.mean() < 1.2, f"pentagon norms should be about 1.13, got {norms}"
    assert torch.all(b < 0), f"all biases should be negative, got {b}"
    assert -0.35 < b.mean().item() < -0.15, f"biases should be about -0.25, got {b}"


def test_dense_features_keep_the_two_most_important_orthogonal(t1_t2):
    """T2: features 0 and 1 orthogonal with norm about 1; features 2-4 dropped, bias = E[x]."""
    W, b = t1_t2.W[1].double(), t1_t2.b[1]
    norms = metrics.feature_norms(W)
    np.testing.assert_allclose(norms[:2], 1.0, atol=0.05)
    cos01 = (W[:, 0] @ W[:, 1]).item() / (norms[0] * norms[1])
    assert abs(cos01) < 0.05, f"features 0 and 1 should be orthogonal, cos = {cos01:.3f}"
    assert np.all(norms[2:] < 0.1), f"features 2-4 should be dropped, norms {norms[2:]}"
    np.testing.assert_allclose(b[2:].numpy(), 0.5, atol=0.05)  # E[x] for U[0, 1]


def test_best_restart_is_the_lowest_loss(t1_t2):
    assert t1_t2.restart_losses.shape == (2, RESTARTS)
    np.testing.assert_array_equal(t1_t2.best_restart, t1_t2.restart_losses.argmin(dim=1))
    np.testing.assert_allclose(t1_t2.final_loss, t1_t2.restart_losses.min(dim=1).values)


def test_result_shapes_and_loss_goes_down(t1_t2):
    assert t1_t2.W.shape == (2, 2, 5)
    assert t1_t2.b.shape == (2, 5)
    assert t1_t2.loss_history.shape == (10_000, 2)
    early = t1_t2.loss_history[:50].mean(0)
    late = t1_t2.loss_history[-500:].mean(0)
    assert torch.all(late < 0.5 * early), f"loss did not fall: {early} -> {late}"


def _small(seed, **kw):
    cfg = ToyModelConfig(n_features=5, n_hidden=2, n_instances=3, feature_probability=[0.1, 0.5, 1.0])
    return toy_lib.train(cfg, steps=200, batch_size=256, seed=seed, device="cpu", **kw)


def test_same_seed_gives_identical_weights():
    a, b = _small(3), _small(3)
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    assert torch.equal(a.loss_history, b.loss_history)
    c = _small(4)
    assert not torch.equal(a.W, c.W)


def test_instance_results_do_not_depend_on_the_other_instances():
    """Each instance is initialised as its own matrix: the init scale ignores the instance count."""
    one = toy_lib.init_weights(1, 20, 200, generator=torch.Generator().manual_seed(0))
    many = toy_lib.init_weights(64, 20, 200, generator=torch.Generator().manual_seed(0))
    expected = np.sqrt(2 / 220)
    assert abs(one.std().item() - expected) < 0.05 * expected
    assert abs(many.std().item() - expected) < 0.01 * expected


@pytest.mark.parametrize("schedule", toy_lib.train.__globals__["SCHEDULES"])
@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_every_optimizer_and_schedule_trains(optimizer, schedule):
    res = _small(0, optimizer=optimizer, schedule=schedule)
    assert torch.isfinite(res.W).all()
    assert res.recipe["optimizer"] == optimizer and res.recipe["schedule"] == schedule


def test_lr_schedules_shape():
    steps = 1000
    assert toy_lib.lr_factor("constant", 500, steps) == 1.0
    assert toy_lib.lr_factor("linear", 500, steps) == pytest.approx(0.5)
    assert toy_lib.lr_factor("cosine", 0, steps) == pytest.approx(1.0)
    assert toy_lib.lr_factor("cosine", 500, steps) == pytest.approx(0.5)
    warm = [toy_lib.lr_factor("warmup_cosine", s, steps) for s in range(steps)]
    assert warm[0] < 0.1 and max(warm) == pytest.approx(1.0) and warm[-1] < 0.01
    assert np.argmax(warm) == 49  # end of the 5% warm-up


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(steps=0), "steps=0: expected a positive integer"),
        (dict(batch_size=-1), "batch_size=-1: expected a positive integer"),
        (dict(lr=0.0), "lr=0.0: expected a positive finite number"),
        (dict(lr=float("inf")), "lr=inf: expected a positive finite number"),
        (dict(optimizer="sgd"), "optimizer='sgd': expected one of 'adamw', 'adam'"),
        (dict(schedule="step"), "schedule='step': expected one of"),
        (dict(restarts=0), "restarts=0: expected a positive integer"),
    ],
)
def test_bad_training_arguments_are_named(kwargs, fragment):
    cfg = ToyModelConfig(n_features=3, n_hidden=2)
    with pytest.raises(ValueError) as err:
        toy_lib.train(cfg, **kwargs)
    assert fragment in str(err.value)


def test_config_must_be_a_config():
    with pytest.raises(ValueError, match="config=.*expected a ToyModelConfig"):
        toy_lib.train({"n_features": 5})


def test_pick_device_defaults_to_an_available_device():
    dev = toy_lib.pick_device()
    assert dev.type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        assert dev.type in {"mps", "cpu"}
    assert toy_lib.pick_device("cpu") == torch.device("cpu")
