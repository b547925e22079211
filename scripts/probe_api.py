"""Probe toy_lib's public API with a large, systematically generated set of bad and edge inputs.

A development tool, not a test: ``python scripts/probe_api.py`` (``--only forward`` to probe the
functions whose name contains a word, ``--list`` to see the cases, ``--verbose`` to print every
outcome that is not a clear refusal or a correct acceptance).

Every public entry point gets a valid baseline call; then one argument at a time is replaced by
a value from pools generated per kind of argument (sizes, reals, probabilities, choices, seeds,
devices, generators, dtypes, flags, tensors with named axes, weights, callables, configs, ...):
wrong Python types of every kind, NumPy and torch scalar forms, 0-d and 1-d arrays, wrong
shapes, a wrong size on every axis shared with another argument, an empty axis, NaN and
infinity, booleans, complex numbers, sparse and ``meta`` tensors, negative, zero and huge sizes,
devices this machine does not have. Each value is marked valid (must be accepted, with a finite
result), invalid (must be refused), or either (a finite result or a clear refusal).

Each call runs in a worker process (one thread, address space capped at 6 GiB) with a timeout,
and its outcome is classified:

- ``clear``: an invalid input refused with ValueError/TypeError (or the documented error, e.g.
  TrainingDiverged, or a checker's AssertionError) raised by toy_lib, whose message names the
  argument and says what was expected;
- ``vague``: refused by toy_lib, but the message does not name the argument or the expectation;
- ``raw``: an error raised inside torch, NumPy or Python rather than by toy_lib's checks;
- ``silent``: an invalid input accepted, or a NaN/infinite result (or a broken promise, such as a
  cache folder named ``~``) from valid input;
- ``hang``: no answer within the timeout; ``crash``: the worker died;
- ``ok``: a valid (edge-case) input accepted with a finite result;
- ``refused``: a valid input refused (a false alarm).

The summary table has one row per module (``sae``: `toy_lib.SAEConfig`, `toy_lib.train_sae` and
`toy_lib.SAEResult`; ``sae plots``: the SAE figures of `toy_lib.plots`; ``real_model``: the real
model, which needs what ``scripts/setup.py`` installs); ``plots`` (the toy-model figures) is
another helper's (its restyle adds its validation) and is listed apart from the total.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import inspect
import io
import json
import math
import os
import re
import select
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # the reference solutions of the checkers' tests

import toy_lib  # noqa: E402
from toy_lib import exercises, geometry, metrics, plots, real_model, synthetic, theory  # noqa: E402
from toy_lib.training import TrainingDiverged, optimise  # noqa: E402

OUTCOMES = ("ok", "clear", "vague", "raw", "silent", "refused", "hang", "crash")
MEMORY_CAP = 6 * 2**30
NOT_MINE = {"plots"}  # modules another helper owns


# ----------------------------------------------------------------------------- cases


@dataclasses.dataclass
class Value:
    label: str
    make: Callable[[], object]
    valid: bool | None  # None: either a finite result or a clear refusal
    expect: tuple = (ValueError, TypeError)  # the error types that count as a clear refusal
    needle: str | None = None  # what a clear message must name (default: the argument)


@dataclasses.dataclass
class Case:
    module: str
    function: str
    arg: str
    value: Value
    call: Callable[[], object]
    check: Callable[[object], str | None] | None = None  # a promise about the result


def V(label, make, valid, **kw) -> Value:
    return Value(
        label, make if callable(make) and not isinstance(make, type) else (lambda: make), valid, **kw
    )


def const(x):
    return lambda: x


def _fill(shape, value, dtype=torch.float32):
    return torch.full(shape, value, dtype=dtype)


GARBAGE = [
    ("None", None),
    ("str '3'", "3"),
    ("bytes", b"3"),
    ("True", True),
    ("np.bool_", np.bool_(False)),
    ("complex", 1 + 2j),
    ("np.complex128", np.complex128(1)),
    ("dict", {}),
    ("set", {1}),
    ("object()", object()),
    ("Ellipsis", ...),
    ("lambda", lambda: 1),
    ("Fraction", Fraction(1, 2)),
    ("Decimal", Decimal("1")),
    ("np.datetime64", np.datetime64("2020-01-01")),
    ("torch bool scalar", torch.tensor(True)),
    ("torch complex scalar", torch.tensor(1 + 1j)),
]


def garbage(exclude=()) -> list[Value]:
    return [V(label, const(x), False) for label, x in GARBAGE if label not in exclude]


def sizes(*, huge_valid=False, minimum=1, base=3) -> list[Value]:
    """A positive integer argument (a size, a count of steps)."""
    vals = [
        V("int", base, True),
        V("np.int64", lambda: np.int64(base), True),
        V("np.int32", lambda: np.int32(base), True),
        V("np.uint8", lambda: np.uint8(base), True),
        V("torch int scalar", lambda: torch.tensor(base), True),
        V("0-d int array", lambda: np.array(base), True),
        V("float", float(base), False),
        V("np.float64", lambda: np.float64(base), False),
        V("torch float scalar", lambda: torch.tensor(float(base)), False),
        V("2.5", 2.5, False),
        V("nan", math.nan, False),
        V("inf", math.inf, False),
        V("-1", -1, False),
        V("-10**20", -(10**20), False),
        V("1-element list", [base], False),
        V("1-d array", lambda: np.array([base]), False),
        V("1-d tensor", lambda: torch.tensor([base]), False),
        V("10**30", 10**30, huge_valid),
        V("2**64", 2**64, huge_valid),
    ]
    if minimum >= 1:
        vals.append(V("0", 0, False))
    if minimum > 1:
        vals.append(V(f"{minimum - 1}", minimum - 1, False))
    return vals + garbage()


def reals(
    mid: float, *, low=None, high=None, low_ok=True, high_ok=True, huge_valid=False, extra=()
) -> list[Value]:
    """A real scalar argument in [low, high]."""
    vals = [
        V("float", mid, True),
        V("np.float64", lambda: np.float64(mid), True),
        V("np.float32", lambda: np.float32(mid), True),
        V("np.float16", lambda: np.float16(mid), True),
        V("torch float scalar", lambda: torch.tensor(mid), True),
        V("torch float64 scalar", lambda: torch.tensor(mid, dtype=torch.float64), True),
        V("0-d float array", lambda: np.array(mid), True),
        V("nan", math.nan, False),
        V("inf", math.inf, False),
        V("-inf", -math.inf, False),
        V("np.nan", lambda: np.float64("nan"), False),
        V("torch nan scalar", lambda: torch.tensor(math.nan), False),
        V("1-element list", [mid], False),
        V("1-d array", lambda: np.array([mid, mid, mid]), False),
        V("1-d tensor", lambda: torch.tensor([mid, mid, mid]), False),
        V("10**400 (int)", 10**400, False),
        *extra,
    ]
    if low is not None:
        vals.append(V(f"low bound {low}", low, low_ok))
        vals.append(V("below the low bound", low - 0.5, False))
        if float(low).is_integer():
            vals.append(V("int low bound", int(low), low_ok))
    if high is not None:
        vals.append(V(f"high bound {high}", high, high_ok))
        vals.append(V("above the high bound", high + 0.5, False))
    else:
        vals.append(V("1e300", 1e300, huge_valid))
    return vals + garbage()


def choices(options, *, none_ok=False) -> list[Value]:
    vals = [V(f"{o!r}", o, True) for o in options]
    vals += [
        V("np.str_", lambda: np.str_(options[0]), True),
        V("upper case", options[0].upper(), False),
        V("''", "", False),
        V("unknown", "bogus", False),
        V("bytes", options[0].encode(), False),
        V("list", [options[0]], False),
        V("1", 1, False),
        V("None", None, none_ok),
    ]
    return vals + garbage(exclude=("None",))


def feature_groups(n_features: int = 5) -> list[Value]:
    """``correlated`` / ``anticorrelated`` of a 5-feature config with probability 0.3."""
    return [
        V("()", (), True),
        V("[]", [], True),
        V("one pair", [(0, 1)], True),
        V("two pairs", [(0, 1), (2, 3)], True),
        V("a group of three", [(0, 1, 2)], True),
        V("np.int64 indices", lambda: [(np.int64(0), np.int64(1))], True),
        V("an int array of pairs", lambda: np.array([[0, 1], [2, 3]]), True),
        V("a tensor pair", lambda: [torch.tensor([3, 4])], True),
        V("a group of one", [(2,)], False),
        V("an empty group", [()], False),
        V("overlapping groups", [(0, 1), (1, 2)], False),
        V("a repeated index", [(0, 0)], False),
        V("index = n_features", [(0, n_features)], False),
        V("a negative index", [(-1, 0)], False),
        V("a float index", [(0, 1.0)], False),
        V("a bool index", [(True, 0)], False),
        V("a bare pair (not a list of groups)", (0, 1), False),
        V("a string", "01", False),
        V("a dict", {0: 1}, False),
        V("None", None, False),
        V("an int", 3, False),
    ]


def value_ranges(*, unit_ok: bool, signed_ok: bool) -> list[Value]:
    """``value_range`` of a model that takes U[0, 1] where ``unit_ok``, U[-1, 1] where ``signed_ok``."""
    return [
        V("(0, 1)", (0, 1), unit_ok),
        V("[0.0, 1.0]", [0.0, 1.0], unit_ok),
        V("np.array([0, 1])", lambda: np.array([0, 1]), unit_ok),
        V("(-1, 1)", (-1, 1), signed_ok),
        V("torch.tensor([-1., 1.])", lambda: torch.tensor([-1.0, 1.0]), signed_ok),
        V("(0, 2)", (0, 2), False),
        V("(1, 0)", (1, 0), False),
        V("(-1, 0)", (-1, 0), False),
        V("(0, 1, 2)", (0, 1, 2), False),
        V("(nan, 1)", (math.nan, 1), False),
        V("'0,1'", "0,1", False),
        V("1", 1, False),
        V("{}", {}, False),
    ]


def seeds() -> list[Value]:
    return [
        V("0", 0, True),
        V("2**63 - 1", 2**63 - 1, True),
        V("np.int64", lambda: np.int64(7), True),
        V("np.uint64", lambda: np.uint64(7), True),
        V("torch int scalar", lambda: torch.tensor(7), True),
        V("-1", -1, False),
        V("1.5", 1.5, False),
        V("7.0", 7.0, False),
        V("2**64 - 1", 2**64 - 1, False),
        V("2**63", 2**63, False),
        V("np.float64", lambda: np.float64(7), False),
        V("nan", math.nan, False),
    ] + garbage()


def devices(*, none_ok=True) -> list[Value]:
    vals = [
        V("None", None, none_ok),
        V("'cpu'", "cpu", True),
        V("'cpu:0'", "cpu:0", True),
        V("torch.device('cpu')", lambda: torch.device("cpu"), True),
        V("'cpu:1'", "cpu:1", False),
        V("'CPU'", "CPU", False),
        V("''", "", False),
        V("'tpu'", "tpu", False),
        V("'xla'", "xla", False),
        V("'meta'", "meta", False),
        V("'cuda:7'", "cuda:7", False),
        V("0", 0, False),
        V("-1", -1, False),
        V("1.0", 1.0, False),
    ]
    if not torch.cuda.is_available():
        vals += [V("'cuda'", "cuda", False), V("torch.device('cuda')", lambda: torch.device("cuda"), False)]
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        vals.append(V("'mps'", "mps", False))
    return vals + garbage(exclude=("None",))


def flags(*, none_ok=True) -> list[Value]:
    return [
        V("None", None, none_ok),
        V("True", True, True),
        V("False", False, True),
        V("np.bool_", lambda: np.bool_(True), True),
        V("0", 0, False),
        V("1", 1, False),
        V("'yes'", "yes", False),
        V("''", "", False),
        V("0.5", 0.5, False),
        V("[]", [], False),
    ]


def generators() -> list[Value]:
    return [
        V("None", None, True),
        V("torch.Generator()", lambda: torch.Generator(), True),
        V("seeded generator", lambda: torch.Generator().manual_seed(3), True),
        V("int", 3, False),
        V("np.random.Generator", lambda: np.random.default_rng(0), False),
        V("np.random.RandomState", lambda: np.random.RandomState(0), False),
        V("str", "gen", False),
        V("torch.Generator class", torch.Generator, False),
    ] + garbage(exclude=("None",))


def dtypes() -> list[Value]:
    return [
        V("torch.float32", torch.float32, True),
        V("torch.float64", torch.float64, True),
        V("torch.float16", torch.float16, True),
        V("torch.int64", torch.int64, False),
        V("torch.bool", torch.bool, False),
        V("torch.complex64", torch.complex64, False),
        V("'float32'", "float32", False),
        V("np.float32", np.float32, False),
        V("float", float, False),
    ] + garbage()


def tensors(
    shape: tuple,
    axes: tuple,
    shared: set,
    value: float = 0.3,
    *,
    kind: str = "real",  # "real", "probability" (in [0, 1]) or "nonnegative"
    shape_free: bool = False,
) -> list[Value]:
    """A tensor argument with named axes; ``shared`` are the axes other arguments also have."""

    def base(dtype=torch.float32):
        g = torch.Generator().manual_seed(1)
        if kind == "real":
            return torch.randn(shape, generator=g, dtype=dtype)
        return torch.rand(shape, generator=g, dtype=dtype)

    vals = [
        V("float32 tensor", base, True),
        V("float64 tensor", lambda: base(torch.float64), True),
        V("float16 tensor", lambda: base().to(torch.float16), True),
        V("bfloat16 tensor", lambda: base().to(torch.bfloat16), True),
        V("int64 tensor of ones", lambda: torch.ones(shape, dtype=torch.int64), True),
        V("int32 tensor of zeros", lambda: torch.zeros(shape, dtype=torch.int32), True),
        V("uint8 tensor of ones", lambda: torch.ones(shape, dtype=torch.uint8), True),
        V("NumPy float64 array", lambda: base(torch.float64).numpy(), True),
        V("NumPy float32 array", lambda: base().numpy(), True),
        V("NumPy int array", lambda: np.ones(shape, dtype=np.int64), True),
        V("nested list", lambda: base().tolist(), True),
        V("tensor requiring grad", lambda: base().requires_grad_(), True),
        V("non-contiguous view", lambda: base().transpose(0, -1).contiguous().transpose(0, -1), True),
        V("all zeros", lambda: torch.zeros(shape), True),
        V("tiny values 1e-30", lambda: base() * 1e-30, True),
        V(
            "NaN entry",
            lambda: base().index_put_((torch.tensor([0]),) * len(shape), torch.tensor(math.nan)),
            False,
        ),
        V(
            "inf entry",
            lambda: base().index_put_((torch.tensor([0]),) * len(shape), torch.tensor(math.inf)),
            False,
        ),
        V(
            "-inf entry",
            lambda: base().index_put_((torch.tensor([0]),) * len(shape), torch.tensor(-math.inf)),
            False,
        ),
        V("NumPy array of NaN", lambda: np.full(shape, np.nan), False),
        V("bool tensor", lambda: torch.ones(shape, dtype=torch.bool), False),
        V("bool array", lambda: np.ones(shape, dtype=bool), False),
        V("complex tensor", lambda: base().to(torch.complex64), False),
        V("complex array", lambda: base().numpy().astype(np.complex128), False),
        V("meta tensor", lambda: torch.empty(shape, device="meta"), False),
        V("sparse tensor", lambda: base().to_sparse(), False),
        V("string array", lambda: np.full(shape, "a"), False),
        V("object array", lambda: np.empty(shape, dtype=object), False),
        V("ragged list", lambda: [[1.0, 2.0], [3.0]], False),
        V("0-d tensor", lambda: torch.tensor(value), False),
        V("python float", value, False),
        V("missing last axis", lambda: base()[..., 0], False),
        V("extra leading axis", lambda: base()[None], False),
        V("values beyond float32 (NumPy 1e39)", lambda: np.full(shape, 1e39), False),
    ]
    if not shape_free:
        for i, axis in enumerate(axes):
            bigger = list(shape)
            bigger[i] += 1
            vals.append(
                V(f"one more on the {axis} axis", lambda b=tuple(bigger): torch.rand(b), axis not in shared)
            )
    for i, axis in enumerate(axes):
        empty = list(shape)
        empty[i] = 0
        vals.append(V(f"empty {axis} axis", lambda e=tuple(empty): torch.rand(e), False))
    if kind == "probability":
        vals += [
            V("ones", lambda: torch.ones(shape), True),
            V("a negative entry", lambda: base() - 2, False),
            V("an entry above 1", lambda: base() + 2, False),
        ]
    elif kind == "nonnegative":
        vals += [V("a negative entry", lambda: base() - 2, False)]
    if kind != "probability":
        vals.append(V("large values 1e3", lambda: base() * 1e3, True))
        vals.append(V("values 1e30 (may overflow float32)", lambda: base() * 1e30, None))
    return vals + garbage()


def weights(shape=(2, 5)) -> list[Value]:
    """``W`` of a metric: (..., hidden, feature), any scale, float64 inside."""

    def base():
        return torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    return [
        V("float64 tensor", base, True),
        V("float32 tensor", lambda: base().float(), True),
        V("NumPy array", lambda: base().numpy(), True),
        V("nested list", lambda: base().tolist(), True),
        V("int tensor", lambda: torch.ones(shape, dtype=torch.int64), True),
        V("batch of models (3, h, f)", lambda: base()[None].repeat(3, 1, 1), True),
        V("4-d batch", lambda: base()[None, None].repeat(2, 3, 1, 1), True),
        V("all zeros", lambda: torch.zeros(shape), True),
        V("one zero column", lambda: base().index_fill_(-1, torch.tensor([0]), 0.0), True),
        V("tiny 1e-300", lambda: base() * 1e-300, True),
        V("subnormal 1e-310", lambda: base() * 1e-310, True),
        V("large 1e100", lambda: base() * 1e100, True),
        V("huge 1e200", lambda: base() * 1e200, None),
        V("float max", lambda: torch.full(shape, np.finfo(np.float64).max, dtype=torch.float64), None),
        V("tensor requiring grad", lambda: base().requires_grad_(), True),
        V("one feature", lambda: base()[:, :1], True),
        V("one hidden dimension", lambda: base()[:1], True),
        V("empty batch of models (0, h, f)", lambda: torch.zeros((0, *shape)), None),
        V(
            "NaN entry",
            lambda: base().index_put_(
                (torch.tensor([0]), torch.tensor([1])), torch.tensor(math.nan, dtype=torch.float64)
            ),
            False,
        ),
        V(
            "inf entry",
            lambda: base().index_put_(
                (torch.tensor([0]), torch.tensor([1])), torch.tensor(math.inf, dtype=torch.float64)
            ),
            False,
        ),
        V("NaN column", lambda: base().index_fill_(-1, torch.tensor([0]), math.nan), False),
        V("1-d", lambda: base()[0], False),
        V("0-d", lambda: torch.tensor(1.0), False),
        V("empty feature axis", lambda: torch.zeros(shape[0], 0), False),
        V("empty hidden axis", lambda: torch.zeros(0, shape[1]), False),
        V("bool tensor", lambda: torch.ones(shape, dtype=torch.bool), False),
        V("complex tensor", lambda: base().to(torch.complex128), False),
        V("meta tensor", lambda: torch.empty(shape, device="meta"), False),
        V("sparse tensor", lambda: base().to_sparse(), False),
        V("string array", lambda: np.full(shape, "a"), False),
        V("object array", lambda: np.empty(shape, dtype=object), False),
        V("ragged list", lambda: [[1.0, 2.0], [3.0]], False),
        V("python float", 1.0, False),
    ] + garbage()


def training_configs() -> list[Value]:
    """Valid but unusual settings to train: none may give a NaN."""
    return [
        V("probability 0 (no data)", lambda: _config(feature_probability=0.0), True),
        V("probability 1", lambda: _config(feature_probability=1.0), True),
        V("tiny probability 1e-30", lambda: _config(feature_probability=1e-30), True),
        V("importance 0", lambda: _config(importance=0.0), True),
        V("importance 1e6", lambda: _config(importance=1e6), True),
        V("importance 1e-30", lambda: _config(importance=1e-30), True),
        V("1 feature, 1 hidden", lambda: _config(n_features=1, n_hidden=1), True),
        V("hidden > features", lambda: _config(n_features=3, n_hidden=10), True),
        V("1 instance", lambda: _config(n_instances=1), True),
        V("linear activation", lambda: _config(activation="linear"), True),
        V("neuron model", lambda: _config(model="neuron"), True),
        V("abs model", lambda: _config(model="abs"), True),
        V("abs model, probability 1", lambda: _config(model="abs", feature_probability=1.0), True),
        V("abs model, probability 0", lambda: _config(model="abs", feature_probability=0.0), True),
        V(
            "correlated and anticorrelated pairs",
            lambda: _config(correlated=[(0, 1)], anticorrelated=[(2, 3)]),
            True,
        ),
        V(
            "anticorrelated, probabilities summing to 1",
            lambda: _config(feature_probability=0.5, anticorrelated=[(0, 1)]),
            True,
        ),
        V("linear, values in [-1, 1]", lambda: _config(activation="linear", value_range=(-1, 1)), True),
        V("finite data set of 16 (the batch size)", lambda: _config(dataset_size=16), True),
        V("finite, grouped, abs", lambda: _config(dataset_size=16, model="abs", correlated=[(0, 1)]), True),
        V("finite data set of 8 (batch size 16)", lambda: _config(dataset_size=8), False),
        V(
            "mixed probabilities",
            lambda: _config(feature_probability=np.array([[0, 1e-9, 0.5, 1, 0.01]] * 2)),
            True,
        ),
    ]


def configs(valid_config) -> list[Value]:
    return [
        V("ToyModelConfig", valid_config, True),
        V("dict", lambda: {"n_features": 5}, False),
        V("the class", toy_lib.ToyModelConfig, False),
        V("a TrainResult", lambda: None, False),
    ] + garbage()


def learner_functions(reference: Callable, arity: int, checker: str) -> list[Value]:
    """A checker's ``fn``: the reference passes, a stub is 'not attempted', mistakes fail."""

    def first(*args):
        return args[0]

    def raising(err):
        def fn(*args):
            raise err

        return fn

    def mapped(f):
        return lambda *args: f(reference(*args))

    fail = dict(expect=(AssertionError,), needle=checker)
    return [
        V("the reference solution", lambda: reference, True),
        V("a stub raising NotImplementedError", lambda: raising(NotImplementedError()), True),
        V("returns None", lambda: lambda *a: None, False, **fail),
        V("returns a string", lambda: lambda *a: "done", False, **fail),
        V("returns a dict", lambda: lambda *a: {}, False, **fail),
        V("returns NaN everywhere", lambda: mapped(lambda r: torch.as_tensor(r) * math.nan), False, **fail),
        V(
            "returns inf everywhere",
            lambda: mapped(lambda r: torch.as_tensor(r) * 0 + math.inf),
            False,
            **fail,
        ),
        V("returns complex", lambda: mapped(lambda r: torch.as_tensor(r).to(torch.complex64)), False, **fail),
        V("returns a 0-d tensor", lambda: mapped(lambda r: torch.as_tensor(r).sum()), False, **fail),
        V("returns an extra axis", lambda: mapped(lambda r: torch.as_tensor(r)[None]), False, **fail),
        V("returns its first argument", lambda: first, False, **fail),
        V("returns a ragged list", lambda: lambda *a: [[1.0], [1.0, 2.0]], False, **fail),
        V("raises ValueError", lambda: raising(ValueError("oops")), False, **fail),
        V("raises ZeroDivisionError", lambda: raising(ZeroDivisionError("division by zero")), False, **fail),
        V("raises TypeError (wrong signature)", lambda: lambda: 0, False, **fail),
        V("raises IndexError", lambda: raising(IndexError("index 9 is out of bounds")), False, **fail),
        V("not a function: 42", 42, False),
        V("not a function: None", None, False),
        V("not a function: a string", "forward", False),
        V("not a function: a tensor", lambda: torch.zeros(3), False),
        V("not a function: a class", torch.nn.Linear, False),
    ]


