"""Checkers for the book's coding exercises.

Each ``check_*`` function takes the learner's function, runs it on random inputs, and compares
the result with toy_lib's own implementation (or with the statistics the result must have, for
random data). It raises ``AssertionError`` with a message that says what went wrong, and where
it can, which common mistake produces that result; otherwise it prints one line that says the
function passed. A checker never modifies its argument and is quick (well under a second).

    >>> from toy_lib import exercises
    >>> exercises.check_forward(toy_lib.forward)
    check_forward: your function passed (3 cases, max difference 0.0e+00)

What the learner's function does wrong is always reported as a failed check that names the
case: an exception it raises (the original exception is named, and chained), a NaN or infinite
output, a result of the wrong shape or kind. One exception is not a failure: a function that
raises ``NotImplementedError`` (the exercise's stub, not filled in yet) makes the checker print
one line, ``<checker>: not attempted yet — fill in the TODO, then run this cell again``, and
return, so that running a whole notebook goes on to the end.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import numpy as np
import torch

from . import _validate, metrics
from .data import generate_batch
from .model import forward, loss_per_instance

__all__ = [
    "check_generate_batch",
    "check_forward",
    "check_loss",
    "check_feature_dimensionality",
    "check_sae_forward",
    "check_sae_loss",
    "check_decoder_normalisation",
    "check_resample",
]


class _NotAttempted(Exception):
    """The learner's function raised NotImplementedError: the exercise is not attempted yet."""


def _checker(check: Callable) -> Callable:
    """A public checker: its ``fn`` checked, and a stub that is not filled in reported in one line."""

    names = [
        p.name for p in inspect.signature(check).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
    ]

    @functools.wraps(check)
    def run(*fns: Callable, **kwargs) -> None:
        if len(fns) != len(names):
            raise ValueError(
                f"{check.__name__} takes {len(names)} function(s) ({', '.join(names)}): got {len(fns)}"
            )
        for name, fn in zip(names, fns):
            _validate.function(fn, name, what="a function (your solution)")
        try:
            check(*fns, **kwargs)
        except _NotAttempted:
            print(f"{check.__name__}: not attempted yet — fill in the TODO, then run this cell again")

    return run


def _fail(checker: str, message: str, hint: str | None = None) -> AssertionError:
    text = f"{checker}: {message}"
    if hint:
        text += f"\nHint: {hint}"
    return AssertionError(text)


