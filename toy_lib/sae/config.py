"""`SAEConfig`: the sizes, the architecture and its settings of ``n_instances`` sparse autoencoders
trained side by side.

Every setting that shapes an architecture's sparsity (the L1 or L0 coefficient, ``k``) may be one
number for every instance or one number per instance, so that a penalty sweep, a sweep of ``k``
and plain restarts all train as one batched program.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from .. import _validate as check

__all__ = ["SAEConfig"]

#: The architectures `train_sae` knows, by name (``toy_lib.sae._ARCHITECTURES`` has the classes).
_ARCHITECTURE_NAMES = ("relu", "topk", "batchtopk", "gated", "jumprelu", "matryoshka")

_PerInstance = Union[float, int, Sequence[float], np.ndarray]

# Which settings each architecture uses, and the defaults it gets when a setting is left as None.
# The defaults suit activations whose norms are of order 1 (a toy model's hidden vectors); on
# other data, tune them (the chapter "Sparse autoencoders" shows how much they matter).
_SETTINGS = {
    "relu": {"l1_coefficient": 0.4},
    "gated": {"l1_coefficient": 0.4},
    "jumprelu": {"l0_coefficient": 0.1, "jumprelu_bandwidth": 0.05, "jumprelu_threshold_init": 0.05},
    "topk": {"k": None, "aux_k": None, "aux_coefficient": 1 / 32},
    "batchtopk": {"k": None, "aux_k": None, "aux_coefficient": 1 / 32, "threshold_rate": 0.01},
    "matryoshka": {
        "k": None,
        "aux_k": None,
        "aux_coefficient": 1 / 32,
        "threshold_rate": 0.01,
        "prefix_widths": None,
        "prefix_weights": None,
    },
}
_ALL_SETTINGS = sorted({name for settings in _SETTINGS.values() for name in settings})


@dataclass(frozen=True, eq=False)
class SAEConfig:
    """``n_instances`` sparse autoencoders of one architecture, ``d_in → d_sae → d_in``.

    The encoder maps an activation vector ``x`` (``d_in`` numbers) to ``d_sae`` latents ``f``; the
    decoder maps them back, ``x̂ = W_dec f + b_dec``. Row ``W_dec[i, j]`` of instance ``i`` is the
    direction latent ``j`` writes: the dictionary. The architectures differ in how ``f`` is made
    sparse (see the modules of `toy_lib.sae`):

    - ``"relu"``: ``f = ReLU(W_enc (x - b_dec) + b_enc)``, loss ``||x - x̂||² + λ ||f||₁``;
    - ``"topk"``: keep the ``k`` largest pre-activations of each input (optional AuxK loss);
    - ``"batchtopk"``: keep the ``k × batch`` largest activations of the whole batch; at inference
      a threshold estimated during training;
    - ``"gated"``: a gate path decides which latents fire, a magnitude path sets their size;
    - ``"jumprelu"``: ``f = z · H(z - θ)`` with a learned threshold per latent and an L0 penalty;
    - ``"matryoshka"``: BatchTopK whose loss adds up the reconstruction error of nested prefixes
      of the dictionary (latents ``0 … w_1 - 1``, ``0 … w_2 - 1``, ..., all ``d_sae``).

    Args:
        d_in: width of the activations (``x``).
        d_sae: number of latents (the dictionary size).
        n_instances: how many SAEs to train at once (restarts, sweeps).
        architecture: one of ``"relu"``, ``"topk"``, ``"batchtopk"``, ``"gated"``, ``"jumprelu"``,
            ``"matryoshka"``.
        l1_coefficient: ``λ`` of the L1 penalty (``"relu"``, ``"gated"``); one number or one per
            instance; default 0.4.
        l0_coefficient: ``λ`` of the L0 penalty (``"jumprelu"``); default 0.1.
        k: latents kept per input (``"topk"``; for ``"batchtopk"`` and ``"matryoshka"`` on average per input); one
            integer from 1 to ``d_sae`` or one per instance; required for these two.
        aux_k: ``"topk"``/``"batchtopk"``: the number of dead latents that the AuxK loss uses to
            reconstruct the residual ``x - x̂`` (None: no AuxK loss).
        aux_coefficient: weight of the AuxK loss (1/32, as Gao et al.).
        jumprelu_bandwidth: width ``ε`` of the rectangle kernel of JumpReLU's straight-through
            estimator (default 0.05, for activations of order 1).
        jumprelu_threshold_init: initial threshold ``θ`` of every JumpReLU latent.
        threshold_rate: ``"batchtopk"``, ``"matryoshka"``: the rate of the running average that
            estimates the inference threshold from the smallest activation kept in each batch.
        prefix_widths: ``"matryoshka"`` (required): the widths ``w_1 < w_2 < … < w_m = d_sae`` of
            the nested prefixes, positive integers increasing to ``d_sae`` (shared by every
            instance).
        prefix_weights: ``"matryoshka"``: the weight of each prefix's reconstruction error in the
            loss, one non-negative number per prefix, not all zero (default: 1 each).

    A setting that the chosen architecture does not use must be left as None (a value would be
    silently ignored otherwise, so it is refused).

    Raises:
        ValueError: naming the argument, the value and what was expected.
    """

    d_in: int
    d_sae: int
    n_instances: int = 1
    architecture: str = "relu"
    l1_coefficient: _PerInstance | None = None
    l0_coefficient: _PerInstance | None = None
    k: _PerInstance | None = None
    aux_k: int | None = None
    aux_coefficient: float | None = None
    jumprelu_bandwidth: float | None = None
    jumprelu_threshold_init: float | None = None
    threshold_rate: float | None = None
    prefix_widths: Sequence[int] | None = None
    prefix_weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("d_in", check.integer(self.d_in, "d_in", minimum=1))
        set_("d_sae", check.integer(self.d_sae, "d_sae", minimum=1))
        set_("n_instances", check.integer(self.n_instances, "n_instances", minimum=1))
        # the per-instance settings below are tuples of n_instances Python numbers
        check.check_memory(200 * self.n_instances, torch.device("cpu"), {"n_instances": self.n_instances})
        arch = check.choice(self.architecture, "architecture", _ARCHITECTURE_NAMES)
        used = _SETTINGS[arch]
        for name in _ALL_SETTINGS:
            value = getattr(self, name)
            if name not in used:
                if value is not None:
                    users = [a for a, s in _SETTINGS.items() if name in s]
                    raise check.fail(
                        name,
                        value,
                        f"None for architecture={arch!r} (only {', '.join(map(repr, users))} use it)",
                    )
                continue
            if value is None:
                value = used[name]
            set_(name, value)
        if arch in ("relu", "gated"):
            set_("l1_coefficient", self._per_instance(self.l1_coefficient, "l1_coefficient"))
        if arch == "jumprelu":
            set_("l0_coefficient", self._per_instance(self.l0_coefficient, "l0_coefficient"))
            set_("jumprelu_bandwidth", check.positive(self.jumprelu_bandwidth, "jumprelu_bandwidth"))
            set_(
                "jumprelu_threshold_init",
                check.positive(self.jumprelu_threshold_init, "jumprelu_threshold_init"),
            )
        if arch in ("topk", "batchtopk", "matryoshka"):
            if self.k is None:
                raise check.fail(
                    "k", None, f"an integer from 1 to d_sae = {self.d_sae} for architecture={arch!r}"
                )
            set_("k", self._per_instance(self.k, "k", integral=True))
            if self.aux_k is not None:
                set_("aux_k", check.integer(self.aux_k, "aux_k", minimum=1, maximum=self.d_sae))
            set_("aux_coefficient", check.real(self.aux_coefficient, "aux_coefficient", low=0.0))
        if arch in ("batchtopk", "matryoshka"):
            set_(
                "threshold_rate",
                check.real(self.threshold_rate, "threshold_rate", low=0.0, high=1.0, low_open=True),
            )
        if arch == "matryoshka":
            set_("prefix_widths", self._prefix_widths())
            set_("prefix_weights", self._prefix_weights())

    def _prefix_widths(self) -> tuple:
        """``prefix_widths`` checked: a sequence of integers increasing strictly to ``d_sae``."""
        value, d_sae = self.prefix_widths, self.d_sae
        expected = f"a sequence of integers increasing strictly from at least 1 to d_sae = {d_sae}"
        if value is None:
            raise check.fail("prefix_widths", None, expected + " for architecture='matryoshka'")
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise check.fail("prefix_widths", value, expected, type(value).__name__)
        values = value.tolist() if hasattr(value, "tolist") else list(value)
        if not isinstance(values, list):
            raise check.fail("prefix_widths", value, expected, "a single number")
        if not values:
            raise check.fail("prefix_widths", value, expected, "an empty sequence")
        widths = tuple(
            check.integer(v, "prefix_widths", minimum=1, maximum=d_sae, expected=expected) for v in values
        )
        if any(b <= a for a, b in zip(widths, widths[1:])):
            raise check.fail("prefix_widths", value, expected, "not strictly increasing")
        if widths[-1] != d_sae:
            raise check.fail("prefix_widths", value, expected, f"the last width is {widths[-1]}")
        return widths

    def _prefix_weights(self) -> tuple:
        """``prefix_weights`` checked: one non-negative finite number per prefix, not all zero."""
        n = len(self.prefix_widths)
        value = self.prefix_weights
        if value is None:
            return (1.0,) * n
        expected = f"one non-negative finite number per prefix ({n}), not all zero"
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise check.fail("prefix_weights", value, expected, type(value).__name__)
        values = value.tolist() if hasattr(value, "tolist") else list(value)
        if not isinstance(values, list):
            raise check.fail("prefix_weights", value, expected, "a single number")
        if len(values) != n:
            raise check.fail("prefix_weights", value, expected, f"{len(values)} numbers")
        weights = tuple(check.real(v, "prefix_weights", low=0.0, expected=expected) for v in values)
        if not any(weights):
            raise check.fail("prefix_weights", value, expected, "all zero")
        return weights

    def _per_instance(self, value, name: str, integral: bool = False) -> tuple:
        """``value`` (one number, or one per instance: a list, tuple, NumPy array or tensor) as a
        tuple of ``n_instances`` numbers: integers from 1 to ``d_sae`` (``integral``, for ``k``),
        else non-negative finite reals."""
        n = self.n_instances
        if isinstance(value, (list, tuple)) or (
            isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim > 0
        ):
            shape = np.shape(value) if not isinstance(value, torch.Tensor) else tuple(value.shape)
            if isinstance(value, (list, tuple)):
                values = list(value)
            elif isinstance(value, torch.Tensor) and value.ndim == 1 and value.device.type != "meta":
                values = list(value.detach().cpu())
            elif isinstance(value, np.ndarray) and value.ndim == 1:
                values = list(value)
            else:
                values = None
            if values is None or len(values) != n:
                raise check.fail(
                    name, value, f"one number, or one per instance ({n})", f"shape {tuple(shape)}"
                )
        else:
            if integral:
                return (check.integer(value, name, minimum=1, maximum=self.d_sae),) * n
            return (
                check.real(
                    value,
                    name,
                    low=0.0,
                    expected="a non-negative finite number (a penalty cannot be negative)",
                ),
            ) * n
        if integral:
            expected = f"integers from 1 to d_sae = {self.d_sae}, one per instance ({n})"
            return tuple(
                check.integer(v, name, minimum=1, maximum=self.d_sae, expected=expected) for v in values
            )
        expected = f"non-negative finite numbers (a penalty cannot be negative), one per instance ({n})"
        out = []
        for v in values:
            try:
                out.append(check.real(v, name, low=0.0, expected=expected))
            except ValueError as err:
                raise check.fail(name, value, expected, f"{check.describe(v)} among them") from err
        return tuple(out)

    # ------------------------------------------------------------------ per-instance settings
    def _penalty(self) -> np.ndarray:
        """The sparsity coefficient of every instance, ``(instance,)`` float64 (zeros for TopK and
        BatchTopK, whose sparsity is ``k``)."""
        value = self.l1_coefficient if self.l1_coefficient is not None else self.l0_coefficient
        if value is None:
            return np.zeros(self.n_instances)
        return np.array(value, dtype=np.float64)

    def _k_vector(self) -> np.ndarray:
        """``k`` of every instance, ``(instance,)`` int64 (TopK, BatchTopK and Matryoshka only)."""
        if self.k is None:
            raise ValueError(f"architecture={self.architecture!r} has no k")
        return np.array(self.k, dtype=np.int64)

    def _record(self) -> dict:
        """Every field, as plain Python values (for the result cache and for the record)."""
        out = {}
        for name in ("d_in", "d_sae", "n_instances", "architecture", *_ALL_SETTINGS):
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out