# ----------------------------------------------------------------------------- the API


def in_cache(fn: Callable, cache_folder: str) -> Callable:
    """``fn`` (a cached_* function of toy_lib) storing its results in ``cache_folder``."""

    def call(**kw):
        os.environ["TOY_LIB_CACHE_DIR"] = cache_folder
        return fn(**kw)

    return call


def _config(**kw):
    base = dict(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.3)
    base.update(kw)
    return toy_lib.ToyModelConfig(**base)


def build_cases(cache_folder: str) -> list[Case]:
    cases: list[Case] = []

    def vary(module, name, fn, base: dict, params: dict, *, positional=(), check=None):
        for arg, values in params.items():
            for value in values:

                def call(arg=arg, value=value):
                    kwargs = {
                        k: (v() if callable(v) and not isinstance(v, type) else v) for k, v in base.items()
                    }
                    kwargs[arg] = value.make()
                    args = [kwargs.pop(k) for k in positional]
                    return fn(*args, **kwargs)

                cases.append(Case(module, name, arg, value, call, check))

    # config -------------------------------------------------------------------------
    cfg_base = dict(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.3, importance=1.0)
    prob_arrays = [
        V("per instance list", [0.1, 0.9], True),
        V("per instance tensor", lambda: torch.tensor([0.1, 0.9]), True),
        V("(instance, feature) array", lambda: np.full((2, 5), 0.2), True),
        V("(instance, feature) int ones", lambda: np.ones((2, 5), dtype=np.int64), True),
        V("per feature (wrong axis)", [0.1] * 5, False),
        V("(feature, instance) array", lambda: np.full((5, 2), 0.2), False),
        V("3-d array", lambda: np.full((2, 5, 1), 0.2), False),
        V("empty list", [], False),
        V("array with a NaN", lambda: np.array([0.1, np.nan]), False),
        V("array with 1.5", lambda: np.array([0.1, 1.5]), False),
        V("bool array", lambda: np.array([True, False]), False),
        V("complex array", lambda: np.array([0.1, 0.2 + 1j]), False),
        V("ragged list", [[0.1], [0.1, 0.2]], False),
        V("meta tensor", lambda: torch.empty(2, device="meta"), False),
    ]
    imp_arrays = [
        V("per feature list", [1.0, 0.9, 0.8, 0.7, 0.6], True),
        V("(instance, feature) array", lambda: np.ones((2, 5)), True),
        V("zeros", lambda: np.zeros(5), True),
        V("large 1e6", 1e6, True),
        V("per instance (wrong axis)", [1.0, 0.5], False),
        V("array with -1", lambda: np.array([1.0, -1, 1, 1, 1]), False),
        V("array with inf", lambda: np.array([1.0, np.inf, 1, 1, 1]), False),
        V("string list", ["1"] * 5, False),
    ]
    vary(
        "config",
        "ToyModelConfig",
        toy_lib.ToyModelConfig,
        cfg_base,
        {
            "n_features": sizes(huge_valid=False),
            "n_hidden": sizes(huge_valid=True),
            "n_instances": sizes(huge_valid=False),
            "feature_probability": reals(0.3, low=0.0, high=1.0, extra=prob_arrays),
            "importance": reals(1.0, low=0.0, huge_valid=True, extra=imp_arrays),
            "activation": choices(["relu", "linear"]),
            "model": choices(["tied", "neuron", "abs"]),
            "value_range": [V("None", None, True)] + value_ranges(unit_ok=True, signed_ok=False),
            "correlated": feature_groups(),
            "anticorrelated": feature_groups()
            + [V("a group of four (probabilities sum to 1.2)", [(0, 1, 2, 3)], False)],
            "dataset_size": [V("None", None, True)] + [v for v in sizes(base=16) if v.label != "None"],
        },
    )
    vary(
        "config",
        "ToyModelConfig(model='abs')",
        lambda **kw: toy_lib.ToyModelConfig(model="abs", **kw),
        cfg_base,
        {"value_range": [V("None", None, True)] + value_ranges(unit_ok=False, signed_ok=True)},
    )
    vary(
        "config",
        "ToyModelConfig(activation='linear')",
        lambda **kw: toy_lib.ToyModelConfig(activation="linear", **kw),
        cfg_base,
        {"value_range": [V("None", None, True)] + value_ranges(unit_ok=True, signed_ok=True)},
    )
    vary(
        "config",
        "ToyModelConfig(correlated=[(0, 1)])",
        lambda **kw: toy_lib.ToyModelConfig(correlated=[(0, 1)], **kw),
        cfg_base,
        {
            "feature_probability": [
                V("one per instance", [0.1, 0.9], True),
                V("equal within the pair", lambda: np.array([[0.2, 0.2, 0.5, 0.1, 0.3]] * 2), True),
                V("unequal within the pair", lambda: np.array([[0.2, 0.3, 0.5, 0.1, 0.3]] * 2), False),
            ]
        },
    )
    vary("config", "ToyModelConfig.with_restarts", lambda k: _config().with_restarts(k), {}, {"k": sizes()})

    def no_alias():
        arr = np.array([0.1, 0.9])
        cfg = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=arr)
        arr[0] = 0.99
        return cfg.probability_matrix()

    cases.append(
        Case(
            "config",
            "ToyModelConfig",
            "feature_probability",
            V("array edited after the call", const(None), True),
            no_alias,
            lambda r: None if r[0, 0] == 0.1 else "the config changed when the caller edited their array",
        )
    )

    # data ---------------------------------------------------------------------------
    vary(
        "data",
        "generate_batch",
        toy_lib.generate_batch,
        dict(feature_probability=lambda: _fill((2, 5), 0.3), batch_size=8),
        {
            "feature_probability": tensors(
                (2, 5), ("instance", "feature"), set(), kind="probability", shape_free=True
            ),
            "batch_size": sizes(base=8),
            "generator": generators(),
            "backend": choices(["numba", "torch"], none_ok=True),
            "correlated": feature_groups(),
            "anticorrelated": feature_groups()
            + [V("a group of four (probabilities sum to 1.2)", [(0, 1, 2, 3)], False)],
            "value_range": value_ranges(unit_ok=True, signed_ok=True),
            "unit_norm": flags(none_ok=False),
        },
    )
    cases.append(
        Case(
            "data",
            "generate_batch",
            "feature_probability",
            V("int64 tensor of ones means always active", const(None), True),
            lambda: toy_lib.generate_batch(torch.ones(2, 5, dtype=torch.int64), 64),
            lambda r: (
                None if bool((r > 0).all()) else "an integer tensor of ones did not mean 'always active'"
            ),
        )
    )

    # model --------------------------------------------------------------------------
    W_axes, b_axes, x_axes = (
        ("instance", "hidden", "feature"),
        ("instance", "feature"),
        ("instance", "batch", "feature"),
    )
    W = lambda: torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(0))  # noqa: E731
    b = lambda: torch.zeros(2, 5)  # noqa: E731
    x = lambda: torch.rand(2, 8, 5, generator=torch.Generator().manual_seed(1))  # noqa: E731
    vary(
        "model",
        "hidden",
        toy_lib.hidden,
        dict(W=W, x=x),
        {
            "W": tensors((2, 2, 5), W_axes, {"instance", "feature"}),
            "x": tensors((2, 8, 5), x_axes, {"instance", "feature"}),
        },
    )
    vary(
        "model",
        "forward",
        toy_lib.forward,
        dict(W=W, b=b, x=x, activation="relu"),
        {
            "W": tensors((2, 2, 5), W_axes, {"instance", "feature"}),
            "b": tensors((2, 5), b_axes, {"instance", "feature"}),
            "x": tensors((2, 8, 5), x_axes, {"instance", "feature"}),
            "activation": choices(["relu", "linear"]),
        },
    )
    vary(
        "model",
        "loss_per_instance",
        toy_lib.loss_per_instance,
        dict(x=x, x_hat=x, importance=lambda: torch.ones(2, 5)),
        {
            "x": tensors((2, 8, 5), x_axes, {"instance", "batch", "feature"}),
            "x_hat": tensors((2, 8, 5), x_axes, {"instance", "batch", "feature"}),
            "importance": tensors((2, 5), b_axes, {"instance", "feature"}, kind="nonnegative"),
        },
    )
    vary(
        "model",
        "init_weights",
        toy_lib.init_weights,
        dict(n_instances=2, n_hidden=2, n_features=5),
        {
            "n_instances": sizes(),
            "n_hidden": sizes(),
            "n_features": sizes(),
            "generator": generators(),
            "device": devices(),
            "dtype": dtypes(),
        },
    )
    vary(
        "model",
        "ToyModel",
        toy_lib.ToyModel,
        dict(W=W, b=None, activation="relu"),
        {
            "W": tensors((2, 2, 5), W_axes, set()),  # b=None: nothing to agree with
            "b": [V("None", None, True)]
            + [v for v in tensors((2, 5), b_axes, {"instance", "feature"}) if v.label != "None"],
            "activation": choices(["relu", "linear"]),
        },
    )
    vary(
        "model",
        "neuron_forward",
        toy_lib.neuron_forward,
        dict(W=W, b=b, x=x),
        {
            "W": tensors((2, 2, 5), W_axes, {"instance", "feature"}),
            "b": tensors((2, 5), b_axes, {"instance", "feature"}),
            "x": tensors((2, 8, 5), x_axes, {"instance", "feature"}),
        },
    )
    W2_axes = ("instance", "feature", "hidden")
    W_out = lambda: torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(2))  # noqa: E731
    vary(
        "model",
        "abs_forward",
        toy_lib.abs_forward,
        dict(W1=W, W2=W_out, b=b, x=x),
        {
            "W1": tensors((2, 2, 5), W_axes, {"instance", "hidden", "feature"}),
            "W2": tensors((2, 5, 2), W2_axes, {"instance", "hidden", "feature"}),
            "b": tensors((2, 5), b_axes, {"instance", "feature"}),
            "x": tensors((2, 8, 5), x_axes, {"instance", "feature"}),
        },
    )
    vary(
        "model",
        "NeuronModel",
        toy_lib.NeuronModel,
        dict(W=W, b=None),
        {
            "W": tensors((2, 2, 5), W_axes, set()),
            "b": [V("None", None, True)]
            + [v for v in tensors((2, 5), b_axes, {"instance", "feature"}) if v.label != "None"],
        },
    )
    vary(
        "model",
        "AbsModel",
        toy_lib.AbsModel,
        dict(W1=W, W2=W_out, b=None),
        {
            "W1": tensors((2, 2, 5), W_axes, {"instance", "hidden", "feature"}),
            "W2": tensors((2, 5, 2), W2_axes, {"instance", "hidden", "feature"}),
            "b": [V("None", None, True)]
            + [v for v in tensors((2, 5), b_axes, {"instance", "feature"}) if v.label != "None"],
        },
    )
    vary(
        "model",
        "AbsModel.forward",
        lambda x: toy_lib.AbsModel(W(), W_out()).forward(x),
        dict(x=x),
        {"x": tensors((2, 8, 5), x_axes, {"instance", "feature"})},
    )
    vary(
        "model",
        "ToyModel.forward",
        lambda x: toy_lib.ToyModel(W()).forward(x),
        dict(x=x),
        {"x": tensors((2, 8, 5), x_axes, {"instance", "feature"})},
    )

    # training -----------------------------------------------------------------------
    small = dict(
        config=lambda: _config(), steps=5, batch_size=16, eval_batch_size=16, device="cpu", progress=False
    )
    # a learning rate that makes the loss infinite: refused up front (lr * weight_decay >= 1), or
    # stopped with TrainingDiverged naming the setting
    diverge = dict(expect=(TrainingDiverged, ValueError), needle="lr")
    vary(
        "training",
        "train",
        toy_lib.train,
        small,
        {
            "config": configs(lambda: _config()) + training_configs(),
            "steps": sizes(base=5) + [V("1", 1, True), V("10**12", 10**12, False)],
            "batch_size": [V("None (1024)", None, True)]
            + [v for v in sizes(base=16) if v.label != "None"]
            + [V("10**12", 10**12, False)],
            "lr": [v for v in reals(1e-3, low=0.0, low_ok=False) if v.label != "1e300"]
            + [
                V("1e300 (diverges)", 1e300, False, **diverge),
                V("1e30 (diverges)", 1e30, False, **diverge),
                V("1e8 (diverges)", 1e8, False, **diverge),
            ],
            "optimizer": choices(["adamw", "adam"]),
            "schedule": choices(["constant", "linear", "cosine", "warmup_cosine"]),
            "seed": seeds(),
            "device": devices(),
            "restarts": sizes(base=2) + [V("10**12", 10**12, False)],
            "eval_batch_size": sizes(base=16) + [V("10**12", 10**12, False), V("10**15", 10**15, False)],
            "progress": flags(),
        },
    )
    for lr in (1e30, 1e37):
        cases.append(
            Case(
                "training",
                "train",
                "lr",
                V(
                    f"{lr:g} with adam (diverges)",
                    const(None),
                    False,
                    expect=(TrainingDiverged,),
                    needle="setting",
                ),
                lambda lr=lr: toy_lib.train(
                    _config(),
                    steps=5,
                    batch_size=16,
                    eval_batch_size=16,
                    device="cpu",
                    optimizer="adam",
                    lr=lr,
                ),
            )
        )
    vary(
        "training",
        "lr_factor",
        toy_lib.lr_factor,
        dict(schedule="linear", step=5, steps=10),
        {
            "schedule": choices(["constant", "linear", "cosine", "warmup_cosine"]),
            "step": [
                V("0", 0, True),
                V("steps - 1", 9, True),
                V("steps", 10, False),
                V("15 of 10", 15, False),
                V("-1", -1, False),
                V("np.int64", lambda: np.int64(5), True),
                V("5.0", 5.0, False),
            ]
            + garbage(),
            "steps": sizes(base=10, huge_valid=True),
        },
    )
    vary("training", "pick_device", toy_lib.pick_device, {}, {"device": devices()})

    def grads_of(n_inst=2):
        def step_fn(step, loss_out):
            loss_out.fill_(1.0)
            return [torch.ones(n_inst, 3)]

        return step_fn

    def nan_step(step, loss_out):
        loss_out.fill_(math.nan)
        return [torch.ones(2, 3)]

    vary(
        "training",
        "optimise",
        optimise,
        dict(
            params=lambda: [torch.zeros(2, 3)],
            step_fn=lambda: grads_of(),
            steps=3,
            lr=1e-3,
            schedule="constant",
            weight_decay=0.01,
            progress=False,
            caller="probe",
            after_step=None,
        ),
        {
            "params": [
                V("[float tensor]", lambda: [torch.zeros(2, 3)], True),
                V("tuple", lambda: (torch.zeros(2, 3),), True),
                V("[]", [], False),
                V("a bare tensor", lambda: torch.zeros(2, 3), False),
                V("[int tensor]", lambda: [torch.zeros(2, 3, dtype=torch.int64)], False),
                V("[0-d tensor]", lambda: [torch.tensor(1.0)], False),
                V("[empty tensor]", lambda: [torch.zeros(0, 3)], False),
                V("instances disagree", lambda: [torch.zeros(2, 3), torch.zeros(3, 3)], False),
                V("[array]", lambda: [np.zeros((2, 3))], False),
            ]
            + garbage(),
            "step_fn": [
                V("returns two gradients", lambda: lambda s, lo: [torch.ones(2, 3)] * 2, False),
                V("returns the wrong shape", lambda: lambda s, lo: [torch.ones(2, 4)], False),
                V("returns None", lambda: lambda s, lo: None, False),
                V("loss becomes NaN", lambda: nan_step, False, expect=(TrainingDiverged,), needle="instance"),
                V("not callable", 5, False),
            ],
            "steps": sizes() + [V("10**12", 10**12, False)],
            "lr": reals(1e-3, low=0.0, low_ok=False, huge_valid=None),
            "schedule": choices(["constant", "linear", "cosine", "warmup_cosine"]),
            "weight_decay": reals(0.01, low=0.0),
            "progress": flags(),
            "caller": [V("str", "me", True), V("int", 5, False), V("None", None, False)],
            "after_step": [
                V("None", None, True),
                V("a function", lambda: lambda s, o: None, True),
                V("5", 5, False),
            ],
        },
    )

    # cache --------------------------------------------------------------------------
    cached = in_cache(toy_lib.cached_train, cache_folder)

    vary(
        "cache",
        "cached_train",
        cached,
        dict(
            config=lambda: _config(), steps=3, batch_size=16, eval_batch_size=16, device="cpu", progress=False
        ),
        {
            "config": configs(lambda: _config()),
            "steps": sizes(base=3),
            "seed": seeds()[:8],
            "device": devices()[:10],
            "lr": reals(1e-3, low=0.0, low_ok=False)[:12],
        },
    )
    vary(
        "cache",
        "cached_train",
        cached,
        dict(config=lambda: _config(), steps=3, eval_batch_size=16, device="cpu", progress=False),
        {
            "config": [
                v for v in training_configs() if v.valid and ("finite" in v.label or "model" in v.label)
            ]
        },
    )
    cases.append(
        Case(
            "cache",
            "cached_train",
            "stepz",
            V("an argument train does not have", const(None), False),
            lambda: cached(config=_config(), stepz=3),
        )
    )

    def env_dir(value):
        os.environ["TOY_LIB_CACHE_DIR"] = value
        try:
            return toy_lib.cache.cache_dir()
        finally:
            os.environ["TOY_LIB_CACHE_DIR"] = cache_folder

    for label, value in [("~/store", "~/store"), ("empty", ""), ("relative", "a/b"), ("~", "~")]:
        cases.append(
            Case(
                "cache",
                "cache_dir",
                "TOY_LIB_CACHE_DIR",
                V(label, const(value), True),
                lambda value=value: env_dir(value),
                lambda r: "a literal '~' folder" if "~" in str(r) else None,
            )
        )

    # metrics ------------------------------------------------------------------------
    metric_names = getattr(metrics, "__all__", None) or [
        n
        for n in dir(metrics)
        if not n.startswith("_") and getattr(getattr(metrics, n), "__module__", "") == metrics.__name__
    ]
    for name in metric_names:
        fn = getattr(metrics, name)
        if not callable(fn) or name in SAE_METRICS:  # those: sae_cases
            continue
        extra = {}
        gram = name in ("feature_dimensionality", "superposition_score")
        extra_w = [V("200,000 features (a 320 GB Gram matrix)", lambda: torch.zeros(2, 200_000), not gram)]
        if name == "represented":
            extra["threshold"] = reals(0.5, low=0.0, huge_valid=True)
        if name == "angular_gaps_2d":
            extra["min_norm"] = reals(0.5, low=0.0, huge_valid=True)
        ws = weights()
        if name in ("feature_angles_2d", "angular_gaps_2d"):
            ws = [w for w in ws if w.label != "one hidden dimension"]
            ws.append(V("3 hidden dimensions", lambda: torch.randn(3, 5), False))
        if name == "angular_gaps_2d":
            ws = [w for w in ws if w.label != "4-d batch"] + [
                V("4-d batch", lambda: torch.randn(2, 3, 2, 5), False)
            ]
        vary(
            "metrics", f"metrics.{name}", fn, dict(W=lambda: torch.randn(2, 5)), {"W": ws + extra_w, **extra}
        )

    # exercises ----------------------------------------------------------------------
    refs = {
        "check_generate_batch": (toy_lib.generate_batch, 2),
        "check_forward": (toy_lib.forward, 3),
        "check_loss": (toy_lib.loss_per_instance, 3),
        "check_feature_dimensionality": (metrics.feature_dimensionality, 1),
    }
    for name, (reference, arity) in refs.items():
        checker = getattr(exercises, name)
        params = {"fn": learner_functions(reference, arity, name), "seed": seeds()[:9]}
        if name == "check_generate_batch":
            params["batch_size"] = [
                V("20000", 20_000, True),
                V("np.int64(5000)", lambda: np.int64(5000), True),
                V("10 (too few to judge)", 10, False),
                V("10**12", 10**12, False),
                V("2.5", 2.5, False),
                V("None", None, False),
            ]
        vary(
            "exercises",
            f"exercises.{name}",
            checker,
            dict(fn=lambda r=reference: r),
            params,
            positional=("fn",),
        )

    sae_cases(vary, cases, cache_folder)

    # plots (another helper's module) ------------------------------------------------
    W2 = lambda: torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(0))  # noqa: E731
    vary(
        "plots",
        "plots.feature_arrows",
        plots.feature_arrows,
        dict(W=W2),
        {
            "W": tensors((3, 2, 5), ("instance", "hidden", "feature"), set())[:40],
            "titles": [
                V("list", ["a", "b", "c"], True),
                V("wrong length", ["a"], False),
                V("str", "abc", False),
                V("int", 3, False),
            ],
        },
    )
    vary(
        "plots",
        "plots.wtw_and_norms",
        plots.wtw_and_norms,
        dict(W=W2),
        {
            "W": weights((2, 5))[:30],
            "titles": [V("list", ["a", "b", "c"], True), V("wrong length", ["a"], False)],
        },
    )
    vary(
        "plots",
        "plots.loss_curve",
        plots.loss_curve,
        dict(loss_history=lambda: torch.rand(100, 3)),
        {
            "loss_history": [
                V("(step, instance)", lambda: torch.rand(100, 3) + 0.1, True),
                V("(step,)", lambda: torch.rand(100) + 0.1, True),
                V("empty", lambda: torch.zeros(0, 3), False),
                V("NaN", lambda: torch.full((100, 3), math.nan), False),
                V("3-d", lambda: torch.rand(2, 2, 2), False),
                V("zeros (log scale)", lambda: torch.zeros(100, 3), None),
                V("str", "loss", False),
            ],
            "labels": [V("None", None, True), V("wrong length", ["a"], False)],
            "smooth": sizes(base=10, huge_valid=True)[:12],
        },
    )
    vary(
        "plots",
        "plots.panel_grid",
        plots.panel_grid,
        dict(n_panels=5),
        {"n_panels": sizes(base=5)[:14], "max_cols": sizes(base=3)[:14]},
    )
    richer_cases(vary)
    theory_and_synthetic_cases(vary)
    return cases


