"""Training: the trainer's own behaviour (restarts, determinism, schedules, arguments).

The science signatures T1-T4 of science-targets.md are asserted on the toy-models chapter's own
results, in tests/test_toy_models.py (the chapter trains them once, through the result cache).
"""

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import ToyModelConfig

RESTARTS = 3


@pytest.fixture(scope="module")
def small_restarts():
    """Two settings (p = 0.05 and p = 1) of a 5 -> 2 model, best of three restarts, 2,000 steps."""
    importance = np.stack([np.ones(5), 0.7 ** np.arange(5)])
    cfg = ToyModelConfig(
        n_features=5, n_hidden=2, n_instances=2, feature_probability=[0.05, 1.0], importance=importance
    )
    return toy_lib.train(cfg, steps=2_000, restarts=RESTARTS, seed=0, device="cpu")


def test_best_restart_is_the_lowest_loss(small_restarts):
    assert small_restarts.restart_losses.shape == (2, RESTARTS)
    np.testing.assert_array_equal(small_restarts.best_restart, small_restarts.restart_losses.argmin(dim=1))
    np.testing.assert_allclose(small_restarts.final_loss, small_restarts.restart_losses.min(dim=1).values)


def test_result_shapes_and_loss_goes_down(small_restarts):
    assert small_restarts.W.shape == (2, 2, 5)
    assert small_restarts.b.shape == (2, 5)
    assert small_restarts.loss_history.shape == (2_000, 2)
    early = small_restarts.loss_history[:50].mean(0)
    late = small_restarts.loss_history[-200:].mean(0)
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


@pytest.mark.parametrize("schedule", toy_lib.training.__dict__["SCHEDULES"])
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
