"""toy_lib.theory: the closed-form losses of the phase diagrams' candidate arrangements, the
winner, the boundaries, the classifier of trained geometries, and their refusals of bad input;
and toy_lib.exercises.check_candidate_losses, the checker of the chapter's exercise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from toy_lib import exercises, theory


def uniform_mc(n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((3, n))


# --------------------------------------------------------------------------- the losses


def test_the_losses_are_the_expectations_they_claim():
    """Monte Carlo checks of the three integrals behind the closed forms."""
    U, V, W = uniform_mc()
    assert np.mean(np.minimum(U, V) ** 2) == pytest.approx(1 / 6, abs=2e-3)
    assert np.mean(np.minimum(U, V / 2) ** 2) == pytest.approx(1 / 16, abs=2e-3)
    assert np.mean(np.minimum(U, (V + W) / 2) ** 2) == pytest.approx(1 / 6, abs=2e-3)
    # an ignored feature of density p: the variance of x (0 w.p. 1 - p, else U[0, 1])
    p = 0.3
    x = np.where(np.random.default_rng(1).random(U.size) < p, U, 0.0)
    assert theory.ignored_loss(p) == pytest.approx(x.var(), rel=1e-2)
    assert theory.antipodal_loss(p) == pytest.approx(p**2 / 6)


def simulated_loss(W: np.ndarray, b: np.ndarray, importance: np.ndarray, p: float, n: int = 400_000) -> float:
    """Expected loss (summed over features) of a tied ReLU model, by simulation."""
    rng = np.random.default_rng(2)
    x = rng.random((n, W.shape[1])) * (rng.random((n, W.shape[1])) < p)
    out = np.maximum(x @ W.T @ W + b, 0.0)
    return float((importance * (x - out) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("r,p", [(0.5, 0.3), (2.0, 0.4), (1.0, 0.7)])
def test_candidate_losses_match_simulated_models(r, p):
    imp = np.array([1.0, 1.0, r])
    L = theory.candidate_losses(r, p, n_features=3)
    tri = 2 * np.pi * np.arange(3) / 3
    models = {
        "extra ignored": (np.array([[1.0, 0, 0], [0, 1.0, 0]]), np.array([0, 0, p / 2])),
        "extra dedicated": (np.array([[1.0, 0, 0], [0, 0, 1.0]]), np.array([0, p / 2, 0])),
        "extra antipodal": (np.array([[1.0, 0, -1.0], [0, 1.0, 0]]), np.zeros(3)),
        "pair antipodal, extra dedicated": (np.array([[1.0, -1.0, 0], [0, 0, 1.0]]), np.zeros(3)),
        "triangle": (np.stack([np.cos(tri), np.sin(tri)]), np.zeros(3)),
    }
    assert list(L) == list(models)
    for name, (W, b) in models.items():
        assert float(L[name]) == pytest.approx(simulated_loss(W, b, imp, p), rel=0.03, abs=2e-5), name
    L2 = theory.candidate_losses(r, p, n_features=2)
    W2 = {
        "extra ignored": ([[1.0, 0.0]], [0, p / 2]),
        "extra dedicated": ([[0.0, 1.0]], [p / 2, 0]),
        "extra antipodal": ([[1.0, -1.0]], [0, 0]),
    }
    for name, (W, b) in W2.items():
        sim = simulated_loss(np.array(W), np.array(b, dtype=float), np.array([1.0, r]), p)
        assert float(L2[name]) == pytest.approx(sim, rel=0.03, abs=2e-5), name


def test_phase_and_boundaries_of_two_to_one():
    # the paper's boundaries and triple point
    for r in (0.2, 0.5, 0.9):
        edge = 4 * r / (2 + 5 * r)
        assert theory.phase(r, min(1.0, edge * 1.05)) == "ignored"
        assert theory.phase(r, edge * 0.95) == "antipodal"
    for r in (1.2, 3.0, 10.0):
        edge = 4 / (5 + 2 * r)
        assert theory.phase(r, edge * 1.05) == "dedicated"
        assert theory.phase(r, edge * 0.95) == "antipodal"
    assert theory.phase(0.99, 0.6) == "ignored" and theory.phase(1.01, 0.6) == "dedicated"
    assert theory.phase(1.0, 4 / 7 * 0.97) == "antipodal"
    curves = theory.boundaries(2)
    for r, p in curves[:2]:
        L = theory.candidate_losses(r, p)
        both = np.sort(np.stack(list(L.values())), axis=0)
        np.testing.assert_allclose(both[0], both[1], rtol=1e-9)  # two candidates tie on the line


def test_phase_of_three_to_two():
    R, P = np.meshgrid(np.geomspace(0.1, 10, 61), np.geomspace(1, 0.01, 61))
    ph = theory.phase(R, P, n_features=3)
    assert set(np.unique(ph)) == {"ignored", "dedicated", "antipodal"}  # the triangle never wins
    assert np.all(ph[R > 1.001] == "dedicated")
    left = R < 0.999
    np.testing.assert_array_equal(ph[left], theory.phase(R, P)[left])  # the 2 -> 1 curve for r < 1


def test_near_boundary_marks_the_cells_next_to_a_line():
    assert theory.near_boundary(1.0, 0.8)  # on r = 1 above the triple point
    assert not theory.near_boundary(1.0, 0.3)  # below it both sides are antipodal for 2 -> 1 ...
    assert theory.near_boundary(1.0, 0.3, n_features=3)  # ... but not for 3 -> 2
    assert theory.near_boundary(0.5, 4 / 9)  # on the curve
    assert not theory.near_boundary(0.5, 0.05) and not theory.near_boundary(5.0, 1.0)
    assert not theory.near_boundary(0.5, 4 / 9, margin=0.0)


def test_classify_geometry():
    W = np.array([[1.0, -1.0, 0.0, 0.1], [0.0, 0.0, 1.0, 0.0]])
    assert list(theory.classify_geometry(W)) == ["antipodal", "antipodal", "dedicated", "ignored"]
    tri = 2 * np.pi * np.arange(3) / 3
    assert list(theory.classify_geometry(np.stack([np.cos(tri), np.sin(tri)]))) == ["polygon"] * 3
    stacked = theory.classify_geometry(np.stack([W, -W]))
    assert stacked.shape == (2, 4) and (stacked[0] == stacked[1]).all()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call,fragments",
    [
        (lambda: theory.phase(0.0, 0.5), ["relative_importance=0", "expected relative importances > 0"]),
        (lambda: theory.phase(-1.0, 0.5), ["relative_importance=-1", "> 0"]),
        (lambda: theory.phase(1.0, 0.0), ["density=0", "expected densities in (0, 1]"]),
        (lambda: theory.phase(1.0, 1.5), ["density=1.5", "(0, 1]"]),
        (
            lambda: theory.candidate_losses(np.ones(3), np.full(4, 0.5)),
            ["density=", "the shape of relative_importance (3,)", "got shape (4,)"],
        ),
        (lambda: theory.candidate_losses(1.0, 0.5, n_features=5), ["n_features=5", "expected 2"]),
        (lambda: theory.phase("a", 0.5), ["relative_importance='a'"]),
        (lambda: theory.phase(1.0, math.nan), ["density=nan", "finite"]),
        (lambda: theory.classify_geometry(np.ones(3)), ["W=", "(..., hidden, feature)"]),
        (lambda: theory.boundaries(2, importance_range=(2, 10)), ["importance_range=", "0 < low < 1 < high"]),
        (lambda: theory.near_boundary(1.0, 0.5, margin=-1), ["margin=-1"]),
        (lambda: theory.ignored_loss([]), ["density=", "empty"]),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, fragments):
    with pytest.raises(ValueError) as err:
        call()
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


# --------------------------------------------------------------------------- the checker


def reference(r, p):
    ig = p / 3 - p**2 / 4
    return r * ig, ig + 0 * r, (1 + r) * p**2 / 6


def test_check_candidate_losses_accepts_correct_answers(capsys):
    exercises.check_candidate_losses(reference)
    assert "passed" in capsys.readouterr().out

    def other(r, p):  # another correct spelling: from the library, as a list
        L = theory.candidate_losses(r, p)
        return [L["extra ignored"], L["extra dedicated"], L["extra antipodal"]]

    exercises.check_candidate_losses(other)


@pytest.mark.parametrize(
    "wrong,fragment",
    [
        (lambda r, p: (r * p / 3, p / 3 - p**2 / 4 + 0 * r, (1 + r) * p**2 / 6), "not E[x²] = p/3"),
        (
            lambda r, p: (p / 3 - p**2 / 4 + 0 * r, p / 3 - p**2 / 4 + 0 * r, (1 + r) * p**2 / 6),
            "multiply by its importance r",
        ),
        (
            lambda r, p: (r * (p / 3 - p**2 / 4), r * (p / 3 - p**2 / 4), (1 + r) * p**2 / 6),
            "feature 0 (importance 1) is ignored",
        ),
        (lambda r, p: (r * (p / 3 - p**2 / 4), p / 3 - p**2 / 4 + 0 * r, (1 + r) * p**2 / 3), "not 1/3"),
        (lambda r, p: (r * (p / 3 - p**2 / 4), p / 3 - p**2 / 4 + 0 * r, p**2 / 6 + 0 * r), "(1 + r) p²/6"),
        (
            lambda r, p: (r * (p / 3 - p**2 / 4), p / 3 - p**2 / 4 + 0 * r, (1 + r) * p / 6),
            "probability p², not p",
        ),
        (lambda r, p: None, "forget the `return`"),
        (lambda r, p: {"a": r}, "return a tuple of three arrays"),
        (lambda r, p: (r, p), "return a tuple of three arrays"),
        (lambda r, p: (r * 0 + np.nan, r, r), "NaN"),
        (lambda r, p: (np.zeros(2), r, r), "returned shape (2,)"),
    ],
)
def test_check_candidate_losses_rejects_mistakes(wrong, fragment):
    with pytest.raises(AssertionError) as err:
        exercises.check_candidate_losses(wrong)
    assert "check_candidate_losses" in str(err.value) and fragment in str(err.value), str(err.value)


def test_check_candidate_losses_reports_a_stub_and_refuses_a_non_function(capsys):
    def stub(r, p):
        raise NotImplementedError

    exercises.check_candidate_losses(stub)
    assert "not attempted yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="fn="):
        exercises.check_candidate_losses(3)