def richer_cases(vary) -> None:
    """The chapter "Superposition in richer settings": its checkers and its loading plot."""

    def pairs_reference(p, n):
        prob = torch.as_tensor(p).repeat_interleave(2, dim=1)
        return toy_lib.generate_batch(prob, n, correlated=[(2 * k, 2 * k + 1) for k in range(p.shape[1])])

    def abs_loss_reference(W1, W2, b, x, importance):
        return toy_lib.loss_per_instance(x.abs(), toy_lib.abs_forward(W1, W2, b, x), importance)

    refs = {
        "check_correlated_batch": (pairs_reference, 2),
        "check_neuron_forward": (toy_lib.neuron_forward, 3),
        "check_abs_loss": (abs_loss_reference, 5),
    }
    for name, (reference, arity) in refs.items():
        params = {"fn": learner_functions(reference, arity, name), "seed": seeds()[:9]}
        if name == "check_correlated_batch":
            params["batch_size"] = [
                V("20000", 20_000, True),
                V("10 (too few to judge)", 10, False),
                V("2.5", 2.5, False),
            ]
        vary("exercises", f"exercises.{name}", getattr(exercises, name), dict(fn=lambda r=reference: r), params,
             positional=("fn",))  # fmt: skip
    W = lambda: torch.randn(3, 5, 10, generator=torch.Generator().manual_seed(0))  # noqa: E731
    vary(
        "plots",
        "plots.neuron_loadings",
        plots.neuron_loadings,
        dict(W=W),
        {
            "W": tensors((3, 5, 10), ("instance", "neuron", "feature"), set())[:40],
            "titles": [
                V("list", ["a", "b", "c"], True),
                V("wrong length", ["a"], False),
                V("str", "abc", False),
            ],
            "max_cols": sizes(base=3)[:10],
        },
    )