def _as_numpy(value, checker: str, what: str, case: str) -> np.ndarray:
    """The learner's return value as a float64 array, or a clear failure naming the case."""
    if value is None:
        raise _fail(
            checker,
            f"for {case} your function returned None: expected {what}.",
            "did you forget the `return` statement?",
        )
    kind = type(value).__name__
    try:
        if isinstance(value, torch.Tensor):
            if value.is_complex():
                raise TypeError("complex numbers")
            return value.detach().cpu().to(torch.float64).numpy()
        if isinstance(value, (str, bytes)):
            raise TypeError("text")
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dtype {arr.dtype}")
        return arr.astype(np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise _fail(
            checker,
            f"for {case} your function returned a {kind} that is not real numbers ({err}): expected {what}.",
        ) from err


def _call(checker: str, case: str, what: str, fn: Callable, *args, hint: str | None = None):
    """``fn(*args)``; an exception it raises becomes a failure naming ``case`` and the exception
    (with ``hint``, the likely cause, when the checker knows one)."""
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise _NotAttempted from err
    except Exception as err:
        raise _fail(
            checker,
            f"for {case} your function raised {type(err).__name__}: {err}; expected it to return {what}.",
            hint or "read the error above (the traceback shows the line of your function that raised it).",
        ) from err


def _check_finite(checker: str, got: np.ndarray, case: str) -> None:
    """A failure naming the first NaN or infinite entry of the learner's output, if any."""
    bad = ~np.isfinite(got)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(got[index]) else "infinite"
        count = int(bad.sum())
        raise _fail(
            checker,
            f"for {case} your output is {what} at index {index} ({count} of {got.size} entries are NaN "
            "or infinite): expected finite numbers.",
            "NaN usually comes from 0/0 or from an operation on NaN; look for a division.",
        )


def _check_shape(checker: str, got: np.ndarray, expected: tuple, axes: str) -> None:
    if got.shape != tuple(expected):
        raise _fail(
            checker, f"your function returned shape {got.shape}: expected {tuple(expected)}, that is {axes}."
        )


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


# --------------------------------------------------------------------------- data


@_checker
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

    Args:
        fn: your function.
        batch_size: samples per instance, an integer from 1,000 to 1,000,000.
        seed: seeds the random numbers, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the statistic that is off and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``batch_size`` or ``seed``.
    """
    _seeded_batch_check(_check_generate_batch, "check_generate_batch", fn, batch_size, seed)


def _seeded_batch_check(inner: Callable, name: str, fn: Callable, batch_size, seed) -> None:
    """Run a statistical data checker ``inner(fn, batch_size, name)`` with ``batch_size`` and
    ``seed`` checked, torch's global generator seeded, and its state restored afterwards."""
    batch_size = _validate.integer(batch_size, "batch_size", minimum=1000, maximum=10**6)
    seed = _validate.seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inner(fn, batch_size, name)


def _check_generate_batch(fn: Callable, batch_size: int, name: str) -> None:
    prob = torch.tensor(
        [
            [0.0, 1.0, 0.5, 0.1, 0.9, 0.3],
            [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
            [1.0, 0.0, 0.05, 0.6, 0.0, 1.0],
        ]
    )
    n_inst, n_feat = prob.shape
    case = f"feature_probability of shape {tuple(prob.shape)} and batch_size={batch_size}"
    what = "an (instance, batch, feature) tensor"
    x = _as_numpy(_call(name, case, what, fn, prob, batch_size), name, what, case)
    _check_shape(name, x, (n_inst, batch_size, n_feat), "(instance, batch, feature)")
    _check_finite(name, x, case)
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
    again = _as_numpy(
        _call(name, f"a second call with {case}", what, fn, prob, batch_size), name, "a tensor", case
    )
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


def _check_model_forward(
    name: str,
    fn: Callable,
    seed,
    reference_name: str,
    reference: Callable,
    mistakes: list[tuple[Callable, str]],
    fallback: str,
    *,
    negative_hint: str | None = None,
) -> None:
    """The loop of the forward-pass checkers: ``fn(W, b, x)`` against ``reference`` on random
    models of three shapes; on a difference, the hint of the first planted mistake
    ``(mistake(W, b, x), hint)`` the output matches, else ``negative_hint`` when the output has
    negative entries, else ``fallback``."""
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    worst = 0.0
    cases = [(3, 2, 5, 8), (1, 1, 4, 6), (2, 4, 7, 3)]
    what = "an (instance, batch, feature) tensor"
    for n_inst, n_hidden, n_feat, batch in cases:
        W, b, x = _random_model(n_inst, n_hidden, n_feat, batch, gen)
        case = f"W {tuple(W.shape)}, b {tuple(b.shape)}, x {tuple(x.shape)}"
        got = _as_numpy(_call(name, case, what, fn, W.clone(), b.clone(), x.clone()), name, what, case)
        _check_shape(name, got, tuple(x.shape), f"(instance, batch, feature) for {case}")
        _check_finite(name, got, case)
        want = reference(W, b, x).numpy()
        if _close(got, want, 1e-5):
            worst = max(worst, float(np.abs(got - want).max()))
            continue
        diff = float(np.abs(got - want).max())
        hint = next((text for mistake, text in mistakes if _close(got, mistake(W, b, x).numpy(), 1e-5)), None)
        if hint is None:
            hint = negative_hint if negative_hint and got.min() < 0 else fallback
        raise _fail(name, f"for {case} your output differs from {reference_name} by up to {diff:.3g}.", hint)
    print(f"{name}: your function passed ({len(cases)} cases, max difference {worst:.1e})")


@_checker
def check_forward(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W, b, x) -> x_hat``, the toy model ``x' = ReLU(WᵀWx + b)``.

    Shapes: ``W`` is ``(instance, hidden, feature)``, ``b`` is ``(instance, feature)``, ``x`` and
    the result are ``(instance, batch, feature)``. The result is compared with
    `toy_lib.forward` on random weights, biases and inputs of several shapes.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the size of the difference and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    _check_model_forward(
        "check_forward",
        fn,
        seed,
        "toy_lib.forward",
        forward,
        [
            (
                lambda W, b, x: forward(W, b, x, activation="linear"),
                "your output matches WᵀWx + b without the ReLU: apply torch.relu at the end.",
            ),
            (
                lambda W, b, x: forward(W, torch.zeros_like(b), x),
                "your output matches ReLU(WᵀWx): add the bias b (one value per instance and feature).",
            ),
        ],
        "h = W x is torch.einsum('ihf,ibf->ibh', W, x) and x' = Wᵀ h is "
        "torch.einsum('ihf,ibh->ibf', W, h); check which axis each product sums over.",
        negative_hint="your output has negative entries, which a ReLU output never has.",
    )


@_checker
def check_loss(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(x, x_hat, importance) -> loss``, the importance-weighted MSE.

    ``x`` and ``x_hat`` are ``(instance, batch, feature)``, ``importance`` is
    ``(instance, feature)``; the result must hold one loss per instance, shape ``(instance,)``:
    ``L_i = mean over batch and feature of I[i, f] (x[i, b, f] - x_hat[i, b, f])²``, compared
    with `toy_lib.loss_per_instance`.

    Args:
        fn: your function.
        seed: seeds the random case, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming what differs and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    name = "check_loss"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    n_inst, batch, n_feat = 3, 16, 5
    prob = torch.full((n_inst, n_feat), 0.5, dtype=torch.float64)
    x = generate_batch(prob, batch, generator=gen)
    x_hat = torch.rand(n_inst, batch, n_feat, generator=gen, dtype=torch.float64)
    importance = torch.rand(n_inst, n_feat, generator=gen, dtype=torch.float64) + 0.1
    case = f"x and x_hat of shape {tuple(x.shape)} and importance of shape {tuple(importance.shape)}"
    got = _as_numpy(
        _call(name, case, "an (instance,) tensor", fn, x.clone(), x_hat.clone(), importance.clone()),
        name,
        "an (instance,) tensor",
        case,
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
    _check_finite(name, got, case)
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


@_checker
def check_feature_dimensionality(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W) -> D``, the feature dimensionality of one model.

    ``W`` is a ``(hidden, feature)`` tensor; the result must have shape ``(feature,)`` with
    ``D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)²`` (the sum including ``j = i``) and ``D_i = 0`` for a
    column of zeros. Compared with `toy_lib.metrics.feature_dimensionality` on known shapes
    (orthogonal features, an antipodal pair, a pentagon, a feature that is not learned) and on
    random weights.

    Args:
        fn: your function.
        seed: seeds the random case, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the values and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    name = "check_feature_dimensionality"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    unlearned = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    cases = [
        ("three orthogonal features", torch.eye(3, dtype=torch.float64)),
        ("an antipodal pair", torch.tensor([[1.0, -1.0]], dtype=torch.float64)),
        ("a regular pentagon (norm 1.1)", 1.1 * _pentagon()),
        ("random weights (3 x 6)", torch.randn(3, 6, generator=gen, dtype=torch.float64)),
        ("two features and one that is not learned (a zero column)", unlearned),
    ]
    for label, W in cases:
        got = _as_numpy(
            _call(name, label, "a (feature,) tensor", fn, W.clone()), name, "a (feature,) tensor", label
        )
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
        if hint is None:
            _check_finite(name, got, label)
        raise _fail(
            name,
            f"for {label} your values {np.round(got, 4)} differ from the expected {np.round(want, 4)}.",
            hint,
        )
    print(
        f"{name}: your function passed ({len(cases)} cases: orthogonal, antipodal, pentagon, "
        "random, unlearned)"
    )


# --------------------------------------------------------------------------- sparse autoencoders


def _random_sae(n_inst: int, d_in: int, d_sae: int, batch: int, gen: torch.Generator):
    W_dec = torch.randn(n_inst, d_sae, d_in, generator=gen, dtype=torch.float64)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    W_enc = torch.randn(n_inst, d_in, d_sae, generator=gen, dtype=torch.float64)
    b_enc = 0.3 * torch.randn(n_inst, d_sae, generator=gen, dtype=torch.float64)
    b_dec = 0.3 * torch.randn(n_inst, d_in, generator=gen, dtype=torch.float64)
    x = torch.randn(n_inst, batch, d_in, generator=gen, dtype=torch.float64)
    return W_enc, W_dec, b_enc, b_dec, x


def _sae_reference(W_enc, W_dec, b_enc, b_dec, x):
    f = torch.relu(torch.einsum("ibd,ids->ibs", x - b_dec[:, None], W_enc) + b_enc[:, None])
    return f, torch.einsum("ibs,isd->ibd", f, W_dec) + b_dec[:, None]


@_checker
def check_sae_forward(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W_enc, W_dec, b_enc, b_dec, x) -> (f, x_hat)``, the ReLU SAE:
    ``f = ReLU(W_enc (x - b_dec) + b_enc)``, ``x̂ = W_dec f + b_dec``.

    Shapes: ``W_enc`` ``(instance, d_in, d_sae)``, ``W_dec`` ``(instance, d_sae, d_in)``,
    ``b_enc`` ``(instance, d_sae)``, ``b_dec`` ``(instance, d_in)``, ``x`` ``(instance, batch,
    d_in)``; ``f`` is ``(instance, batch, d_sae)`` and ``x_hat`` like ``x``.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the difference and the likely mistake.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    name = "check_sae_forward"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    cases = [(3, 2, 5, 8), (1, 4, 3, 6), (2, 5, 20, 4)]
    for n_inst, d_in, d_sae, batch in cases:
        W_enc, W_dec, b_enc, b_dec, x = _random_sae(n_inst, d_in, d_sae, batch, gen)
        case = f"d_in {d_in}, d_sae {d_sae}, {n_inst} instances"
        out = _call(
            name,
            case,
            "a pair (f, x_hat)",
            fn,
            W_enc.clone(),
            W_dec.clone(),
            b_enc.clone(),
            b_dec.clone(),
            x.clone(),
        )
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _fail(
                name, f"for {case} your function returned {type(out).__name__}: expected a pair (f, x_hat)."
            )
        f = _as_numpy(out[0], name, "f, an (instance, batch, d_sae) tensor", case)
        x_hat = _as_numpy(out[1], name, "x_hat, an (instance, batch, d_in) tensor", case)
        _check_finite(name, f, case)
        _check_finite(name, x_hat, case)
        _check_shape(name, f, (n_inst, batch, d_sae), f"(instance, batch, d_sae) for f, {case}")
        _check_shape(name, x_hat, tuple(x.shape), f"(instance, batch, d_in) for x_hat, {case}")
        want_f, want_x = (t.numpy() for t in _sae_reference(W_enc, W_dec, b_enc, b_dec, x))
        if _close(f, want_f, 1e-6) and _close(x_hat, want_x, 1e-6):
            continue
        hint = "f = ReLU(W_enc (x - b_dec) + b_enc) and x_hat = W_dec f + b_dec."
        no_centre = torch.relu(torch.einsum("ibd,ids->ibs", x, W_enc) + b_enc[:, None]).numpy()
        if _close(f, no_centre, 1e-6):
            hint = "subtract b_dec from x before the encoder: the encoder reads x - b_dec."
        elif f.min() < 0:
            hint = "f has negative entries: apply the ReLU to the pre-activations."
        elif _close(f, want_f, 1e-6):
            from_f = torch.einsum("ibs,isd->ibd", torch.as_tensor(want_f), W_dec).numpy()
            if _close(x_hat, from_f, 1e-6):
                hint = "f is right; add b_dec back after the decoder: x_hat = W_dec f + b_dec."
            else:
                hint = "f is right; x_hat = Σ_j f_j W_dec[j] + b_dec, i.e. torch.einsum('ibs,isd->ibd', f, W_dec)."
        raise _fail(name, f"for {case} your f or x_hat differs from the reference.", hint)
    print(f"{name}: your function passed ({len(cases)} cases)")


@_checker
def check_sae_loss(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(x, x_hat, f, l1_coefficient) -> loss``, one loss per instance:
    ``mean over the batch of ||x - x̂||² + λ ||f||₁`` (squared error summed over ``d_in``, L1 norm
    over ``d_sae``). ``x``, ``x_hat``: ``(instance, batch, d_in)``; ``f``: ``(instance, batch,
    d_sae)``; ``l1_coefficient``: a float; the result ``(instance,)``.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming what differs and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    name = "check_sae_loss"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    x = torch.randn(3, 16, 4, generator=gen, dtype=torch.float64)
    x_hat = x + 0.3 * torch.randn(3, 16, 4, generator=gen, dtype=torch.float64)
    f = torch.relu(torch.randn(3, 16, 6, generator=gen, dtype=torch.float64))
    lam = 0.25
    case = "x, x_hat (3, 16, 4), f (3, 16, 6), l1_coefficient 0.25"
    what = "an (instance,) tensor"
    got = _as_numpy(_call(name, case, what, fn, x.clone(), x_hat.clone(), f.clone(), lam), name, what, case)
    _check_finite(name, got, case)
    sq = (x - x_hat).square()
    want = (sq.sum(-1) + lam * f.abs().sum(-1)).mean(-1).numpy()
    if got.shape != want.shape:
        hint = "average over the batch only: each instance is its own SAE." if got.size == 1 else None
        raise _fail(
            name,
            f"your function returned shape {got.shape}: expected {want.shape}, one loss per instance.",
            hint,
        )
    if _close(got, want, 1e-6):
        print(f"{name}: your function passed (max difference {np.abs(got - want).max():.1e})")
        return
    hint = None
    l1 = lam * f.sum(-1).mean(-1)
    if _close(got, (sq.mean(-1)).mean(-1).numpy() + l1.numpy(), 1e-6):
        hint = "sum the squared error over d_in (||x - x̂||²), do not average it."
    elif _close(got, sq.sum(-1).mean(-1).numpy(), 1e-6):
        hint = "add the sparsity penalty l1_coefficient * ||f||₁."
    elif _close(got, sq.sum(-1).mean(-1).numpy() + lam * f.square().sum(-1).mean(-1).numpy(), 1e-6):
        hint = "the penalty is the L1 norm (sum of |f|), not the sum of squares."
    elif _close(got, (sq.sum(-1) + lam * f.sum(-1)).sum(-1).numpy(), 1e-6):
        hint = "average over the batch instead of summing."
    raise _fail(name, f"your losses {np.round(got, 5)} differ from the expected {np.round(want, 5)}.", hint)


@_checker
def check_decoder_normalisation(remove_parallel: Callable, normalise: Callable, *, seed: int = 0) -> None:
    """Check a learner's two steps that keep decoder rows at unit norm:

    - ``remove_parallel(W_dec, grad) -> grad'``: each row of the gradient minus its component
      along the (unit) decoder row, ``g_j - (g_j · d_j) d_j``;
    - ``normalise(W_dec) -> W_dec'``: each row divided by its norm.

    Shapes ``(instance, d_sae, d_in)`` throughout.

    Args:
        remove_parallel: your first function.
        normalise: your second function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming what differs and a likely cause.
        ValueError: for an argument that is not a function, or a bad ``seed``.
    """
    name = "check_decoder_normalisation"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    W = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    unit = W / W.norm(dim=-1, keepdim=True)
    grad = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    case, what = "remove_parallel on (2, 5, 3) rows", "an (instance, d_sae, d_in) tensor"
    got = _as_numpy(_call(name, case, what, remove_parallel, unit.clone(), grad.clone()), name, what, case)
    _check_finite(name, got, case)
    _check_shape(name, got, tuple(grad.shape), "(instance, d_sae, d_in)")
    want = grad - (grad * unit).sum(-1, keepdim=True) * unit
    if not _close(got, want.numpy(), 1e-8):
        hint = None
        if _close(got, (grad - (grad * unit).sum(-2, keepdim=True) * unit).numpy(), 1e-8):
            hint = "the dot product runs over d_in (the last axis): one number per decoder row."
        elif np.allclose(np.einsum("isd,isd->is", got, unit.numpy()), 0, atol=1e-8):
            hint = (
                "your gradient is orthogonal to the rows but also changed otherwise: subtract only (g·d) d."
            )
        else:
            hint = "subtract (g_j · d_j) d_j from each row g_j; what is left is orthogonal to d_j."
        raise _fail(name, "remove_parallel's result differs from the expected g - (g·d) d.", hint)
    case = "normalise on (2, 5, 3) rows"
    got = _as_numpy(_call(name, case, what, normalise, W.clone()), name, what, case)
    _check_finite(name, got, case)
    _check_shape(name, got, tuple(W.shape), "(instance, d_sae, d_in)")
    if not _close(got, unit.numpy(), 1e-8):
        hint = None
        if _close(got, (W / W.norm(dim=-2, keepdim=True)).numpy(), 1e-8):
            hint = "normalise each row (over d_in, the last axis), not each column."
        raise _fail(
            name, "normalise's rows differ from the expected unit rows of W_dec (each row / its norm).", hint
        )
    print(f"{name}: your functions passed")


@_checker
def check_resample(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W_enc, W_dec, b_enc, b_dec, x, dead, generator) -> (W_enc, W_dec,
    b_enc)``: Anthropic's resampling of dead latents, for a ReLU SAE, one instance at a time or all.

    For each instance and each latent ``j`` with ``dead[i, j]``: draw an input of ``x[i]`` with
    probability proportional to the square of its squared reconstruction error
    ``||x - x̂||²``; set ``W_dec[i, j]`` to the centred input ``x - b_dec`` normalised, the encoder
    column ``W_enc[i, :, j]`` to the same direction times 0.2 times the mean norm of the live
    latents' encoder columns, and ``b_enc[i, j] = 0``. Other latents are left alone. Shapes as in
    `check_sae_forward`; ``dead`` is a bool ``(instance, d_sae)``; draw with ``generator``.

    The checker plants inputs with known errors and checks the new directions, the scales, the
    untouched latents, and (over 400 draws) that errors are weighted by their square.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming what is wrong and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    name = "check_resample"
    # Two instances, d_in 2, d_sae 3. Latent 0 reads and writes e0; latents 1, 2 are dead.
    W_dec = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-0.6, 0.8]], dtype=torch.float64).repeat(2, 1, 1)
    W_enc = W_dec.transpose(1, 2).clone() * torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    b_enc = torch.tensor([0.0, -10.0, -10.0], dtype=torch.float64).repeat(2, 1)
    b_dec = torch.zeros(2, 2, dtype=torch.float64)
    # inputs, each in its own direction: (0.5, 0) comes back as (1, 0) (squared error 0.25); (-1, 0) and
    # (0, √3) come back as 0 (squared errors 1 and 3)
    x = torch.tensor([[0.5, 0.0], [-1.0, 0.0], [0.0, 3.0**0.5]], dtype=torch.float64).repeat(2, 1, 1)
    _, x_hat = _sae_reference(W_enc, W_dec, b_enc, b_dec, x)
    err = (x - x_hat).square().sum(-1)  # (instance, batch)
    dead = torch.tensor([[False, True, False], [False, False, False]])
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    case, what = "two instances, d_in 2, d_sae 3, latent 1 of instance 0 dead", "(W_enc, W_dec, b_enc)"
    out = _call(
        name,
        case,
        what,
        fn,
        W_enc.clone(),
        W_dec.clone(),
        b_enc.clone(),
        b_dec.clone(),
        x.clone(),
        dead.clone(),
        gen,
    )
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise _fail(name, f"your function returned {type(out).__name__}: expected (W_enc, W_dec, b_enc).")
    new_enc, new_dec, new_benc = (torch.as_tensor(_as_numpy(o, name, "a tensor", case)) for o in out)
    if new_dec.shape != W_dec.shape or new_enc.shape != W_enc.shape or new_benc.shape != b_enc.shape:
        raise _fail(
            name, "your tensors changed shape: return W_enc, W_dec, b_enc with the shapes they came in."
        )
    alive = ~dead
    for label, old, new, axis in (("W_dec", W_dec, new_dec, 1), ("b_enc", b_enc, new_benc, 1)):
        if not torch.allclose(old[alive] if axis == 1 else old, new[alive]):
            raise _fail(
                name, f"{label} changed for latents that are not dead.", "resample only where dead is True."
            )
    if not torch.allclose(W_enc.transpose(1, 2)[alive], new_enc.transpose(1, 2)[alive]):
        raise _fail(name, "W_enc changed for latents that are not dead.", "resample only where dead is True.")
    row = new_dec[0, 1]
    if not torch.isclose(row.norm(), torch.tensor(1.0, dtype=torch.float64)):
        raise _fail(
            name, f"the new decoder row has norm {row.norm():.3f}: expected 1.", "normalise x - b_dec."
        )
    candidates = (x[0] - b_dec[0]) / (x[0] - b_dec[0]).norm(dim=-1, keepdim=True)
    match = [k for k in range(3) if torch.allclose(row, candidates[k], atol=1e-6)]
    if not match:
        raise _fail(
            name,
            "the new decoder row is not one of the (centred, normalised) inputs.",
            "set W_dec[i, j] = (x[i, n] - b_dec[i]) / ||x[i, n] - b_dec[i]|| for the drawn input n.",
        )
    if float(err[0, match[0]]) == 0:
        raise _fail(
            name,
            "you resampled on an input that the SAE already reconstructs perfectly.",
            "draw inputs with probability proportional to the squared error, squared.",
        )
    live_norm = W_enc[0, :, alive[0]].norm(dim=0).mean()
    if not torch.allclose(new_enc[0, :, 1], 0.2 * live_norm * row, atol=1e-6):
        raise _fail(
            name,
            "the new encoder column is not 0.2 × (mean norm of the live encoder columns) × the new "
            "direction.",
            "use W_enc[i].norm(dim=0) over the latents that are not dead.",
        )
    if float(new_benc[0, 1]) != 0.0:
        raise _fail(name, "the resampled latent's encoder bias is not 0.")
    # Over many draws: P(error 3 input) = 9 / (0.0625 + 1 + 9) = 0.89 when weighted by the squared
    # error squared (0.71 when weighted by the squared error).
    hits = 0
    n_draws = 400
    for _ in range(n_draws):
        out = _call(
            name,
            case,
            what,
            fn,
            W_enc.clone(),
            W_dec.clone(),
            b_enc.clone(),
            b_dec.clone(),
            x.clone(),
            dead.clone(),
            gen,
        )
        d = torch.as_tensor(_as_numpy(out[1], name, "a tensor", case))[0, 1]
        hits += bool(torch.allclose(d, candidates[2], atol=1e-6))
    share = hits / n_draws
    if not 0.84 <= share <= 0.96:
        hint = (
            "weight each input by its squared error squared, (||x - x̂||²)², as torch.multinomial's weights."
        )
        if 0.68 <= share <= 0.82:
            hint = "you weighted by the squared error; Anthropic's recipe squares it once more."
        raise _fail(
            name,
            f"the input with squared error 3 was drawn {share:.0%} of the time: expected 90% "
            "(weights 1² and 3²).",
            hint,
        )
    print(
        f"{name}: your function passed (directions, scales, untouched latents, weights over {n_draws} draws)"
    )


# --------------------------------------------------------------------------- the opening chapters
# Checkers of "Features" and "The geometry of superposition" (reference: toy_lib.geometry).

__all__ += [
    "check_top_feature_share",
    "check_largest_abs_cosine",
    "check_measure_interference",
    "check_expected_interference",
]


@_checker
def check_top_feature_share(fn: Callable) -> None:
    """Check a learner's ``fn(W) -> share``: how monosemantic each neuron of ``h = W x`` is.

    ``W`` is ``(neuron, feature)``; the result must have shape ``(neuron,)`` with
    ``share[k] = max_i W[k, i]² / Σ_i W[k, i]²`` and 0 for a neuron whose weights are all zero.
    Compared with `toy_lib.geometry.top_feature_share` on one-feature neurons, a rotated layer,
    a layer with more features than neurons, negative weights and a silent neuron.

    Raises:
        AssertionError: naming the case, the values and a likely cause.
    """
    from . import geometry

    name = "check_top_feature_share"
    rotation = geometry.random_rotation(4, seed=1)
    wide = torch.tensor(
        [[0.9, -0.1, 0.3, 0.0, 0.2], [-0.8, 0.7, 0.0, 0.1, 0.0], [0.1, 0.2, -0.3, 0.4, -0.5]],
        dtype=torch.float64,
    )
    silent = torch.tensor([[1.0, 0.5], [0.0, 0.0], [-0.3, 0.4]], dtype=torch.float64)
    cases = [
        ("one feature per neuron (the identity)", torch.eye(4, dtype=torch.float64)),
        ("a rotated layer (4 neurons, 4 features)", rotation),
        ("3 neurons reading 5 features, some weights negative", wide),
        ("a neuron with no weights (row 1 is zero)", silent),
    ]
    for label, W in cases:
        got = _as_numpy(
            _call(name, label, "a (neuron,) tensor", fn, W.clone()), name, "a (neuron,) tensor", label
        )
        want = geometry.top_feature_share(W)
        if got.shape != want.shape:
            hint = "return one value per neuron, i.e. per row of W (neuron, feature)."
            if got.shape == (W.shape[1],):
                hint = (
                    "you returned one value per feature (column): a neuron is a row of W (neuron, "
                    "feature), so reduce over the feature axis (dim=1)."
                )
            raise _fail(
                name, f"for {label} your function returned shape {got.shape}: expected {want.shape}.", hint
            )
        if np.all(np.isfinite(got)) and _close(got, want, 1e-6):
            continue
        sq = W.square()
        hint = None
        total = sq.sum(dim=1)
        safe = torch.where(total > 0, total, torch.ones_like(total))
        col_total = sq.sum(dim=0)
        per_feature = (
            sq.amax(dim=0) / torch.where(col_total > 0, col_total, torch.ones_like(col_total))
        ).numpy()
        if not np.all(np.isfinite(got)):
            hint = "a neuron whose weights are all zero responds to nothing: return 0 for it instead of 0/0."
        elif per_feature.shape == got.shape and _close(got, per_feature, 1e-6):
            hint = (
                "you computed one value per feature (column): a neuron is a row of W (neuron, "
                "feature), so reduce over the feature axis (dim=1)."
            )
        elif _close(got, (W.abs().amax(dim=1) / W.abs().sum(dim=1).clamp_min(1e-300)).numpy(), 1e-6):
            hint = "use squared weights, W[k, i]², not their absolute values."
        elif _close(got, (W.amax(dim=1).square() / safe).numpy(), 1e-6):
            hint = "the top feature is the one with the largest W[k, i]², negative weights included."
        elif _close(got, sq.amax(dim=1).numpy(), 1e-6):
            hint = "divide by the neuron's total squared weight, Σ_i W[k, i]²."
        raise _fail(
            name,
            f"for {label} your values {np.round(got, 4)} differ from the expected {np.round(want, 4)}.",
            hint,
        )
    print(f"{name}: your function passed ({len(cases)} cases: identity, rotated, wide, silent neuron)")


@_checker
def check_largest_abs_cosine(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W) -> float``: the largest ``|cos|`` between two different
    columns of ``W`` (``(dim, vector)``).

    Compared with `toy_lib.geometry.max_abs_cosine` on orthonormal vectors (0), three
    directions in a plane (0.5), vectors of different lengths, a pair pointing almost opposite
    ways, and random vectors.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the value and a likely cause.
        ValueError: for a bad ``seed``.
    """
    from . import geometry

    name = "check_largest_abs_cosine"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    cases = [
        ("4 orthonormal vectors in 4 dimensions", torch.eye(4, dtype=torch.float64)),
        ("three directions 120 degrees apart in a plane", torch.stack([angles.cos(), angles.sin()])),
        (
            "vectors of lengths 3, 0.5 and 2",
            torch.tensor([[3.0, 0.3, 0.0], [0.0, 0.4, 1.2], [0.0, 0.0, 1.6]], dtype=torch.float64),
        ),
        (
            "two vectors pointing almost opposite ways, and a third",
            torch.tensor([[1.0, -0.95, 0.2], [0.0, 0.312, 0.98]], dtype=torch.float64),
        ),
        ("20 random vectors in 8 dimensions", torch.randn(8, 20, generator=gen, dtype=torch.float64)),
    ]
    for label, W in cases:
        got = _as_numpy(_call(name, label, "a number", fn, W.clone()), name, "a number", label)
        if got.size != 1:
            raise _fail(
                name,
                f"for {label} your function returned {got.size} numbers (shape {got.shape}): expected one.",
                "take the largest |cos| over every pair i != j.",
            )
        got = float(got.reshape(()))
        want = float(geometry.max_abs_cosine(W))
        if abs(got - want) <= 1e-6:
            continue
        unit = W / W.norm(dim=0)
        cos = unit.T @ unit
        off = ~torch.eye(W.shape[1], dtype=torch.bool)
        raw = W.T @ W
        rows = W / W.norm(dim=1, keepdim=True)
        hint = None
        if abs(got - 1.0) <= 1e-6:
            hint = "every vector has cosine 1 with itself: leave out the diagonal i = j."
        elif abs(got - float(cos[off].max())) <= 1e-6:
            hint = "take the absolute value: cos = -0.9 is as far from orthogonal as +0.9."
        elif abs(got - float(raw[off].abs().max())) <= 1e-6:
            hint = "divide the dot products by the lengths: cos_ij = W_i . W_j / (|W_i| |W_j|)."
        elif (
            W.shape[0] > 1
            and abs(
                got
                - float((rows @ rows.T).abs().masked_fill(torch.eye(W.shape[0], dtype=torch.bool), 0).max())
            )
            <= 1e-6
        ):
            hint = "the vectors are the columns of W (dim, vector), not its rows."
        raise _fail(name, f"for {label} your function returned {got:.4f}: expected {want:.4f}.", hint)
    print(f"{name}: your function passed ({len(cases)} cases)")


@_checker
def check_measure_interference(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W, x) -> interference``: the part of each feature's read-out
    ``W_i · (W x)`` that the *other* features put there.

    ``W`` is ``(hidden, feature)``, ``x`` is ``(batch, feature)``; the result must be
    ``(batch, feature)`` with ``[b, i] = Σ_{j≠i} (W_i · W_j) x[b, j]``. Compared with
    `toy_lib.geometry.interference` on three directions in a plane, arrows of different
    lengths, and a random layer with sparse inputs.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the size of the difference and a likely cause.
        ValueError: for a bad ``seed``.
    """
    from . import geometry

    name = "check_measure_interference"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    three = torch.stack([angles.cos(), angles.sin()])  # (2, 3)
    prob = torch.full((1, 6), 0.4, dtype=torch.float64)
    cases = [
        (
            "three unit directions in a plane, feature 0 alone and features 0 and 1",
            three,
            torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64),
        ),
        (
            "the same directions with lengths 1.5, 1 and 0.5",
            three * torch.tensor([1.5, 1.0, 0.5], dtype=torch.float64),
            torch.tensor([[0.7, 0.0, 0.2], [0.0, 1.0, 0.0], [0.3, 0.4, 0.9]], dtype=torch.float64),
        ),
        (
            "a random layer (3 hidden, 6 features) and 8 sparse inputs",
            torch.randn(3, 6, generator=gen, dtype=torch.float64),
            generate_batch(prob, 8, generator=gen)[0],
        ),
    ]
    worst = 0.0
    for label, W, x in cases:
        case = f"{label}: W {tuple(W.shape)}, x {tuple(x.shape)}"
        hint = "W is (hidden, feature) and x is (batch, feature): W x for a batch is x @ W.T."
        got = _as_numpy(
            _call(name, case, "a (batch, feature) tensor", fn, W.clone(), x.clone(), hint=hint),
            name,
            "a (batch, feature) tensor",
            case,
        )
        want = geometry.interference(W, x).numpy()
        if got.shape != want.shape:
            raise _fail(
                name,
                f"for {case} your function returned shape {got.shape}: expected {want.shape}, that is "
                "(batch, feature): one interference per input and feature.",
                "do not sum or average over features or inputs: return each feature's interference.",
            )
        if _close(got, want, 1e-6):
            worst = max(worst, float(np.abs(got - want).max()))
            continue
        gram = W.T @ W
        readout = (x @ gram).numpy()
        unit = W / W.norm(dim=0)
        cos = unit.T @ unit
        diff = float(np.abs(got - want).max())
        hint = None
        if _close(got, readout, 1e-6):
            hint = (
                "that is the whole read-out W_i . (W x), the feature's own term ||W_i||² x_i included: "
                "leave out j = i (zero the diagonal of WᵀW)."
            )
        elif _close(got, readout - x.numpy(), 1e-6):
            hint = (
                "that is the whole reconstruction error WᵀWx - x, which also holds the feature's own "
                "error (||W_i||² - 1) x_i: keep only the terms of the other features, j != i."
            )
        elif _close(got, (x @ (cos - torch.eye(cos.shape[0], dtype=cos.dtype))).numpy(), 1e-6):
            hint = (
                "use the dot products W_i . W_j, not cosines: interference grows with both arrows' lengths."
            )
        elif _close(got, -want, 1e-6):
            hint = "the sign is flipped: interference is what the other features add, Σ_j≠i (W_i . W_j) x_j."
        elif _close(got, want**2, 1e-6):
            hint = "return the interference itself, not its square."
        raise _fail(name, f"for {case} your output differs from the expected one by up to {diff:.3g}.", hint)
    print(f"{name}: your function passed ({len(cases)} cases, max difference {worst:.1e})")


