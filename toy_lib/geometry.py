"""Directions in activation space: how many fit, how much they interfere, and how to read them.

The two opening chapters of the book use this module: "Features" (a layer's basis rotated, a
linear probe) and "The geometry of superposition" (nearly orthogonal directions, packing,
interference, a hand-built pentagon).

Conventions, as in `toy_lib.metrics`: a set of ``n`` vectors in ``d`` dimensions is a matrix
``W`` of shape ``(dim, vector)``, so column ``W[:, i]`` is vector ``i``, just as column ``W_i``
of a toy model's weights is feature ``i``'s direction. A leading axis (``draw``, ``instance``)
comes first. Everything here computes in float64 on the CPU; the optimisations
(`pack_vectors`, `pack_count`, `train_probe`) run on one CPU thread, so the same arguments give
bitwise the same result every time.

Contents, in the order the chapters introduce them:

- Rotating a basis and reading features: `random_rotation`, `top_feature_share`,
  `train_probe` (a `Probe`), `single_neuron_accuracy`.
- Random directions: `random_unit_vectors`, `cosine_matrix`, `max_abs_cosine`, and what to
  expect of them: `cosine_tail`, `predicted_max_abs_cosine`.
- How many directions fit under a threshold: `random_fit_count` (random draws),
  `predicted_random_count`, `packing_bound` (no arrangement can beat it), `pack_vectors` and
  `pack_count` (an optimiser that packs them).
- Interference: `interference` (what the other features add to each feature's read-out),
  `expected_interference` (its expected cost under sparsity), `simulate_interference`, and
  what an adversary makes of it: `adversarial_gain` (the richer-settings chapter).
- `hand_built_polygon`: the pentagon whose ReLU and negative bias clip the leakage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _validate as v
from .data import generate_batch
from .model import B_AXES, W_AXES, X_AXES
from .model import _tensors as _model_tensors
from .training import _cpu_threads, optimise

__all__ = [
    "PACK_MARGIN",
    "random_rotation",
    "top_feature_share",
    "Probe",
    "train_probe",
    "single_neuron_accuracy",
    "random_unit_vectors",
    "cosine_matrix",
    "max_abs_cosine",
    "cosine_tail",
    "predicted_max_abs_cosine",
    "random_fit_count",
    "predicted_random_count",
    "packing_bound",
    "Packing",
    "pack_vectors",
    "PackCount",
    "pack_count",
    "interference",
    "expected_interference",
    "simulate_interference",
    "adversarial_gain",
    "hand_built_polygon",
]


#: `pack_vectors` aims for ``|cos| <= threshold * (1 - PACK_MARGIN)``, a little inside the
#: threshold, so that a packing it reports as fitting is not fitting by a rounding error.
PACK_MARGIN = 0.05
#: Points of the numerical integral in `cosine_tail` (smooth integrand: errors below 1e-6).
_TAIL_POINTS = 4001


# --------------------------------------------------------------------------- input checks


def _vectors(W, name: str = "W", *, min_vectors: int = 1) -> torch.Tensor:
    """``W`` as a float64 tensor ``(dim, vector)`` or ``(draw, dim, vector)`` whose columns
    are nonzero; else a clear error."""
    arr = v.real_array(W, name)
    if arr.ndim not in (2, 3):
        raise v.fail(name, W, "a matrix (dim, vector), or a stack (draw, dim, vector)", f"shape {arr.shape}")
    if arr.shape[-2] < 1:
        raise v.fail(name, W, "vectors with at least one dimension", f"shape {arr.shape}")
    if arr.shape[-1] < min_vectors:
        raise v.fail(
            name,
            W,
            f"at least {min_vectors} vectors (columns) in the last axis (dim, vector)",
            f"{arr.shape[-1]}",
        )
    norms = np.linalg.norm(arr, axis=-2)
    if np.any(norms == 0):
        where = tuple(int(i) for i in np.argwhere(norms == 0)[0])
        raise v.fail(name, W, "nonzero columns (a zero vector has no direction)", f"a zero column at {where}")
    return torch.from_numpy(arr)


def _adam_on_one_thread(params, step_fn, *, steps: int, lr: float, caller: str, after_step=None):
    """toy_lib's one training loop (`toy_lib.training.optimise`) with Adam at a constant learning
    rate, on one CPU thread: the small float64 problems of this module run bitwise the same every
    time, whatever the machine's thread setting."""
    with _cpu_threads(1):
        return optimise(
            params,
            step_fn,
            steps=steps,
            lr=lr,
            schedule="constant",
            weight_decay=0.0,
            progress=False,
            caller=caller,
            after_step=after_step,
        )


def _threshold(value, name: str = "threshold") -> float:
    return v.real(
        value, name, low=0.0, high=1.0, low_open=True, high_open=True, expected="a number in (0, 1)"
    )