def theory_and_synthetic_cases(vary) -> None:
    """The phase diagrams' closed forms (`toy_lib.theory`), the adversarial gain of
    `toy_lib.geometry` and the synthetic data sets of `toy_lib.synthetic`."""
    r_pool = [
        V("float", 1.0, True),
        V("array", lambda: np.geomspace(0.1, 10, 4), True),
        V("tensor", lambda: torch.tensor([0.5, 2.0]), True),
        V("0", 0.0, False),
        V("negative", -1.0, False),
        V("nan", math.nan, False),
        V("inf", math.inf, False),
        V("empty list", [], False),
        *garbage(),
    ]
    p_pool = [
        V("float", 0.3, True),
        V("array", lambda: np.geomspace(1, 0.01, 4), True),
        V("1", 1.0, True),
        V("0", 0.0, False),
        V("1.5", 1.5, False),
        V("nan", math.nan, False),
        *garbage(),
    ]
    n_pool = [V("2", 2, True), V("3", 3, True), V("4", 4, False), V("1", 1, False), *garbage()]
    for name in ("candidate_losses", "phase", "near_boundary"):
        vary(
            "theory",
            f"theory.{name}",
            getattr(theory, name),
            dict(relative_importance=1.0, density=0.3),
            {"relative_importance": r_pool, "density": p_pool, "n_features": n_pool},
        )
    vary(
        "theory",
        "theory.boundaries",
        theory.boundaries,
        {},
        {
            "n_features": n_pool,
            "importance_range": [
                V("(0.1, 10)", (0.1, 10.0), True),
                V("reversed", (10.0, 0.1), False),
                V("negative", (-1.0, 10.0), False),
                V("one number", 1.0, False),
            ],
            "n_points": sizes(base=50)[:12],
        },
    )
    vary(
        "theory",
        "theory.classify_geometry",
        theory.classify_geometry,
        dict(W=lambda: np.eye(2)),
        {"W": weights((2, 2))},
    )

    gain_base = dict(
        W=lambda: torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(0)),
        b=lambda: -0.1 * torch.ones(2, 5),
        x=lambda: torch.rand(2, 8, 5, generator=torch.Generator().manual_seed(1)),
    )
    vary(
        "geometry",
        "geometry.adversarial_gain",
        geometry.adversarial_gain,
        gain_base,
        {
            "W": tensors((2, 2, 5), ("instance", "hidden", "feature"), {"instance", "feature"})[:40],
            "b": tensors((2, 5), ("instance", "feature"), {"instance", "feature"})[:40],
            "x": tensors((2, 8, 5), ("instance", "batch", "feature"), {"instance", "feature"})[:40],
            "epsilon": reals(0.1, low=0.0, low_ok=False, huge_valid=True),
            "steps": sizes(base=5)[:17],
            "seed": seeds(),
        },
        positional=("W", "b", "x"),
    )

    probs = [
        V("list", [0.3, 0.2, 0.1], True),
        V("array", lambda: np.array([0.3, 0.2, 0.1]), True),
        V("tensor", lambda: torch.tensor([0.3, 0.2, 0.1]), True),
        V("scalar", 0.3, False),
        V("empty", [], False),
        V("0 entry", [0.3, 0.0, 0.1], False),
        V("1.5 entry", [0.3, 1.5, 0.1], False),
        V("nan entry", [0.3, math.nan, 0.1], False),
        V("2-d", lambda: np.full((3, 1), 0.2), False),
        V("str", "0.3", False),
    ]
    vary(
        "synthetic",
        "synthetic.SyntheticFeatures",
        synthetic.SyntheticFeatures,
        dict(d_in=4, probabilities=[0.3, 0.2, 0.1]),
        {
            "d_in": sizes(base=4)[:17],
            "probabilities": probs,
            "parents": [
                V("None", None, True),
                V("roots and a child", [-1, 0, None], True),
                V("np array", lambda: np.array([-1, 0, 0]), True),
                V("wrong length", [-1, 0], False),
                V("self parent", [-1, 1, 0], False),
                V("cycle", [1, 2, 0], False),
                V("index 3", [-1, 3, 0], False),
                V("float index", [-1, 0.5, 0], False),
                V("str", "abc", False),
            ],
            "exclusive": flags(none_ok=False),
            "directions": [
                V("'orthogonal'", "orthogonal", True),
                V("'basis'", "basis", True),
                V("'random'", "random", True),
                V("array", lambda: np.random.default_rng(0).normal(size=(3, 4)), True),
                V("'spiral'", "spiral", False),
                V("wrong shape", lambda: np.ones((4, 3)), False),
                V("zero row", lambda: np.zeros((3, 4)), False),
                V("nan", lambda: np.full((3, 4), np.nan), False),
            ],
            "magnitude": reals(1.0, low=0.0, low_ok=False, huge_valid=True)
            + [
                V("(0, 1)", (0.0, 1.0), True),
                V("(1, 0)", (1.0, 0.0), False),
                V("(1, 2, 3)", (1.0, 2.0, 3.0), False),
            ],
            "correlation": [
                V("None", None, True),
                V("identity", lambda: np.eye(3), True),
                V("wrong size", lambda: np.eye(2), False),
                V("not symmetric", lambda: np.eye(3) + np.triu(np.full((3, 3), 0.3), 1), False),
                V("not positive definite", lambda: np.ones((3, 3)), False),
            ],
            "seed": seeds(),
        },
    )
    vary(
        "synthetic",
        "synthetic.independent",
        synthetic.independent,
        dict(n_features=3, d_in=4, probabilities=0.2),
        {"n_features": sizes(base=3)[:17], "probabilities": probs[:3] + probs[4:] + [V("scalar", 0.3, True)]},
    )
    data = synthetic.independent(3, 4, 0.2)
    vary(
        "synthetic",
        "SyntheticFeatures.sample",
        data.sample,
        dict(n=10),
        {"n": sizes(base=10)[:17], "seed": seeds()},
    )
    vary(
        "plots",
        "plots.adversarial_gain_curve",
        plots.adversarial_gain_curve,
        dict(density=lambda: np.geomspace(1, 0.01, 4), gain=lambda: np.ones(4), W=lambda: np.ones((4, 2, 5))),
        {
            "gain": [
                V("array", lambda: np.linspace(1, 3, 4), True),
                V("wrong length", lambda: np.ones(3), False),
                V("negative", lambda: -np.ones(4), False),
                V("nan", lambda: np.full(4, np.nan), False),
            ]
        },
    )