@_checker
def check_expected_interference(fn: Callable) -> None:
    """Check a learner's ``fn(cos, sparsity_i, sparsity_j) -> float``: the expected squared
    interference that feature ``j`` leaves in feature ``i``'s read-out when leaks into inactive
    features are clipped, ``cos² (1 - S_i)(1 - S_j) / 3`` (values uniform on [0, 1]).

    Compared with `toy_lib.geometry.expected_interference` on several cosines and sparsities.

    Raises:
        AssertionError: naming the case, the value and a likely cause.
    """
    from . import geometry

    name = "check_expected_interference"
    cases = [(0.5, 0.0, 0.0), (0.3, 0.9, 0.9), (-0.6, 0.5, 0.8), (0.81, 0.99, 0.7), (0.0, 0.2, 0.3)]
    for c, s_i, s_j in cases:
        label = f"cos = {c}, S_i = {s_i}, S_j = {s_j}"
        got = _as_numpy(_call(name, label, "a number", fn, c, s_i, s_j), name, "a number", label)
        if got.size != 1:
            raise _fail(name, f"for {label} your function returned shape {got.shape}: expected one number.")
        got = float(got.reshape(()))
        want = geometry.expected_interference(c, s_i, s_j)
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
            continue
        p_i, p_j = 1 - s_i, 1 - s_j
        hint = None
        if math.isclose(got, c * c * p_j / 3, rel_tol=1e-6, abs_tol=1e-12):
            hint = (
                "with leaks into inactive features clipped, only inputs where both features are "
                "active count: multiply by P(feature i active) = 1 - S_i too."
            )
        elif math.isclose(got, c * c * s_i * s_j / 3, rel_tol=1e-6, abs_tol=1e-12):
            hint = "S is the probability that a feature is zero: it is active with probability 1 - S."
        elif math.isclose(got, abs(c) * p_i * p_j / 3, rel_tol=1e-6, abs_tol=1e-12) or math.isclose(
            got, c * p_i * p_j / 3, rel_tol=1e-6, abs_tol=1e-12
        ):
            hint = "the cost is a square, (cos · x_j)²: use cos², not cos."
        elif math.isclose(got, c * c * p_i * p_j, rel_tol=1e-6, abs_tol=1e-12) or math.isclose(
            got, c * c * p_i * p_j / 4, rel_tol=1e-6, abs_tol=1e-12
        ):
            hint = "an active value x is uniform on [0, 1], so E[x²] = ∫ x² dx = 1/3."
        raise _fail(name, f"for {label} your function returned {got:.6g}: expected {want:.6g}.", hint)
    print(f"{name}: your function passed ({len(cases)} cases)")


