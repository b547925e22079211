"""Configuration of a batch of toy models: which model, its sizes, and its data.

A `ToyModelConfig` describes ``n_instances`` independent toy models that are trained together
in one batched tensor program. Every per-feature quantity can be given as a scalar, a vector or
a full matrix, and is read back as an ``(instance, feature)`` array (`probability_matrix`,
`importance_matrix`), so that each instance can have its own sparsity and importance.

Three models (``model``), all with ``W`` of shape ``(instance, hidden, feature)``:

- ``"tied"``: the toy model of superposition, ``x' = ReLU(Wᵀ W x + b)`` (or linear);
- ``"neuron"``: the same with a ReLU on the hidden layer, ``h = ReLU(W x)``,
  ``x' = ReLU(Wᵀ h + b)``: the hidden units are neurons, a privileged basis;
- ``"abs"``: computation in superposition, ``y' = ReLU(W₂ ReLU(W₁ x) + b)`` with untied
  ``W₁`` ``(instance, hidden, feature)`` and ``W₂`` ``(instance, feature, hidden)``, trained to
  output ``y = |x|`` from inputs in U[-1, 1].

And the data: features independent (the default) or in correlated / anticorrelated groups;
active values in U[0, 1] or U[-1, 1]; a fresh batch every step, or a finite data set of
``dataset_size`` unit-norm samples trained on full-batch (double descent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch

from . import _validate

__all__ = ["ToyModelConfig"]

ArrayLike = Union[float, int, list, tuple, np.ndarray, torch.Tensor]

ACTIVATIONS = ("relu", "linear")
MODELS = ("tied", "neuron", "abs")
#: The value ranges each model and activation can take (the first is the default).
RANGES = {
    ("tied", "relu"): ((0.0, 1.0),),
    ("tied", "linear"): ((0.0, 1.0), (-1.0, 1.0)),
    ("neuron", "relu"): ((0.0, 1.0),),
    ("abs", "relu"): ((-1.0, 1.0),),
}
#: Why a model cannot take a range, for the message.
_WHY = {
    "tied": "a ReLU output cannot reconstruct negative values (use activation='linear')",
    "neuron": "its ReLU output cannot reconstruct negative values",
    "abs": "with inputs in U[0, 1], |x| = x and there is nothing to compute",
}


def _stored(value: ArrayLike, name: str) -> float | np.ndarray:
    """A per-feature quantity as toy_lib keeps it: a float, or a read-only float64 copy."""
    arr = _validate.real_array(value, name)
    if arr.ndim == 0:
        return float(arr)
    arr.flags.writeable = False  # a copy: the caller's array can change, this one cannot
    return arr


@dataclass(frozen=True, eq=False)
class ToyModelConfig:
    """Sizes and data distribution of ``n_instances`` toy models trained side by side.

    Args:
        n_features: number of input features ``n`` (the columns of ``W``).
        n_hidden: size ``m`` of the hidden bottleneck (the rows of ``W``).
        n_instances: how many independent models to train at once.
        feature_probability: probability ``p = 1 - S`` that a feature is non-zero. A scalar
            (all instances and features), one value per instance (shape ``(n_instances,)``),
            or an ``(n_instances, n_features)`` array. Each value must lie in [0, 1].
        importance: weight ``I_i`` of each feature in the loss. A scalar, one value per
            feature (shape ``(n_features,)``), or an ``(n_instances, n_features)`` array.
            Each value must be >= 0.
        activation: ``"relu"`` for ``x' = ReLU(WᵀWx + b)``, ``"linear"`` for ``x' = WᵀWx + b``
            (the tied model only; the neuron and abs models have a ReLU output).
        model: ``"tied"`` (the default), ``"neuron"`` or ``"abs"`` (see the module).
        value_range: the uniform range of an active feature's value, ``(0, 1)`` or ``(-1, 1)``;
            ``None`` (the default) takes the model's own: ``(-1, 1)`` for ``"abs"``, else
            ``(0, 1)``. ``(-1, 1)`` is refused for the ReLU-output tied model and the neuron
            model (their ReLU cannot output a negative value), ``(0, 1)`` for the abs model.
        correlated: groups of features that are active together: a list of groups, each a list
            of at least two feature indices (``[(0, 1), (2, 3)]``). A group is active with its
            features' common probability (which must be equal within the group, per instance);
            each active feature draws its own value.
        anticorrelated: groups of features of which at most one is active at a time: feature
            ``i`` of a group is the active one with its probability ``p_i``, so the group is
            active with probability ``Σ p_i``, which must be at most 1. No feature may be in two
            groups (of either kind).
        dataset_size: ``None`` (the default) for a fresh batch at every step; or the number
            ``T`` of samples in a finite training set, drawn once per setting (shared by its
            restarts), each sample rescaled to unit norm, and trained on full-batch. The final
            loss is then measured on fresh unit-norm samples: a test loss.

    Sizes are integers in any form (``5``, ``np.int64(5)``, ``torch.tensor(5)``) and are
    stored as Python ``int``; per-feature quantities are copied on the way in (a float, or a
    read-only float64 array), so editing the array you passed changes nothing here.

    Raises:
        ValueError: naming the argument, the value and what was expected, for sizes that are
            not positive integers (a bool, a float, a string), a probability outside [0, 1], a
            negative importance, a string, bool, complex or non-finite value, a shape that
            matches none of the accepted forms, sizes whose (instance, feature) arrays cannot
            fit in memory, an unknown activation or model, an activation or value range the
            model cannot take, a group of one feature, groups that overlap, probabilities that
            disagree with their groups, or a ``dataset_size`` that is not a positive integer.
    """

    n_features: int = 5
    n_hidden: int = 2
    n_instances: int = 1
    feature_probability: ArrayLike = 1.0
    importance: ArrayLike = 1.0
    activation: Literal["relu", "linear"] = "relu"
    model: Literal["tied", "neuron", "abs"] = "tied"
    value_range: tuple[float, float] | None = None
    correlated: tuple = ()
    anticorrelated: tuple = ()
    dataset_size: int | None = None

    def __post_init__(self) -> None:
        sizes = {}
        for name in ("n_features", "n_hidden", "n_instances"):
            sizes[name] = _validate.integer(getattr(self, name), name, minimum=1)
            object.__setattr__(self, name, sizes[name])
        object.__setattr__(self, "activation", _validate.choice(self.activation, "activation", ACTIVATIONS))
        # the (instance, feature) matrices below, a few float64 copies of each
        _validate.check_memory(
            32 * sizes["n_instances"] * sizes["n_features"],
            torch.device("cpu"),
            {"n_instances": sizes["n_instances"], "n_features": sizes["n_features"]},
        )
        given_prob, given_imp = self.feature_probability, self.importance
        object.__setattr__(self, "feature_probability", _stored(given_prob, "feature_probability"))
        object.__setattr__(self, "importance", _stored(given_imp, "importance"))
        prob = self._broadcast("feature_probability", "instance", given_prob)
        if np.any(prob < 0) or np.any(prob > 1):
            bad = prob[(prob < 0) | (prob > 1)].flat[0]
            raise _validate.fail("feature_probability", given_prob, "probabilities in [0, 1]", f"{bad:g}")
        imp = self._broadcast("importance", "feature", given_imp)
        if np.any(imp < 0):
            bad = imp[imp < 0].flat[0]
            raise _validate.fail("importance", given_imp, "importances >= 0", f"{bad:g}")
        self._check_model_and_data(prob, given_prob)

    def _check_model_and_data(self, prob: np.ndarray, given_prob) -> None:
        """The fields of the model and its data: known, consistent with each other."""
        model = _validate.choice(self.model, "model", MODELS)
        object.__setattr__(self, "model", model)
        if model != "tied" and self.activation != "relu":
            raise _validate.fail(
                "activation", self.activation, f"'relu' for model={model!r} (its output is a ReLU)"
            )
        allowed = RANGES[(model, self.activation)]
        if self.value_range is None:
            object.__setattr__(self, "value_range", allowed[0])
        else:
            given = self.value_range
            pair = _validate.value_range(given)
            if pair not in allowed:
                spelled = " or ".join(f"({lo:g}, {hi:g})" for lo, hi in allowed)
                raise _validate.fail(
                    "value_range",
                    given,
                    f"{spelled} (or None) for model={model!r} with activation={self.activation!r}: "
                    + _WHY[model],
                )
            object.__setattr__(self, "value_range", pair)
        given_groups = {"correlated": self.correlated, "anticorrelated": self.anticorrelated}
        groups = {
            name: _validate.feature_groups(value, name, self.n_features)
            for name, value in given_groups.items()
        }
        _validate.disjoint_groups(groups, given_groups)
        for name, value in groups.items():
            object.__setattr__(self, name, value)
        _validate.group_probabilities(prob, groups["correlated"], groups["anticorrelated"], given_prob)
        if self.dataset_size is not None:
            size = _validate.integer(
                self.dataset_size, "dataset_size", minimum=1, expected="a positive integer or None"
            )
            _validate.check_memory(
                8 * self.n_instances * size * self.n_features,
                torch.device("cpu"),
                {"dataset_size": size, "n_instances": self.n_instances, "n_features": self.n_features},
            )
            object.__setattr__(self, "dataset_size", size)

    # ------------------------------------------------------------------ shapes
    def _broadcast(self, name: str, vector_axis: str, given=None) -> np.ndarray:
        """Expand the field ``name`` (a scalar, a vector along ``vector_axis`` or a full matrix) to
        (instance, feature); ``given`` is what the caller passed, for the message."""
        shape = (self.n_instances, self.n_features)
        value = getattr(self, name)
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            return np.full(shape, float(arr))
        if arr.ndim == 1:
            if vector_axis == "instance" and arr.shape[0] == self.n_instances:
                return np.repeat(arr[:, None], self.n_features, axis=1)
            if vector_axis == "feature" and arr.shape[0] == self.n_features:
                return np.repeat(arr[None, :], self.n_instances, axis=0)
        if arr.ndim == 2 and arr.shape == shape:
            return arr.copy()
        vector_len = self.n_instances if vector_axis == "instance" else self.n_features
        raise _validate.fail(
            name,
            value if given is None else given,
            f"a scalar, one value per {vector_axis} (shape ({vector_len},)), or an (instance, feature) "
            f"array of shape {shape}",
            f"shape {tuple(arr.shape)}",
        )

    def probability_matrix(self) -> np.ndarray:
        """Feature probabilities as a fresh float64 array of shape ``(instance, feature)``."""
        return self._broadcast("feature_probability", "instance")

    def importance_matrix(self) -> np.ndarray:
        """Feature importances as a fresh float64 array of shape ``(instance, feature)``."""
        return self._broadcast("importance", "feature")

    def with_restarts(self, k: int) -> ToyModelConfig:
        """The same settings repeated ``k`` times along the instance axis (setting-major).

        Instance ``s * k + r`` of the result is restart ``r`` of setting ``s``.
        """
        k = _validate.integer(k, "k", minimum=1)
        _validate.check_memory(
            32 * self.n_instances * k * self.n_features,
            torch.device("cpu"),
            {"k": k, "n_instances": self.n_instances, "n_features": self.n_features},
        )
        return ToyModelConfig(
            n_features=self.n_features,
            n_hidden=self.n_hidden,
            n_instances=self.n_instances * k,
            feature_probability=np.repeat(self.probability_matrix(), k, axis=0),
            importance=np.repeat(self.importance_matrix(), k, axis=0),
            activation=self.activation,
            model=self.model,
            value_range=self.value_range,
            correlated=self.correlated,
            anticorrelated=self.anticorrelated,
            dataset_size=self.dataset_size,
        )