# ----------------------------------------------------------------------------- SAEs and the real model

#: The SAE metrics: they take activations or direction sets, not a toy model's ``W``.
SAE_METRICS = tuple(
    n
    for n in metrics.__all__
    if callable(getattr(metrics, n)) and next(iter(inspect.signature(getattr(metrics, n)).parameters)) != "W"
)
ARCH_SETTINGS = {"relu": {}, "topk": dict(k=2), "batchtopk": dict(k=2), "gated": {}, "jumprelu": {}}


def _sae_config(architecture="relu", **kw):
    return toy_lib.SAEConfig(
        2, 5, n_instances=2, architecture=architecture, **{**ARCH_SETTINGS[architecture], **kw}
    )


def _acts64():
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(4))


@functools.cache
def _toy(n_instances=2, n_hidden=2):
    cfg = toy_lib.ToyModelConfig(
        n_features=5, n_hidden=n_hidden, n_instances=n_instances, feature_probability=0.2
    )
    return toy_lib.train(cfg, steps=20, batch_size=64, eval_batch_size=64, device="cpu", progress=False)


@functools.cache
def _sae_result():
    return toy_lib.train_sae(
        _sae_config(), _acts64(), steps=3, batch_size=16, eval_batch_size=16, device="cpu", progress=False
    )


@functools.cache
def _real():
    """The model, the corpus and 40 token rows of activations (what scripts/setup.py installs)."""
    model, corpus = real_model.load_model(), real_model.load_corpus()
    acts = real_model.extract_activations(model, corpus, n_tokens=40, context=16, progress=False)
    return model, corpus, acts


def _with_axes_valid(pool, labels, valid=True):
    """``pool`` with the values named in ``labels`` marked ``valid`` (a function's own shape rules)."""
    return [dataclasses.replace(v, valid=valid) if v.label in labels else v for v in pool]


def _f64(pool):
    """A pool for a function that computes in float64: values beyond float32's range are valid."""
    return _with_axes_valid(pool, ("values beyond float32 (NumPy 1e39)",))


def _positive_results(pool):
    """Values that may make a valid input a degenerate one: a finite result or a clear refusal."""
    return [dataclasses.replace(v, valid=None) if v.valid else v for v in pool]