# --------------------------------------------------------------------------- analyze_superposition

#: The mean |cos| between the directions of a regular pentagon's five features:
#: (2 cos 72° + 2 |cos 144°|) / 4.
PENTAGON_MEAN_COS = (2 * math.cos(math.radians(72)) + 2 * abs(math.cos(math.radians(144)))) / 4
#: The settings `check_analyze_superposition` tries: (n_features, n_hidden, sparsity), what the
#: trained model must look like, and the mean |cos| expected with its tolerance.
ANALYZE_CASES = (
    ((3, 3, 0.0), "dense features, as many dimensions as features: three orthogonal directions", 0.0, 0.1),
    ((5, 2, 0.99), "sparse features, five in a plane: a regular pentagon", PENTAGON_MEAN_COS, 0.06),
)


@_checker
def check_analyze_superposition(fn: Callable, *, steps: int = 2_000) -> None:
    """Check a learner's ``fn(n_features, n_hidden, sparsity, steps) -> (figure, mean_cos)``.

    The function trains a toy model (importance ``0.9**i``), draws its geometry and returns the
    matplotlib figure and the mean ``|cos|`` between the directions of the represented features
    (``||W_i|| > 0.5``), over pairs of different features. The checker calls it on the
    settings of `ANALYZE_CASES` with ``steps`` training steps each (about a second on a laptop
    CPU): a dense setting where every feature gets its own direction (mean ``|cos|`` near 0)
    and a sparse one that forms a regular pentagon (`PENTAGON_MEAN_COS`, about 0.56). It checks
    that a figure with something drawn on it comes back, and the number. The figures are
    closed afterwards.

    Raises:
        AssertionError: naming the setting, what came back and a likely cause.
    """
    import matplotlib.pyplot as plt

    name = "check_analyze_superposition"
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: expected a positive integer")
    signature = "analyze_superposition(n_features, n_hidden, sparsity, steps=3_000)"
    seen: list = []
    try:
        _check_analyze_cases(name, fn, steps, signature, seen)
    finally:  # the learner's figures, passed or not, are not left open
        for fig in seen:
            plt.close(fig)
    print(
        f"{name}: your function passed (a dense setting gives mean |cos| near 0, a sparse one "
        f"the pentagon's {PENTAGON_MEAN_COS:.2f}; {steps} steps each)"
    )


