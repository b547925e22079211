"""Configuration of a batch of toy models: sizes, feature probabilities, importances.

A `ToyModelConfig` describes ``n_instances`` independent toy models that are trained together
in one batched tensor program. Every per-feature quantity is stored internally as an
``(instance, feature)`` array so that each instance can have its own sparsity and importance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import torch

ArrayLike = Union[float, int, list, tuple, np.ndarray, torch.Tensor]

ACTIVATIONS = ("relu", "linear")


def _as_array(value: ArrayLike, name: str) -> np.ndarray:
    try:
        if isinstance(value, torch.Tensor):
            arr = value.detach().cpu().numpy()
        else:
            arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}={value!r}: expected a number or an array of numbers") from err
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}={value!r}: expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={value!r}: expected finite numbers (no NaN or infinity)")
    return arr


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)


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
        activation: ``"relu"`` for ``x' = ReLU(WᵀWx + b)``, ``"linear"`` for ``x' = WᵀWx + b``.

    Raises:
        ValueError: naming the argument, the value and what was expected, for zero or
            negative sizes, a probability outside [0, 1], a negative importance, a shape that
            matches none of the accepted forms, or an unknown activation.
    """

    n_features: int = 5
    n_hidden: int = 2
    n_instances: int = 1
    feature_probability: ArrayLike = 1.0
    importance: ArrayLike = 1.0
    activation: Literal["relu", "linear"] = "relu"

    def __post_init__(self) -> None:
        _check_size(self.n_features, "n_features")
        _check_size(self.n_hidden, "n_hidden")
        _check_size(self.n_instances, "n_instances")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation={self.activation!r}: expected one of {', '.join(map(repr, ACTIVATIONS))}"
            )
        prob = self.probability_matrix()
        if np.any(prob < 0) or np.any(prob > 1):
            bad = prob[(prob < 0) | (prob > 1)].flat[0]
            raise ValueError(
                f"feature_probability={self.feature_probability!r}: expected values in [0, 1], found {bad:g}"
            )
        imp = self.importance_matrix()
        if np.any(imp < 0):
            bad = imp[imp < 0].flat[0]
            raise ValueError(f"importance={self.importance!r}: expected values >= 0, found {bad:g}")

    # ------------------------------------------------------------------ shapes
    def _broadcast(self, value: ArrayLike, name: str, vector_axis: str) -> np.ndarray:
        """Expand a scalar, a vector along ``vector_axis`` or a full matrix to (instance, feature)."""
        arr = _as_array(value, name)
        shape = (self.n_instances, self.n_features)
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
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}: expected a scalar, one value per {vector_axis} "
            f"(shape ({vector_len},)), or an (instance, feature) array of shape {shape}"
        )

    def probability_matrix(self) -> np.ndarray:
        """Feature probabilities as a float64 array of shape ``(instance, feature)``."""
        return self._broadcast(self.feature_probability, "feature_probability", "instance")

    def importance_matrix(self) -> np.ndarray:
        """Feature importances as a float64 array of shape ``(instance, feature)``."""
        return self._broadcast(self.importance, "importance", "feature")

    def with_restarts(self, k: int) -> ToyModelConfig:
        """The same settings repeated ``k`` times along the instance axis (setting-major).

        Instance ``s * k + r`` of the result is restart ``r`` of setting ``s``.
        """
        k = _check_size(k, "restarts")
        return ToyModelConfig(
            n_features=self.n_features,
            n_hidden=self.n_hidden,
            n_instances=self.n_instances * k,
            feature_probability=np.repeat(self.probability_matrix(), k, axis=0),
            importance=np.repeat(self.importance_matrix(), k, axis=0),
            activation=self.activation,
        )