def sae_cases(vary, cases: list, cache_folder: str) -> None:
    """Cases for toy_lib.sae (SAEConfig, train_sae, SAEResult), cached_train_sae, the SAE metrics,
    plots and checkers, toy_lib.real_model and cached_activations."""
    # SAEConfig ----------------------------------------------------------------------
    per_instance = [
        V("one per instance (list)", [0.1, 0.2], True),
        V("one per instance (array)", lambda: np.array([0.1, 0.2]), True),
        V("one per instance (tensor)", lambda: torch.tensor([0.1, 0.2]), True),
        V("three for two instances", [0.1, 0.2, 0.3], False),
        V("a negative one among them", [0.1, -0.2], False),
        V("a NaN among them", [0.1, math.nan], False),
        V("a string among them", [0.1, "0.2"], False),
        V("(instance, 1) array", lambda: np.full((2, 1), 0.1), False),
        V("None (the default)", None, True),
    ]
    vary(
        "sae",
        "SAEConfig",
        toy_lib.SAEConfig,
        dict(d_in=2, d_sae=5, n_instances=2),
        {
            "d_in": sizes(huge_valid=True),
            "d_sae": sizes(huge_valid=True),
            "n_instances": sizes(),
            "architecture": choices(["relu", "gated", "jumprelu"]) + [V("'topk' without k", "topk", False)],
            "l1_coefficient": _with_axes_valid(
                reals(0.4, low=0.0, huge_valid=True, extra=per_instance), ("None",)
            ),
            "k": [V("2 for relu", 2, False), V("None", None, True)],
            "jumprelu_bandwidth": [V("0.1 for relu", 0.1, False)],
        },
    )
    vary(
        "sae",
        "SAEConfig (topk)",
        toy_lib.SAEConfig,
        dict(d_in=2, d_sae=5, n_instances=2, architecture="topk", k=2),
        {
            "k": [v for v in sizes(base=2) if v.label not in ("10**30", "2**64")]
            + [
                V("d_sae", 5, True),
                V("d_sae + 1", 6, False),
                V("10**30", 10**30, False),
                V("one per instance", [1, 5], True),
                V("one per instance (tensor)", lambda: torch.tensor([1, 2]), True),
                V("a float among them", [1, 2.0], False),
                V("one too many", [1, 2, 3], False),
                V("None", None, False),
            ],
            "aux_k": sizes(base=2)[:14] + [V("None", None, True), V("d_sae + 1", 6, False)],
            "aux_coefficient": _with_axes_valid(reals(1 / 32, low=0.0, huge_valid=True), ("None",)),
            "l1_coefficient": [V("0.1 for topk", 0.1, False)],
        },
    )
    vary(
        "sae",
        "SAEConfig (jumprelu)",
        toy_lib.SAEConfig,
        dict(d_in=2, d_sae=5, n_instances=2, architecture="jumprelu"),
        {
            "l0_coefficient": _with_axes_valid(
                reals(0.1, low=0.0, huge_valid=True, extra=per_instance[:4]), ("None",)
            ),
            "jumprelu_bandwidth": _with_axes_valid(
                reals(0.05, low=0.0, low_ok=False, huge_valid=True), ("None",)
            ),
            "jumprelu_threshold_init": _with_axes_valid(
                reals(0.05, low=0.0, low_ok=False, huge_valid=True), ("None",)
            ),
        },
    )
    vary(
        "sae",
        "SAEConfig (batchtopk)",
        toy_lib.SAEConfig,
        dict(d_in=2, d_sae=5, n_instances=2, architecture="batchtopk", k=2),
        {"threshold_rate": _with_axes_valid(reals(0.01, low=0.0, low_ok=False, high=1.0), ("None",))},
    )

    # train_sae ----------------------------------------------------------------------
    small = dict(
        config=lambda: _sae_config(),
        data=_acts64,
        steps=3,
        batch_size=16,
        eval_batch_size=16,
        device="cpu",
        progress=False,
    )
    sae_configs = [
        V("SAEConfig", lambda: _sae_config(), True),
        V("dict", lambda: {"d_in": 2, "d_sae": 5}, False),
        V("the class", toy_lib.SAEConfig, False),
        V("a ToyModelConfig", lambda: _config(), False),
    ] + garbage()
    sae_configs += [V(f"{a}", lambda a=a: _sae_config(a), True) for a in ARCH_SETTINGS]
    sae_configs += [
        V("topk with AuxK", lambda: _sae_config("topk", aux_k=3), True),
        V("batchtopk with AuxK", lambda: _sae_config("batchtopk", aux_k=3), True),
        V("topk, k = d_sae", lambda: _sae_config("topk", k=5), True),
        V("L1 0", lambda: _sae_config(l1_coefficient=0.0), True),
        V("L1 1e6", lambda: _sae_config(l1_coefficient=1e6), True),
        V("gated, L1 1e6", lambda: _sae_config("gated", l1_coefficient=1e6), True),
        V("jumprelu, bandwidth 1e6", lambda: _sae_config("jumprelu", jumprelu_bandwidth=1e6), True),
        V("jumprelu, threshold 1e-30", lambda: _sae_config("jumprelu", jumprelu_threshold_init=1e-30), True),
        V("batchtopk, rate 1", lambda: _sae_config("batchtopk", threshold_rate=1.0), True),
        V("one instance", lambda: toy_lib.SAEConfig(2, 5), True),
        V("d_sae 1", lambda: toy_lib.SAEConfig(2, 1, n_instances=2), True),
        V("d_in 3 (the data has 2)", lambda: toy_lib.SAEConfig(3, 5, n_instances=2), False, needle="data"),
        V("larger: 5 -> 40 (the PyTorch path)", lambda: toy_lib.SAEConfig(2, 80, n_instances=2), True),
    ]
    data_pool = [
        v
        for v in tensors((64, 2), ("N", "d_in"), {"d_in"})
        if v.label not in ("nested list", "python float", "0-d tensor")
    ]
    data_pool = _with_axes_valid(data_pool, ("extra leading axis",), valid=False)  # 1 instance, not 2
    data_pool = [  # squares of 1e30 overflow float32: the run stops with TrainingDiverged
        dataclasses.replace(v, expect=(TrainingDiverged, ValueError), needle="instance")
        if "1e30" in v.label
        else v
        for v in data_pool
    ]
    data_pool += [
        V("nested list of numbers", lambda: _acts64().tolist(), False),
        V("python float", 0.3, False),
        V("(instance, N, d_in) tensor", lambda: torch.randn(2, 30, 2), True),
        V("(3, N, d_in): 3 instances for 2", lambda: torch.randn(3, 30, 2), False),
        V("a toy model (2 instances)", lambda: _toy(), True),
        V("a toy model (1 instance)", lambda: _toy(1), True),
        V("a toy model (3 instances)", lambda: _toy(3), False),
        V("a toy model of hidden size 3", lambda: _toy(2, 3), False),
        V("a list of tensors", lambda: [torch.randn(10, 2), torch.randn(7, 2)], True),
        V("a list of (instance, N, d_in) tensors", lambda: [torch.randn(2, 10, 2)], True),
        V("a list mixing both kinds", lambda: [torch.randn(10, 2), torch.randn(2, 10, 2)], False),
        V("a list with a NaN tensor", lambda: [torch.randn(10, 2), torch.full((5, 2), math.nan)], False),
        V("a list of empty tensors", lambda: [torch.zeros(0, 2)], False),
        V("an empty list", [], False),
        V("a list of strings", ["a", "b"], False),
        V("a generator that runs out", lambda: (torch.randn(8, 2) for _ in range(2)), False),
        V("a long generator", lambda: (torch.randn(16, 2) for _ in range(10)), True),
        V("a SAEResult", lambda: _sae_result(), False),
    ]
    diverge = dict(expect=(TrainingDiverged, ValueError), needle="instance")
    vary(
        "sae",
        "train_sae",
        toy_lib.train_sae,
        small,
        {
            "config": sae_configs,
            "data": data_pool,
            "steps": sizes(base=3) + [V("1", 1, True), V("10**12", 10**12, False)],
            "batch_size": sizes(base=16) + [V("10**12", 10**12, False)],
            "lr": [v for v in reals(1e-3, low=0.0, low_ok=False) if v.label != "1e300"]
            + [V("1e300", 1e300, False, needle="lr"), V("1e30 (diverges)", 1e30, None, **diverge)],
            "seed": seeds()
            + [
                V("one per instance", [1, 2], True),
                V("one per instance (array)", lambda: np.array([1, 2]), True),
                V("one per instance (tensor)", lambda: torch.tensor([1, 2]), True),
                V("one for two instances", [1], False),
                V("a negative one", [1, -2], False),
                V("floats", [1.0, 2.0], False),
                V("(2, 1) array", lambda: np.ones((2, 1), dtype=np.int64), False),
            ],
            "resample_dead": flags(none_ok=False),
            "device": devices(),
            "schedule": choices(["constant", "linear", "cosine", "warmup_cosine"]),
            "normalize_decoder": flags(none_ok=False),
            "b_dec_init": choices(["geometric_median", "mean", "zeros"]),
            "tied_init": flags(none_ok=False),
            "penalty_warmup_steps": sizes(base=2, minimum=0, huge_valid=True) + [V("0", 0, True)],
            "dead_window": sizes(base=2, huge_valid=True),
            "resample_every": sizes(base=2, huge_valid=True),
            "resample_scale": reals(0.2, low=0.0, low_ok=False, huge_valid=True),
            "eval_batch_size": sizes(base=16) + [V("10**12", 10**12, False), V("10**15", 10**15, False)],
            "snapshot_steps": [
                V("()", (), True),
                V("[0, 3]", [0, 3], True),
                V("array [0, 3]", lambda: np.array([0, 3]), True),
                V("tensor [1, 2]", lambda: torch.tensor([1, 2]), True),
                V("a set", {1, 2}, True),
                V("range(4)", range(4), True),
                V("[4] (after the last step)", [4], False),
                V("[-1]", [-1], False),
                V("[0.5]", [0.5], False),
                V("['1']", ["1"], False),
                V("5", 5, False),
                V("'0'", "0", False),
                V("None", None, False),
                V("range(10**12)", range(10**12), False),
                V("2-d array", lambda: np.zeros((2, 2), dtype=np.int64), False),
            ],
            "progress": flags(),
        },
    )
    cases.append(
        Case(
            "sae",
            "train_sae",
            "lr",
            V(
                "1e30 on activations of 1e20 (diverges)",
                const(None),
                False,
                expect=(TrainingDiverged,),
                needle="instance",
            ),
            lambda: toy_lib.train_sae(
                _sae_config(),
                torch.full((64, 2), 1e20),
                steps=3,
                batch_size=16,
                eval_batch_size=16,
                device="cpu",
                lr=1e30,
                b_dec_init="zeros",
            ),
        )
    )
    cases.append(
        Case(
            "sae",
            "train_sae",
            "seed",
            V("instance i of a batched run equals a run of it alone", const(None), True),
            lambda: _batched_equals_alone(),
            lambda r: None if r else "a batched instance differs from the same instance trained alone",
        )
    )

    # SAEResult ----------------------------------------------------------------------
    for method, width, axis in (("encode", 2, "d_in"), ("decode", 5, "d_sae"), ("reconstruct", 2, "d_in")):
        pool = tensors((8, width), ("batch", axis), {axis})
        pool = _with_axes_valid(pool, ("extra leading axis",), valid=False)  # 1 instance, not 2
        pool += [
            V("(instance, batch, width)", lambda w=width: torch.randn(2, 8, w), True),
            V("(3, batch, width): 3 instances for 2", lambda w=width: torch.randn(3, 8, w), False),
            V("10**10 rows", lambda w=width: torch.zeros(1, w).expand(10**10, w), False),
        ]
        arg = "f" if method == "decode" else "x"
        vary(
            "sae",
            f"SAEResult.{method}",
            lambda method=method, **kw: getattr(_sae_result(), method)(**kw),
            {arg: lambda w=width: torch.randn(8, w)},
            {arg: pool},
        )

    # cached_train_sae ---------------------------------------------------------------
    cached_sae = in_cache(toy_lib.cached_train_sae, cache_folder)

    vary(
        "cache",
        "cached_train_sae",
        cached_sae,
        dict(small),
        {
            "config": sae_configs[:8],
            "data": [
                V("a tensor", _acts64, True),
                V("a NumPy array", lambda: _acts64().numpy(), True),
                V("a toy model", lambda: _toy(), True),
                V("a list of tensors", lambda: [torch.randn(10, 2), torch.randn(7, 2)], True),
                V("a generator", lambda: (torch.randn(8, 2) for _ in range(4)), False),
                V("an empty list", [], False),
                V("a sparse tensor", lambda: _acts64().to_sparse(), False),
                V("a meta tensor", lambda: torch.empty(64, 2, device="meta"), False),
                V("NaN entry", lambda: _acts64().index_fill_(0, torch.tensor([0]), math.nan), False),
                V("width 3", lambda: torch.randn(10, 3), False),
            ]
            + garbage(),
            "steps": sizes(base=3)[:14] + [V("10**12", 10**12, False)],
            "seed": seeds()[:9] + [V("one per instance", [1, 2], True)],
            "device": devices()[:10],
            "snapshot_steps": [V("[0, 3]", [0, 3], True), V("[9]", [9], False)],
        },
    )
    for label, call in [
        (
            "an argument train_sae does not have",
            lambda: cached_sae(config=_sae_config(), data=_acts64(), stepz=3),
        ),
        ("no steps", lambda: cached_sae(config=_sae_config(), data=_acts64())),
    ]:
        cases.append(
            Case(
                "cache",
                "cached_train_sae",
                "stepz" if "have" in label else "steps",
                V(label, const(None), False),
                call,
            )
        )

    def same_key_for_numpy_scalars():
        a = cached_sae(config=_sae_config(), data=_acts64(), steps=3, batch_size=16, eval_batch_size=16)
        b = cached_sae(
            config=_sae_config(),
            data=_acts64(),
            steps=np.int64(3),
            batch_size=np.int32(16),
            eval_batch_size=16,
        )
        return bool(torch.equal(a.W_dec, b.W_dec)) and len(list(Path(cache_folder).glob("*.pt")))

    cases.append(
        Case(
            "cache",
            "cached_train_sae",
            "steps",
            V("steps=np.int64(3) is the run of steps=3", const(None), True),
            same_key_for_numpy_scalars,
        )
    )

    # SAE metrics --------------------------------------------------------------------
    acts_axes = ("instance", "batch", "d")
    free_shape = ("missing last axis", "extra leading axis", "values beyond float32 (NumPy 1e39)")
    for name in ("l0", "firing_rates", "dead_fraction"):
        arg = "acts" if name == "l0" else "f"
        pool = _with_axes_valid(tensors((2, 8, 5), acts_axes, set(), shape_free=True), free_shape)
        vary(
            "metrics",
            f"metrics.{name}",
            getattr(metrics, name),
            {arg: lambda: torch.rand(2, 8, 5)},
            {arg: pool},
        )
    for name in ("mse", "explained_variance", "shrinkage", "norm_ratio"):
        pools = {}
        for arg in ("x", "x_hat"):
            pool = tensors((2, 8, 5), acts_axes, set(acts_axes))
            pool = _with_axes_valid(pool, ("values beyond float32 (NumPy 1e39)",))
            if name in ("explained_variance", "shrinkage"):  # degenerate batches are refused
                pool = _positive_results(pool)
            pools[arg] = pool
        base = lambda: torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(1))  # noqa: E731
        vary("metrics", f"metrics.{name}", getattr(metrics, name), dict(x=base, x_hat=base), pools)
    true_pool = _with_axes_valid(
        tensors((5, 2), ("n_true", "d"), {"d"}), ("extra leading axis", "values beyond float32 (NumPy 1e39)")
    )
    learned_pool = _with_axes_valid(
        tensors((2, 4, 2), ("instance", "n_learned", "d"), {"d"}),
        ("extra leading axis", "values beyond float32 (NumPy 1e39)"),
    )
    learned_pool += [
        V("leading axes that do not broadcast", lambda: torch.randn(3, 4, 2)[None].expand(2, 3, 4, 2), None),
        V("(3, n, d) against true (2, n, d)", lambda: torch.randn(3, 4, 2), None),
        V("100,000 rows", lambda: torch.zeros(100_000, 2), True),
    ]
    for name in ("cosine_matrix", "max_cosines", "mmcs", "recovered_fraction", "mcc", "matching"):
        a, b = ("a", "b") if name == "cosine_matrix" else ("true_directions", "learned_directions")
        params = {a: true_pool, b: learned_pool}
        if name == "recovered_fraction":
            params["threshold"] = reals(0.9, low=-1.0, high=1.0)
        big = [V("100,000 rows against 100,000", lambda: torch.zeros(100_000, 2), False)]
        vary(
            "metrics",
            f"metrics.{name}",
            getattr(metrics, name),
            {a: lambda: torch.randn(5, 2), b: lambda: torch.randn(2, 4, 2)},
            params,
        )
        vary(
            "metrics",
            f"metrics.{name}",
            getattr(metrics, name),
            {a: lambda: torch.zeros(100_000, 2), b: lambda: torch.randn(2, 4, 2)},
            {b: big},
        )

    # SAE plots ----------------------------------------------------------------------
    snaps = lambda: torch.randn(3, 2, 4, 2, generator=torch.Generator().manual_seed(0))  # noqa: E731
    vary(
        "sae plots",
        "plots.sae_directions",
        plots.sae_directions,
        dict(
            true_W=lambda: torch.randn(2, 5), W_dec_snapshots=snaps, steps=[0, 10, 20], instance=0, max_cols=4
        ),
        {
            "true_W": _f64(tensors((2, 5), ("hidden", "feature"), {"hidden"})),
            "W_dec_snapshots": _f64(
                tensors((3, 2, 4, 2), ("snapshot", "instance", "d_sae", "hidden"), {"snapshot", "hidden"})
            ),
            "steps": [
                V("list", [0, 10, 20], True),
                V("tuple of NumPy ints", lambda: tuple(np.arange(3) * 10), True),
                V("wrong length", [0, 10], False),
                V("a float among them", [0, 10.5, 20], False),
                V("a negative one", [-1, 10, 20], False),
                V("a string", "abc", False),
                V("an int", 3, False),
            ]
            + garbage(),
            "instance": sizes(base=1, minimum=0) + [V("0", 0, True), V("2 of 2", 2, False)],
            "max_cols": sizes(base=4, huge_valid=True),
        },
    )
    vary(
        "sae plots",
        "plots.shrinkage_curves",
        plots.shrinkage_curves,
        dict(
            magnitudes=lambda: torch.linspace(0, 1, 6),
            activations=lambda: torch.rand(2, 6),
            labels=["a", "b"],
        ),
        {
            "magnitudes": _f64(tensors((6,), ("point",), {"point"})),
            "activations": _f64(tensors((2, 6), ("line", "point"), {"line", "point"})),
            "labels": [
                V("list", ["a", "b"], True),
                V("tuple", ("a", "b"), True),
                V("wrong length", ["a"], False),
                V("numbers", [1, 2], False),
                V("a string", "ab", False),
            ]
            + garbage(),
        },
    )
    vary(
        "sae plots",
        "plots.cosine_heatmap",
        plots.cosine_heatmap,
        dict(cos=lambda: torch.rand(4, 6) * 2 - 1),
        {
            "cos": tensors((4, 6), ("feature", "latent"), set(), kind="probability")
            + [V("a cosine of 2", lambda: torch.full((4, 6), 2.0), False)],
            "xlabel": [V("str", "x", True), V("int", 3, False), V("None", None, False)],
            "ylabel": [V("str", "y", True), V("list", ["y"], False)],
            "title": [V("None", None, True), V("str", "t", True), V("int", 3, False)],
        },
    )
    vary(
        "sae plots",
        "plots.metric_bars",
        plots.metric_bars,
        dict(labels=["a", "b"], metrics_by_name=lambda: {"MMCS": [0.9, 1.0], "L0": [1.2, 1.0]}),
        {
            "labels": [
                V("list", ["a", "b"], True),
                V("wrong length", ["a"], False),
                V("numbers", [1, 2], False),
            ]
            + garbage(),
            "metrics_by_name": [
                V("dict of lists", lambda: {"MMCS": [0.9, 1.0]}, True),
                V("negative values", lambda: {"explained": [-0.2, 0.9]}, True),
                V("all zero", lambda: {"dead": [0.0, 0.0]}, True),
                V("a NaN value", lambda: {"MMCS": [math.nan, 1.0]}, False),
                V("wrong length", lambda: {"MMCS": [0.9]}, False),
                V("a string value", lambda: {"MMCS": ["0.9", "1"]}, False),
                V("empty dict", {}, False),
                V("a number as a name", lambda: {3: [0.9, 1.0]}, False),
                V("a list", [[0.9, 1.0]], False),
            ]
            + garbage(),
            "max_cols": sizes(base=2, huge_valid=True),
        },
    )

    # SAE checkers -------------------------------------------------------------------
    # the reference solutions of tests/test_sae_metrics.py
    from test_sae_metrics import normalise, remove_parallel, resample
    from test_sae_metrics import sae_forward as forward
    from test_sae_metrics import sae_loss as loss

    for name, reference, arity in (
        ("check_sae_forward", forward, 5),
        ("check_sae_loss", loss, 4),
        ("check_resample", resample, 7),
    ):
        vary(
            "exercises",
            f"exercises.{name}",
            getattr(exercises, name),
            dict(fn=lambda r=reference: r),
            {"fn": learner_functions(reference, arity, name), "seed": seeds()[:9]},
            positional=("fn",),
        )
    vary(
        "exercises",
        "exercises.check_decoder_normalisation",
        exercises.check_decoder_normalisation,
        dict(remove_parallel=lambda: remove_parallel, normalise=lambda: normalise),
        {
            "remove_parallel": learner_functions(remove_parallel, 2, "check_decoder_normalisation"),
            "normalise": learner_functions(normalise, 1, "check_decoder_normalisation"),
            "seed": seeds()[:9],
        },
        positional=("remove_parallel", "normalise"),
    )

    real_model_cases(vary, cases, cache_folder)


