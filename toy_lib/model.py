"""The toy models, as pure functions and as modules:

- the toy model of superposition, ``x' = ReLU(WᵀW x + b)`` with tied weights (`forward`,
  `ToyModel`), or its linear version;
- the neuron model (a privileged basis), ``h = ReLU(W x)``, ``x' = ReLU(Wᵀ h + b)``
  (`neuron_forward`, `NeuronModel`): Elhage et al. (2022), "Superposition in a privileged
  basis";
- the absolute-value model (computation in superposition), ``y' = ReLU(W₂ ReLU(W₁ x) + b)``
  with untied ``W₁`` and ``W₂`` and no hidden bias, trained towards ``y = |x|`` (`abs_forward`,
  `AbsModel`): Elhage et al. (2022), "Computation in superposition".

``W`` (and ``W₁``) has shape ``(instance, hidden, feature)``: column ``W[i, :, f]`` is the
direction in the ``hidden``-dimensional bottleneck that instance ``i`` assigns to feature ``f``;
for the neuron model, row ``W[i, j, :]`` is neuron ``j``'s weight on every feature. ``W₂`` has
shape ``(instance, feature, hidden)``: it reads the hidden neurons out into the features.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _validate

W_AXES = ("instance", "hidden", "feature")
W2_AXES = ("instance", "feature", "hidden")
B_AXES = ("instance", "feature")
X_AXES = ("instance", "batch", "feature")
ACTIVATIONS = ("relu", "linear")

__all__ = [
    "ToyModel",
    "NeuronModel",
    "AbsModel",
    "forward",
    "neuron_forward",
    "abs_forward",
    "hidden",
    "init_weights",
    "loss_per_instance",
]


def _tensors(**named) -> dict[str, torch.Tensor]:
    """Check ``name=(value, axes)`` pairs: real, finite, non-empty tensors with one dimension per
    axis, agreeing on the axes they share, on one device; converted to one floating dtype."""
    tensors = {name: _validate.as_tensor(value, name, axes) for name, (value, axes) in named.items()}
    _validate.same_sizes({name: (tensors[name], axes) for name, (_, axes) in named.items()})
    _validate.same_device(tensors)
    dtype = _validate.common_dtype(*tensors.values())
    return {name: t.to(dtype) for name, t in tensors.items()}


def _hidden(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.bmm(x, W.transpose(1, 2))


def _readout(model: str, params: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of every model: its hidden layer ``h`` ``(instance, batch, hidden)`` and the
    read-out ``A`` ``(instance, hidden, feature)``, so that the output is ``act(h A + b)``.

    tied: ``h = W x``, ``A = W`` (that is, ``Wᵀ`` on column vectors); neuron: ``h = ReLU(W x)``,
    ``A = W``; abs: ``h = ReLU(W₁ x)``, ``A = W₂ᵀ``.
    """
    if model == "abs":
        return torch.relu(_hidden(params["W1"], x)), params["W2"].transpose(1, 2)
    h = _hidden(params["W"], x)
    return (torch.relu(h) if model == "neuron" else h), params["W"]


def _predict(model: str, activation: str, params: dict, x: torch.Tensor) -> torch.Tensor:
    """The output of ``model`` (a `ToyModelConfig.model`) with ``params`` (by name) on ``x``."""
    h, A = _readout(model, params, x)
    out = torch.baddbmm(params["b"][:, None, :], h, A)
    return torch.relu(out) if activation == "relu" else out


def _forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, activation: str) -> torch.Tensor:
    return _predict("tied", activation, {"W": W, "b": b}, x)


#: Each model's parameters, in the order its forward function takes them.
PARAMETERS = {"tied": ("W", "b"), "neuron": ("W", "b"), "abs": ("W1", "W2", "b")}


def _target(model: str, x: torch.Tensor) -> torch.Tensor:
    """What ``model`` is trained to output for ``x``: ``|x|`` for the abs model, else ``x``."""
    return x.abs() if model == "abs" else x


