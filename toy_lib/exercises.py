"""Checkers for the book's coding exercises.

Each ``check_*`` function takes the learner's function, runs it on random inputs, and compares
the result with toy_lib's own implementation (or with the statistics the result must have, for
random data). It raises ``AssertionError`` with a message that says what went wrong, and where
it can, which common mistake produces that result; otherwise it prints one line that says the
function passed. A checker never modifies its argument and is quick (well under a second).

    >>> from toy_lib import exercises
    >>> exercises.check_forward(toy_lib.forward)
    check_forward: your function passed (3 cases, max difference 0.0e+00)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import metrics
from .data import generate_batch
from .model import forward, loss_per_instance

__all__ = [
    "check_generate_batch",
    "check_forward",
    "check_loss",
    "check_feature_dimensionality",
]


def _fail(checker: str, message: str, hint: str | None = None) -> AssertionError:
    text = f"{checker}: {message}"
    if hint:
        text += f"\nHint: {hint}"
    return AssertionError(text)


def _as_numpy(value, checker: str, what: str) -> np.ndarray:
    """The learner's return value as a float64 array, or a clear failure."""
    if value is None:
        raise _fail(
            checker,
            f"your function returned None: expected {what}.",
            "did you forget the `return` statement?",
        )
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().double().numpy()
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _fail(
            checker, f"could not read your return value {type(value).__name__} as numbers: expected {what}."
        ) from err


def _call(checker: str, fn: Callable, *args):
    if not callable(fn):
        raise _fail(checker, f"expected a function, got {type(fn).__name__}.")
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise _fail(checker, "your function raised NotImplementedError: fill in the TODO first.") from err


def _check_shape(checker: str, got: np.ndarray, expected: tuple, axes: str) -> None:
    if got.shape != tuple(expected):
        raise _fail(
            checker, f"your function returned shape {got.shape}: expected {tuple(expected)}, that is {axes}."
        )


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


# --------------------------------------------------------------------------- data


def check_generate_batch(fn: Callable, *, batch_size: int = 20_000, seed: int = 0) -> None:
    """Check a learner's ``fn(feature_probability, batch_size) -> x``.

    ``feature_probability`` is an ``(instance, feature)`` tensor; ``x`` must be an
    ``(instance, batch, feature)`` tensor in which each entry is independently non-zero with
    its feature's probability and, when non-zero, uniform on [0, 1]. The data are random, so
    the checker compares statistics (activation rates, the mean and spread of the non-zero
    values, how often two features are active together) with what they must be, within
    tolerances of five standard deviations or more, which a correct function fails by chance
    in fewer than one run in 100,000. The checker seeds torch's global random number generator
    (so a result is reproducible) and restores its state afterwards.

    Raises:
        AssertionError: naming the statistic that is off and a likely cause.
    """
    name = "check_generate_batch"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _check_generate_batch(fn, batch_size, name)