def _batched_equals_alone() -> bool:
    """Instance 1 of a batched run, and the same instance trained alone with its recorded seed."""
    cfg = _sae_config(l1_coefficient=[0.1, 0.5])
    kw = dict(steps=5, batch_size=16, eval_batch_size=16, device="cpu", progress=False)
    both = toy_lib.train_sae(cfg, _toy(1), seed=3, **kw)
    seeds = both.recipe["instance_seeds"]
    alone = toy_lib.train_sae(toy_lib.SAEConfig(2, 5, l1_coefficient=0.5), _toy(1), seed=[seeds[1]], **kw)
    return bool(torch.equal(alone.W_dec[0], both.W_dec[1]))


def real_model_cases(vary, cases: list, cache_folder: str) -> None:
    model = lambda: _real()[0]  # noqa: E731
    corpus = lambda: _real()[1]  # noqa: E731
    acts = lambda: _real()[2]  # noqa: E731
    not_model = [
        V("a dict", lambda: {"config": {}}, False),
        V("the class", real_model.Encoder, False),
    ] + garbage()
    not_corpus = [V("a dict", lambda: {"books": {}}, False), V("a model", model, False)] + garbage()
    ids = lambda: torch.tensor([[101, 7592, 2088, 102], [101, 2088, 102, 0]])  # noqa: E731
    vary(
        "real_model",
        "real_model.hidden_states",
        real_model.hidden_states,
        dict(model=model, input_ids=ids, attention_mask=None, layer=3),
        {
            "model": not_model,
            "input_ids": [
                V("int64 tensor", ids, True),
                V("int32 tensor", lambda: ids().int(), True),
                V("nested list", lambda: ids().tolist(), True),
                V("NumPy int array", lambda: ids().numpy(), True),
                V("float tensor", lambda: ids().float(), False),
                V("bool tensor", lambda: ids().bool(), False),
                V("ragged list", [[101, 102], [101]], False),
                V("1-d", lambda: ids()[0], False),
                V("3-d", lambda: ids()[None], False),
                V("empty", lambda: torch.zeros(0, 4, dtype=torch.long), False),
                V("an id beyond the vocabulary", lambda: torch.tensor([[101, 10**6, 102]]), False),
                V("a negative id", lambda: torch.tensor([[101, -1, 102]]), False),
                V("600 tokens", lambda: torch.full((1, 600), 1000), False),
                V("100,000 rows of 512", lambda: torch.ones(100_000, 512, dtype=torch.long), False),
                V("a string", "hello", False),
            ]
            + garbage(),
            "attention_mask": [
                V("None", None, True),
                V("ones and zeros", lambda: (ids() != 0).long(), True),
                V("bool", lambda: ids() != 0, True),
                V("float 0/1", lambda: (ids() != 0).float(), None),
                V("a 2 in it", lambda: torch.full((2, 4), 2), False),
                V("wrong shape", lambda: torch.ones(2, 3, dtype=torch.long), False),
                V("a string", "mask", False),
            ],
            "layer": _with_axes_valid(sizes(base=3, minimum=0), ("None",))
            + [V("0", 0, True), V("6", 6, True), V("7", 7, False)],
        },
    )
    texts_pool = [
        V("list", ["It is a truth.", "Emma Woodhouse"], True),
        V("tuple", ("a", "b"), True),
        V("an empty string", [""], True),
        V("a bare string", "hello", False),
        V("an empty list", [], False),
        V("numbers", [1, 2], False),
        V("bytes", [b"a"], False),
        V("a NumPy array of strings", lambda: np.array(["a", "b"]), False),
        V("a text of 600 tokens", ["word " * 600], False),
        V("a set", {"a"}, False),
    ] + garbage()
    for name in ("tokenize", "embed"):
        vary(
            "real_model",
            f"real_model.{name}",
            getattr(real_model, name),
            dict(model=model, texts=["a", "b"]),
            {"model": not_model, "texts": texts_pool},
        )
    vary(
        "real_model",
        "real_model.corpus_windows",
        real_model.corpus_windows,
        dict(model=model, corpus=corpus, context=16),
        {
            "model": not_model,
            "corpus": not_corpus,
            "context": sizes(base=16, minimum=3)
            + [V("512", 512, True), V("513", 513, False), V("3", 3, True)],
        },
    )
    vary(
        "real_model",
        "real_model.extract_activations",
        real_model.extract_activations,
        dict(model=model, corpus=corpus, n_tokens=20, context=16, progress=False),
        {
            "model": not_model[:4],
            "corpus": not_corpus[:4],
            "n_tokens": sizes(base=20) + [V("10**9", 10**9, False)],
            "layer": sizes(base=3, minimum=0)[:14] + [V("7", 7, False), V("0", 0, True)],
            "context": sizes(base=16, minimum=3)[:14] + [V("513", 513, False)],
            "batch_size": sizes(base=4, huge_valid=True),
            "dtype": [V("float16", torch.float16, True), V("float32", torch.float32, True)]
            + [
                V("float64", torch.float64, False),
                V("int64", torch.int64, False),
                V("'float16'", "float16", False),
            ]
            + garbage(),
            "device": devices(),
            "progress": flags(),
        },
    )
    vary(
        "real_model",
        "real_model.top_contexts",
        real_model.top_contexts,
        dict(latent_acts=lambda: torch.rand(40), activations=acts, k=3),
        {
            "latent_acts": tensors((40,), ("token",), {"token"}),
            "activations": [V("a corpus", corpus, False), V("a tensor", lambda: torch.rand(40, 384), False)]
            + garbage(),
            "k": sizes(base=3, huge_valid=True),
            "before": sizes(base=4, minimum=0, huge_valid=True) + [V("0", 0, True)],
            "after": sizes(base=4, minimum=0, huge_valid=True)[:12],
        },
    )
    vary(
        "real_model",
        "real_model.feature_browser_html",
        real_model.feature_browser_html,
        dict(latent_acts=lambda: torch.rand(40, 2), activations=acts, latents=None, labels=None, k=3),
        {
            "latent_acts": tensors((40, 2), ("token", "shown"), {"token"}),
            "latents": [
                V("None", None, True),
                V("list", [7, 9], True),
                V("wrong length", [7], False),
                V("a negative one", [7, -1], False),
                V("floats", [7.0, 9.0], False),
                V("a string", "79", False),
            ],
            "labels": [
                V("None", None, True),
                V("list", ["a", "b"], True),
                V("wrong length", ["a"], False),
                V("numbers", [1, 2], False),
                V("a string", "ab", False),
            ],
            "k": sizes(base=3, huge_valid=True)[:12],
        },
    )
    vary(
        "real_model",
        "real_model.Activations.context",
        lambda **kw: acts().context(**kw),
        dict(row=5),
        {
            "row": sizes(base=5, minimum=0)
            + [V("39 (the last)", 39, True), V("40", 40, False), V("0", 0, True)],
            "before": sizes(base=4, minimum=0, huge_valid=True)[:12],
            "after": sizes(base=4, minimum=0, huge_valid=True)[:12],
        },
    )
    vary(
        "real_model",
        "real_model.Corpus.paragraphs",
        lambda **kw: corpus().paragraphs(**kw),
        dict(title="Emma"),
        {"title": choices(["Emma", "Persuasion"])},
    )
    with_path = [
        V("None", None, True),
        V("a missing file", "/no/such/model.zip", False),
        V("a folder", "/tmp", False),
        V("a small file of the wrong contents", lambda: _small_file(cache_folder), False),
        V("''", "", False),
    ] + garbage(exclude=("None",))
    vary("real_model", "real_model.load_model", real_model.load_model, {}, {"path": with_path})
    corpus_paths = [
        V("None", None, True),
        V("a missing folder", "/no/such/folder", False),
        V("~", "~", False),
        V("''", "", False),
        V("a file", lambda: _small_file(cache_folder), False),
    ] + garbage(exclude=("None",))
    vary("real_model", "real_model.load_corpus", real_model.load_corpus, {}, {"path": corpus_paths})
    vary("real_model", "real_model.corpus_path", real_model.corpus_path, {}, {"path": corpus_paths})

    cached_acts = in_cache(toy_lib.cached_activations, cache_folder)

    vary(
        "cache",
        "cached_activations",
        cached_acts,
        dict(model=model, corpus=corpus, n_tokens=20, context=16, progress=False),
        {
            "model": not_model[:5],
            "corpus": not_corpus[:5],
            "n_tokens": sizes(base=20)[:14] + [V("10**9", 10**9, False)],
            "layer": [
                V("3", 3, True),
                V("np.int64(2)", lambda: np.int64(2), True),
                V("7", 7, False),
                V("2.0", 2.0, False),
            ],
            "dtype": [V("float32", torch.float32, True), V("'float16'", "float16", False)],
        },
    )
    for label, arg, call in [
        (
            "an argument extract_activations does not have",
            "tokens",
            lambda: cached_acts(model=model(), corpus=corpus(), tokens=20),
        ),
        ("no n_tokens", "n_tokens", lambda: cached_acts(model=model(), corpus=corpus())),
    ]:
        cases.append(Case("cache", "cached_activations", arg, V(label, const(None), False), call))