def _loss_per_instance(x: torch.Tensor, x_hat: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    return (importance[:, None, :] * (x - x_hat).square()).mean(dim=(1, 2))


def hidden(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Project features into the bottleneck: ``h = W x``.

    Args:
        W: ``(instance, hidden, feature)``.
        x: ``(instance, batch, feature)``.

    Returns:
        ``h``: ``(instance, batch, hidden)``.

    Raises:
        ValueError: naming the argument and the axis, for shapes that disagree with the axes
            above, empty or non-finite tensors, tensors on different devices, or a result too
            large for the dtype.
    """
    t = _tensors(W=(W, W_AXES), x=(x, X_AXES))
    return _validate.finite_result(_hidden(t["W"], t["x"]), "hidden", {"W": W, "x": x})


def forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, activation: str = "relu") -> torch.Tensor:
    """Reconstruct the features: ``x' = act(Wᵀ W x + b)``.

    Tensors of different floating dtypes are computed in the wider one; NumPy arrays and lists
    are read as float32 CPU tensors.

    Args:
        W: ``(instance, hidden, feature)``.
        b: ``(instance, feature)``.
        x: ``(instance, batch, feature)``.
        activation: ``"relu"`` or ``"linear"``.

    Returns:
        ``x'``: ``(instance, batch, feature)``.

    Raises:
        ValueError: naming the argument and the axis, for shapes that disagree with the axes
            above, empty or non-finite tensors, tensors on different devices, an unknown
            activation, or a result too large for the dtype.
    """
    activation = _validate.choice(activation, "activation", ACTIVATIONS)
    t = _tensors(W=(W, W_AXES), b=(b, B_AXES), x=(x, X_AXES))
    out = _forward(t["W"], t["b"], t["x"], activation)
    return _validate.finite_result(out, "forward", {"W": W, "b": b, "x": x})


def neuron_forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The neuron model (a privileged basis): ``h = ReLU(W x)``, ``x' = ReLU(Wᵀ h + b)``.

    The ReLU on the hidden layer makes its basis special: each hidden unit is a neuron that
    fires or not, and row ``W[i, j, :]`` is neuron ``j``'s weight on every feature. Tensors of
    different floating dtypes are computed in the wider one.

    Args:
        W: ``(instance, hidden, feature)``.
        b: ``(instance, feature)``.
        x: ``(instance, batch, feature)``.

    Returns:
        ``x'``: ``(instance, batch, feature)``.

    Raises:
        ValueError: naming the argument and the axis, for shapes that disagree with the axes
            above, empty or non-finite tensors, tensors on different devices, or a result too
            large for the dtype.
    """
    t = _tensors(W=(W, W_AXES), b=(b, B_AXES), x=(x, X_AXES))
    out = _predict("neuron", "relu", t, t["x"])
    return _validate.finite_result(out, "neuron_forward", {"W": W, "b": b, "x": x})


def abs_forward(W1: torch.Tensor, W2: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The absolute-value model (computation in superposition): ``y' = ReLU(W₂ ReLU(W₁ x) + b)``.

    Untied weights and no hidden bias; trained towards ``y = |x|`` with inputs in U[-1, 1]
    (`toy_lib.train` with ``ToyModelConfig(model="abs")``). One neuron can compute ``|x_f|``
    only with help: ``|x| = ReLU(x) + ReLU(-x)``, so a feature needs a neuron for each sign.

    Args:
        W1: ``(instance, hidden, feature)``: the hidden neurons' weights on the inputs.
        W2: ``(instance, feature, hidden)``: each output's weights on the hidden neurons.
        b: ``(instance, feature)``: the output bias.
        x: ``(instance, batch, feature)``.

    Returns:
        ``y'``: ``(instance, batch, feature)``.

    Raises:
        ValueError: naming the argument and the axis: for ``W2`` laid out as ``W1`` (its
            feature axis must come before its hidden axis), any shape that disagrees with the
            axes above, empty or non-finite tensors, tensors on different devices, or a result
            too large for the dtype.
    """
    t = _tensors(W1=(W1, W_AXES), W2=(W2, W2_AXES), b=(b, B_AXES), x=(x, X_AXES))
    out = _predict("abs", "relu", t, t["x"])
    return _validate.finite_result(out, "abs_forward", {"W1": W1, "W2": W2, "b": b, "x": x})


def loss_per_instance(x: torch.Tensor, x_hat: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Importance-weighted MSE, averaged over batch and features, one value per instance.

    ``L_i = mean_{b, f} I[i, f] (x[i, b, f] - x'[i, b, f])²``. For the absolute-value model,
    pass the target ``|x|`` as ``x``.

    Args:
        x, x_hat: ``(instance, batch, feature)``: the target and the model's output.
        importance: ``(instance, feature)``, every value >= 0.

    Returns:
        ``(instance,)``.

    Raises:
        ValueError: naming the argument and the axis, for shapes that disagree with the axes
            above, empty or non-finite tensors, a negative importance, tensors on different
            devices, or a loss too large for the dtype.
    """
    t = _tensors(x=(x, X_AXES), x_hat=(x_hat, X_AXES), importance=(importance, B_AXES))
    if bool((t["importance"].detach() < 0).any()):
        raise _validate.fail("importance", importance, "importances >= 0", "a negative value")
    loss = _loss_per_instance(t["x"], t["x_hat"], t["importance"])
    return _validate.finite_result(loss, "loss_per_instance", {"x": x, "x_hat": x_hat})


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

    Args:
        n_instances, n_hidden, n_features: positive integers, the sizes of the result.
        generator: a seeded ``torch.Generator`` on ``device``, or ``None`` for torch's global one.
        device: where the weights live (``None`` picks CUDA, then MPS, then the CPU).
        dtype: a floating torch dtype.

    Returns:
        ``W``: ``(instance, hidden, feature)``.
    """
    sizes = {
        "n_instances": _validate.integer(n_instances, "n_instances", minimum=1),
        "n_hidden": _validate.integer(n_hidden, "n_hidden", minimum=1),
        "n_features": _validate.integer(n_features, "n_features", minimum=1),
    }
    dev = _validate.device(device)
    dtype = _validate.float_dtype(dtype)
    _validate.generator(generator, on=dev)
    n_inst, n_hid, n_feat = sizes.values()
    _validate.check_memory(2 * n_inst * n_hid * n_feat * dtype.itemsize, dev, sizes)
    std = math.sqrt(2.0 / (n_hid + n_feat))
    return torch.randn((n_inst, n_hid, n_feat), generator=generator, device=dev, dtype=dtype) * std


class ToyModel(nn.Module):
    """``n_instances`` toy models held as one batched parameter set.

    Args:
        W: ``(instance, hidden, feature)`` weights (copied into the parameter ``W``).
        b: ``(instance, feature)`` biases, or ``None`` for zeros.
        activation: ``"relu"`` or ``"linear"``.

    Attributes:
        W: ``(instance, hidden, feature)`` parameter.
        b: ``(instance, feature)`` parameter, initialised to 0.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None = None, activation: str = "relu"):
        super().__init__()
        activation = _validate.choice(activation, "activation", ACTIVATIONS)
        if b is None:
            W = _validate.as_tensor(W, "W", W_AXES).detach()
            b = torch.zeros(W.shape[0], W.shape[2], device=W.device, dtype=W.dtype)
        t = _tensors(W=(W, W_AXES), b=(b, B_AXES))
        self.W = nn.Parameter(t["W"].detach().clone())
        self.b = nn.Parameter(t["b"].detach().clone())
        self.activation = activation

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``h = W x``: ``(instance, batch, feature)`` → ``(instance, batch, hidden)``."""
        return hidden(self.W, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = act(Wᵀ W x + b)``: ``(instance, batch, feature)`` → same shape."""
        return forward(self.W, self.b, x, self.activation)


def _bias(W: torch.Tensor, b, name: str) -> torch.Tensor:
    """``b``, or zeros ``(instance, feature)`` matching ``W`` (the argument ``name``) when ``b``
    is None."""
    if b is not None:
        return b
    W = _validate.as_tensor(W, name, W_AXES).detach()
    return torch.zeros(W.shape[0], W.shape[2], device=W.device, dtype=W.dtype)


class NeuronModel(nn.Module):
    """``n_instances`` neuron models (a privileged basis) held as one batched parameter set.

    ``h = ReLU(W x)``, ``x' = ReLU(Wᵀ h + b)`` (`neuron_forward`).

    Args:
        W: ``(instance, hidden, feature)`` weights (copied into the parameter ``W``).
        b: ``(instance, feature)`` biases, or ``None`` for zeros.

    Attributes:
        W: ``(instance, hidden, feature)`` parameter; row ``W[i, j]`` is neuron ``j``'s weights.
        b: ``(instance, feature)`` parameter.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None = None):
        super().__init__()
        t = _tensors(W=(W, W_AXES), b=(_bias(W, b, "W"), B_AXES))
        self.W = nn.Parameter(t["W"].detach().clone())
        self.b = nn.Parameter(t["b"].detach().clone())

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The neurons' activations ``h = ReLU(W x)``: ``(instance, batch, feature)`` →
        ``(instance, batch, hidden)``."""
        return torch.relu(hidden(self.W, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = ReLU(Wᵀ ReLU(W x) + b)``: ``(instance, batch, feature)`` → same shape."""
        return neuron_forward(self.W, self.b, x)


class AbsModel(nn.Module):
    """``n_instances`` absolute-value models held as one batched parameter set.

    ``y' = ReLU(W₂ ReLU(W₁ x) + b)`` (`abs_forward`), trained towards ``|x|``.

    Args:
        W1: ``(instance, hidden, feature)`` input weights (copied into the parameter ``W1``).
        W2: ``(instance, feature, hidden)`` output weights (copied into ``W2``).
        b: ``(instance, feature)`` output biases, or ``None`` for zeros.

    Attributes:
        W1: ``(instance, hidden, feature)`` parameter.
        W2: ``(instance, feature, hidden)`` parameter.
        b: ``(instance, feature)`` parameter.
    """

    def __init__(self, W1: torch.Tensor, W2: torch.Tensor, b: torch.Tensor | None = None):
        super().__init__()
        t = _tensors(W1=(W1, W_AXES), W2=(W2, W2_AXES), b=(_bias(W1, b, "W1"), B_AXES))
        self.W1 = nn.Parameter(t["W1"].detach().clone())
        self.W2 = nn.Parameter(t["W2"].detach().clone())
        self.b = nn.Parameter(t["b"].detach().clone())

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The neurons' activations ``h = ReLU(W₁ x)``: ``(instance, batch, feature)`` →
        ``(instance, batch, hidden)``."""
        return torch.relu(hidden(self.W1, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y' = ReLU(W₂ ReLU(W₁ x) + b)``: ``(instance, batch, feature)`` → same shape."""
        return abs_forward(self.W1, self.W2, self.b, x)
