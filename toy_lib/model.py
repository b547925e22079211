"""The toy model of superposition: ``x' = ReLU(WᵀW x + b)`` with tied weights.

``W`` has shape ``(instance, hidden, feature)``: column ``W[i, :, f]`` is the direction in the
``hidden``-dimensional bottleneck that instance ``i`` assigns to feature ``f``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def hidden(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Project features into the bottleneck: ``h = W x``.

    Args:
        W: ``(instance, hidden, feature)``.
        x: ``(instance, batch, feature)``.

    Returns:
        ``h``: ``(instance, batch, hidden)``.
    """
    return torch.bmm(x, W.transpose(1, 2))


def forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, activation: str = "relu") -> torch.Tensor:
    """Reconstruct the features: ``x' = act(Wᵀ W x + b)``.

    Args:
        W: ``(instance, hidden, feature)``.
        b: ``(instance, feature)``.
        x: ``(instance, batch, feature)``.
        activation: ``"relu"`` or ``"linear"``.

    Returns:
        ``x'``: ``(instance, batch, feature)``.
    """
    out = torch.baddbmm(b[:, None, :], hidden(W, x), W)
    if activation == "relu":
        return torch.relu(out)
    if activation == "linear":
        return out
    raise ValueError(f"activation={activation!r}: expected 'relu' or 'linear'")


def loss_per_instance(x: torch.Tensor, x_hat: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Importance-weighted MSE, averaged over batch and features, one value per instance.

    ``L_i = mean_{b, f} I[i, f] (x[i, b, f] - x'[i, b, f])²``

    Args:
        x, x_hat: ``(instance, batch, feature)``.
        importance: ``(instance, feature)``.

    Returns:
        ``(instance,)``.
    """
    return (importance[:, None, :] * (x - x_hat).square()).mean(dim=(1, 2))


def init_weights(
    n_instances: int,
    n_hidden: int,
    n_features: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Xavier-normal initialisation of each instance as its own ``(hidden, feature)`` matrix.

    The standard deviation ``sqrt(2 / (hidden + feature))`` does not depend on the number of
    instances (``nn.init.xavier_normal_`` on the 3-D tensor would make it do so).
    """
    std = math.sqrt(2.0 / (n_hidden + n_features))
    return (
        torch.randn((n_instances, n_hidden, n_features), generator=generator, device=device, dtype=dtype)
        * std
    )


class ToyModel(nn.Module):
    """``n_instances`` toy models held as one batched parameter set.

    Attributes:
        W: ``(instance, hidden, feature)`` parameter.
        b: ``(instance, feature)`` parameter, initialised to 0.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None = None, activation: str = "relu"):
        super().__init__()
        if W.ndim != 3:
            raise ValueError(f"W has shape {tuple(W.shape)}: expected (instance, hidden, feature)")
        if b is None:
            b = torch.zeros(W.shape[0], W.shape[2], device=W.device, dtype=W.dtype)
        if b.shape != (W.shape[0], W.shape[2]):
            raise ValueError(
                f"b has shape {tuple(b.shape)}: expected (instance, feature) = {(W.shape[0], W.shape[2])}"
            )
        self.W = nn.Parameter(W.clone())
        self.b = nn.Parameter(b.clone())
        self.activation = activation

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``h = W x``: ``(instance, batch, feature)`` → ``(instance, batch, hidden)``."""
        return hidden(self.W, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = act(Wᵀ W x + b)``: ``(instance, batch, feature)`` → same shape."""
        return forward(self.W, self.b, x, self.activation)