def _small_file(folder: str) -> str:
    path = Path(folder) / "not_a_model.zip"
    path.write_bytes(b"not a zip")
    return str(path)


# ----------------------------------------------------------------------------- running


def non_finite(obj, depth=0) -> str | None:
    """Where ``obj`` holds a NaN or an infinity, or None."""
    if depth > 4:
        return None
    if isinstance(obj, torch.Tensor):
        if (
            obj.is_floating_point()
            and obj.device.type != "meta"
            and not bool(torch.isfinite(obj.detach()).all())
        ):
            return f"tensor of shape {tuple(obj.shape)} with NaN/inf"
        return None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.all(np.isfinite(obj)):
            return f"array of shape {obj.shape} with NaN/inf"
        return None
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else f"{obj}"
    if isinstance(obj, (list, tuple)):
        for item in obj:
            found = non_finite(item, depth + 1)
            if found:
                return found
    if isinstance(obj, dict):
        for key, item in obj.items():
            found = non_finite(item, depth + 1)
            if found:
                return f"{key}: {found}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            found = non_finite(getattr(obj, field.name), depth + 1)
            if found:
                return f"{field.name}: {found}"
    if isinstance(obj, torch.nn.Module):
        for name, p in obj.named_parameters():
            found = non_finite(p, depth + 1)
            if found:
                return f"{name}: {found}"
    return None


def _origin(err: BaseException) -> str:
    """'toy_lib' if the error was raised by toy_lib's own code, else where it came from."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    last = frames[-1].filename
    if f"{os.sep}toy_lib{os.sep}" in last and "site-packages" not in last:
        return "toy_lib"
    for lib in ("torch", "numpy", "matplotlib", "numba"):
        if f"{os.sep}{lib}{os.sep}" in last:
            return lib
    if last == __file__ or last.endswith("probe_api.py"):
        return "probe"
    return Path(last).name


def _names(message: str, needle: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(needle)}(?=[=\[ ':.,(]|$)", message) is not None


def run_case(case: Case) -> dict:
    value = case.value
    out = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            result = case.call()
    except BaseException as err:  # noqa: BLE001 - classify everything
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        message = f"{type(err).__name__}: {err}"
        origin = _origin(err)
        if value.valid is True:
            outcome = "refused"
        elif isinstance(err, value.expect) and origin == "toy_lib":
            named = _names(str(err), value.needle or case.arg)
            expected = "expected" in str(err) or isinstance(err, TrainingDiverged)
            outcome = "clear" if named and expected else "vague"
        elif isinstance(err, (ValueError, TypeError)) and origin == "toy_lib":
            outcome = "vague"
        else:
            outcome = "raw"
        return dict(
            outcome=outcome, detail=f"[{origin}] {message}"[:400], seconds=time.perf_counter() - start
        )
    finally:
        if case.module == "plots":
            import matplotlib.pyplot as plt

            plt.close("all")
    printed = out.getvalue()
    bad = non_finite(result)
    promise = case.check(result) if case.check else None
    if value.label == "a stub raising NotImplementedError" and "not attempted yet" not in printed:
        promise = "a stub was not reported as 'not attempted yet'"
    if bad or promise:
        outcome, detail = "silent", bad or promise
    elif value.valid is False:
        outcome, detail = "silent", f"accepted: returned {type(result).__name__}"
    else:
        outcome, detail = "ok", ""
    return dict(outcome=outcome, detail=detail[:400], seconds=time.perf_counter() - start)


def worker(cache_folder: str) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    torch.set_num_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    import matplotlib

    matplotlib.use("Agg")
    cases = build_cases(cache_folder)
    results = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = io.StringIO()
    results.write("ready\n")
    for line in sys.stdin:
        i = int(line)
        try:
            res = run_case(cases[i])
        except MemoryError as err:
            res = dict(outcome="raw", detail=f"MemoryError: {err}", seconds=0.0)
        results.write(json.dumps(res) + "\n")
        sys.stdout = io.StringIO()


class Worker:
    def __init__(self, cache_folder: str, log):
        env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", cache_folder],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        line = self._read(300)
        if line != "ready\n":
            raise RuntimeError(f"the worker did not start: {line!r}")

    def _read(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline()

    def run(self, i: int, timeout: float) -> dict:
        self.proc.stdin.write(f"{i}\n")
        self.proc.stdin.flush()
        line = self._read(timeout)
        if line is None:
            self.stop()
            return dict(outcome="hang", detail=f"no answer within {timeout:g} s", seconds=timeout)
        if not line:
            code = self.proc.wait()
            return dict(outcome="crash", detail=f"the worker died (exit code {code})", seconds=0.0)
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", metavar="CACHE", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="probe only the functions whose name contains this")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default 60)")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--verbose", action="store_true", help="print every problem, not only a sample")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0

    with tempfile.TemporaryDirectory(prefix="probe_api_") as tmp:
        cases = build_cases(tmp)
        chosen = [i for i, c in enumerate(cases) if not args.only or args.only in c.function]
        if args.list:
            for i in chosen:
                c = cases[i]
                print(f"{i:5d} {c.function}({c.arg}={c.value.label}) valid={c.value.valid}")
            return 0
        log_path = Path(tmp) / "worker.log"
        results: dict[int, dict] = {}
        with open(log_path, "w") as log:
            w = Worker(tmp, log)
            start = time.perf_counter()
            for n, i in enumerate(chosen):
                res = w.run(i, args.timeout)
                results[i] = res
                if res["outcome"] in ("hang", "crash"):
                    w = Worker(tmp, log)
                if (n + 1) % 100 == 0:
                    print(
                        f"... {n + 1} of {len(chosen)} calls ({time.perf_counter() - start:.0f} s)",
                        flush=True,
                    )
            w.stop()
        report(cases, results, verbose=args.verbose)
    bad = sum(
        1
        for i, r in results.items()
        if cases[i].module not in NOT_MINE and r["outcome"] in ("silent", "hang", "crash")
    )
    return 1 if bad else 0


def report(cases: list[Case], results: dict[int, dict], *, verbose: bool) -> None:
    table: dict[str, Counter] = defaultdict(Counter)
    problems = defaultdict(list)
    for i, res in results.items():
        c = cases[i]
        table[c.module][res["outcome"]] += 1
        if res["outcome"] not in ("ok", "clear"):
            problems[res["outcome"]].append(f"{c.function}({c.arg}={c.value.label}): {res['detail']}")
    modules = [
        m
        for m in (
            "config",
            "data",
            "model",
            "training",
            "cache",
            "metrics",
            "geometry",
            "theory",
            "synthetic",
            "exercises",
            "sae",
            "sae plots",
            "real_model",
            "plots",
        )
        if m in table
    ]
    width = max(len(m) for m in modules) + 12
    head = f"{'module':{width}s}" + "".join(f"{o:>9s}" for o in OUTCOMES) + f"{'calls':>8s}"
    print()
    print(head)
    print("-" * len(head))
    total = Counter()
    for m in modules:
        label = m + (" (not mine)" if m in NOT_MINE else "")
        row = table[m]
        if m not in NOT_MINE:
            total.update(row)
        print(f"{label:{width}s}" + "".join(f"{row[o]:9d}" for o in OUTCOMES) + f"{sum(row.values()):8d}")
    print("-" * len(head))
    print(
        f"{'total (toy_lib)':{width}s}"
        + "".join(f"{total[o]:9d}" for o in OUTCOMES)
        + f"{sum(total.values()):8d}"
    )
    functions = {cases[i].function for i in results}
    print(
        f"\n{len(results)} calls of {len(functions)} public functions; outcomes: ok = valid input accepted with a "
        "finite result, clear = bad input refused with a message naming the argument and the expectation."
    )
    for outcome in ("silent", "hang", "crash", "raw", "vague", "refused"):
        items = problems.get(outcome, [])
        if not items:
            continue
        print(f"\n{outcome} ({len(items)}):")
        for line in items if verbose else items[:25]:
            print(f"  {line}")
        if not verbose and len(items) > 25:
            print(f"  ... and {len(items) - 25} more (--verbose)")


if __name__ == "__main__":
    sys.exit(main())