def _check_analyze_cases(name: str, fn: Callable, steps: int, signature: str, seen: list) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    for args, what, expected, tol in ANALYZE_CASES:
        case = f"analyze_superposition{(*args, steps)!r} ({what})"
        hint = (
            f"if the error is about the arguments, keep the signature {signature}: the checker "
            "passes steps as the fourth argument; otherwise the traceback shows the line that raised it."
        )
        out = _call(name, case, "a pair (figure, mean_cos)", fn, *args, steps, hint=hint)
        if isinstance(out, Figure):
            plt.close(out)
            raise _fail(name, f"{case} returned only a figure.", "return two things: (figure, mean_cos).")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _fail(
                name,
                f"{case} returned {type(out).__name__}: expected a pair (figure, mean_cos).",
                "did you forget the `return` statement?" if out is None else None,
            )
        fig, mean_cos = out
        if isinstance(mean_cos, Figure) and not isinstance(fig, Figure):
            plt.close(mean_cos)
            raise _fail(
                name, f"{case} returned (number, figure).", "return them in the order (figure, mean_cos)."
            )
        if not isinstance(fig, Figure):
            raise _fail(
                name,
                f"{case} returned {type(fig).__name__} as its figure: expected a matplotlib Figure.",
                "plots.feature_arrows and plots.wtw_and_norms return one; return it.",
            )
        seen.append(fig)
        drawn = any(ax.lines or ax.images or ax.patches or ax.collections for ax in fig.axes)
        if not drawn:
            raise _fail(name, f"{case}: the figure you returned has nothing drawn on it.")
        try:
            value = float(mean_cos.item() if isinstance(mean_cos, torch.Tensor) else mean_cos)
        except (TypeError, ValueError, RuntimeError) as err:
            raise _fail(
                name, f"{case} returned {type(mean_cos).__name__} as mean_cos: expected one number."
            ) from err
        if not math.isfinite(value):
            raise _fail(
                name,
                f"{case} returned mean_cos = {value}.",
                "a feature with norm 0 has no direction: keep only the represented features "
                "(metrics.represented) before dividing by the norms.",
            )
        if abs(value - expected) <= tol:
            continue
        hint = None
        if value < 0:
            hint = "cosines of features on opposite sides are negative: average |cos|, not cos."
        elif args == (3, 3, 0.0) and 0.25 < value < 0.45:
            hint = (
                "three orthogonal features give 3 ones on the diagonal of the cosine matrix and 0 "
                "elsewhere: average over pairs of different features only (leave out i = j)."
            )
        elif args == (5, 2, 0.99) and abs(value - (5 + 20 * expected) / 25) < 0.03:
            hint = "average over pairs of different features only: leave out the diagonal (i = j)."
        elif args == (5, 2, 0.99) and value > expected + tol:
            hint = (
                "divide each column by its norm first: the cosine is Ŵ_i · Ŵ_j, not the dot "
                "product W_i · W_j (the pentagon's arrows are longer than 1)."
            )
        raise _fail(
            name,
            f"{case} gave mean |cos| = {value:.3f}: expected {expected:.2f} ± {tol:.2f}.",
            hint,
        )


__all__ += ["check_analyze_superposition"]


# --------------------------------------------------------------------------- phase diagrams
# The toy-models chapter's phase diagrams (reference: toy_lib.theory).

__all__ += ["check_candidate_losses"]


@_checker
def check_candidate_losses(fn: Callable) -> None:
    """Check a learner's ``fn(r, p) -> (ignore_extra, dedicate_extra, antipodal)``: the expected
    losses of the three candidate arrangements of the ``2 -> 1`` model (feature 0 of importance
    1, the extra feature 1 of importance ``r``, both of density ``p``), compared with
    `toy_lib.theory.candidate_losses`: ``r (p/3 - p²/4)``, ``p/3 - p²/4`` and
    ``(1 + r) p²/6``, on a single cell and on a grid (NumPy arrays of the same shape).

    Args:
        fn: your function.

    Raises:
        AssertionError: naming the candidate that differs, the values expected and got, and the
            likely mistake.
        ValueError: for a ``fn`` that is not a function.
    """
    from . import theory

    name = "check_candidate_losses"
    labels = ("ignore_extra", "dedicate_extra", "antipodal")
    r_grid, p_grid = np.meshgrid(np.geomspace(0.1, 10, 5), np.geomspace(1, 0.01, 4))
    for r, p in ((np.array(2.0), np.array(0.3)), (r_grid, p_grid)):
        case = (
            f"r of shape {r.shape} and p of shape {p.shape}" if r.ndim else f"r = {float(r)}, p = {float(p)}"
        )
        what = "three arrays (ignore_extra, dedicate_extra, antipodal), each of the shape of r"
        out = _call(name, case, what, fn, r.copy(), p.copy())
        if out is None or isinstance(out, dict) or not hasattr(out, "__len__") or len(out) != 3:
            raise _fail(
                name,
                f"for {case} your function returned {type(out).__name__}: expected {what}.",
                "return a tuple of three arrays, in the order (ignore_extra, dedicate_extra, antipodal)"
                if out is not None
                else "did you forget the `return` statement?",
            )
        ref = theory.candidate_losses(r, p, n_features=2)
        want = dict(zip(labels, (ref["extra ignored"], ref["extra dedicated"], ref["extra antipodal"])))
        ig = p / 3 - p**2 / 4
        mistakes = {
            "ignore_extra": [
                (
                    r * p / 3,
                    "an ignored feature's output is its bias, best at its mean p/2: it costs "
                    "the variance p/3 - p²/4, not E[x²] = p/3",
                ),
                (ig, "the ignored feature is the extra one: multiply by its importance r"),
            ],
            "dedicate_extra": [
                (
                    p / 3,
                    "an ignored feature's output is its bias, best at its mean p/2: it costs "
                    "the variance p/3 - p²/4, not E[x²] = p/3",
                ),
                (r * ig, "here feature 0 (importance 1) is ignored, not the extra one"),
            ],
            "antipodal": [
                (
                    (1 + r) * p**2 / 3,
                    "each feature comes back as ReLU(x_i - x_j), off by min(x_i, x_j) "
                    "when both are active, and E[min(U, V)²] = 1/6, not 1/3",
                ),
                (
                    p**2 / 6,
                    "both features err when both are active: weight feature 0 by 1 and the "
                    "extra feature by r, (1 + r) p²/6",
                ),
                ((1 + r) * p / 6, "both features must be active for an error: probability p², not p"),
            ],
        }
        for label, value in zip(labels, out):
            got = _as_numpy(value, name, f"{label} as an array of the shape of r", case)
            target = np.broadcast_to(want[label], r.shape)
            if got.shape != target.shape:
                _check_shape(name, got, target.shape, f"the shape of r and p ({label})")
            _check_finite(name, got, case)
            if _close(got, target, 1e-9):
                continue
            hint = next(
                (h for wrong, h in mistakes[label] if _close(got, np.broadcast_to(wrong, r.shape), 1e-9)),
                None,
            )
            raise _fail(
                name,
                f"for {case}, {label} is off: expected {np.round(target, 6).ravel()[:4]}, "
                f"got {np.round(got, 6).ravel()[:4]}.",
                hint,
            )
    print(f"{name}: your function passed (a single cell and a 4 x 5 grid, all three candidates)")