def _sparsity(value, name: str) -> float:
    return v.real(value, name, low=0.0, high=1.0, high_open=True, expected="a sparsity in [0, 1)")


# --------------------------------------------------------------------------- bases and probes


def random_rotation(dim: int, *, seed: int = 0) -> torch.Tensor:
    """A random rotation of ``dim``-dimensional space: an orthogonal ``(dim, dim)`` matrix with
    determinant +1, drawn uniformly (from the Haar measure).

    Multiplying a layer's activations by it changes every coordinate (every neuron) and keeps
    every length and angle, so whatever reads the layer linearly can undo it exactly.

    Args:
        dim: the dimension (a positive integer).
        seed: seeds the draw; the same seed gives the same rotation.
    """
    dim = v.integer(dim, "dim", minimum=1)
    gen = torch.Generator().manual_seed(v.seed(seed))
    Q, R = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(R))  # makes the draw uniform over orthogonal matrices
    if torch.linalg.det(Q) < 0:
        Q[:, 0] = -Q[:, 0]
    return Q


def top_feature_share(W) -> np.ndarray:
    """How monosemantic each neuron is: the share of its squared weights on its top feature.

    For a layer ``h = W x`` with ``W`` of shape ``(neuron, feature)`` (row ``k`` says how
    neuron ``k`` responds to each feature), neuron ``k`` gets
    ``max_i W[k, i]² / Σ_i W[k, i]²``: 1 for a neuron that responds to one feature only, ``1/n``
    for one that responds equally to all ``n``. A neuron with no weights gets 0.

    Args:
        W: ``(neuron, feature)``, or ``(instance, neuron, feature)``.

    Returns:
        ``(neuron,)`` (or ``(instance, neuron)``) shares in [1/n, 1], as a NumPy array.
    """
    arr = v.real_array(W, "W", ndim=(2, 3))
    sq = arr**2
    total = sq.sum(axis=-1)
    top = sq.max(axis=-1)
    return np.where(total > 0, top / np.where(total > 0, total, 1.0), 0.0)


@dataclass
class Probe:
    """Linear probes trained by `train_probe`: probe ``j`` says "feature ``j`` is present" when
    ``activations @ weight[j] + bias[j] > 0``.

    Attributes:
        weight: ``(probe, neuron)``: row ``j`` is the direction probe ``j`` reads.
        bias: ``(probe,)``.
        loss_history: ``(step, probe)`` training loss (mean binary cross-entropy).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    loss_history: torch.Tensor

    def predict(self, activations) -> torch.Tensor:
        """``(batch, probe)`` booleans: which features each probe reports present."""
        a = v.as_tensor(activations, "activations", ("batch", "neuron"), dtype=torch.float64)
        v.same_sizes({"activations": (a, ("batch", "neuron")), "weight": (self.weight, ("probe", "neuron"))})
        return a @ self.weight.T + self.bias > 0

    def accuracy(self, activations, labels) -> np.ndarray:
        """``(probe,)``: the fraction of inputs on which each probe's answer is right."""
        y = _labels(labels, activations)
        return (self.predict(activations) == y).double().mean(dim=0).numpy()


def _labels(labels, activations) -> torch.Tensor:
    if isinstance(labels, torch.Tensor) and labels.dtype == torch.bool:
        labels = labels.double()
    elif isinstance(labels, np.ndarray) and labels.dtype == np.bool_:
        labels = labels.astype(np.float64)
    a = v.as_tensor(activations, "activations", ("batch", "neuron"), dtype=torch.float64)
    y = v.as_tensor(labels, "labels", ("batch", "probe"), dtype=torch.float64)
    v.same_sizes({"activations": (a, ("batch", "neuron")), "labels": (y, ("batch", "probe"))})
    if not bool(((y == 0) | (y == 1)).all()):
        raise v.fail("labels", labels, "0 or 1 (or booleans) in every entry")
    return y.bool()


