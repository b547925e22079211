"""The checks every public entry point of toy_lib shares: one place that turns a mistake into a
message that teaches.

Every check takes the value and the name of the argument it came from, and either returns the
value in a normal form (a Python ``int`` or ``float``, a fresh float64 NumPy array, a floating
torch tensor, a ``torch.device``) or raises ``ValueError`` with a message of one shape::

    <name>=<value>: expected <what was expected>[, got <what was found>]

so that a learner who typed ``feature_probability="0.5"`` reads
``feature_probability='0.5': expected real numbers (a number, a list, a NumPy array or a torch
tensor), got str``. The rules, the same everywhere:

- Integers are accepted as Python ``int``, any NumPy integer, or a 0-d integer NumPy array or
  torch tensor; reals as any of those or a Python/NumPy ``float`` or a 0-d floating NumPy array
  or torch tensor. Nothing else: no ``bool`` (``True`` is not 1 here), no string, no complex
  number, no ``None`` (unless the argument documents ``None``).
- Arrays are copied on the way in, so a caller who edits their array afterwards changes
  nothing inside toy_lib; they must hold finite real numbers.
- Tensors are checked against the documented axes (``("instance", "batch", "feature")``), and
  several tensors against each other, with a message that names the axis that disagrees. Every
  axis must have at least one entry (an empty tensor is refused), integer tensors become
  floating tensors (a tensor of ones means ones), booleans, complex numbers, sparse tensors and
  tensors on the ``meta`` device are refused. Tensors keep their autograd graph.
- Devices and seeds are checked before any work starts.
- Work and memory are estimated before anything is allocated, and a call that cannot fit is
  refused up front, naming the argument that makes it too large (`check_memory`,
  `check_work`).
- A result that overflows (a NaN or an infinity computed from finite input) is never returned:
  `finite_result` turns it into an error that names the inputs.

The checks, in the order of this file: `describe`, `fail` (the message); `integer`, `real`,
`positive`, `choice`, `flag`, `seed`, `function`, `instance_of` (scalars and objects);
`real_array`, `as_tensor`, `same_sizes`, `same_device`, `common_dtype`, `finite_tensor`,
`finite_result` (arrays and tensors); `value_range`, `feature_groups`, `disjoint_groups`,
`group_probabilities` (data options); `device`, `generator`, `float_dtype`, `folder` (devices, paths);
`available_memory`, `check_memory`, `check_work` (size guards). Any new public function of
toy_lib (an SAE trainer, a geometry helper) checks its arguments with these.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

#: The largest seed accepted: torch's generators take seeds below 2**64, and toy_lib derives
#: further seeds by adding small offsets.
MAX_SEED = 2**63 - 1
#: The share of the machine's memory one call may plan to allocate before it is refused.
MEMORY_FRACTION = 0.5
#: A documented ceiling on the work of one call, in toy_lib's work units (about one
#: multiply-add of the model each, see `check_work`): toy_lib's CPU trainer gets through about
#: 10^9 units a second on two laptop cores, so this is several hours of a laptop CPU.
MAX_WORK = 3e13
#: How many times `MAX_WORK` a call may do on a CUDA device (a GPU does this work far faster).
GPU_WORK_FACTOR = 100


def describe(value: object, limit: int = 60) -> str:
    """``repr(value)``, shortened for arrays and long values (for error messages)."""
    try:
        if isinstance(value, torch.Tensor):
            if 0 < value.numel() <= 6 and value.device.type != "meta" and value.layout == torch.strided:
                text = " ".join(repr(value.detach()).split())
            else:
                text = f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
                if value.device.type != "cpu":
                    text += f" on {value.device}"
        elif isinstance(value, np.ndarray):
            if 0 < value.size <= 6:
                text = " ".join(repr(value).split())
            else:
                text = f"array of shape {value.shape} and dtype {value.dtype}"
        else:
            text = repr(value)
    except Exception:  # a value whose repr fails still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(name: str, value: object, expected: str, got: str | None = None) -> ValueError:
    """The error every check raises: ``<name>=<value>: expected <expected>[, got <got>]``."""
    text = f"{name}={describe(value)}: expected {expected}"
    if got:
        text += f", got {got}"
    return ValueError(text)


# --------------------------------------------------------------------------- scalars

_INT_TYPES = (int, np.integer)
_REAL_TYPES = (int, float, np.integer, np.floating)


def _scalar(value: object, name: str, integral: bool, expected: str):
    """``value`` as a Python int or float, if it is one in any accepted form; else a clear error."""
    if isinstance(value, (bool, np.bool_)):
        raise fail(name, value, expected, "a bool")
    if isinstance(value, torch.Tensor):
        if (
            value.ndim != 0
            or value.is_complex()
            or value.dtype == torch.bool
            or value.device.type == "meta"
            or value.layout != torch.strided
        ):
            raise fail(
                name, value, expected, f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
            )
        if integral and value.is_floating_point():
            raise fail(name, value, expected, f"a floating tensor ({value.dtype})")
        return value.item()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _scalar(value[()], name, integral, expected)
        raise fail(name, value, expected, f"an array of shape {value.shape}")
    accepted = _INT_TYPES if integral else _REAL_TYPES
    if not isinstance(value, accepted):
        raise fail(name, value, expected, type(value).__name__)
    if integral:
        return int(value)
    try:
        return float(value)
    except OverflowError as err:  # an int beyond float's range
        raise fail(name, value, expected, "a number too large for a float") from err


def integer(
    value: object,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    expected: str | None = None,
) -> int:
    """``value`` as a Python ``int`` within ``[minimum, maximum]`` (either bound optional);
    ``expected`` replaces the generated description."""
    if expected is not None:
        pass
    elif minimum == 1 and maximum is None:
        expected = "a positive integer"
    elif minimum == 0 and maximum is None:
        expected = "a non-negative integer"
    elif minimum is not None and maximum is not None:
        expected = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        expected = f"an integer >= {minimum}"
    elif maximum is not None:
        expected = f"an integer <= {maximum}"
    else:
        expected = "an integer"
    number = _scalar(value, name, True, expected)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise fail(name, value, expected)
    return number


def real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    expected: str | None = None,
) -> float:
    """``value`` as a finite Python ``float`` in the interval from ``low`` to ``high``.

    The interval is closed unless ``low_open`` / ``high_open`` say otherwise; ``expected``
    replaces the generated description (e.g. ``"a probability in (0, 1]"``).
    """
    if expected is None:
        expected = "a finite real number" + _interval(low, high, low_open, high_open)
    number = _scalar(value, name, False, expected)
    if not math.isfinite(number):
        raise fail(name, value, expected)
    if low is not None and (number < low or (low_open and number == low)):
        raise fail(name, value, expected)
    if high is not None and (number > high or (high_open and number == high)):
        raise fail(name, value, expected)
    return number


def _interval(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def positive(value: object, name: str) -> float:
    """A finite real number > 0 (a learning rate, a scale)."""
    return real(value, name, low=0.0, low_open=True, expected="a positive finite number")


def choice(value: object, name: str, options: Sequence[str]) -> str:
    """One of ``options`` (strings), exactly."""
    listed = ", ".join(map(repr, options))
    if not isinstance(value, str) or value not in options:
        raise fail(name, value, f"one of {listed}")
    return str(value)


def flag(value: object, name: str, *, allow_none: bool = False) -> bool | None:
    """A ``bool`` (Python or NumPy), nothing else; ``None`` too where ``allow_none``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        expected = "True, False or None" if allow_none else "True or False"
        raise fail(name, value, expected, type(value).__name__)
    return bool(value)


