"""Synthetic activations with known feature directions: the ground truth an SAE is graded against.

A toy model hands an SAE activations whose features we know, but its directions are whatever
training made them. For the evaluation chapters we want to set the truth ourselves: how many
features, along which directions, how often each fires, and which fire together. A
`SyntheticFeatures` data set is that recipe. Each sample is a sparse vector of feature values
``f`` (most zero) and the activation it produces, ``a = f @ directions``: a sum of the active
features' directions, each scaled by its value::

    data = SyntheticFeatures(d_in=50, probabilities=[0.25, 0.2], parents=[-1, 0])
    features, acts = data.sample(100_000, seed=0)   # (100000, 2), (100000, 50)

What fires is decided in three layers:

- *root* features fire on their own, each with its probability; by default independently, or
  together as a Gaussian copula with a given ``correlation`` decides (a positive entry makes two
  features fire together more often than chance, a negative one less);
- a *child* fires only when its parent does, with its probability read as the probability
  *given* that the parent fires (Chanin et al.'s feature absorption set-up, a parent "starts with
  a vowel" and a child "starts with e");
- with ``exclusive=True`` the children of one parent are mutually exclusive: when the parent
  fires, at most one of them does (the hierarchical toy of Matryoshka SAEs).

An active feature takes the value ``magnitude`` (a number) or a value drawn uniformly from a
``(low, high)`` pair. `independent` is the shorthand for a data set of independent features.
Everything is checked on the way in: a mistake raises ``ValueError`` naming the argument, the
value and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from . import _validate

__all__ = ["SyntheticFeatures", "independent"]

DIRECTIONS = ("orthogonal", "basis", "random")


def _probabilities(value, n_features: int | None = None) -> np.ndarray:
    name = "probabilities"
    if n_features is not None and isinstance(value, (int, float, np.integer, np.floating)):
        value = [value] * n_features
    arr = _validate.real_array(value, name, ndim=(1,))
    if arr.size == 0:
        raise _validate.fail(name, value, "one probability per feature", "an empty sequence")
    if n_features is not None and arr.size != n_features:
        raise _validate.fail(
            name, value, f"a number or {n_features} probabilities (one per feature)", f"{arr.size}"
        )
    if np.any(arr <= 0) or np.any(arr > 1):
        raise _validate.fail(name, value, "probabilities in (0, 1]")
    return arr


def _parents(value, n: int) -> np.ndarray:
    name = "parents"
    if value is None:
        return np.full(n, -1, dtype=np.int64)
    expected = f"a sequence of {n} entries, each -1 or None (a root) or the index of another feature"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, torch.Tensor)):
        raise _validate.fail(name, value, expected, type(value).__name__)
    if len(value) != n:
        raise _validate.fail(name, value, expected, f"{len(value)} entries")
    out = np.empty(n, dtype=np.int64)
    for i, p in enumerate(value):
        p = (
            -1
            if p is None
            else _validate.integer(p, f"parents[{i}]", minimum=-1, maximum=n - 1, expected=expected)
        )
        if p == i:
            raise _validate.fail(
                f"parents[{i}]", p, "another feature's index (a feature is not its own parent)"
            )
        out[i] = p
    # every chain of parents must end at a root
    for i in range(n):
        seen, j = {i}, out[i]
        while j >= 0:
            if j in seen:
                raise _validate.fail(
                    name, value, "a forest (no feature is its own ancestor)", f"a cycle through {i}"
                )
            seen.add(j)
            j = out[j]
    return out


def _directions(value, n: int, d_in: int, seed: int) -> np.ndarray:
    name = "directions"
    if isinstance(value, str):
        if value not in DIRECTIONS:
            raise _validate.fail(
                name, value, "'orthogonal', 'basis', 'random' or an array (n_features, d_in)"
            )
        kind = value
        if kind in ("orthogonal", "basis") and n > d_in:
            raise _validate.fail(
                name, value, f"'random' or an array when there are more features ({n}) than d_in ({d_in})"
            )
        if kind == "basis":
            return np.eye(n, d_in, dtype=np.float32)
        gen = torch.Generator().manual_seed(seed)
        gauss = torch.randn(d_in, n, generator=gen, dtype=torch.float64)
        if kind == "orthogonal":
            q, r = torch.linalg.qr(gauss)  # (d_in, n) with orthonormal columns
            q = q * torch.sign(torch.diagonal(r))  # a unique Q: Haar-distributed directions
            return q.T.numpy().astype(np.float32)
        return (gauss / gauss.norm(dim=0)).T.numpy().astype(np.float32)
    arr = _validate.real_array(value, name, ndim=(2,))
    if arr.shape != (n, d_in):
        raise _validate.fail(
            name, value, f"an array of shape (n_features, d_in) = ({n}, {d_in})", f"{arr.shape}"
        )
    norms = np.linalg.norm(arr, axis=1)
    if np.any(norms == 0):
        raise _validate.fail(name, value, "non-zero rows (each row is a feature's direction)", "a zero row")
    return (arr / norms[:, None]).astype(np.float32)


def _magnitude(value) -> tuple[float, float]:
    name = "magnitude"
    expected = "a positive number, or a pair (low, high) with 0 <= low < high"
    if (
        isinstance(value, (Sequence, np.ndarray, torch.Tensor))
        and not isinstance(value, (str, bytes))
        and np.ndim(value) > 0
    ):
        if len(value) != 2:
            raise _validate.fail(name, value, expected, f"{len(value)} numbers")
        low, high = (_validate.real(v, name, expected=expected) for v in value)
        if not 0 <= low < high:
            raise _validate.fail(name, value, expected)
        return low, high
    number = _validate.real(value, name, low=0.0, low_open=True, expected=expected)
    return number, number


def _correlation(value, n_roots: int) -> np.ndarray | None:
    name = "correlation"
    if value is None:
        return None
    arr = _validate.real_array(value, name, ndim=(2,))
    if arr.shape != (n_roots, n_roots):
        raise _validate.fail(
            name, value, f"a ({n_roots}, {n_roots}) matrix, one row per root feature", f"shape {arr.shape}"
        )
    if not np.allclose(arr, arr.T) or not np.allclose(np.diag(arr), 1.0) or np.any(np.abs(arr) > 1):
        raise _validate.fail(
            name, value, "a symmetric matrix with ones on the diagonal and entries in [-1, 1]"
        )
    try:
        return np.linalg.cholesky(arr)
    except np.linalg.LinAlgError as err:
        raise _validate.fail(
            name, value, "a positive definite correlation matrix", "one with a zero or negative eigenvalue"
        ) from err


class SyntheticFeatures:
    """A data set of activations built from known feature directions.

    Args:
        d_in: the width of an activation vector (the SAE's ``d_in``).
        probabilities: one per feature. For a root feature, the probability that it fires; for a
            child, the probability that it fires *given that its parent fires*.
        parents: optional, one entry per feature: ``-1`` (or ``None``) for a root, else the index
            of its parent. A child never fires without its parent. Default: every feature a root.
        exclusive: if True, the children of one parent are mutually exclusive: when the parent
            fires, child ``j`` fires with its probability and no two fire together (their
            probabilities must then sum to at most 1).
        directions: ``"orthogonal"`` (random orthonormal directions; needs ``n_features <=
            d_in``), ``"basis"`` (the first ``n_features`` standard basis vectors), ``"random"``
            (independent uniformly random unit vectors, nearly orthogonal when ``d_in`` is
            large), or an array ``(n_features, d_in)`` whose rows are normalised.
        magnitude: the value of an active feature: a positive number, or ``(low, high)`` for a
            value drawn uniformly from that interval.
        correlation: optional ``(n_roots, n_roots)`` correlation matrix (rows in the order the
            root features appear): root ``i`` fires when ``Φ(z_i) < p_i`` for ``z`` drawn from a
            normal distribution with this correlation (a Gaussian copula), so each keeps its own
            probability and positively correlated features fire together more often.
        seed: the seed of the random directions (sampling has its own seed, in `sample`).

    Attributes:
        n_features: the number of features.
        d_in: the width of an activation vector.
        directions: ``(n_features, d_in)`` float32 array of unit rows: the ground truth.
        probabilities: as given, in normal form (a NumPy array).
        parents: as given, in normal form (a NumPy array; roots have parent -1).
        marginal_probabilities: ``(n_features,)``: how often each feature fires overall (a
            child's probability times its parent's).
        true_l0: the expected number of active features per sample (the data's true L0).
    """

    def __init__(
        self,
        d_in: int,
        probabilities,
        *,
        parents=None,
        exclusive: bool = False,
        directions="orthogonal",
        magnitude=1.0,
        correlation=None,
        seed: int = 0,
    ) -> None:
        self.d_in = _validate.integer(d_in, "d_in", minimum=1)
        self.probabilities = _probabilities(probabilities)
        self.n_features = n = self.probabilities.size
        self.parents = _parents(parents, n)
        self.exclusive = _validate.flag(exclusive, "exclusive")
        self.seed = _validate.seed(seed)
        self.directions = _directions(directions, n, self.d_in, self.seed)
        self.magnitude = _magnitude(magnitude)
        self.roots = np.flatnonzero(self.parents < 0)
        self._chol = _correlation(correlation, self.roots.size)
        # children grouped by parent, parents before children
        self._order = self._topological_order()
        has_children = set(self.parents[self.parents >= 0].tolist())
        self._groups = {p: np.flatnonzero(self.parents == p) for p in self._order if p in has_children}
        if self.exclusive:
            for p, kids in self._groups.items():
                total = float(self.probabilities[kids].sum())
                if total > 1 + 1e-9:
                    raise _validate.fail(
                        "probabilities",
                        probabilities,
                        f"children of one parent whose probabilities sum to at most 1 when exclusive=True "
                        f"(the children {kids.tolist()} of feature {p} sum to {total:g})",
                    )
        marginal = self.probabilities.copy()
        for i in self._order:
            if self.parents[i] >= 0:
                marginal[i] = marginal[self.parents[i]] * self.probabilities[i]
        self.marginal_probabilities = marginal
        self.true_l0 = float(marginal.sum())

    def _topological_order(self) -> list[int]:
        depth = np.zeros(self.n_features, dtype=np.int64)
        for i in range(self.n_features):
            j = self.parents[i]
            while j >= 0:
                depth[i] += 1
                j = self.parents[j]
        return [int(i) for i in np.argsort(depth, kind="stable")]

    def __repr__(self) -> str:
        n_children = int((self.parents >= 0).sum())
        return (
            f"SyntheticFeatures(n_features={self.n_features}, d_in={self.d_in}, "
            f"children={n_children}, exclusive={self.exclusive}, true_l0={self.true_l0:.3g})"
        )

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples.

        Args:
            n: the number of samples.
            seed: the seed of this draw; the same seed gives the same tensors, bit for bit.

        Returns:
            ``(features, acts)``, float32 tensors on the CPU: ``features`` ``(n, n_features)``,
            each feature's value (0 when silent), and ``acts`` ``(n, d_in)`` ``= features @
            directions``.
        """
        n = _validate.integer(n, "n", minimum=1)
        seed = _validate.seed(seed)
        _validate.check_memory(4.0 * n * (3 * self.n_features + self.d_in), torch.device("cpu"), {"n": n})
        gen = torch.Generator().manual_seed(seed)
        p = torch.from_numpy(self.probabilities).to(torch.float32)
        fires = torch.zeros(n, self.n_features, dtype=torch.bool)
        roots = torch.from_numpy(self.roots)
        if self._chol is None:
            fires[:, roots] = torch.rand(n, roots.numel(), generator=gen) < p[roots]
        else:
            z = (
                torch.randn(n, roots.numel(), generator=gen, dtype=torch.float64)
                @ torch.from_numpy(self._chol).T
            )
            u = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
            fires[:, roots] = u < p[roots].to(torch.float64)
        u_child = torch.rand(n, self.n_features, generator=gen)
        for parent, kids in self._groups.items():
            kids_t = torch.from_numpy(kids)
            on = fires[:, parent : parent + 1]
            if self.exclusive:
                # one uniform per sample picks at most one child: child j owns [c_{j-1}, c_j)
                u = u_child[:, kids[0] : kids[0] + 1]
                upper = torch.cumsum(p[kids_t], 0)
                lower = upper - p[kids_t]
                fires[:, kids_t] = on & (u >= lower) & (u < upper)
            else:
                fires[:, kids_t] = on & (u_child[:, kids_t] < p[kids_t])
        low, high = self.magnitude
        if low == high:
            features = fires.to(torch.float32) * low
        else:
            features = fires * (low + (high - low) * torch.rand(n, self.n_features, generator=gen))
        acts = features @ torch.from_numpy(self.directions)
        return features, acts


def independent(
    n_features: int, d_in: int, probabilities, *, directions="random", magnitude=1.0, seed: int = 0
) -> SyntheticFeatures:
    """A `SyntheticFeatures` data set of ``n_features`` independent features.

    Args:
        n_features: how many features.
        d_in: the width of an activation vector.
        probabilities: one number for every feature, or one per feature.
        directions, magnitude, seed: as in `SyntheticFeatures` (random unit directions by
            default, so ``n_features`` may exceed ``d_in``).
    """
    n_features = _validate.integer(n_features, "n_features", minimum=1)
    probs = _probabilities(probabilities, n_features)
    return SyntheticFeatures(d_in, probs, directions=directions, magnitude=magnitude, seed=seed)