# --------------------------------------------------------------------------- plateau values of D


def _tight_geometry(n_features: int, n_hidden: int) -> torch.Tensor:
    """``(hidden, feature)`` unit vectors of one of the symmetric geometries of
    `_PLATEAU_CASES`: equal norms, spread so evenly that ``W Wᵀ`` is a multiple of the identity."""
    k, d = n_features, n_hidden
    if d == 1:  # one feature alone, or an antipodal pair
        return torch.tensor([[(-1.0) ** j for j in range(k)]], dtype=torch.float64)
    if d == 2:  # a regular k-gon
        angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        return torch.stack([angles.cos(), angles.sin()])
    if (k, d) == (4, 3):  # a regular tetrahedron
        W = torch.tensor([[1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]], dtype=torch.float64)
    elif (k, d) == (6, 3):  # an octahedron: three antipodal pairs on the axes
        W = torch.cat([torch.eye(3), -torch.eye(3)], dim=1).to(torch.float64)
    elif (k, d) == (8, 3):  # a square antiprism, its height chosen to make W Wᵀ ∝ I
        angles = math.pi * torch.arange(8, dtype=torch.float64) / 4
        z = torch.tensor([(-1.0) ** j for j in range(8)], dtype=torch.float64) / math.sqrt(2)
        W = torch.stack([angles.cos(), angles.sin(), z])
    elif (k, d) == (12, 3):  # an icosahedron
        g = (1 + math.sqrt(5)) / 2
        pts = []
        for a in (-1.0, 1.0):
            for b in (-g, g):
                pts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
        W = torch.tensor(pts, dtype=torch.float64).T
    else:  # pragma: no cover - only the cases below are built
        raise ValueError(f"no geometry for {k} features in {d} dimensions")
    return W / W.norm(dim=0)


#: ``(n_features, n_hidden, what)``: the six plateau geometries of the dimensionality sweep and
#: three more tight geometries the rule must also get right.
_PLATEAU_CASES = (
    (1, 1, "one feature with a dimension of its own"),
    (2, 1, "an antipodal pair"),
    (3, 2, "a triangle"),
    (4, 3, "a tetrahedron"),
    (5, 2, "a pentagon"),
    (8, 3, "a square antiprism"),
    (6, 2, "a hexagon"),
    (6, 3, "an octahedron (three antipodal pairs)"),
    (12, 3, "an icosahedron"),
)


@_checker
def check_plateau_dimensionality(fn: Callable) -> None:
    """Check a learner's ``fn(n_features, n_hidden) -> D``: the dimensionality of each of
    ``n_features`` features of equal norm spread evenly in ``n_hidden`` dimensions (so evenly
    that ``W Wᵀ`` is a multiple of the identity: a pair, a regular polygon, a tetrahedron, ...).

    The checker builds each geometry of `_PLATEAU_CASES` (the six plateaus of the feature
    dimensionality sweep, 1, 3/4, 2/3, 1/2, 2/5, 3/8, and a hexagon, an octahedron and an
    icosahedron), measures its features' dimensionality with
    `toy_lib.metrics.feature_dimensionality`, and compares it with ``fn``'s prediction.

    Raises:
        AssertionError: naming the geometry, the predicted and the measured value and, for the
            common mistakes (features per dimension, one dimension shared among the features,
            the polygon's 2/k everywhere), what went wrong.
    """
    name = "check_plateau_dimensionality"
    for k, d, what in _PLATEAU_CASES:
        case = f"{what} ({k} feature{'s' if k > 1 else ''} in {d} dimension{'s' if d > 1 else ''})"
        got = _as_numpy(_call(name, case, "one number", fn, k, d), name, "one number", case)
        if got.size != 1:
            raise _fail(
                name,
                f"for {case} your function returned shape {got.shape}: expected one number.",
                "every feature of these geometries has the same dimensionality: return it once.",
            )
        value = float(got.reshape(()))
        measured = metrics.feature_dimensionality(_tight_geometry(k, d))
        want = float(measured.mean())
        if math.isfinite(value) and abs(value - want) <= 1e-6:
            continue
        hint = None
        if math.isclose(value, k / d, rel_tol=1e-6):
            hint = (
                "you returned features per dimension (n_features / n_hidden); D is the share of a "
                "dimension each feature gets, at most 1."
            )
        elif math.isclose(value, 1 / k, rel_tol=1e-6) and d > 1:
            hint = (
                "1 / n_features divides one dimension among the features, but they share all "
                "n_hidden dimensions: the D of all the features adds up to n_hidden."
            )
        elif math.isclose(value, 2 / k, rel_tol=1e-6):
            hint = (
                "2 / n_features is right for features spread around a circle (2 dimensions); "
                "here they span n_hidden dimensions."
            )
        raise _fail(
            name,
            f"for {case} you predicted D = {value:.4g}, but its features measure D = {want:.4g} "
            "(metrics.feature_dimensionality).",
            hint,
        )
    print(f"{name}: your function passed ({len(_PLATEAU_CASES)} geometries, from a pair to an icosahedron)")


__all__ += ["check_plateau_dimensionality"]


# --------------------------------------------------------------------------- superposition in richer settings

__all__ += ["check_correlated_batch", "check_neuron_forward", "check_abs_loss"]


@_checker
def check_correlated_batch(fn: Callable, *, batch_size: int = 20_000, seed: int = 0) -> None:
    """Check a learner's ``fn(pair_probability, batch_size) -> x``: features in correlated pairs.

    ``pair_probability`` is an ``(instance, pair)`` tensor; ``x`` must be an ``(instance, batch,
    feature)`` tensor with ``feature = 2 × pair``, in which features ``2k`` and ``2k + 1`` are
    active together (both or neither) with probability ``pair_probability[i, k]``, the pairs
    independently of each other, and each active feature takes its own value uniform on
    [0, 1]. The data are random, so the checker compares statistics with what they must be
    (tolerances of five standard deviations or more). It seeds torch's global random number
    generator and restores its state afterwards.

    Args:
        fn: your function.
        batch_size: samples per instance, an integer from 1,000 to 1,000,000.
        seed: seeds the random numbers, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the statistic that is off and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``batch_size`` or ``seed``.
    """
    _seeded_batch_check(_check_correlated_batch, "check_correlated_batch", fn, batch_size, seed)