def _check_generate_batch(fn: Callable, batch_size: int, name: str) -> None:
    prob = torch.tensor(
        [
            [0.0, 1.0, 0.5, 0.1, 0.9, 0.3],
            [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
            [1.0, 0.0, 0.05, 0.6, 0.0, 1.0],
        ]
    )
    n_inst, n_feat = prob.shape
    x = _as_numpy(_call(name, fn, prob, batch_size), name, "an (instance, batch, feature) tensor")
    _check_shape(name, x, (n_inst, batch_size, n_feat), "(instance, batch, feature)")
    if not np.all(np.isfinite(x)):
        raise _fail(name, "your batch contains NaN or infinite values.")
    if x.min() < 0 or x.max() > 1:
        raise _fail(
            name,
            f"your values range from {x.min():.3g} to {x.max():.3g}: every entry must lie in [0, 1].",
            "an active feature takes a value drawn uniformly from [0, 1] "
            "(torch.rand), an inactive one is exactly 0.",
        )
    active = x != 0
    p = prob.numpy()
    rate = active.mean(axis=1)  # (instance, feature)
    for i in range(n_inst):
        for f in range(n_feat):
            if p[i, f] == 0 and rate[i, f] > 0:
                raise _fail(
                    name,
                    f"feature {f} of instance {i} has probability 0 but is non-zero in "
                    f"{rate[i, f]:.1%} of the batch.",
                    "compare a uniform random number with feature_probability[i, f] for "
                    "each entry; with probability 0 it must never be active.",
                )
            if p[i, f] == 1 and rate[i, f] < 1:
                raise _fail(
                    name,
                    f"feature {f} of instance {i} has probability 1 but is zero in "
                    f"{1 - rate[i, f]:.1%} of the batch.",
                )
            sd = math.sqrt(p[i, f] * (1 - p[i, f]) / batch_size)
            if abs(rate[i, f] - p[i, f]) > 5 * sd + 1e-3:
                hint = (
                    "each instance has its own probabilities: feature_probability has shape "
                    "(instance, feature), so broadcast it as feature_probability[:, None, :]."
                )
                if np.allclose(rate, rate.mean(), atol=0.02):
                    hint = "every feature is active at the same rate: use each feature's own probability."
                raise _fail(
                    name,
                    f"feature {f} of instance {i} should be active with probability "
                    f"{p[i, f]:g} but is active in {rate[i, f]:.3f} of the batch.",
                    hint,
                )
    values = x[active]
    if abs(values.mean() - 0.5) > 0.01 or abs(values.std() - math.sqrt(1 / 12)) > 0.01:
        raise _fail(
            name,
            f"the non-zero values have mean {values.mean():.3f} and standard deviation "
            f"{values.std():.3f}: a uniform value on [0, 1] has mean 0.5 and standard "
            f"deviation {math.sqrt(1 / 12):.3f}.",
            "an active feature's value is torch.rand(...), not 1 and not the random number "
            "you compared with the probability.",
        )
    # Instance 1: all features at p = 0.2, so two features are both active with p = 0.04.
    both = (active[1, :, 0] & active[1, :, 1]).mean()
    if abs(both - 0.04) > 5 * math.sqrt(0.04 * 0.96 / batch_size) + 1e-3:
        raise _fail(
            name,
            f"features 0 and 1 of instance 1 (each active with probability 0.2) are both "
            f"active in {both:.3f} of the batch: independent features would be both active "
            "in 0.04.",
            "draw a separate random number for every entry, not one per row.",
        )
    # The values must be the product of two independent draws, not reuse the comparison draw.
    low = values[values < 0.5].size / values.size
    if abs(low - 0.5) > 0.02:
        raise _fail(name, f"{low:.1%} of the non-zero values lie below 0.5: expected half.")
    again = _as_numpy(_call(name, fn, prob, batch_size), name, "a tensor")
    if again.shape == x.shape and np.array_equal(again, x):
        raise _fail(name, "two calls returned the same batch: each call must draw new random numbers.")
    print(
        f"{name}: your function passed (activation rates, values and independence look right "
        f"on {n_inst} instances x {batch_size} samples)"
    )


# --------------------------------------------------------------------------- model


def _random_model(n_inst: int, n_hidden: int, n_feat: int, batch: int, gen: torch.Generator):
    W = torch.randn(n_inst, n_hidden, n_feat, generator=gen, dtype=torch.float64)
    b = 0.3 * torch.randn(n_inst, n_feat, generator=gen, dtype=torch.float64)
    prob = torch.full((n_inst, n_feat), 0.5, dtype=torch.float64)
    x = generate_batch(prob, batch, generator=gen)
    return W, b, x


def check_forward(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W, b, x) -> x_hat``, the toy model ``x' = ReLU(WᵀWx + b)``.

    Shapes: ``W`` is ``(instance, hidden, feature)``, ``b`` is ``(instance, feature)``, ``x`` and
    the result are ``(instance, batch, feature)``. The result is compared with
    `toy_lib.forward` on random weights, biases and inputs of several shapes.

    Raises:
        AssertionError: naming the case, the size of the difference and a likely cause.
    """
    name = "check_forward"
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    cases = [(3, 2, 5, 8), (1, 1, 4, 6), (2, 4, 7, 3)]
    for n_inst, n_hidden, n_feat, batch in cases:
        W, b, x = _random_model(n_inst, n_hidden, n_feat, batch, gen)
        case = f"W {tuple(W.shape)}, b {tuple(b.shape)}, x {tuple(x.shape)}"
        got = _as_numpy(
            _call(name, fn, W.clone(), b.clone(), x.clone()), name, "an (instance, batch, feature) tensor"
        )
        _check_shape(name, got, tuple(x.shape), f"(instance, batch, feature) for {case}")
        want = forward(W, b, x).numpy()
        if _close(got, want, 1e-5):
            worst = max(worst, float(np.abs(got - want).max()))
            continue
        diff = float(np.abs(got - want).max())
        hint = None
        if _close(got, forward(W, b, x, activation="linear").numpy(), 1e-5):
            hint = "your output matches WᵀWx + b without the ReLU: apply torch.relu at the end."
        elif _close(got, forward(W, torch.zeros_like(b), x).numpy(), 1e-5):
            hint = "your output matches ReLU(WᵀWx): add the bias b (one value per instance and feature)."
        elif got.min() < 0:
            hint = "your output has negative entries, which a ReLU output never has."
        else:
            hint = (
                "h = W x is torch.einsum('ihf,ibf->ibh', W, x) and x' = Wᵀ h is "
                "torch.einsum('ihf,ibh->ibf', W, h); check which axis each product sums over."
            )
        raise _fail(name, f"for {case} your output differs from toy_lib.forward by up to {diff:.3g}.", hint)
    print(f"{name}: your function passed ({len(cases)} cases, max difference {worst:.1e})")


def check_loss(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(x, x_hat, importance) -> loss``, the importance-weighted MSE.

    ``x`` and ``x_hat`` are ``(instance, batch, feature)``, ``importance`` is
    ``(instance, feature)``; the result must hold one loss per instance, shape ``(instance,)``:
    ``L_i = mean over batch and feature of I[i, f] (x[i, b, f] - x_hat[i, b, f])²``, compared
    with `toy_lib.loss_per_instance`.

    Raises:
        AssertionError: naming what differs and a likely cause.
    """
    name = "check_loss"
    gen = torch.Generator().manual_seed(seed)
    n_inst, batch, n_feat = 3, 16, 5
    prob = torch.full((n_inst, n_feat), 0.5, dtype=torch.float64)
    x = generate_batch(prob, batch, generator=gen)
    x_hat = torch.rand(n_inst, batch, n_feat, generator=gen, dtype=torch.float64)
    importance = torch.rand(n_inst, n_feat, generator=gen, dtype=torch.float64) + 0.1
    got = _as_numpy(
        _call(name, fn, x.clone(), x_hat.clone(), importance.clone()), name, "an (instance,) tensor"
    )
    want = loss_per_instance(x, x_hat, importance).numpy()
    if got.shape != want.shape:
        hint = None
        if got.size == 1:
            hint = (
                "average over the batch and feature axes only (dim=(1, 2)): each instance is "
                "its own model and needs its own loss."
            )
        raise _fail(
            name,
            f"your function returned shape {got.shape}: expected {want.shape}, one loss per instance.",
            hint,
        )
    if _close(got, want, 1e-6):
        print(f"{name}: your function passed (max difference {np.abs(got - want).max():.1e})")
        return
    sq = (x - x_hat).square()
    weighted = importance[:, None, :] * sq
    hint = None
    if _close(got, sq.mean(dim=(1, 2)).numpy(), 1e-6):
        hint = "your loss ignores the importance: multiply each squared error by I[i, f]."
    elif _close(got, weighted.sum(dim=(1, 2)).numpy(), 1e-6):
        hint = "you summed over batch and features: take the mean instead."
    elif _close(got, weighted.sum(dim=2).mean(dim=1).numpy(), 1e-6):
        hint = "you summed over features: average over them too (the 1/n in the formula)."
    elif _close(got, (importance[:, None, :] * (x - x_hat).abs()).mean(dim=(1, 2)).numpy(), 1e-6):
        hint = "square the errors instead of taking their absolute value."
    raise _fail(name, f"your losses {np.round(got, 5)} differ from the expected {np.round(want, 5)}.", hint)


# --------------------------------------------------------------------------- metrics


def _pentagon() -> torch.Tensor:
    angles = torch.arange(5, dtype=torch.float64) * 2 * math.pi / 5
    return torch.stack([torch.cos(angles), torch.sin(angles)])  # (2, 5)


def check_feature_dimensionality(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W) -> D``, the feature dimensionality of one model.

    ``W`` is a ``(hidden, feature)`` tensor; the result must have shape ``(feature,)`` with
    ``D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)²`` (the sum including ``j = i``) and ``D_i = 0`` for a
    column of zeros. Compared with `toy_lib.metrics.feature_dimensionality` on known shapes
    (orthogonal features, an antipodal pair, a pentagon, a feature that is not learned) and on
    random weights.

    Raises:
        AssertionError: naming the case, the values and a likely cause.
    """
    name = "check_feature_dimensionality"
    gen = torch.Generator().manual_seed(seed)
    unlearned = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    cases = [
        ("three orthogonal features", torch.eye(3, dtype=torch.float64)),
        ("an antipodal pair", torch.tensor([[1.0, -1.0]], dtype=torch.float64)),
        ("a regular pentagon (norm 1.1)", 1.1 * _pentagon()),
        ("random weights (3 x 6)", torch.randn(3, 6, generator=gen, dtype=torch.float64)),
        ("two features and one that is not learned (a zero column)", unlearned),
    ]
    for label, W in cases:
        got = _as_numpy(_call(name, fn, W.clone()), name, "a (feature,) tensor")
        want = metrics.feature_dimensionality(W)
        _check_shape(name, got, want.shape, f"(feature,) for {label}")
        if np.all(np.isfinite(got)) and _close(got, want, 1e-5):
            continue
        hint = None
        norms = torch.linalg.norm(W, dim=0)
        safe = torch.where(norms > 0, norms, torch.ones_like(norms))
        gram = (W / safe).T @ W  # (i, j) = Ŵ_i · W_j
        sq = gram.square()
        without_self = (norms.square() / (sq.sum(1) - sq.diagonal())).numpy()
        raw = (W.T @ W).square().sum(1)
        learned = norms.numpy() > 0
        if not np.all(np.isfinite(got[~learned])) and np.allclose(
            got[learned], want[learned], rtol=1e-5, atol=1e-5
        ):
            hint = (
                "a feature whose column is all zeros is not learned: return 0 for it instead of "
                "dividing by zero (torch.where helps)."
            )
        elif np.allclose(got, without_self, rtol=1e-5, atol=1e-5, equal_nan=True):
            hint = "the sum over j includes j = i (the feature's own direction)."
        elif np.allclose(got[learned], (norms.square() / raw).numpy()[learned], rtol=1e-5, atol=1e-5):
            hint = "in the denominator use the unit vector Ŵ_i = W_i / ||W_i||, not W_i itself."
        raise _fail(
            name,
            f"for {label} your values {np.round(got, 4)} differ from the expected {np.round(want, 4)}.",
            hint,
        )
    print(
        f"{name}: your function passed ({len(cases)} cases: orthogonal, antipodal, pentagon, "
        "random, unlearned)"
    )