def train_probe(activations, labels, *, steps: int = 300, lr: float = 1.0) -> Probe:
    """Train one logistic-regression probe per column of ``labels`` on the same activations.

    Probe ``j`` learns a direction ``w_j`` and a bias ``c_j`` so that
    ``sigmoid(activations @ w_j + c_j)`` predicts ``labels[:, j]``, by minimising the mean
    binary cross-entropy over the whole batch with Adam (toy_lib's one training loop,
    `toy_lib.training.optimise`; the probes are its instances). Starting from zero, with the
    whole batch at every step, it is deterministic: no seed is needed.

    Args:
        activations: ``(batch, neuron)``: the layer the probes read.
        labels: ``(batch, probe)``: 1 (or True) where the probed feature is present.
        steps, lr: full-batch Adam steps and learning rate (the loss is convex and its gradient
            bounded, so a large step is safe).

    Returns:
        A `Probe`.
    """
    y = _labels(labels, activations).double()
    a = v.as_tensor(activations, "activations", ("batch", "neuron"), dtype=torch.float64)
    steps = v.integer(steps, "steps", minimum=1)
    lr = v.positive(lr, "lr")
    n_batch, n_neuron = a.shape
    n_probe = y.shape[1]
    v.check_work(4.0 * steps * n_batch * n_neuron * n_probe, {"activations": activations, "steps": steps})
    params = torch.zeros(n_probe, n_neuron + 1, dtype=torch.float64)  # (probe, neuron + bias)
    ones = torch.ones(n_batch, 1, dtype=torch.float64)
    inputs = torch.cat([a, ones], dim=1)  # (batch, neuron + 1)

    def step_fn(step: int, loss_out: torch.Tensor) -> list[torch.Tensor]:
        z = inputs @ params.T  # (batch, probe) logits
        loss_out.copy_((torch.nn.functional.softplus(z) - y * z).mean(dim=0))
        return [(torch.sigmoid(z) - y).T @ inputs / n_batch]

    history = _adam_on_one_thread([params], step_fn, steps=steps, lr=lr, caller="train_probe")
    return Probe(weight=params[:, :n_neuron].clone(), bias=params[:, n_neuron].clone(), loss_history=history)


def single_neuron_accuracy(activations, labels) -> np.ndarray:
    """How well one neuron alone can say whether a feature is present.

    For every neuron ``k`` and every probed feature ``j``, the best accuracy of a rule that
    looks at neuron ``k`` only: "present when ``activations[:, k] > t``" or "present when
    ``activations[:, k] < t``", with the best threshold ``t`` for that pair. It is at least the
    accuracy of always giving the more common answer.

    Args:
        activations: ``(batch, neuron)``.
        labels: ``(batch, probe)``: 1 (or True) where the probed feature is present.

    Returns:
        ``(neuron, probe)`` accuracies, as a NumPy array.
    """
    y = _labels(labels, activations).numpy()
    a = v.as_tensor(activations, "activations", ("batch", "neuron"), dtype=torch.float64).numpy()
    n_batch = a.shape[0]
    n_pos = y.sum(axis=0)  # (probe,)
    out = np.empty((a.shape[1], y.shape[1]))
    for k in range(a.shape[1]):
        order = np.argsort(a[:, k], kind="stable")
        values = a[order, k]
        # positives among the first t inputs (the ones below the threshold), t = 0..batch
        pos_below = np.vstack([np.zeros((1, y.shape[1])), np.cumsum(y[order], axis=0)])
        t = np.arange(n_batch + 1)[:, None]
        # a threshold can only fall between two different values
        cut = np.concatenate([[True], values[1:] > values[:-1], [True]])
        above_is_present = (t - pos_below) + (n_pos - pos_below)
        below_is_present = pos_below + (n_batch - n_pos) - (t - pos_below)
        best = np.maximum(above_is_present, below_is_present)[cut].max(axis=0)
        out[k] = best / n_batch
    return out


# --------------------------------------------------------------------------- random directions


def random_unit_vectors(n_vectors: int, dim: int, *, draws: int | None = None, seed: int = 0) -> torch.Tensor:
    """``n_vectors`` independent random directions in ``dim`` dimensions, as unit columns.

    Each column is a vector of independent standard normal numbers divided by its length:
    the normal distribution looks the same in every direction, so the result is uniform on the
    sphere.

    Args:
        n_vectors: how many vectors (at least 1).
        dim: their dimension (at least 1).
        draws: ``None`` for one set; an integer for that many independent sets.
        seed: seeds the draw.

    Returns:
        ``(dim, vector)`` float64, or ``(draw, dim, vector)`` when ``draws`` is given.
    """
    n_vectors = v.integer(n_vectors, "n_vectors", minimum=1)
    dim = v.integer(dim, "dim", minimum=1)
    n_draws = 1 if draws is None else v.integer(draws, "draws", minimum=1)
    v.check_memory(
        8.0 * n_draws * n_vectors * dim,
        torch.device("cpu"),
        {"n_vectors": n_vectors, "dim": dim, "draws": draws},
    )
    gen = torch.Generator().manual_seed(v.seed(seed))
    V = torch.randn(n_draws, dim, n_vectors, generator=gen, dtype=torch.float64)
    V /= V.norm(dim=1, keepdim=True)
    return V[0] if draws is None else V


def cosine_matrix(W) -> torch.Tensor:
    """Cosines between the columns of ``W``: ``(..., vector, vector)``, 1 on the diagonal.

    Args:
        W: ``(dim, vector)`` or ``(draw, dim, vector)``, nonzero columns.
    """
    V = _vectors(W)
    U = V / V.norm(dim=-2, keepdim=True)
    return U.transpose(-1, -2) @ U