def _check_correlated_batch(fn: Callable, batch_size: int, name: str) -> None:
    prob = torch.tensor([[0.5, 0.1, 1.0], [0.2, 0.2, 0.0]])
    n_inst, n_pairs = prob.shape
    case = f"pair_probability of shape {tuple(prob.shape)} and batch_size={batch_size}"
    what = "an (instance, batch, feature) tensor with two features per pair"
    x = _as_numpy(_call(name, case, what, fn, prob.clone(), batch_size), name, what, case)
    _check_shape(name, x, (n_inst, batch_size, 2 * n_pairs), "(instance, batch, feature), feature = 2 × pair")
    _check_finite(name, x, case)
    if x.min() < 0 or x.max() > 1:
        raise _fail(
            name,
            f"your values range from {x.min():.3g} to {x.max():.3g}: every entry must lie in [0, 1].",
            "an active feature takes a value drawn uniformly from [0, 1] (torch.rand); an inactive one is 0.",
        )
    active = x != 0
    first, second = active[:, :, 0::2], active[:, :, 1::2]  # (instance, batch, pair)
    apart = (first != second).mean()
    if apart > 0:
        hint = "draw one 'is the pair active?' number per pair and sample, and use it for both features."
        if abs(apart - 2 * 0.5 * 0.5 * 0.25) < 0.1:
            hint = "the two features of a pair look independent: " + hint
        raise _fail(
            name,
            f"in {apart:.1%} of the (sample, pair) cases one feature of a pair is active without the other: "
            "the two features of a pair must be active together.",
            hint,
        )
    p = prob.numpy()
    rate = first.mean(axis=1)  # (instance, pair)
    for i in range(n_inst):
        for k in range(n_pairs):
            sd = math.sqrt(p[i, k] * (1 - p[i, k]) / batch_size)
            if abs(rate[i, k] - p[i, k]) > 5 * sd + 1e-3:
                raise _fail(
                    name,
                    f"pair {k} of instance {i} (features {2 * k} and {2 * k + 1}) should be active with "
                    f"probability {p[i, k]:g} but is active in {rate[i, k]:.3f} of the batch.",
                    "pair k of instance i is active with pair_probability[i, k]: broadcast it as "
                    "pair_probability[:, None, :], then repeat each pair's mask for its two features.",
                )
    # pairs 0 and 1 of instance 1 (each at 0.2) are independent: both active in 0.04
    both = (first[1, :, 0] & first[1, :, 1]).mean()
    if abs(both - 0.04) > 5 * math.sqrt(0.04 * 0.96 / batch_size) + 1e-3:
        raise _fail(
            name,
            f"pairs 0 and 1 of instance 1 (each active with probability 0.2) are both active in {both:.3f} "
            "of the batch: independent pairs would be both active in 0.04.",
            "draw a separate random number for every pair, not one per sample.",
        )
    values = x[active]
    if abs(values.mean() - 0.5) > 0.01 or abs(values.std() - math.sqrt(1 / 12)) > 0.01:
        raise _fail(
            name,
            f"the non-zero values have mean {values.mean():.3f} and standard deviation {values.std():.3f}: "
            f"a uniform value on [0, 1] has mean 0.5 and standard deviation {math.sqrt(1 / 12):.3f}.",
            "an active feature's value is torch.rand(...), drawn apart from the number that decides activity.",
        )
    # each feature of an active pair draws its own value: no correlation between the two values
    a, b = x[0, :, 0][first[0, :, 0]], x[0, :, 1][first[0, :, 0]]
    corr = float(np.corrcoef(a, b)[0, 1])
    if abs(corr) > 0.1:
        raise _fail(
            name,
            f"the values of features 0 and 1 when their pair is active have correlation {corr:.2f}: "
            "each feature must draw its own value.",
            "correlated pairs share when they are active, not the value they take.",
        )
    print(
        f"{name}: your function passed (pairs active together, at their rates, with independent values "
        f"on {n_inst} instances x {batch_size} samples)"
    )


@_checker
def check_neuron_forward(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W, b, x) -> x_hat``, the neuron model ``x' = ReLU(Wᵀ ReLU(W x) + b)``.

    Shapes: ``W`` is ``(instance, hidden, feature)``, ``b`` is ``(instance, feature)``, ``x`` and
    the result are ``(instance, batch, feature)``. Compared with `toy_lib.neuron_forward` on
    random weights, biases and inputs of several shapes.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the size of the difference and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    from .model import neuron_forward

    def hidden_relu(W, x):
        return torch.relu(torch.einsum("ihf,ibf->ibh", W, x))

    _check_model_forward(
        "check_neuron_forward",
        fn,
        seed,
        "toy_lib.neuron_forward",
        neuron_forward,
        [
            (
                forward,
                "your output is the tied model's ReLU(WᵀWx + b): apply a ReLU to the hidden layer h = W x first.",
            ),
            (
                lambda W, b, x: torch.einsum("ihf,ibh->ibf", W, hidden_relu(W, x)) + b[:, None, :],
                "your output has no ReLU at the end: x' = ReLU(Wᵀ h + b).",
            ),
            (
                lambda W, b, x: torch.relu(torch.einsum("ihf,ibh->ibf", W, hidden_relu(W, x))),
                "add the bias b (one value per instance and feature) before the output ReLU.",
            ),
        ],
        "h = ReLU(torch.einsum('ihf,ibf->ibh', W, x)), then x' = ReLU(torch.einsum('ihf,ibh->ibf', "
        "W, h) + b[:, None, :]).",
    )


