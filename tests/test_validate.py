"""toy_lib refuses bad input clearly, everywhere (issue 10).

Every class of bad input found by trying toy_lib as a new user would: each test asserts the
error type (ValueError; TrainingDiverged for a run that diverges) and that the message names
the argument, the value and what was expected. Then: valid edge cases are accepted, and no
public function returns NaN or infinity for finite input. ``scripts/probe_api.py`` throws
thousands of generated inputs at the same API; these tests pin the cases that matter.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import shutil
import tempfile
import time

import numpy as np
import pytest
import torch

import toy_lib
from toy_lib import _validate, exercises, metrics, real_model
from toy_lib.cache import _cache_key
from toy_lib.training import TrainingDiverged, optimise

CFG = dict(n_features=5, n_hidden=2, n_instances=2)
FAST = dict(steps=5, batch_size=16, eval_batch_size=16, device="cpu", progress=False)


def refuses(fn, *fragments: str, error=ValueError) -> str:
    """``fn()`` raises ``error`` whose message holds every fragment (argument, value, expectation)."""
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in the message:\n{message}"
    return message


def names_argument_value_expectation(message: str, name: str, value: str) -> None:
    assert re.search(rf"(?<![\w.]){re.escape(name)}=", message), message
    assert value in message, message
    assert "expected" in message, message


# --------------------------------------------------------------------------- the shared checks


@pytest.mark.parametrize("value", [5, np.int64(5), np.int32(5), np.uint8(5), torch.tensor(5), np.array(5)])
def test_integers_are_accepted_in_every_numpy_and_torch_form(value):
    got = _validate.integer(value, "n", minimum=1)
    assert got == 5 and type(got) is int


@pytest.mark.parametrize(
    "value, got",
    [
        (True, "a bool"),
        (np.bool_(True), "a bool"),
        ("5", "str"),
        (5.0, "float"),
        (np.float64(5), "float64"),
        (torch.tensor(5.0), "a floating tensor"),
        (5 + 0j, "complex"),
        (None, "NoneType"),
        (torch.tensor([5]), "a tensor of shape (1,)"),
        (np.array([5]), "an array of shape (1,)"),
    ],
)
def test_integers_refuse_everything_else(value, got):
    message = refuses(lambda: _validate.integer(value, "n", minimum=1), "expected a positive integer", got)
    assert message.startswith("n=")


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.float16(0.5), np.int64(1), torch.tensor(0.5)])
def test_reals_are_accepted_in_every_numpy_and_torch_form(value):
    got = _validate.real(value, "p", low=0.0, high=1.0)
    assert type(got) is float and 0 <= got <= 1


@pytest.mark.parametrize(
    "value, got",
    [
        ("0.5", "str"),
        (True, "a bool"),
        (0.5 + 1j, "complex"),
        (np.complex128(1), "complex128"),
        (None, "NoneType"),
    ],
)
def test_reals_refuse_strings_bools_and_complex_numbers(value, got):
    refuses(lambda: _validate.real(value, "p"), "p=", "expected a finite real number", got)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
def test_reals_refuse_non_finite_values(value):
    refuses(lambda: _validate.real(value, "lr"), "lr=", "expected a finite real number")


def test_arrays_are_copied_on_the_way_in():
    caller = np.array([1.0, 2.0])
    kept = _validate.real_array(caller, "x")
    caller[0] = 99.0
    assert kept[0] == 1.0
    t = torch.tensor([1.0, 2.0])
    kept = _validate.real_array(t, "x")
    t[0] = 99.0
    assert kept[0] == 1.0


@pytest.mark.parametrize(
    "value, got",
    [
        ([[1.0], [1.0, 2.0]], "ragged"),
        (np.array([1 + 1j]), "complex numbers"),
        (np.array([True]), "booleans"),
        (np.array(["a"]), "strings"),
        (torch.ones(2, dtype=torch.bool), "dtype torch.bool"),
        (torch.empty(2, device="meta"), "meta device"),
        (torch.eye(2).to_sparse(), "sparse"),
        ([1.0, math.nan], "NaN or infinity"),
        ({}, "dict"),
    ],
)
def test_arrays_refuse_what_is_not_real_numbers(value, got):
    refuses(lambda: _validate.real_array(value, "W"), "W=", "expected", got)


def test_tensors_are_checked_against_named_axes():
    axes = ("instance", "batch", "feature")
    refuses(
        lambda: _validate.as_tensor(torch.zeros(2, 5), "x", axes),
        "x=",
        "expected a tensor of shape (instance, batch, feature)",
        "got shape (2, 5)",
    )
    refuses(lambda: _validate.as_tensor(torch.zeros(2, 0, 5), "x", axes), "x=", "empty batch axis")
    ones = _validate.as_tensor(torch.ones(1, 2, 3, dtype=torch.int64), "x", axes)
    assert ones.is_floating_point() and bool((ones == 1).all())


def test_disagreeing_tensors_name_the_axis():
    W, x = torch.zeros(2, 3, 5), torch.zeros(2, 4, 6)
    refuses(
        lambda: _validate.same_sizes(
            {"W": (W, ("instance", "hidden", "feature")), "x": (x, ("instance", "batch", "feature"))}
        ),
        "x=",
        "5 entries on the feature axis, as W has",
        "got 6",
    )


def test_non_finite_results_are_refused_naming_the_inputs():
    refuses(
        lambda: _validate.finite_result(torch.tensor([1.0, math.inf]), "forward", {"W": torch.ones(2)}),
        "forward: W=",
        "expected values small enough",
    )


def test_the_memory_guard_names_the_argument():
    refuses(
        lambda: _validate.check_memory(2**70, torch.device("cpu"), {"batch_size": 10**12}),
        "batch_size=1000000000000",
        "expected sizes that fit in memory",
    )


def test_the_work_guard_names_the_argument():
    refuses(
        lambda: _validate.check_work(1e20, {"steps": 10**12}),
        "steps=1000000000000",
        "expected a call of at most",
    )


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, name, value, got",
    [
        (dict(feature_probability="0.5"), "feature_probability", "'0.5'", "got str"),
        (dict(importance=True), "importance", "True", "got bool"),
        (dict(feature_probability=0.5 + 0.5j), "feature_probability", "(0.5+0.5j)", "complex"),
        (
            dict(feature_probability=np.array([0.5 + 0.1j, 0.5])),
            "feature_probability",
            "array(",
            "complex numbers",
        ),
        (dict(n_features=True), "n_features", "True", "a bool"),
        (dict(n_hidden="2"), "n_hidden", "'2'", "str"),
        (dict(n_instances=2.0), "n_instances", "2.0", "float"),
        (dict(importance=[1, 1, math.nan, 1, 1]), "importance", "nan", "NaN or infinity"),
        (dict(activation=None), "activation", "None", "'relu', 'linear'"),
    ],
)
def test_config_refuses_strings_bools_and_complex_numbers(kwargs, name, value, got):
    message = refuses(lambda: toy_lib.ToyModelConfig(**{**CFG, **kwargs}), got)
    names_argument_value_expectation(message, name, value)


@pytest.mark.parametrize(
    "kwargs, name, value, fragments",
    [
        (dict(model="rnn"), "model", "'rnn'", ["expected one of 'tied', 'neuron', 'abs'"]),
        (dict(model=None), "model", "None", ["expected one of 'tied', 'neuron', 'abs'"]),
        (dict(correlated=[(0, 1), (1, 2)]), "correlated", "[(0, 1), (1, 2)]",
         ["expected groups that do not overlap", "feature 1 in the group (0, 1) and in the group (1, 2)"]),
        (dict(correlated=[(0, 1)], anticorrelated=[(2, 1)]), "anticorrelated", "[(2, 1)]",
         ["expected groups that do not overlap", "feature 1 in the group (0, 1) of correlated"]),
        (dict(anticorrelated=[(3,)]), "anticorrelated", "[(3,)]",
         ["expected groups of at least two features", "got the group (3,)"]),
        (dict(correlated=[(4,)]), "correlated", "[(4,)]", ["groups of at least two features"]),
        (dict(correlated=[(0, 5)]), "correlated", "[(0, 5)]",
         ["expected feature indices from 0 to 4", "got 5 in the group (0, 5)"]),
        (dict(correlated=[(0, 0)]), "correlated", "[(0, 0)]", ["distinct features within each group"]),
        (dict(correlated=(0, 1)), "correlated", "(0, 1)", ["expected a list of groups", "the group 0"]),
        (dict(anticorrelated="01"), "anticorrelated", "'01'", ["expected a list of groups", "got str"]),
        (dict(correlated=[(0, 1.5)]), "correlated", "[(0, 1.5)]", ["feature indices", "got 1.5"]),
        (dict(dataset_size=0), "dataset_size", "0", ["expected a positive integer or None"]),
        (dict(dataset_size=2.0), "dataset_size", "2.0", ["expected a positive integer or None"]),
        (dict(dataset_size=10**15), "dataset_size", "1000000000000000", ["expected sizes that fit in memory"]),
        (dict(model="abs", value_range=(0, 1)), "value_range", "(0, 1)",
         ["expected (-1, 1) (or None) for model='abs'", "nothing to compute"]),
        (dict(value_range=(-1, 1)), "value_range", "(-1, 1)",
         ["expected (0, 1) (or None) for model='tied' with activation='relu'", "negative values"]),
        (dict(model="neuron", value_range=(-1, 1)), "value_range", "(-1, 1)", ["for model='neuron'"]),
        (dict(value_range=(0, 2)), "value_range", "(0, 2)", ["expected (0, 1) or (-1, 1)"]),
        (dict(value_range="0,1"), "value_range", "'0,1'", ["expected (0, 1) or (-1, 1)", "got str"]),
        (dict(value_range=(0, 1, 2)), "value_range", "(0, 1, 2)", ["got 3 numbers"]),
        (dict(model="neuron", activation="linear"), "activation", "'linear'", ["expected 'relu' for model='neuron'"]),
        (dict(correlated=[(0, 1)], feature_probability=np.array([[0.1, 0.2, 0.3, 0.3, 0.3]] * 2)),
         "feature_probability", "array of shape (2, 5)",
         ["equal probabilities within each correlated group", "0.1, 0.2"]),
        (dict(anticorrelated=[(0, 1, 2)], feature_probability=0.4), "feature_probability", "0.4",
         ["summing to at most 1 within each anticorrelated group", "a sum of 1.2 for the group (0, 1, 2)"]),
    ],
)  # fmt: skip
def test_config_refuses_models_and_data_it_cannot_train(kwargs, name, value, fragments):
    message = refuses(lambda: toy_lib.ToyModelConfig(**{**CFG, **kwargs}), *fragments)
    names_argument_value_expectation(message, name, value)


def test_config_stores_groups_and_ranges_in_normal_form():
    cfg = toy_lib.ToyModelConfig(
        **CFG, model="abs", correlated=[[np.int64(0), 1]], anticorrelated=np.array([[2, 3]]),
        dataset_size=np.int32(7), feature_probability=0.3,
    )  # fmt: skip
    assert cfg.value_range == (-1.0, 1.0) and cfg.correlated == ((0, 1),) and cfg.anticorrelated == ((2, 3),)
    assert type(cfg.dataset_size) is int and cfg.dataset_size == 7
    again = cfg.with_restarts(3)
    assert (again.model, again.value_range, again.correlated, again.anticorrelated, again.dataset_size) == (
        "abs",
        (-1.0, 1.0),
        ((0, 1),),
        ((2, 3),),
        7,
    )
    assert toy_lib.ToyModelConfig(activation="linear", value_range=torch.tensor([-1, 1])).value_range == (
        -1.0,
        1.0,
    )


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(correlated=[(0, 1), (1, 2)]), ["correlated=[(0, 1), (1, 2)]", "do not overlap"]),
        (dict(anticorrelated=[(2,)]), ["anticorrelated=[(2,)]", "at least two features"]),
        (dict(anticorrelated=[(0, 1, 2)]), ["feature_probability=", "a sum of 1.5"]),
        (dict(value_range=(0, 3)), ["value_range=(0, 3)", "expected (0, 1) or (-1, 1)"]),
        (dict(unit_norm="yes"), ["unit_norm='yes'", "True or False"]),
    ],
)
def test_generate_batch_refuses_bad_groups_and_ranges(kwargs, fragments):
    refuses(lambda: toy_lib.generate_batch(torch.full((2, 3), 0.5), 8, **kwargs), *fragments)


def test_train_refuses_a_batch_size_for_a_finite_data_set():
    cfg = toy_lib.ToyModelConfig(**CFG, dataset_size=20)
    message = refuses(lambda: toy_lib.train(cfg, **{**FAST, "batch_size": 16}), "expected None or 20")
    names_argument_value_expectation(message, "batch_size", "16")


def test_config_accepts_every_numeric_scalar_form_and_stores_plain_numbers():
    cfg = toy_lib.ToyModelConfig(
        n_features=np.int64(5),
        n_hidden=torch.tensor(2),
        n_instances=np.uint8(2),
        feature_probability=np.float32(0.5),
        importance=torch.tensor(2.0),
    )
    assert (cfg.n_features, cfg.n_hidden, cfg.n_instances) == (5, 2, 2)
    assert all(type(n) is int for n in (cfg.n_features, cfg.n_hidden, cfg.n_instances))
    assert cfg.probability_matrix().shape == (2, 5) and np.all(cfg.probability_matrix() == 0.5)
    assert np.all(cfg.importance_matrix() == 2.0)


def test_config_does_not_change_when_the_caller_edits_their_array():
    prob = np.array([0.1, 0.9])
    importance = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6])
    cfg = toy_lib.ToyModelConfig(**CFG, feature_probability=prob, importance=importance)
    prob[0] = 0.5
    importance[0] = 100.0
    np.testing.assert_array_equal(cfg.probability_matrix()[:, 0], [0.1, 0.9])
    assert cfg.importance_matrix()[0, 0] == 1.0
    with pytest.raises(ValueError):  # and what it keeps is read-only
        cfg.feature_probability[0] = 0.5


def test_config_too_large_for_memory_is_refused_up_front():
    start = time.perf_counter()
    message = refuses(
        lambda: toy_lib.ToyModelConfig(n_features=10**9, n_hidden=2, n_instances=10**9),
        "expected sizes that fit in memory",
    )
    names_argument_value_expectation(message, "n_instances", "1000000000")
    assert time.perf_counter() - start < 1.0


def test_with_restarts_names_its_argument():
    refuses(lambda: toy_lib.ToyModelConfig(**CFG).with_restarts(0), "k=0: expected a positive integer")


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_an_integer_tensor_of_ones_means_always_active(dtype):
    x = toy_lib.generate_batch(
        torch.ones(2, 3, dtype=dtype), 1000, generator=torch.Generator().manual_seed(0)
    )
    assert x.is_floating_point()
    assert (x > 0).float().mean() > 0.999  # every entry active (a uniform value is 0 with prob ~0)


def test_generate_batch_accepts_numpy_and_lists():
    for prob in (np.full((2, 3), 0.5), [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]):
        assert toy_lib.generate_batch(prob, 8).shape == (2, 8, 3)


@pytest.mark.parametrize(
    "prob, batch_size, fragments",
    [
        (torch.full((2, 3), 1.5), 8, ["feature_probability=", "expected probabilities in [0, 1]", "1.5"]),
        (torch.full((2, 3), math.nan), 8, ["feature_probability=", "expected finite numbers", "NaN"]),
        (
            torch.full((2, 3), 0.5, dtype=torch.complex64),
            8,
            ["feature_probability=", "expected a real tensor"],
        ),
        (torch.full((6,), 0.5), 8, ["feature_probability=", "(instance, feature)", "shape (6,)"]),
        (torch.full((0, 3), 0.5), 8, ["feature_probability=", "empty instance axis"]),
        (torch.full((2, 3), 0.5), 0, ["batch_size=0: expected a positive integer"]),
        (torch.full((2, 3), 0.5), 8.0, ["batch_size=8.0: expected a positive integer", "float"]),
        (torch.full((2, 3), 0.5), 10**12, ["batch_size=1000000000000", "expected sizes that fit in memory"]),
    ],
)
def test_generate_batch_refuses_bad_input(prob, batch_size, fragments):
    refuses(lambda: toy_lib.generate_batch(prob, batch_size), *fragments)


def test_generate_batch_checks_the_generator():
    refuses(
        lambda: toy_lib.generate_batch(torch.full((2, 3), 0.5), 8, generator=np.random.default_rng(0)),
        "generator=",
        "expected a torch.Generator or None",
    )


# --------------------------------------------------------------------------- model


def _model_inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 5, generator=gen), torch.zeros(2, 5), torch.rand(2, 8, 5, generator=gen)


@pytest.mark.parametrize(
    "which, bad, fragments",
    [
        ("x", torch.zeros(3, 8, 5), ["x=", "2 entries on the instance axis, as W has", "got 3"]),
        ("x", torch.zeros(2, 8, 4), ["x=", "5 entries on the feature axis, as W has", "got 4"]),
        ("b", torch.zeros(2, 6), ["b=", "5 entries on the feature axis", "got 6"]),
        (
            "W",
            torch.zeros(3, 5),
            ["W=", "expected a tensor of shape (instance, hidden, feature)", "got shape (3, 5)"],
        ),
        ("x", torch.zeros(2, 0, 5), ["x=", "empty batch axis"]),
        ("b", torch.full((2, 5), math.nan), ["b=", "expected finite numbers", "NaN"]),
        ("x", "x", ["x='x'", "expected a real tensor"]),
    ],
)
def test_forward_names_the_argument_and_the_axis(which, bad, fragments):
    W, b, x = _model_inputs()
    args = {"W": W, "b": b, "x": x, which: bad}
    refuses(lambda: toy_lib.forward(**args), *fragments)


def test_forward_refuses_an_unknown_activation():
    W, b, x = _model_inputs()
    refuses(
        lambda: toy_lib.forward(W, b, x, activation="tanh"),
        "activation='tanh': expected one of 'relu', 'linear'",
    )


def test_forward_computes_mixed_dtypes_in_the_wider_one_and_keeps_gradients():
    W, b, x = _model_inputs()
    W = W.double().requires_grad_()
    out = toy_lib.forward(W, b, x.numpy())  # float32 b, NumPy x
    assert out.dtype == torch.float64
    toy_lib.loss_per_instance(x, out, torch.ones(2, 5)).sum().backward()
    assert W.grad is not None and torch.isfinite(W.grad).all()


def test_forward_refuses_tensors_on_another_device():
    W, b, x = _model_inputs()
    refuses(lambda: toy_lib.hidden(W, x.to("meta")), "x=", "meta device")


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(x_hat=torch.zeros(2, 8, 6)), ["x_hat=", "5 entries on the feature axis, as x has", "got 6"]),
        (dict(importance=torch.zeros(3, 5)), ["importance=", "2 entries on the instance axis", "got 3"]),
        (dict(importance=-torch.ones(2, 5)), ["importance=", "expected importances >= 0"]),
        (
            dict(x=torch.full((2, 8, 5), 1e30)),
            ["loss_per_instance: x=", "expected values small enough", "float32"],
        ),
    ],
)
def test_loss_per_instance_names_the_argument(kwargs, fragments):
    args = {"x": torch.rand(2, 8, 5), "x_hat": torch.rand(2, 8, 5), "importance": torch.ones(2, 5), **kwargs}
    refuses(lambda: toy_lib.loss_per_instance(**args), *fragments)


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(n_instances=0), ["n_instances=0: expected a positive integer"]),
        (dict(n_hidden=2.0), ["n_hidden=2.0: expected a positive integer"]),
        (dict(dtype=torch.int64), ["dtype=torch.int64: expected a floating torch dtype"]),
        (dict(device="tpu"), ["device='tpu': expected"]),
        (dict(generator=3), ["generator=3: expected a torch.Generator or None"]),
        (
            dict(n_instances=10**6, n_features=10**6),
            ["n_instances=1000000", "expected sizes that fit in memory"],
        ),
    ],
)
def test_init_weights_refuses_bad_input(kwargs, fragments):
    args = {"n_instances": 2, "n_hidden": 2, "n_features": 5, **kwargs}
    refuses(lambda: toy_lib.init_weights(**args), *fragments)


def test_toy_model_checks_its_weights():
    refuses(
        lambda: toy_lib.ToyModel(torch.zeros(2, 5)), "W=", "(instance, hidden, feature)", "got shape (2, 5)"
    )
    refuses(lambda: toy_lib.ToyModel(torch.zeros(2, 3, 5), torch.zeros(2, 4)), "b=", "feature axis", "got 4")
    refuses(lambda: toy_lib.ToyModel(torch.zeros(2, 3, 5), activation="gelu"), "activation='gelu'")
    model = toy_lib.ToyModel(torch.ones(2, 3, 5, dtype=torch.int64))
    assert model.W.dtype == torch.float32 and model.b.shape == (2, 5)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "kwargs, name, value, expected",
    [
        (dict(device="cuda"), "device", "'cuda'", "'cpu', 'cuda'"),
        (dict(device="tpu"), "device", "'tpu'", "'cpu', 'cuda'"),
        (dict(device=0), "device", "0", "'cpu', 'cuda'"),
        (dict(seed=1.5), "seed", "1.5", "an integer from 0 to 2**63 - 1"),
        (dict(seed=None), "seed", "None", "an integer from 0 to 2**63 - 1"),
        (dict(seed=2**64 - 1), "seed", str(2**64 - 1), "an integer from 0 to 2**63 - 1"),
        (dict(seed=-1), "seed", "-1", "an integer from 0 to 2**63 - 1"),
        (dict(steps=np.float64(5)), "steps", "5.0", "a positive integer"),
        (dict(lr="0.01"), "lr", "'0.01'", "a positive finite number"),
        (dict(lr=True), "lr", "True", "a positive finite number"),
        (dict(progress="yes"), "progress", "'yes'", "True, False or None"),
        (dict(restarts=0), "restarts", "0", "a positive integer"),
        (dict(config={"n_features": 5}), "config", "{'n_features': 5}", "a ToyModelConfig"),
    ],
)
def test_train_checks_every_argument_before_it_starts(kwargs, name, value, expected):
    if name == "device" and value == "'cuda'" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = toy_lib.ToyModelConfig(**CFG)
    args = {**FAST, **kwargs}
    config = args.pop("config", cfg)
    message = refuses(lambda: toy_lib.train(config, **args), expected)
    names_argument_value_expectation(message, name, value)


def test_train_accepts_numpy_and_torch_scalars():
    cfg = toy_lib.ToyModelConfig(**CFG)
    result = toy_lib.train(
        cfg, steps=np.int64(5), batch_size=torch.tensor(16), lr=np.float32(1e-3), seed=np.uint64(3),
        eval_batch_size=np.int32(16), device="cpu", progress=False,
    )  # fmt: skip
    assert result.recipe["steps"] == 5 and type(result.recipe["steps"]) is int
    assert torch.isfinite(result.W).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(eval_batch_size=10**12), "eval_batch_size"),
        (dict(batch_size=10**12), "batch_size"),
        (dict(steps=10**13), "steps"),
        (dict(restarts=10**12), "restarts"),
    ],
)
def test_train_refuses_runs_too_large_immediately(kwargs, name):
    cfg = toy_lib.ToyModelConfig(**CFG)
    start = time.perf_counter()
    message = refuses(lambda: toy_lib.train(cfg, **{**FAST, **kwargs}), "expected")
    assert time.perf_counter() - start < 1.0, "refused only after starting the work"
    names_argument_value_expectation(message, name, str(next(iter(kwargs.values()))))
    assert "fit in memory" in message or "work units" in message


def test_a_diverging_run_names_the_setting_the_restart_and_the_step():
    cfg = toy_lib.ToyModelConfig(**CFG, feature_probability=[0.5, 1.0])
    with pytest.raises(TrainingDiverged) as info:
        toy_lib.train(cfg, **{**FAST, "steps": 20, "restarts": 3}, optimizer="adam", lr=1e30)
    err = info.value
    assert 0 <= err.instance < 6 and (err.setting, err.restart) == divmod(err.instance, 3)
    assert 0 <= err.step < 20 and not math.isfinite(err.value)
    message = str(err)
    assert f"setting {err.setting} (restart {err.restart} of 3" in message
    assert f"at step {err.step} of 20" in message and "lr=1e+30" in message and "smaller lr" in message


def test_adamw_with_a_learning_rate_that_flips_the_weights_is_refused_up_front():
    cfg = toy_lib.ToyModelConfig(**CFG)
    message = refuses(lambda: toy_lib.train(cfg, **FAST, lr=1e30), "expected lr * weight_decay < 1")
    names_argument_value_expectation(message, "lr", "1e+30")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("linear", 15, 10), ["step=15: expected an integer from 0 to 9"]),
        (("linear", 10, 10), ["step=10: expected an integer from 0 to 9"]),
        (("linear", -1, 10), ["step=-1"]),
        (("linear", 5, 0), ["steps=0: expected a positive integer"]),
        (("step", 5, 10), ["schedule='step': expected one of 'constant'"]),
        (("linear", 5.0, 10), ["step=5.0", "float"]),
    ],
)
def test_lr_factor_refuses_a_step_outside_the_run(args, fragments):
    refuses(lambda: toy_lib.lr_factor(*args), *fragments)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "warmup_cosine"])
def test_lr_factor_lies_in_zero_one_over_the_run(schedule):
    # (the old linear schedule returned -0.5 at step 15 of 10: now refused, and in [0, 1] within)
    factors = [toy_lib.lr_factor(schedule, s, 40) for s in range(40)]
    assert all(0.0 <= f <= 1.0 for f in factors)


def test_optimise_checks_its_arguments_and_the_gradients():
    def step_fn(step, loss_out):
        loss_out.fill_(1.0)
        return [torch.ones(2, 3)]

    base = dict(steps=3, lr=1e-3, schedule="constant", weight_decay=0.0, progress=False, caller="mine")
    refuses(lambda: optimise([], step_fn, **base), "params=[]: expected a non-empty list of tensors")
    refuses(
        lambda: optimise([torch.zeros(2, 3), torch.zeros(3, 3)], step_fn, **base),
        "params[1]=",
        "2 entries on the instance axis",
    )
    refuses(lambda: optimise([torch.zeros(2, 3)], 5, **base), "step_fn=5: expected a function")
    refuses(lambda: optimise([torch.zeros(2, 3)], step_fn, **{**base, "weight_decay": -1}), "weight_decay=-1")
    refuses(
        lambda: optimise([torch.zeros(2, 4)], step_fn, **base),
        "step_fn's gradient 0=",
        "expected a tensor of shape (2, 4)",
    )
    history = optimise([torch.zeros(2, 3)], step_fn, **base)
    assert history.shape == (3, 2)


def test_optimise_stops_on_a_nan_loss_naming_the_instance_and_the_step():
    def step_fn(step, loss_out):
        loss_out.fill_(1.0)
        if step >= 4:
            loss_out[1] = math.nan
        return [torch.ones(2, 3)]

    with pytest.raises(TrainingDiverged) as info:
        optimise([torch.zeros(2, 3)], step_fn, steps=10, lr=1e-3, schedule="constant", weight_decay=0.0,
                 progress=False, caller="mine")  # fmt: skip
    assert (info.value.step, info.value.instance) == (4, 1)
    assert "mine: the loss of instance 1 became nan at step 4" in str(info.value)


def test_pick_device_refuses_devices_this_machine_lacks():
    refuses(lambda: toy_lib.pick_device("tpu"), "device='tpu'", "expected None (pick the best available)")
    refuses(lambda: toy_lib.pick_device("cuda:7"), "device='cuda:7'")
    assert toy_lib.pick_device("cpu:0") == torch.device("cpu")


# --------------------------------------------------------------------------- cache


def test_the_cache_folder_expands_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TOY_LIB_CACHE_DIR", "~/results")
    assert toy_lib.cache_dir() == tmp_path / "results"
    assert "~" not in str(toy_lib.cache_dir())


def test_the_cache_key_normalises_arguments_before_hashing():
    cfg = toy_lib.ToyModelConfig(**CFG)
    key = _cache_key(cfg, steps=5, lr=0.5, seed=1, library="x")
    assert _cache_key(cfg, steps=np.int64(5), lr=0.5, seed=1, library="x") == key
    assert _cache_key(cfg, steps=torch.tensor(5), lr=np.float64(0.5), seed=np.int32(1), library="x") == key
    assert _cache_key(cfg, steps=5, lr=0.5, seed=1, device="cpu:0", library="x") == _cache_key(
        cfg, steps=5, lr=0.5, seed=1, device="cpu", library="x"
    )
    assert _cache_key(cfg, steps=6, lr=0.5, seed=1, library="x") != key
    config_np = toy_lib.ToyModelConfig(
        n_features=np.int64(5), n_hidden=np.int32(2), n_instances=torch.tensor(2)
    )
    assert _cache_key(config_np, steps=5, lr=0.5, seed=1, library="x") == key


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(steps=np.float64(5)), ["steps=np.float64(5.0): expected a positive integer"]),
        (dict(device="tpu"), ["device='tpu'"]),
        (dict(stepz=5), ["stepz=5: expected an argument of toy_lib.train"]),
        (dict(config=CFG), ["config=", "expected a ToyModelConfig"]),
    ],
)
def test_cached_train_refuses_what_train_refuses_before_training(kwargs, fragments, tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_LIB_CACHE_DIR", str(tmp_path))
    kwargs = dict(kwargs)
    config = kwargs.pop("config", toy_lib.ToyModelConfig(**CFG))
    refuses(lambda: toy_lib.cached_train(config, **kwargs), *fragments)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", ["feature_norms", "feature_dimensionality", "superposition_score",
                                  "dimensions_per_feature", "represented"])  # fmt: skip
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_metrics_refuse_non_finite_weights(name, bad):
    W = np.array([[1.0, bad, 0.0], [0.0, 0.0, 1.0]])
    refuses(lambda: getattr(metrics, name)(W), "W=", "expected finite numbers", "NaN or infinity")


def test_metrics_of_an_all_zero_model_have_documented_finite_answers():
    W = np.zeros((2, 5))
    assert metrics.dimensions_per_feature(W) == 0.0
    np.testing.assert_array_equal(metrics.feature_dimensionality(W), 0.0)
    np.testing.assert_array_equal(metrics.superposition_score(W), 0.0)
    np.testing.assert_array_equal(metrics.feature_norms(W), 0.0)
    np.testing.assert_array_equal(metrics.feature_angles_2d(W), 0.0)
    assert metrics.angular_gaps_2d(W).size == 0
    assert not metrics.represented(W).any()


@pytest.mark.parametrize(
    "call, fragments",
    [
        (
            lambda: metrics.feature_dimensionality(np.ones(3)),
            ["W=", "(..., hidden, feature)", "got shape (3,)"],
        ),
        (lambda: metrics.feature_norms(np.zeros((0, 5))), ["W=", "at least one hidden dimension"]),
        (lambda: metrics.feature_angles_2d(np.ones((3, 5))), ["W=", "expected 2 hidden dimensions", "got 3"]),
        (lambda: metrics.represented(np.ones((2, 5)), threshold=-1), ["threshold=-1: expected"]),
        (lambda: metrics.angular_gaps_2d(np.ones((2, 5)), min_norm="0.5"), ["min_norm='0.5'"]),
        (lambda: metrics.superposition_score(np.full((2, 5), 1e200)), ["superposition_score: W=", "float64"]),
    ],
)
def test_metrics_refuse_bad_input(call, fragments):
    refuses(call, *fragments)


def test_metrics_do_not_depend_on_the_scale_for_extreme_finite_weights():
    angles = 2 * np.pi * np.arange(5) / 5
    pentagon = np.stack([np.cos(angles), np.sin(angles)])
    for scale in (1e-300, 1e-100, 1.0, 1e100, 1e200):
        np.testing.assert_allclose(metrics.feature_norms(scale * pentagon), scale, rtol=1e-12)
        if scale > 1e-6:  # below ZERO_NORM a feature is not learned
            np.testing.assert_allclose(metrics.feature_dimensionality(scale * pentagon), 0.4, rtol=1e-12)
            np.testing.assert_allclose(metrics.angular_gaps_2d(scale * pentagon, min_norm=0), 72, rtol=1e-9)


# --------------------------------------------------------------------------- exercise checkers


def test_a_checker_says_which_case_failed_when_the_function_raises():
    def broken(W, b, x):
        return W[5]  # IndexError inside the learner's code

    with pytest.raises(AssertionError) as info:
        exercises.check_forward(broken)
    message = str(info.value)
    assert "check_forward: for W (3, 2, 5), b (3, 5), x (3, 8, 5) your function raised IndexError" in message
    assert "expected it to return an (instance, batch, feature) tensor" in message
    assert isinstance(info.value.__cause__, IndexError)  # the original exception is chained


def test_a_checker_reports_nan_as_nan():
    with pytest.raises(AssertionError) as info:
        exercises.check_forward(lambda W, b, x: toy_lib.forward(W, b, x) * math.nan)
    message = str(info.value)
    assert "your output is NaN at index (0, 0, 0)" in message
    assert "differs" not in message and "nan" not in message.split("Hint")[0].replace("NaN", "")


@pytest.mark.parametrize(
    "checker, wrong",
    [
        (exercises.check_loss, lambda x, xh, imp: torch.full((3,), math.inf)),
        (exercises.check_feature_dimensionality, lambda W: torch.full((W.shape[1],), math.nan)),
        (exercises.check_generate_batch, lambda p, n: torch.full((p.shape[0], n, p.shape[1]), math.nan)),
    ],
)
def test_every_checker_reports_a_non_finite_output(checker, wrong):
    with pytest.raises(AssertionError, match=r"your output is (NaN|infinite) at index"):
        checker(wrong)


def test_checkers_refuse_a_bad_seed():
    refuses(lambda: exercises.check_forward(toy_lib.forward, seed=-1), "seed=-1: expected an integer")
    refuses(lambda: exercises.check_generate_batch(toy_lib.generate_batch, batch_size=10), "batch_size=10")


# --------------------------------------------------------------------------- no NaN or inf from finite input


def _finite(result) -> bool:
    if isinstance(result, torch.Tensor):
        return bool(torch.isfinite(result.detach()).all()) if result.is_floating_point() else True
    if isinstance(result, np.ndarray):
        return bool(np.all(np.isfinite(result))) if result.dtype.kind == "f" else True
    if isinstance(result, (list, tuple)):
        return all(_finite(r) for r in result)
    if isinstance(result, dict):
        return all(_finite(r) for r in result.values())
    if isinstance(result, float):
        return math.isfinite(result)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):  # TrainResult, SAEResult, ...
        return all(_finite(getattr(result, f.name)) for f in dataclasses.fields(result))
    return True


SCALES = {"zeros": 0.0, "tiny": 1e-30, "unit": 1.0, "large": 1e3}
_G = torch.Generator().manual_seed(0)
_W, _B, _X = (
    torch.randn(2, 2, 5, generator=_G),
    torch.randn(2, 5, generator=_G),
    torch.rand(2, 8, 5, generator=_G),
)
#: SAE data: activations (N, d_in), latents (instance, batch, d_sae), directions (n, d)
_H = torch.randn(64, 2, generator=_G)
_F = torch.relu(torch.randn(2, 8, 5, generator=_G))
_DIRS = torch.randn(5, 2, generator=_G)
SAE_FAST = dict(steps=5, batch_size=16, eval_batch_size=16, device="cpu", progress=False)
SAE_SETTINGS = {"relu": {}, "topk": dict(k=2, aux_k=2), "batchtopk": dict(k=2), "gated": {}, "jumprelu": {}}
SAE_SETTINGS["matryoshka"] = dict(k=2, prefix_widths=(2, 5))  # beyond SAEs
#: metrics of SAEs (they take activations or directions, not a toy model's W)
SAE_METRICS = {
    "l0": lambda s: metrics.l0(s * _F),
    "mse": lambda s: metrics.mse(_X, s * _X),
    "explained_variance": lambda s: metrics.explained_variance(_X, s * _X),
    "firing_rates": lambda s: metrics.firing_rates(s * _F),
    "dead_fraction": lambda s: metrics.dead_fraction(s * _F),
    "shrinkage": lambda s: metrics.shrinkage(_X, s * _X),
    "norm_ratio": lambda s: metrics.norm_ratio(_X, s * _X),
    "cosine_matrix": lambda s: metrics.cosine_matrix(s * _DIRS, _W.transpose(1, 2)),
    "max_cosines": lambda s: metrics.max_cosines(s * _DIRS, _W.transpose(1, 2)),
    "mmcs": lambda s: metrics.mmcs(_DIRS, s * _W.transpose(1, 2)),
    "recovered_fraction": lambda s: metrics.recovered_fraction(_DIRS, s * _W.transpose(1, 2)),
    "mcc": lambda s: metrics.mcc(s * _DIRS, _W.transpose(1, 2)),
    "matching": lambda s: metrics.matching(s * _DIRS, _W.transpose(1, 2)),
}
# evaluating part B: seed stability, components along directions, absorption
SAE_METRICS.update(
    {
        "seed_stability": lambda s: metrics.seed_stability(s * _W.transpose(1, 2), _W.transpose(1, 2)),
        "components": lambda s: metrics.components(s * _W.transpose(1, 2), _DIRS),
        "absorption_fraction": lambda s: metrics.absorption_fraction(s * _F, torch.tensor([True, False] * 4)),
    }
)


def _sae(s, architecture="relu"):
    cfg = toy_lib.SAEConfig(2, 5, n_instances=2, architecture=architecture, **SAE_SETTINGS[architecture])
    return toy_lib.train_sae(cfg, s * _H, **SAE_FAST)


@functools.cache
def _trained_sae():
    return _sae(1.0)


@functools.cache
def _real():
    """The real model, the corpus, and a few of its activations (what scripts/setup.py installs)."""
    model, corpus = real_model.load_model(), real_model.load_corpus()
    acts = real_model.extract_activations(model, corpus, n_tokens=40, context=16, progress=False)
    return model, corpus, acts


def _in_a_fresh_cache(fn):
    folder, before = tempfile.mkdtemp(prefix="finite_"), os.environ.get("TOY_LIB_CACHE_DIR")
    os.environ["TOY_LIB_CACHE_DIR"] = folder
    try:
        return fn()
    finally:
        if before is None:
            del os.environ["TOY_LIB_CACHE_DIR"]
        else:
            os.environ["TOY_LIB_CACHE_DIR"] = before
        shutil.rmtree(folder, ignore_errors=True)


#: Metrics of two arrays: inputs against reconstructions, and true against learned directions.
_INPUT_PAIRS = ("mse", "explained_variance", "shrinkage", "norm_ratio")
_DIRECTION_PAIRS = ("cosine_matrix", "max_cosines", "mmcs", "recovered_fraction", "mcc", "matching")

PUBLIC_CALLS = {
    "hidden": lambda s: toy_lib.hidden(s * _W, _X),
    "forward": lambda s: toy_lib.forward(s * _W, s * _B, _X),
    "forward (linear)": lambda s: toy_lib.forward(s * _W, s * _B, s * _X, activation="linear"),
    "neuron_forward": lambda s: toy_lib.neuron_forward(s * _W, s * _B, _X),
    "NeuronModel": lambda s: toy_lib.NeuronModel(s * _W, s * _B)(_X),
    "abs_forward": lambda s: toy_lib.abs_forward(s * _W, s * _W.transpose(1, 2), s * _B, 2 * _X - 1),
    "AbsModel": lambda s: toy_lib.AbsModel(s * _W, s * _W.transpose(1, 2), s * _B)(2 * _X - 1),
    "generate_batch (groups, signed, unit norm)": lambda s: toy_lib.generate_batch(
        torch.full((2, 5), min(s, 1.0) / 2),
        64,
        correlated=[(0, 1)],
        anticorrelated=[(2, 3)],
        value_range=(-1, 1),
        unit_norm=True,
    ),  # fmt: skip
    "loss_per_instance": lambda s: toy_lib.loss_per_instance(_X, s * _X, torch.full((2, 5), s)),
    "ToyModel": lambda s: toy_lib.ToyModel(s * _W, s * _B)(_X),
    "generate_batch": lambda s: toy_lib.generate_batch(torch.full((2, 5), min(s, 1.0)), 64),
    "init_weights": lambda s: toy_lib.init_weights(2, 2, 5),
    "lr_factor": lambda s: [
        toy_lib.lr_factor(k, 0, 1) for k in ("constant", "linear", "cosine", "warmup_cosine")
    ],
    "train": lambda s: toy_lib.train(
        toy_lib.ToyModelConfig(**CFG, feature_probability=min(s, 1.0), importance=s), **FAST
    ),
    **{
        f"train ({name})": (
            lambda s, kind=kind: toy_lib.train(
                toy_lib.ToyModelConfig(**CFG, feature_probability=min(s, 1.0) / 2, importance=s, **kind),
                **{**FAST, "batch_size": None},
            )
        )
        for name, kind in {
            "neuron": dict(model="neuron"),
            "abs": dict(model="abs"),
            "groups": dict(correlated=[(0, 1)], anticorrelated=[(2, 3)]),
            "finite": dict(dataset_size=8),
        }.items()
    },
    **{
        f"metrics.{name}": (lambda s, name=name: getattr(metrics, name)(s * _W.double()))
        for name in metrics.__all__
        if callable(getattr(metrics, name)) and name not in SAE_METRICS
    },
    **{f"metrics.{name} (SAE)": call for name, call in SAE_METRICS.items()},
    **{f"train_sae ({a})": (lambda s, a=a: _sae(s, a)) for a in SAE_SETTINGS},
    "train_sae (toy model)": lambda s: toy_lib.train_sae(
        toy_lib.SAEConfig(2, 5, n_instances=2),
        toy_lib.train(toy_lib.ToyModelConfig(**CFG, importance=max(s, 1e-30)), **FAST),
        **SAE_FAST,
    ),
    "cached_train_sae": lambda s: _in_a_fresh_cache(
        lambda: toy_lib.cached_train_sae(toy_lib.SAEConfig(2, 5, n_instances=2), s * _H, **SAE_FAST)
    ),
    "SAEResult.encode": lambda s: _trained_sae().encode(s * _H),
    "SAEResult.decode": lambda s: _trained_sae().decode(s * _F),
    "SAEResult.reconstruct": lambda s: _trained_sae().reconstruct(s * _H),
    "real_model.hidden_states": lambda s: real_model.hidden_states(
        _real()[0], _real()[2].windows[:2], layer=3
    ),
    "real_model.embed": lambda s: real_model.embed(
        _real()[0], ["It is a truth universally acknowledged.", ""]
    ),
    "real_model.extract_activations": lambda s: _real()[2],
    "cached_activations": lambda s: _in_a_fresh_cache(
        lambda: toy_lib.cached_activations(_real()[0], _real()[1], n_tokens=20, context=16, progress=False)
    ),
    "real_model.top_contexts": lambda s: [
        c.activation
        for c in real_model.top_contexts(s * _real()[2].acts[:, 0].float().abs(), _real()[2], k=3)
    ],
}


# The plateau helpers of feature dimensionality take dimensionalities (and a mask), not weights.
_D = lambda s: metrics.feature_dimensionality(s * _W.double())  # noqa: E731
PUBLIC_CALLS.update(
    {
        "metrics.nearest_plateau": lambda s: metrics.nearest_plateau(_D(s)),
        "metrics.near_plateau": lambda s: metrics.near_plateau(_D(s)),
        "metrics.plateau_fraction": lambda s: metrics.plateau_fraction(_D(s)),
        "metrics.longest_run": lambda s: metrics.longest_run(metrics.near_plateau(_D(s)).ravel()),
    }
)


# toy_lib.evaluation ("Evaluating SAEs", part A): a toy model, SAEs on its h, features x.
@functools.cache
def _toy_and_saes():
    toy = toy_lib.train(toy_lib.ToyModelConfig(5, 2, feature_probability=0.3), steps=20, device="cpu")
    return toy, toy_lib.train_sae(toy_lib.SAEConfig(2, 5, n_instances=2), toy, **SAE_FAST)


_XE = torch.rand(16, 5, generator=_G)
PUBLIC_CALLS.update(
    {
        "evaluation.pareto_front": lambda s: toy_lib.evaluation.pareto_front(s * _XE[:, 0], s * _XE[:, 1]),
        "evaluation.spliced_losses": lambda s: toy_lib.evaluation.spliced_losses(*_toy_and_saes(), s * _XE),
        "evaluation.loss_recovered": lambda s: toy_lib.evaluation.loss_recovered(
            *_toy_and_saes(), (1 + s) * _XE
        ),
        "evaluation.intervene": lambda s: toy_lib.evaluation.intervene(*_toy_and_saes(), _XE, 0, s),
    }
)


# beyond SAEs: the transcoder (reads _H, predicts a ReLU of it), trained and applied
def _transcoder(s):
    cfg = toy_lib.SAEConfig(2, 5, n_instances=2, l1_coefficient=0.1)
    r = toy_lib.train_transcoder(
        cfg,
        s * _H,
        torch.relu(s * _H @ _H[:2].T),
        **{k: v for k, v in SAE_FAST.items() if k != "eval_batch_size"},
    )
    return [r.final_loss, r.final_mse, r.predict(s * _H)]


PUBLIC_CALLS["train_transcoder"] = _transcoder


def test_the_finiteness_test_covers_the_public_api():
    covered = {name.split(" ")[0].removeprefix("metrics.") for name in PUBLIC_CALLS}
    functions = {
        n
        for n in toy_lib.__all__
        if callable(getattr(toy_lib, n)) and not isinstance(getattr(toy_lib, n), type)
    }
    functions |= {"ToyModel", "SAEResult.encode", "SAEResult.decode", "SAEResult.reconstruct"}
    functions -= {"cached_train", "cache_dir", "pick_device"}  # train's result; a path; a device
    functions |= {n for n in metrics.__all__ if callable(getattr(metrics, n))}
    # the real model's functions that compute numbers (the others return the model, the corpus,
    # paths, token ids, HTML)
    functions |= {
        f"real_model.{n}"
        for n in real_model.__all__
        if callable(getattr(real_model, n)) and not isinstance(getattr(real_model, n), type)
    } - {
        f"real_model.{n}"
        for n in ("load_model", "load_corpus", "model_path", "corpus_path", "tokenize", "corpus_windows")
        + ("feature_browser_html",)
    }
    assert functions <= covered, functions - covered


@pytest.mark.parametrize("scale", list(SCALES.values()), ids=list(SCALES))
@pytest.mark.parametrize("name", list(PUBLIC_CALLS))
def test_no_public_function_returns_nan_or_inf_for_finite_input(name, scale):
    assert _finite(PUBLIC_CALLS[name](scale)), f"{name} returned NaN or infinity at scale {scale}"


def test_metrics_refuse_weights_whose_overlaps_cannot_fit_in_memory():
    W = np.zeros((2, 200_000))  # the (feature, feature) overlaps would take 320 GB
    refuses(
        lambda: metrics.feature_dimensionality(W),
        "W=",
        "features=200000",
        "expected sizes that fit in memory",
    )
    assert metrics.feature_norms(W).shape == (200_000,)  # no overlaps needed