def max_abs_cosine(W) -> np.ndarray:
    """The largest ``|cos|`` between two different columns of ``W``: how far from orthogonal
    the least orthogonal pair is (0 for orthogonal vectors, 1 for two on the same line).

    Args:
        W: ``(dim, vector)`` or ``(draw, dim, vector)``, at least 2 nonzero columns.

    Returns:
        A NumPy scalar, or ``(draw,)``.
    """
    V = _vectors(W, min_vectors=2)
    U = V / V.norm(dim=-2, keepdim=True)
    C = (U.transpose(-1, -2) @ U).abs()
    C.diagonal(dim1=-2, dim2=-1).zero_()
    return C.amax(dim=(-2, -1)).numpy()


def cosine_tail(threshold: float, dim: int) -> float:
    """``P(|cos| > threshold)`` for two independent random directions in ``dim`` dimensions.

    The angle ``θ`` between them has density proportional to ``sin(θ)^(dim - 2)`` on
    ``[0, π]``, so ``P(|cos θ| > t) = ∫_0^{arccos t} sin^(dim-2) / ∫_0^{π/2} sin^(dim-2)``,
    computed here numerically. For large ``dim`` the cosine is close to normal with variance
    ``1/dim``, so this is about ``2 P(Z > t √dim)``.
    """
    t = v.real(threshold, "threshold", low=0.0, high=1.0, expected="a number in [0, 1]")
    dim = v.integer(dim, "dim", minimum=2)
    if t == 1.0:
        return 0.0
    if dim == 2:  # the angle is uniform on [0, π]
        return math.acos(t) / (math.pi / 2)
    theta = np.linspace(0.0, math.acos(t), _TAIL_POINTS)
    with np.errstate(divide="ignore"):
        log_integrand = (dim - 2) * np.log(np.sin(theta))
    # log of ∫_0^{π/2} sin^(dim-2) = √π Γ((dim-1)/2) / (2 Γ(dim/2))
    log_norm = 0.5 * math.log(math.pi) + math.lgamma((dim - 1) / 2) - math.lgamma(dim / 2) - math.log(2)
    value = float(np.trapezoid(np.exp(log_integrand - log_norm), theta))
    return min(1.0, max(0.0, value))


def predicted_max_abs_cosine(n_vectors: int, dim: int) -> float:
    """The typical (median) `max_abs_cosine` of ``n_vectors`` random directions in ``dim``
    dimensions.

    There are ``M = n(n - 1)/2`` pairs, each with ``|cos| > t`` with probability
    ``q(t) = cosine_tail(t, dim)``. Treating the pairs as independent, all stay below ``t``
    with probability ``(1 - q(t))^M``; the prediction is the ``t`` where that is 1/2. For large
    ``dim``, ``q(t) ≈ 2 exp(-dim t²/2)``, which gives the rate of the Johnson–Lindenstrauss
    lemma: the largest ``|cos|`` grows like ``sqrt(log n / dim)``.
    """
    n_vectors = v.integer(n_vectors, "n_vectors", minimum=2)
    dim = v.integer(dim, "dim", minimum=2)
    pairs = n_vectors * (n_vectors - 1) / 2
    target = -math.expm1(-math.log(2) / pairs)  # q with (1 - q)^M = 1/2
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if cosine_tail(mid, dim) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# --------------------------------------------------------------------------- how many fit


def random_fit_count(dim: int, threshold: float = 0.1, *, draws: int = 1, seed: int = 0) -> np.ndarray:
    """How many random directions fit with every pairwise ``|cos| <= threshold``.

    Draws random unit vectors in ``dim`` dimensions one after another and counts how many are
    drawn before the first one whose ``|cos|`` with an earlier one exceeds ``threshold``.

    Args:
        dim: the dimension (at least 2).
        threshold: in (0, 1).
        draws: independent repetitions.
        seed: seeds the draws.

    Returns:
        ``(draw,)`` integer counts (each at least 1).
    """
    dim = v.integer(dim, "dim", minimum=2)
    t = _threshold(threshold)
    n_draws = v.integer(draws, "draws", minimum=1)
    expected = predicted_random_count(dim, t)
    v.check_work(
        4.0 * n_draws * dim * (4 * expected) ** 2, {"dim": dim, "threshold": threshold, "draws": draws}
    )
    gen = torch.Generator().manual_seed(v.seed(seed))
    counts = np.empty(n_draws, dtype=np.int64)
    for k in range(n_draws):
        kept = torch.empty(dim, 0, dtype=torch.float64)
        chunk = 32
        while True:
            new = torch.randn(dim, chunk, generator=gen, dtype=torch.float64)
            new /= new.norm(dim=0, keepdim=True)
            within = torch.tril((new.T @ new).abs(), diagonal=-1).amax(dim=1)  # vs earlier in chunk
            if kept.shape[1]:
                within = torch.maximum(within, (new.T @ kept).abs().amax(dim=1))
            bad = torch.nonzero(within > t)
            if len(bad):
                counts[k] = kept.shape[1] + int(bad[0])
                break
            kept = torch.cat([kept, new], dim=1)
            chunk *= 2
    return counts