@_checker
def check_abs_loss(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(W1, W2, b, x, importance) -> loss`` for the absolute-value model.

    The model is ``y' = ReLU(W₂ ReLU(W₁ x) + b)`` and its target ``|x|``; the loss is the
    importance-weighted MSE, one value per instance:
    ``L_i = mean over batch and feature of I[i, f] (|x[i, b, f]| - y'[i, b, f])²``. Shapes:
    ``W1`` ``(instance, hidden, feature)``, ``W2`` ``(instance, feature, hidden)``, ``b`` and
    ``importance`` ``(instance, feature)``, ``x`` ``(instance, batch, feature)`` with values in
    [-1, 1]. Compared with `toy_lib.loss_per_instance` of `toy_lib.abs_forward`.

    Args:
        fn: your function.
        seed: seeds the random case, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming what differs and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    from .model import abs_forward

    name = "check_abs_loss"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    n_inst, n_hidden, n_feat, batch = 3, 6, 4, 32
    W1 = torch.randn(n_inst, n_hidden, n_feat, generator=gen, dtype=torch.float64)
    W2 = torch.randn(n_inst, n_feat, n_hidden, generator=gen, dtype=torch.float64)
    b = 0.3 * torch.randn(n_inst, n_feat, generator=gen, dtype=torch.float64)
    prob = torch.full((n_inst, n_feat), 0.6, dtype=torch.float64)
    x = generate_batch(prob, batch, generator=gen, value_range=(-1, 1))
    importance = torch.rand(n_inst, n_feat, generator=gen, dtype=torch.float64) + 0.1
    case = (
        f"W1 {tuple(W1.shape)}, W2 {tuple(W2.shape)}, b {tuple(b.shape)}, x {tuple(x.shape)}, "
        f"importance {tuple(importance.shape)}"
    )
    args = (W1.clone(), W2.clone(), b.clone(), x.clone(), importance.clone())
    got = _as_numpy(
        _call(name, case, "an (instance,) tensor", fn, *args), name, "an (instance,) tensor", case
    )
    y_hat = abs_forward(W1, W2, b, x)
    want = loss_per_instance(x.abs(), y_hat, importance).numpy()
    if got.shape != want.shape:
        hint = (
            "average over the batch and feature axes only (dim=(1, 2)): one loss per instance."
            if got.size == 1
            else None
        )
        raise _fail(
            name,
            f"your function returned shape {got.shape}: expected {want.shape}, one loss per instance.",
            hint,
        )
    _check_finite(name, got, case)
    if _close(got, want, 1e-6):
        print(f"{name}: your function passed (max difference {np.abs(got - want).max():.1e})")
        return
    hint = None
    if _close(got, loss_per_instance(x, y_hat, importance).numpy(), 1e-6):
        hint = "your target is x: the model is trained to output |x| (x.abs())."
    elif _close(got, ((x.abs() - y_hat).square()).mean(dim=(1, 2)).numpy(), 1e-6):
        hint = "your loss ignores the importance: multiply each squared error by I[i, f]."
    elif _close(got, (importance[:, None, :] * (x.abs() - y_hat).square()).sum(dim=(1, 2)).numpy(), 1e-6):
        hint = "you summed over batch and features: take the mean instead."
    elif _close(
        got,
        loss_per_instance(x.abs(), abs_forward(W1, W2, torch.zeros_like(b), x), importance).numpy(),
        1e-6,
    ):
        hint = "add the output bias b before the output ReLU."
    else:
        hint = (
            "h = ReLU(torch.einsum('ihf,ibf->ibh', W1, x)); y' = ReLU(torch.einsum('ifh,ibh->ibf', W2, h) "
            "+ b[:, None, :]); W2 is (instance, feature, hidden)."
        )
    raise _fail(name, f"your losses {np.round(got, 5)} differ from the expected {np.round(want, 5)}.", hint)


# ---- evaluating part B
# The chapter "Evaluating SAEs", part B: measuring feature absorption.

__all__ += ["check_absorption_fraction"]


def _absorption_cases(gen: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(label, f (batch, d_sae), child_fires (batch,))`` cases with known answers."""
    absorbed = np.array(
        [[1.0, 0.0], [1.2, 0.0], [0.0, 1.4], [0.0, 1.3], [0.9, 0.0], [0.0, 0.0]]
    )  # latent 0 (the parent's) silent on the three child inputs 2, 3 and 5
    child = np.array([False, False, True, True, False, True])
    partial = absorbed.copy()
    partial[2, 0] = 0.5  # the parent latent fires on one of the three child inputs
    f = gen.uniform(0.1, 2.0, size=(40, 5)) * (gen.random((40, 5)) < 0.4)
    mask = gen.random(40) < 0.3
    mask[0] = True
    return [
        ("an absorbed parent (latent 0 silent on every child input)", absorbed, child),
        ("a parent latent that fires on one child input in three", partial, child),
        ("random latents (40 inputs, 5 latents)", f, mask),
    ]


@_checker
def check_absorption_fraction(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(f, child_fires) -> (d_sae,)``: for each latent of one SAE, the
    fraction of the inputs on which the child feature fires that the latent is silent on
    (`toy_lib.metrics.absorption_fraction` for one SAE); ``f`` is ``(batch, d_sae)`` latents,
    ``child_fires`` ``(batch,)`` booleans.

    Compared with `toy_lib.metrics.absorption_fraction` on a hand-built absorbed parent, a
    partly absorbed one and random latents.

    Args:
        fn: your function.
        seed: seeds the random case, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, the values and a likely cause.
        ValueError: for a bad ``seed``.
    """
    name = "check_absorption_fraction"
    gen = np.random.default_rng(_validate.seed(seed))
    what = "one fraction per latent, shape (d_sae,)"
    for label, f, child in _absorption_cases(gen):
        raw = _call(name, label, what, fn, torch.tensor(f), torch.tensor(child))
        got = _as_numpy(raw, name, what, label)
        _check_finite(name, got, label)
        want = metrics.absorption_fraction(f, child)
        if got.shape != want.shape:
            hint = "average over the inputs (axis 0), one number per latent (axis 1)."
            raise _fail(
                name,
                f"for {label} your function returned shape {got.shape}: expected {want.shape}, {what}.",
                hint,
            )
        if _close(got, want, 1e-6):
            continue
        silent = f == 0
        hint = None
        if _close(got, 1 - want, 1e-6):
            hint = "count the inputs on which the latent is silent (f == 0), not those on which it fires."
        elif _close(got, (silent & child[:, None]).mean(0), 1e-6):
            hint = "divide by the number of inputs on which the child fires, not by every input."
        elif _close(got, silent.mean(0), 1e-6):
            hint = "look only at the inputs on which the child fires (child_fires is True)."
        elif _close(got, (silent & ~child[:, None]).sum(0) / max((~child).sum(), 1), 1e-6):
            hint = "the inputs to look at are those where child_fires is True, not False."
        raise _fail(
            name,
            f"for {label} your function returned {np.round(got, 4)}: expected {np.round(want, 4)}.",
            hint,
        )
    print(f"{name}: your function passed (3 cases)")


# ---- beyond SAEs


def _matryoshka_reference(x, f, W_dec, b_dec, widths, *, groups_alone=False, with_bias=True):
    """``Σ_m mean_batch ||x - x̂_m||²`` with ``x̂_m`` the reconstruction from latents ``0 … w_m - 1``
    (or, ``groups_alone``, from latents ``w_{m-1} … w_m - 1`` only: a planted mistake)."""
    out, start = [], 0
    for width in widths:
        lo = start if groups_alone else 0
        x_hat = torch.einsum("ibs,isd->ibd", f[..., lo:width], W_dec[:, lo:width])
        if with_bias:
            x_hat = x_hat + b_dec[:, None]
        out.append((x - x_hat).square().sum(-1).mean(-1))
        start = width
    return torch.stack(out)  # (prefix, instance)


@_checker
def check_matryoshka_loss(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(x, f, W_dec, b_dec, prefix_widths) -> loss``, one loss per instance:
    ``Σ_m mean_batch ||x - x̂_m||²`` where prefix ``m`` reconstructs from the latents
    ``0 … w_m - 1`` only, ``x̂_m = f[..., :w_m] W_dec[:, :w_m] + b_dec`` (the Matryoshka SAE's loss
    with equal weights; `toy_lib.SAEConfig` ``architecture="matryoshka"``). ``x``: ``(instance,
    batch, d_in)``; ``f``: ``(instance, batch, d_sae)``; ``W_dec``: ``(instance, d_sae, d_in)``;
    ``b_dec``: ``(instance, d_in)``; ``prefix_widths``: a tuple of increasing integers ending at
    ``d_sae``; the result ``(instance,)``.

    Args:
        fn: your function.
        seed: seeds the random cases, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming what differs and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    name = "check_matryoshka_loss"
    gen = torch.Generator().manual_seed(_validate.seed(seed))
    n_inst, batch, d_in, d_sae = 3, 16, 4, 7
    x = torch.randn(n_inst, batch, d_in, generator=gen, dtype=torch.float64)
    f = torch.relu(torch.randn(n_inst, batch, d_sae, generator=gen, dtype=torch.float64))
    W_dec = torch.randn(n_inst, d_sae, d_in, generator=gen, dtype=torch.float64)
    b_dec = torch.randn(n_inst, d_in, generator=gen, dtype=torch.float64)
    for widths in ((2, 4, 7), (7,), (1, 3, 6, 7)):
        case = f"x (3, 16, 4), f (3, 16, 7), prefix_widths {widths}"
        what = "an (instance,) tensor"
        args = (x.clone(), f.clone(), W_dec.clone(), b_dec.clone(), widths)
        got = _as_numpy(_call(name, case, what, fn, *args), name, what, case)
        per_prefix = _matryoshka_reference(x, f, W_dec, b_dec, widths)
        want = per_prefix.sum(0).numpy()
        if got.shape != want.shape:
            hint = "average over the batch only: each instance is its own SAE." if got.size == 1 else None
            raise _fail(
                name,
                f"for {case} your function returned shape {got.shape}: expected {want.shape}, one loss "
                "per instance.",
                hint,
            )
        _check_finite(name, got, case)
        if _close(got, want, 1e-6):
            continue
        hint = None
        if _close(got, per_prefix[-1].numpy(), 1e-6):
            hint = "that is the whole dictionary's error alone: add the error of every prefix."
        elif _close(got, per_prefix.mean(0).numpy(), 1e-6):
            hint = "sum the prefixes' errors, do not average them."
        elif _close(
            got, _matryoshka_reference(x, f, W_dec, b_dec, widths, groups_alone=True).sum(0).numpy(), 1e-6
        ):
            hint = "prefix m uses every latent before w_m (0 … w_m - 1), not only its own group."
        elif _close(
            got, _matryoshka_reference(x, f, W_dec, b_dec, widths, with_bias=False).sum(0).numpy(), 1e-6
        ):
            hint = "add b_dec to each prefix's reconstruction."
        elif _close(
            got,
            _matryoshka_reference(x, f, W_dec, b_dec, tuple(w + 1 for w in widths[:-1]) + widths[-1:])
            .sum(0)
            .numpy(),
            1e-6,
        ):
            hint = "prefix m is f[..., :w_m]: w_m latents, indices 0 to w_m - 1."
        elif _close(got, (per_prefix / d_in).sum(0).numpy(), 1e-6):
            hint = "sum the squared error over d_in (||x - x̂||²), do not average it."
        raise _fail(
            name,
            f"for {case} your losses {np.round(got, 5)} differ from the expected {np.round(want, 5)}.",
            hint,
        )
    print(f"{name}: your function passed (3 cases)")


__all__ += ["check_matryoshka_loss"]


# --------------------------------------------------------------------------- "Evaluating SAEs", part A

__all__ += ["check_pareto_mask"]


def _dominance(l0: np.ndarray, error: np.ndarray, strict_both: bool = False):
    """The Pareto masks of two planted mistakes: dominance only when strictly better on both axes
    (``strict_both``), or also by a point merely no worse on both (every point then dominates
    itself, so the mask is all False)."""
    a, b = l0[..., None, :], l0[..., :, None]
    c, d = error[..., None, :], error[..., :, None]
    dominated = (a < b) & (c < d) if strict_both else (a <= b) & (c <= d)
    return ~dominated.any(-1)


@_checker
def check_pareto_mask(fn: Callable, *, seed: int = 0) -> None:
    """Check a learner's ``fn(l0, error) -> mask``: for arrays ``(..., point)`` of the same shape, a
    bool array of that shape, True where no other point of the same set has no more L0 and no more
    error, and strictly less of one (`toy_lib.evaluation.pareto_front`).

    Args:
        fn: your function.
        seed: seeds the random case, an integer from 0 to 2**63 - 1.

    Raises:
        AssertionError: naming the case, what was expected and a likely cause.
        ValueError: for a ``fn`` that is not a function, or a bad ``seed``.
    """
    from .evaluation import pareto_front

    name = "check_pareto_mask"
    rng = np.random.default_rng(_validate.seed(seed))
    hand = (np.array([1.0, 2.0, 3.0, 2.0, 4.0, 1.0, 0.5]), np.array([3.0, 2.0, 1.0, 3.0, 1.0, 3.0, 5.0]))
    sets = rng.integers(1, 6, size=(2, 3, 8)).astype(float)  # ties on purpose
    cases = [
        ("the hand case l0 = [1, 2, 3, 2, 4, 1, 0.5], error = [3, 2, 1, 3, 1, 3, 5]", *hand),
        ("three sets of 8 points, batched as (3, 8)", sets[0], sets[1]),
    ]
    for case, l0, error in cases:
        what = f"a bool array of shape {l0.shape}"
        got = _call(name, case, what, fn, l0.copy(), error.copy())
        got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got)
        want = pareto_front(l0, error)
        if got.shape != want.shape:
            hint = "return one flag per point, of the same shape as l0." if got.size != want.size else None
            if got.ndim < want.ndim:
                hint = "keep the leading axes: each row is its own set of points."
            raise _fail(name, f"{case}: your mask has shape {got.shape}, expected {want.shape}.", hint)
        if got.dtype != bool:
            raise _fail(
                name,
                f"{case}: your mask has dtype {got.dtype}, expected bool.",
                "return a comparison's result.",
            )
        if np.array_equal(got, want):
            continue
        hint = None
        if np.array_equal(got, ~want):
            hint = "you returned the dominated points: the frontier is the points nothing dominates."
        elif np.array_equal(got, _dominance(l0, error, strict_both=True)):
            hint = (
                "a point with the same error and more L0 is dominated too: no worse on both axes and "
                "strictly better on one (not strictly better on both)."
            )
        elif np.array_equal(got, _dominance(l0, error)):
            hint = "every point is 'no worse' than itself: require strictly better on at least one axis."
        elif np.array_equal(got, pareto_front(-l0, -error)):
            hint = "lower is better on both axes (fewer active latents, less error)."
        elif l0.ndim > 1 and np.array_equal(
            got, pareto_front(l0.reshape(-1), error.reshape(-1)).reshape(l0.shape)
        ):
            hint = "compare points only within their own set (the last axis), not across the leading axes."
        raise _fail(name, f"{case}: your mask {got.astype(int).tolist()} differs from the expected "
                    f"{want.astype(int).tolist()}.", hint)  # fmt: skip
    print(f"{name}: your function passed")