def seed(value: object, name: str = "seed") -> int:
    """A seed for toy_lib's generators: an integer from 0 to 2**63 - 1."""
    return integer(value, name, minimum=0, maximum=MAX_SEED, expected="an integer from 0 to 2**63 - 1")


def function(value: object, name: str, *, allow_none: bool = False, what: str = "a function"):
    """A callable (a learner's solution, a step function); ``None`` too where ``allow_none``."""
    if value is None and allow_none:
        return None
    if not callable(value) or isinstance(value, type):
        raise fail(name, value, what + (" or None" if allow_none else ""), type(value).__name__)
    return value


def instance_of(value: object, name: str, cls: type, what: str | None = None):
    """``value`` if it is an instance of ``cls``; else an error naming what was expected."""
    if not isinstance(value, cls):
        raise fail(name, value, what or f"a {cls.__name__}", type(value).__name__)
    return value


# --------------------------------------------------------------------------- arrays and tensors

_KINDS = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "O": "objects"}


def _tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` cannot hold real numbers for toy_lib, or None."""
    if tensor.device.type == "meta":
        return "a tensor on the meta device (it holds no numbers)"
    if tensor.layout != torch.strided:
        return f"a {tensor.layout} tensor (use .to_dense())"
    if tensor.is_complex() or tensor.dtype == torch.bool:
        return f"a tensor of dtype {tensor.dtype}"
    return None


def real_array(value: object, name: str, *, ndim: Sequence[int] | None = None) -> np.ndarray:
    """``value`` (a number, nested lists, a NumPy array or a torch tensor) as a fresh float64
    array of finite real numbers, optionally with one of the numbers of dimensions ``ndim``."""
    expected = "real numbers (a number, a list, a NumPy array or a torch tensor)"
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, (bool, np.bool_)):
        raise fail(name, value, expected, type(value).__name__)
    if isinstance(value, (int, float, np.integer, np.floating)):
        arr = np.array(real(value, name, expected="a finite real number"))
    elif isinstance(value, torch.Tensor):
        problem = _tensor_problem(value)
        if problem:
            raise fail(name, value, expected, problem)
        arr = value.detach().cpu().to(torch.float64).numpy().copy()
    else:
        try:
            raw = np.array(value)  # a copy, always
        except (TypeError, ValueError, OverflowError) as err:
            if "inhomogeneous" in str(err):
                got = "ragged or mixed values (rows of different lengths)"
            else:
                got = f"something NumPy cannot read ({err})"
            raise fail(name, value, expected, got) from err
        if raw.dtype == object:
            if isinstance(value, (list, tuple)):
                got = "ragged or mixed values"
            elif isinstance(value, np.ndarray):
                got = "an array of Python objects"
            else:
                got = type(value).__name__
            raise fail(name, value, expected, got)
        if raw.dtype.kind not in "iuf":
            raise fail(name, value, expected, _KINDS.get(raw.dtype.kind, f"dtype {raw.dtype}"))
        arr = raw.astype(np.float64)
    if ndim is not None and arr.ndim not in tuple(ndim):
        dims = " or ".join(str(d) for d in ndim)
        raise fail(name, value, f"an array with {dims} dimension(s)", f"shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise fail(name, value, "finite numbers", "NaN or infinity")
    return arr


def as_tensor(
    value: object,
    name: str,
    axes: Sequence[str],
    *,
    dtype: torch.dtype | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """``value`` as a floating torch tensor with one dimension per name in ``axes``.

    A torch tensor keeps its device, its autograd graph, and its floating dtype unless
    ``dtype`` is given; a NumPy array or nested list becomes a float32 CPU tensor (a copy).
    Integer tensors are converted to float (so a tensor of ones means ones); booleans, complex
    numbers, sparse tensors and ``meta`` tensors are refused; every axis must have at least one
    entry; and with ``finite=True`` NaN and infinity are refused.
    """
    spelled = "(" + ", ".join(axes) + ")"
    if isinstance(value, torch.Tensor):
        problem = _tensor_problem(value)
        if problem:
            raise fail(name, value, f"a real tensor of shape {spelled}", problem)
        tensor = value
        if dtype is not None:
            tensor = tensor.to(dtype)
        elif not tensor.is_floating_point():
            tensor = tensor.to(torch.get_default_dtype())
    else:
        if isinstance(value, (str, bytes)) or value is None or isinstance(value, (bool, np.bool_)):
            raise fail(name, value, f"a real tensor of shape {spelled}", type(value).__name__)
        arr = real_array(value, name) if finite else np.asarray(value, dtype=np.float64)
        if arr.ndim != len(axes):
            raise fail(name, value, f"a tensor of shape {spelled}", f"shape {arr.shape}")
        tensor = torch.as_tensor(arr, dtype=dtype or torch.float32)
        if finite and not bool(torch.isfinite(tensor).all()):
            raise fail(name, value, f"numbers within the range of {tensor.dtype}", "values beyond it")
    if tensor.ndim != len(axes):
        raise fail(name, value, f"a tensor of shape {spelled}", f"shape {tuple(tensor.shape)}")
    empty = [axis for axis, size in zip(axes, tensor.shape) if size == 0]
    if empty:
        raise fail(
            name,
            value,
            f"a tensor of shape {spelled} with at least one entry on every axis",
            f"an empty {empty[0]} axis",
        )
    if finite and not bool(torch.isfinite(tensor.detach()).all()):
        raise fail(name, value, f"finite numbers in {spelled}", "NaN or infinity")
    return tensor


def same_sizes(named: Mapping[str, tuple[torch.Tensor | np.ndarray, Sequence[str]]]) -> dict[str, int]:
    """Check that tensors agree on every axis they share by name; return each axis's size.

    ``named`` maps an argument name to ``(tensor, axes)``, e.g.
    ``{"W": (W, ("instance", "hidden", "feature")), "x": (x, ("instance", "batch", "feature"))}``.
    Each tensor must already have one dimension per axis (see `as_tensor`).
    """
    sizes: dict[str, tuple[int, str]] = {}
    for arg, (tensor, axes) in named.items():
        shape = tuple(tensor.shape)
        for axis, size in zip(axes, shape):
            if axis in sizes and sizes[axis][0] != size:
                first_size, first_arg = sizes[axis]
                spelled = "(" + ", ".join(axes) + ")"
                raise fail(
                    arg,
                    tensor,
                    f"shape {spelled} with {first_size} entries on the {axis} axis, as {first_arg} has",
                    f"{size} (shape {shape})",
                )
            sizes.setdefault(axis, (size, arg))
    return {axis: size for axis, (size, _) in sizes.items()}


def same_device(named: Mapping[str, torch.Tensor]) -> torch.device:
    """Check that the tensors in ``named`` (argument name -> tensor) share one device; return it."""
    first_name, first = next(iter(named.items()))
    for arg, tensor in named.items():
        if tensor.device != first.device:
            raise fail(
                arg, tensor, f"a tensor on {first.device}, as {first_name} is", f"one on {tensor.device}"
            )
    return first.device


def common_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The floating dtype that holds all of ``tensors`` (float64 beats float32, ...)."""
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def finite_tensor(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """``tensor`` unchanged if every entry is finite; else an error naming the first bad index."""
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        value = tensor[index].item()
        raise ValueError(f"{name} has a non-finite entry {value} at index {index}: expected finite numbers")
    return tensor


def finite_result(result, caller: str, blame: Mapping[str, object]):
    """``result`` (a tensor or an array) unchanged if it is finite; else an error naming the inputs.

    Finite inputs can still overflow (squares of 1e200 in float64, of 1e20 in float32); this
    turns such a result into a message instead of returning NaN or infinity.
    """
    values = result.detach() if isinstance(result, torch.Tensor) else np.asarray(result)
    finite = (
        bool(torch.isfinite(values).all()) if isinstance(values, torch.Tensor) else np.isfinite(values).all()
    )
    if not finite:
        args = ", ".join(f"{k}={describe(v)}" for k, v in blame.items())
        kind = str(values.dtype).replace("torch.", "")
        raise ValueError(
            f"{caller}: {args}: expected values small enough that the result fits in {kind}, "
            "got a result that overflows (NaN or infinity); rescale the inputs"
        )
    return result


# --------------------------------------------------------------------------- data options

#: The value ranges a feature can take when active: ``U[0, 1]`` or ``U[-1, 1]``.
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))


def value_range(value: object, name: str = "value_range") -> tuple[float, float]:
    """``(0.0, 1.0)`` or ``(-1.0, 1.0)``, from a pair of reals in any accepted form."""
    expected = "(0, 1) or (-1, 1), the range of an active feature's uniform value"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, torch.Tensor)):
        raise fail(name, value, expected, type(value).__name__)
    if len(value) != 2:
        raise fail(name, value, expected, f"{len(value)} numbers")
    pair = tuple(real(v, name, expected=expected) for v in value)
    if pair not in VALUE_RANGES:
        raise fail(name, value, expected)
    return pair


def feature_groups(value: object, name: str, n_features: int) -> tuple[tuple[int, ...], ...]:
    """Groups of feature indices, ``((0, 1), (2, 3, 4))``: each a sequence of at least two
    distinct integers in ``[0, n_features)``, returned as a tuple of tuples of ``int``.
    (Overlaps between groups are checked by `disjoint_groups`.)"""
    expected = "a list of groups, each a list of at least two feature indices, e.g. [(0, 1), (2, 3)]"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise fail(name, value, expected, type(value).__name__)
    groups = []
    for group in value:
        if isinstance(group, (str, bytes)) or not isinstance(group, (Sequence, np.ndarray, torch.Tensor)):
            raise fail(name, value, expected, f"the group {describe(group)}, which is not a list of indices")
        members = []
        for i in group:
            try:
                members.append(integer(i, name, minimum=0, maximum=n_features - 1))
            except ValueError:
                raise fail(
                    name,
                    value,
                    f"feature indices from 0 to {n_features - 1} (integers) in every group",
                    f"{describe(i)} in the group {describe(group)}",
                ) from None
        members = tuple(members)
        if len(members) < 2:
            raise fail(
                name,
                value,
                "groups of at least two features (a group of one is an independent feature: leave it out)",
                f"the group {members}",
            )
        if len(set(members)) != len(members):
            raise fail(name, value, "distinct features within each group", f"the group {members}")
        groups.append(members)
    return tuple(groups)


def disjoint_groups(named: Mapping[str, tuple[tuple[int, ...], ...]], given: Mapping[str, object]) -> None:
    """Check that no feature belongs to two groups, within or across the named lists of groups
    (``{"correlated": ..., "anticorrelated": ...}``); ``given`` holds what the caller passed."""
    owner: dict[int, tuple[str, tuple[int, ...]]] = {}
    for arg, groups in named.items():
        for group in groups:
            for f in group:
                if f in owner:
                    first_arg, first = owner[f]
                    where = f"the group {first}" + ("" if first_arg == arg else f" of {first_arg}")
                    raise fail(
                        arg,
                        given[arg],
                        "groups that do not overlap (a feature belongs to at most one group)",
                        f"feature {f} in {where} and in the group {group}",
                    )
                owner[f] = (arg, group)


def group_probabilities(
    prob: np.ndarray, correlated, anticorrelated, given: object, name: str = "feature_probability"
) -> None:
    """The ``(instance, feature)`` probabilities ``prob`` agree with the groups: equal within a
    correlated group (its features are active together), summing to at most 1 within an
    anticorrelated group (at most one of its features is active at a time)."""
    for group in correlated:
        sub = prob[:, list(group)]
        unequal = np.flatnonzero(np.any(sub != sub[:, :1], axis=1))
        if unequal.size:
            i = int(unequal[0])
            raise fail(
                name,
                given,
                "equal probabilities within each correlated group (its features are active together)",
                f"{', '.join(f'{v:g}' for v in sub[i])} for the group {group} of instance {i}",
            )
    for group in anticorrelated:
        total = prob[:, list(group)].sum(axis=1)
        over = np.flatnonzero(total > 1 + 1e-12)
        if over.size:
            i = int(over[0])
            raise fail(
                name,
                given,
                "probabilities summing to at most 1 within each anticorrelated group (at most one of its "
                "features is active at a time)",
                f"a sum of {total[i]:g} for the group {group} of instance {i}",
            )


# --------------------------------------------------------------------------- devices, paths

_DEVICES = "None (pick the best available), 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


def device(value: object, name: str = "device") -> torch.device:
    """A device toy_lib can run on: ``None`` picks CUDA, then Apple's MPS, then the CPU."""
    if value is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(value, (str, torch.device)):
        raise fail(name, value, _DEVICES, type(value).__name__)
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError) as err:
        raise fail(name, value, _DEVICES) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise fail(name, value, _DEVICES, "CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise fail(name, value, _DEVICES, f"only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise fail(name, value, _DEVICES, "MPS is not available on this machine")
    elif dev.type == "cpu":
        if dev.index not in (None, 0):
            raise fail(name, value, _DEVICES, "a CPU index other than 0")
        dev = torch.device("cpu")
    else:
        raise fail(name, value, _DEVICES, f"device type {dev.type!r}, which toy_lib does not support")
    return dev


def generator(value: object, name: str = "generator", *, on: torch.device | None = None):
    """``None`` or a ``torch.Generator``, on the device type of ``on`` when given."""
    if value is None:
        return None
    if not isinstance(value, torch.Generator):
        raise fail(name, value, "a torch.Generator or None", type(value).__name__)
    if on is not None and value.device.type != on.type:
        raise fail(name, value, f"a torch.Generator on {on.type}", f"one on {value.device}")
    return value


def float_dtype(value: object, name: str = "dtype") -> torch.dtype:
    """A floating torch dtype (``torch.float32``, ``torch.float64``, ...)."""
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise fail(name, value, "a floating torch dtype such as torch.float32 or torch.float64")
    return value


def folder(value: object, name: str) -> Path:
    """A folder path (``str`` or ``os.PathLike``), with ``~`` expanded."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise fail(name, value, "a folder path (a non-empty str or pathlib.Path)")
    return Path(value).expanduser()


# --------------------------------------------------------------------------- size guards


def available_memory(dev: torch.device) -> int:
    """Bytes of memory ``dev`` can offer: free GPU memory, or the machine's available RAM."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 2**40  # unknown: do not refuse


def check_memory(n_bytes: float, dev: torch.device, blame: Mapping[str, object]) -> None:
    """Refuse a call that plans to allocate more than `MEMORY_FRACTION` of ``dev``'s memory.

    ``blame`` names the arguments that set the size, with their values, for the message.
    """
    limit = MEMORY_FRACTION * available_memory(dev)
    if n_bytes > limit:
        args = ", ".join(f"{k}={describe(v)}" for k, v in blame.items())
        raise ValueError(
            f"{args}: expected sizes that fit in memory, got a call that needs about {_bytes(n_bytes)}, "
            f"more than half of the {_bytes(limit / MEMORY_FRACTION)} available on {dev}"
        )


def check_work(
    n_ops: float, blame: Mapping[str, object], limit: float = MAX_WORK, *, device: torch.device | None = None
) -> None:
    """Refuse a call that would take more than ``limit`` work units (default `MAX_WORK`).

    A work unit is about one multiply-add of the model (the caller's estimate counts the
    per-step and per-chunk overheads in the same units); on a CUDA ``device`` the limit is
    `GPU_WORK_FACTOR` times larger.
    """
    where = "a laptop CPU"
    if device is not None and device.type == "cuda":
        limit, where = limit * GPU_WORK_FACTOR, "a GPU"
    if n_ops > limit:
        args = ", ".join(f"{k}={describe(v)}" for k, v in blame.items())
        raise ValueError(
            f"{args}: expected a call of at most {limit:.0e} work units (several hours on {where}), "
            f"got one that needs about {_sci(n_ops)}"
        )


def _sci(n: float) -> str:
    return f"{float(min(n, 1e300)):.1e}"


def _bytes(n: float) -> str:
    n = float(min(n, 1e300))
    if n >= 1024**6:
        return f"{n:.1e} bytes"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"