def predicted_random_count(dim: int, threshold: float = 0.1) -> int:
    """The typical (median) `random_fit_count`: the largest ``n`` for which ``n`` random
    directions all have ``|cos| <= threshold`` with probability at least 1/2, treating the
    ``n(n - 1)/2`` pairs as independent (each fails with probability ``cosine_tail``).

    Args:
        dim: the dimension of the space (at least 2).
        threshold: the largest ``|cos|`` allowed, in (0, 1).
    """
    dim = v.integer(dim, "dim", minimum=2)
    q = cosine_tail(_threshold(threshold), dim)
    if q <= 0.0:
        raise v.fail(
            "dim",
            dim,
            f"a dimension where two random directions can exceed |cos| = {threshold} "
            "(here the count would be astronomically large)",
        )
    pairs = math.log(2) / -math.log1p(-q) if q < 1 else 0.0  # the most pairs allowed
    return max(1, int((1 + math.sqrt(1 + 8 * pairs)) / 2))


def packing_bound(dim: int, threshold: float = 0.1) -> float:
    """No more than this many unit vectors in ``dim`` dimensions can have every pairwise
    ``|cos| <= threshold``, when ``dim * threshold² < 1``: ``dim (1 - t²) / (1 - dim t²)``.

    Why: the ``n x n`` matrix ``G`` of their cosines has rank at most ``dim``, so
    ``(trace G)² <= dim · trace(G²)``; with ``trace G = n`` and every off-diagonal ``G_ij² <= t²``
    this reads ``n² <= dim (n + n (n - 1) t²)``. At ``t = 0`` it says at most ``dim`` orthogonal
    directions. Where ``dim t² >= 1`` the argument gives no bound: returns ``inf``.
    """
    dim = v.integer(dim, "dim", minimum=1)
    t = _threshold(threshold)
    if dim * t * t >= 1:
        return math.inf
    return dim * (1 - t * t) / (1 - dim * t * t)


@dataclass
class Packing:
    """What `pack_vectors` returns.

    Attributes:
        W: ``(dim, vector)`` unit columns, as packed.
        max_abs_cos: their largest pairwise ``|cos|``.
        fits: whether ``max_abs_cos <= threshold``.
        threshold: the threshold asked for.
        loss_history: ``(step,)`` the packing loss at every step.
    """

    W: torch.Tensor
    max_abs_cos: float
    fits: bool
    threshold: float
    loss_history: torch.Tensor


def _pack_loss_and_grad(V: torch.Tensor, target: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss ``Σ_{i≠j} relu(|cos_ij| - target)²`` of unit columns ``V: (instance, dim, vector)``,
    one per instance, and its gradient along the sphere."""
    G = V.transpose(1, 2) @ V
    excess = torch.relu(G.abs() - target)
    excess.diagonal(dim1=1, dim2=2).zero_()
    loss = excess.square().sum(dim=(1, 2))
    dG = 2 * excess * torch.sign(G)  # ∂loss/∂G, symmetric
    dV = 2 * V @ dG
    dV -= V * (V * dV).sum(dim=1, keepdim=True)  # keep only the part along the sphere
    return loss, dV


def pack_vectors(
    n_vectors: int,
    dim: int,
    *,
    threshold: float = 0.1,
    steps: int = 600,
    lr: float = 0.01,
    seed: int = 0,
) -> Packing:
    """Look for ``n_vectors`` unit vectors in ``dim`` dimensions with every pairwise
    ``|cos| <= threshold``, by optimisation.

    From random directions, Adam (toy_lib's one training loop, `toy_lib.training.optimise`)
    minimises ``Σ_{i≠j} relu(|cos_ij| - t')²`` with ``t' = threshold (1 - PACK_MARGIN)``: only
    pairs that are too close push each other apart, and the loss is zero exactly when every pair
    is within ``t'``. After every step the vectors are put back on the unit sphere. On one CPU
    thread, in float64: the same arguments give bitwise the same packing.

    Args:
        n_vectors: at least 2.
        dim: at least 1.
        threshold: in (0, 1).
        steps, lr: Adam's steps and learning rate.
        seed: seeds the random start.

    Returns:
        A `Packing`; ``fits`` says whether it succeeded.
    """
    n_vectors = v.integer(n_vectors, "n_vectors", minimum=2)
    dim = v.integer(dim, "dim", minimum=1)
    t = _threshold(threshold)
    steps = v.integer(steps, "steps", minimum=1)
    lr = v.positive(lr, "lr")
    v.check_work(6.0 * steps * n_vectors**2 * dim, {"n_vectors": n_vectors, "dim": dim, "steps": steps})
    V = random_unit_vectors(n_vectors, dim, seed=seed)[None].clone()  # (instance=1, dim, vector)
    target = t * (1 - PACK_MARGIN)

    def step_fn(step: int, loss_out: torch.Tensor) -> list[torch.Tensor]:
        loss, grad = _pack_loss_and_grad(V, target)
        loss_out.copy_(loss)
        return [grad]

    def back_to_sphere(step: int, optimisers) -> None:
        V.div_(V.norm(dim=1, keepdim=True))

    history = _adam_on_one_thread(
        [V], step_fn, steps=steps, lr=lr, caller="pack_vectors", after_step=back_to_sphere
    )
    worst = float(max_abs_cosine(V[0]))
    return Packing(
        W=V[0].clone(), max_abs_cos=worst, fits=worst <= t, threshold=t, loss_history=history[:, 0]
    )


@dataclass
class PackCount:
    """What `pack_count` returns.

    Attributes:
        dim: the dimension asked about.
        threshold: the largest ``|cos|`` allowed.
        count: the most vectors the optimiser packed with every ``|cos| <= threshold``.
        W: ``(dim, count)``: that packing.
        attempts: ``{n_vectors: largest |cos| reached}`` for every packing tried, in order.
    """

    dim: int
    threshold: float
    count: int
    W: torch.Tensor
    attempts: dict


def pack_count(
    dim: int, threshold: float = 0.1, *, steps: int = 600, lr: float = 0.01, seed: int = 0
) -> PackCount:
    """How many unit vectors the optimiser `pack_vectors` fits in ``dim`` dimensions with every
    pairwise ``|cos| <= threshold``: a lower bound on the true maximum, found by search.

    ``dim`` orthonormal vectors always fit. From there the search tries 1.5 times as many
    until a packing fails (never more than `packing_bound` allows), then bisects between the
    last success and the first failure. Each attempt is one `pack_vectors` run with the same
    ``steps``, ``lr`` and ``seed``, so the whole search is deterministic.

    Returns:
        A `PackCount`.
    """
    dim = v.integer(dim, "dim", minimum=1)
    t = _threshold(threshold)
    steps = v.integer(steps, "steps", minimum=1)
    lr = v.positive(lr, "lr")
    seed = v.seed(seed)
    ceiling = packing_bound(dim, t)  # more than this never fits
    best_n, best_W = dim, torch.eye(dim, dtype=torch.float64)
    attempts: dict[int, float] = {}
    failed = math.floor(ceiling) + 1 if math.isfinite(ceiling) else None  # smallest n known to fail

    def attempt(n: int) -> bool:
        nonlocal best_n, best_W
        packing = pack_vectors(n, dim, threshold=t, steps=steps, lr=lr, seed=seed)
        attempts[n] = packing.max_abs_cos
        if packing.fits:
            best_n, best_W = n, packing.W
        return packing.fits

    while failed is None or failed - best_n > 1:
        if failed is None:
            n = max(best_n + 1, math.ceil(1.5 * best_n))
        else:
            n = (best_n + failed) // 2
        if not attempt(n):
            failed = n
    return PackCount(dim=dim, threshold=t, count=best_n, W=best_W, attempts=attempts)


# --------------------------------------------------------------------------- interference


def interference(W, x) -> torch.Tensor:
    """What the other features add to each feature's linear read-out.

    A layer stores ``h = W x`` and reads feature ``i`` back as ``W_i · h = Σ_j (W_i · W_j) x_j``.
    The terms with ``j ≠ i`` are interference: this returns
    ``interference[b, i] = Σ_{j≠i} (W_i · W_j) x[b, j]``, i.e. ``x (WᵀW - diag(WᵀW))``.

    Args:
        W: ``(hidden, feature)``, or ``(instance, hidden, feature)``.
        x: ``(batch, feature)``, or ``(instance, batch, feature)`` with the same instances.

    Returns:
        ``(batch, feature)`` (or ``(instance, batch, feature)``), float64.
    """
    Wt = v.as_tensor(W, "W", _axes(W, "W", ("hidden", "feature")), dtype=torch.float64)
    axes_w = ("instance", "hidden", "feature") if Wt.ndim == 3 else ("hidden", "feature")
    axes_x = ("instance", "batch", "feature") if Wt.ndim == 3 else ("batch", "feature")
    xt = v.as_tensor(x, "x", axes_x, dtype=torch.float64)
    v.same_sizes({"W": (Wt, axes_w), "x": (xt, axes_x)})
    gram = Wt.transpose(-1, -2) @ Wt
    off = gram - torch.diag_embed(torch.diagonal(gram, dim1=-2, dim2=-1))
    return xt @ off


def _axes(value, name: str, axes: tuple[str, ...]) -> tuple[str, ...]:
    """``axes``, or ``("instance", *axes)`` when ``value`` has one more dimension."""
    ndim = getattr(value, "ndim", None)
    if ndim is None:
        ndim = np.ndim(value)
    if ndim == len(axes) + 1:
        return ("instance", *axes)
    if ndim != len(axes):
        spelled = "(" + ", ".join(axes) + ")"
        raise v.fail(name, value, f"a tensor of shape {spelled} or (instance, {spelled[1:]}", f"{ndim} axes")
    return axes


def expected_interference(
    cos: float, sparsity_i: float, sparsity_j: float | None = None, *, clipped: bool = True
) -> float:
    """Expected squared interference that feature ``j`` causes in feature ``i``'s read-out.

    The two features have directions with cosine ``cos`` (unit length), and each is active
    (uniform on [0, 1]) with probability ``1 - S``, independently. Reading feature ``i`` picks up
    ``cos · x_j``, and ``E[x_j²] = (1 - S_j)/3``.

    - ``clipped=True``: the leak into an *inactive* feature is removed (a ReLU with a negative
      bias does it, see `hand_built_polygon`); what remains is the leak on inputs where both
      features are active: ``cos² (1 - S_i)(1 - S_j) / 3``, proportional to ``P(both active)``.
    - ``clipped=False``: a linear read-out keeps every leak: ``cos² (1 - S_j) / 3``.

    Args:
        cos: the cosine between the two directions, in [-1, 1].
        sparsity_i, sparsity_j: the features' sparsities in [0, 1) (``sparsity_j`` defaults to
            ``sparsity_i``).
        clipped: see above.
    """
    c = v.real(cos, "cos", low=-1.0, high=1.0)
    s_i = _sparsity(sparsity_i, "sparsity_i")
    s_j = s_i if sparsity_j is None else _sparsity(sparsity_j, "sparsity_j")
    clipped = v.flag(clipped, "clipped")
    p_i, p_j = 1 - s_i, 1 - s_j
    return c * c * (p_i * p_j if clipped else p_j) / 3


def simulate_interference(
    cos: float, sparsity: float, *, batch_size: int = 1_000_000, seed: int = 0, clipped: bool = True
) -> tuple[float, float]:
    """`expected_interference` measured: the mean squared interference and its standard error.

    Builds two unit directions in a plane with cosine ``cos``, draws ``batch_size`` sparse
    inputs with `toy_lib.generate_batch` (both features at sparsity ``sparsity``), computes
    feature 0's `interference`, keeps it only where feature 0 is active when ``clipped``, and
    averages its square.

    Args:
        cos: the cosine between the two directions, in [-1, 1].
        sparsity: the sparsity ``S`` of both features, in [0, 1).
        batch_size: how many inputs to draw.
        seed: seeds the draw; the same seed gives the same numbers.
        clipped: count the interference only where feature 0 is active (the ReLU with a
            negative bias clips the rest).

    Returns:
        ``(mean, standard_error)`` of the squared interference.
    """
    c = v.real(cos, "cos", low=-1.0, high=1.0)
    s = _sparsity(sparsity, "sparsity")
    batch_size = v.integer(batch_size, "batch_size", minimum=2)
    clipped = v.flag(clipped, "clipped")
    v.check_memory(64.0 * batch_size, torch.device("cpu"), {"batch_size": batch_size})
    W = torch.tensor([[1.0, c], [0.0, math.sqrt(1 - c * c)]], dtype=torch.float64)  # (hidden, feature)
    gen = torch.Generator().manual_seed(v.seed(seed))
    prob = torch.full((1, 2), 1 - s, dtype=torch.float64)
    x = generate_batch(prob, batch_size, generator=gen)[0]  # (batch, feature)
    err = interference(W, x)[:, 0]
    if clipped:
        err = torch.where(x[:, 0] != 0, err, torch.zeros_like(err))
    sq = err.square()
    return float(sq.mean()), float(sq.std() / math.sqrt(batch_size))


def adversarial_gain(W, b, x, *, epsilon: float = 0.1, steps: int = 100, seed: int = 0) -> np.ndarray:
    """How much a small, well-chosen change of the input moves a toy model's output.

    For each input ``x`` of each model ``x' = ReLU(Wᵀ W x + b)``, search the perturbation ``δ``
    with ``||δ|| <= epsilon`` that moves the output the most, and report the output's move per
    unit of input move, ``||x'(x + δ) - x'(x)|| / epsilon``, averaged over the inputs. A model
    without superposition (orthonormal feature directions) has a gain of at most 1; in
    superposition, a push along one feature's direction leaks into every feature that shares it,
    and the gain grows. The search is projected gradient ascent: start from a random direction
    on the sphere of radius ``epsilon``, take ``steps`` steps of length ``epsilon / 4`` along the
    normalised gradient of the squared output change, each followed by a projection back into
    the ball. It finds a strong attack, not provably the strongest, so the gain is a lower bound
    on the worst case. Computed in float64 on one CPU thread: the same arguments give bitwise
    the same result.

    Args:
        W: ``(instance, hidden, feature)`` weights (a `TrainResult`'s ``W``).
        b: ``(instance, feature)`` biases.
        x: ``(instance, batch, feature)`` inputs to attack (a batch of the model's own data, say).
        epsilon: the size (L2 norm) of the perturbation, > 0.
        steps: steps of the search, >= 1.
        seed: seeds the random starting directions: model ``i`` starts from directions drawn
            with seed ``seed + i``, so attacking it alone with that seed gives the same gain.

    Returns:
        ``(instance,)`` float64: each model's mean gain over its inputs.
    """
    t = _model_tensors(W=(W, W_AXES), b=(b, B_AXES), x=(x, X_AXES))
    epsilon = v.positive(epsilon, "epsilon")
    steps = v.integer(steps, "steps", minimum=1)
    seed = v.seed(seed)
    Wt, bt, xt = (t[k].detach().cpu().to(torch.float64) for k in ("W", "b", "x"))
    n_inst, n_hidden, n_feat = Wt.shape
    v.check_work(
        4.0 * steps * n_inst * xt.shape[1] * n_feat * n_hidden,
        {"steps": steps, "x": x, "W": W},
    )

    def output(inputs: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.bmm(torch.bmm(inputs, Wt.transpose(1, 2)), Wt) + bt[:, None, :])

    def onto_ball(delta: torch.Tensor) -> torch.Tensor:
        return delta * (epsilon / delta.norm(dim=-1, keepdim=True).clamp_min(epsilon))

    with _cpu_threads(1):
        clean = output(xt)
        # instance i starts from directions drawn with seed + i, as if attacked alone
        delta = torch.stack(
            [
                torch.randn(
                    xt.shape[1:], generator=torch.Generator().manual_seed(seed + i), dtype=torch.float64
                )
                for i in range(n_inst)
            ]
        )
        delta = epsilon * delta / delta.norm(dim=-1, keepdim=True)
        for _ in range(steps):
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad((output(xt + delta) - clean).square().sum(), delta)
            with torch.no_grad():
                unit = grad / grad.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
                delta = onto_ball(delta + (epsilon / 4) * unit)
        with torch.no_grad():
            gain = (output(xt + delta) - clean).norm(dim=-1) / epsilon
    return v.finite_result(gain.mean(dim=-1).numpy(), "adversarial_gain", {"W": W, "b": b, "x": x})


def hand_built_polygon(n_features: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """A toy model built by hand, not trained: ``n_features`` arrows spread evenly around a
    circle in a 2-D hidden space, with a bias that clips every leak of a lone feature.

    With arrows of length ``r`` and a shared bias ``b``, a lone feature ``x = e_i`` is read back
    as ``ReLU(r² cos θ_ij + b)`` in feature ``j``, where ``θ_ij`` is the angle between the
    arrows. Two conditions make that exactly ``e_i``: the feature itself comes back at 1,
    ``r² + b = 1``, and its nearest neighbours (the largest leak, ``cos(2π/n)``) are clipped,
    ``r² cos(2π/n) + b <= 0``. The smallest bias that does it: ``β = max(0, cos(2π/n))``,
    ``r² = 1 / (1 - β)``, ``b = -β r²``. Feature 0 points along the first hidden axis, and
    feature ``k`` sits ``k · 360°/n`` further round.

    Args:
        n_features: at least 2 (5 gives the pentagon).

    Returns:
        ``(W, b)``: ``W`` of shape ``(instance=1, hidden=2, feature)`` and ``b`` of shape
        ``(1, feature)``, float64, ready for `toy_lib.forward`.
    """
    n = v.integer(n_features, "n_features", minimum=2)
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    beta = max(0.0, math.cos(2 * math.pi / n))
    r = math.sqrt(1 / (1 - beta))
    W = r * torch.stack([torch.cos(angles), torch.sin(angles)])  # (hidden, feature)
    b = torch.full((n,), 0.0 - beta * r * r, dtype=torch.float64)  # 0.0 - ...: no -0.0
    return W[None], b[None]
