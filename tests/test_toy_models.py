"""The toy-models chapter (book/toy_models.md): every claim its "What you should see" boxes and
its solutions make, asserted on the chapter's own results.

The `chapter` fixture runs the chapter's code against the result cache of the book this test
session built (tests/claims.py), so the weights below are the very weights the chapter's figures
show: the same configurations, seeds and restarts, read from the cache, never trained again.
The science signatures are those of shared/science-targets.md: T1 (the pentagon), T2 (dense
features), T3 (antipodal pairs, the least important feature dropped) on the chapter's ReLU
sweep, T4 (the linear model keeps the top m features) on its linear sweep, each on the
lowest-loss of the chapter's restarts, with margin.

Each check is a function of the trained results (``check_*``), so it can be pointed at other
results too: ``python tests/test_toy_models.py`` shows which checks a sweep trained with fewer
restarts fails.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from claims import claims, code_cells
from conftest import REPO

import toy_lib
from toy_lib import exercises, metrics, theory

pytestmark = pytest.mark.slow

SPARSITIES = [0.0, 0.7, 0.9, 0.97, 0.99]
IMPORTANCE = 0.9 ** np.arange(5)


@pytest.fixture(scope="module")
def ns(chapter):
    return chapter("toy_models")


@pytest.fixture
def book_cache(built_book, monkeypatch):
    """Calls into the chapter's functions after it ran read the book's result cache too."""
    monkeypatch.setenv("TOY_LIB_CACHE_DIR", str(built_book.root / "_build" / ".toy_lib_cache"))


def at(s: float) -> int:
    return SPARSITIES.index(s)


def gram(W) -> np.ndarray:
    """``WᵀW`` of one model ``(hidden, feature)``: entry ``(i, j)`` is ``W_i · W_j``."""
    W = torch.as_tensor(W, dtype=torch.float64)
    return (W.T @ W).numpy()


# --------------------------------------------------------------------------- the checks


def check_dense(W, b) -> None:
    """T2 at S = 0: features 0 and 1 orthogonal with norm about 1, features 2-4 dropped with
    bias about E[x] = 1/2."""
    norms = metrics.feature_norms(W)
    np.testing.assert_allclose(norms[:2], 1.0, atol=0.05)
    cos01 = gram(W)[0, 1] / (norms[0] * norms[1])
    assert abs(cos01) < 0.05, f"features 0 and 1 should be at right angles, cos = {cos01:.3f}"
    assert np.all(norms[2:] < 0.1), f"features 2-4 should shrink to nothing, norms {norms}"
    np.testing.assert_allclose(np.asarray(b)[2:], 0.5, atol=0.05)


def check_pairs_drop_the_least_important(W) -> None:
    """T3 at S = 0.7: features 0-3 in two antipodal pairs (D = 1/2, length about 1), the least
    important feature (4) dropped."""
    norms = metrics.feature_norms(W)
    D = metrics.feature_dimensionality(W)
    dropped = [f for f in range(5) if norms[f] < 0.5]
    assert dropped == [4], f"the least important feature (4) should be dropped, not {dropped}; norms {norms}"
    assert norms[4] < 0.1
    np.testing.assert_allclose(norms[:4], 1.0, atol=0.1)
    np.testing.assert_allclose(D[:4], 0.5, atol=0.05)
    cos = gram(W)[:4, :4] / np.outer(norms[:4], norms[:4])
    for i in range(4):
        partners = [j for j in range(4) if j != i and cos[i, j] < -0.95]
        assert len(partners) == 1, f"feature {i} should have one antipodal partner, cos row {cos[i].round(2)}"


def check_kept_beats_the_swap(W, b, p: float = 0.3, n_samples: int = 1_000_000) -> None:
    """At S = 0.7 the kept model must have a lower loss than the same model with the roles of
    features 3 and 4 swapped (the arrangement that drops feature 3: a local minimum), measured
    on the same samples."""
    swap = [0, 1, 2, 4, 3]
    Ws = torch.stack([torch.as_tensor(W), torch.as_tensor(W)[:, swap]]).double()
    bs = torch.stack([torch.as_tensor(b), torch.as_tensor(b)[swap]]).double()
    imp = torch.tensor(np.stack([IMPORTANCE, IMPORTANCE]))
    gen = torch.Generator().manual_seed(1234)
    prob = torch.full((1, 5), p, dtype=torch.float64)
    total = torch.zeros(2, dtype=torch.float64)
    chunk = 200_000
    for _ in range(n_samples // chunk):
        x = toy_lib.generate_batch(prob, chunk, generator=gen).double().expand(2, -1, -1)
        total += toy_lib.loss_per_instance(x, toy_lib.forward(Ws, bs, x), imp)
    kept, swapped = (total / (n_samples // chunk)).tolist()
    assert kept < 0.98 * swapped, f"kept model loss {kept:.5f}, with features 3 and 4 swapped {swapped:.5f}"
    # ... and the wrong arrangement costs only a few percent: easy to miss with few restarts
    assert swapped < 1.15 * kept, f"kept model loss {kept:.5f}, with features 3 and 4 swapped {swapped:.5f}"


def check_pentagon(W, b, gap_tol: float, d_tol: float = 0.02) -> None:
    """T1: five gaps of 72° ± gap_tol, every D_i = 0.40 ± d_tol, Σ D_i = 2 ± 0.05, equal norms a
    little above 1 (about 1.13), negative biases (about -0.25)."""
    gaps = metrics.angular_gaps_2d(W)
    assert len(gaps) == 5, f"all five features should be represented, gaps {gaps}"
    np.testing.assert_allclose(gaps, 72.0, atol=gap_tol)
    D = metrics.feature_dimensionality(W)
    np.testing.assert_allclose(D, 0.40, atol=d_tol)
    assert abs(D.sum() - 2.0) < 0.05
    norms = metrics.feature_norms(W)
    assert norms.max() / norms.min() < 1.05, f"norms should be equal, got {norms}"
    assert np.all((norms > 1.0) & (norms < 1.25)), f"norms should be a little above 1, got {norms}"
    b = np.asarray(b)
    assert np.all(b < 0), f"all biases should be negative, got {b}"
    assert -0.35 < b.mean() < -0.15, f"biases should be about -0.25, got {b}"


def check_linear_keeps_top_m(W) -> None:
    """T4: WᵀW = P (1 on the first two diagonal entries, 0 elsewhere) within 0.05, ||W||_F² = m =
    2 within 0.05, so one dimension per feature."""
    P = np.diag([1.0, 1.0, 0.0, 0.0, 0.0])
    err = np.abs(gram(W) - P).max()
    assert err < 0.05, f"WᵀW should be the projector onto features 0 and 1, off by {err:.3f}"
    frob = float((torch.as_tensor(W, dtype=torch.float64) ** 2).sum())
    assert abs(frob - 2.0) < 0.05, f"||W||_F² should be m = 2, got {frob:.3f}"
    assert abs(float(metrics.dimensions_per_feature(W)) - 1.0) < 0.03


# --------------------------------------------------------------------------- the setup


def test_the_chapter_trains_through_the_cache_with_enough_restarts(ns):
    """Every training run goes through cached_train (so these tests read the build's results),
    with the settings the checks below assume."""
    md = REPO / "book" / "toy_models.md"
    executed = [code for tags, code in code_cells(md) if "skip-execution" not in tags]
    plain = [code for code in executed if re.search(r"toy_lib\.train\(", code)]
    assert not plain, f"train through toy_lib.cached_train, not toy_lib.train:\n{plain[0]}"
    assert ns["sparsities"] == SPARSITIES
    np.testing.assert_allclose(ns["importance"], IMPORTANCE)
    result, linear = ns["result"], ns["linear"]
    assert result.config.activation == "relu" and linear.config.activation == "linear"
    assert result.recipe["restarts"] >= 16 and result.recipe["steps"] == 10_000
    assert linear.recipe["restarts"] >= 4 and linear.recipe["steps"] == 10_000
    np.testing.assert_array_equal(linear.config.probability_matrix(), result.config.probability_matrix())
    # the kept start of every setting is the lowest-loss one
    np.testing.assert_allclose(result.final_loss, result.restart_losses.min(dim=1).values)
    assert ns["single"].recipe["steps"] == 10_000


# --------------------------------------------------------------------------- the boxes


@claims("box-toy-sweep")
def test_dense_features_keep_the_two_most_important_orthogonal(ns):
    r = ns["result"]
    check_dense(r.W[at(0.0)], r.b[at(0.0)])


@claims("box-toy-sweep")
def test_at_s07_two_antipodal_pairs_and_the_least_important_dropped(ns):
    r = ns["result"]
    check_pairs_drop_the_least_important(r.W[at(0.7)])
    check_kept_beats_the_swap(r.W[at(0.7)], r.b[at(0.7)])


@claims("box-toy-sweep")
def test_from_s09_on_a_regular_pentagon(ns):
    r = ns["result"]
    check_pentagon(r.W[at(0.9)], r.b[at(0.9)], gap_tol=5.0, d_tol=0.03)
    for s in (0.97, 0.99):
        check_pentagon(r.W[at(s)], r.b[at(s)], gap_tol=3.0)


@claims("box-toy-geometry")
def test_pentagon_at_high_sparsity(ns):
    """T1 on the model of the box, and the numbers the prose glues from it."""
    r, glued = ns["result"], ns["glued"]
    W, b = r.W[at(0.99)], r.b[at(0.99)]
    check_pentagon(W, b, gap_tol=3.0)
    gaps, D = metrics.angular_gaps_2d(W), metrics.feature_dimensionality(W)
    assert glued["gap_min"] == pytest.approx(gaps.min()) and glued["gap_max"] == pytest.approx(gaps.max())
    assert glued["dim_sum"] == pytest.approx(D.sum())
    assert glued["bias_mean"] == pytest.approx(float(b.mean()))
    # "a lone feature 0 comes back within own_error of x0 for x0 from 1/2 to 1", and that is small
    assert glued["own_error"] < 0.15


@claims("box-toy-linear")
def test_linear_model_keeps_the_top_m_features(ns):
    """T4 at every sparsity, on the lowest-loss of the linear model's restarts."""
    linear, glued = ns["linear"], ns["glued"]
    for s in SPARSITIES:
        check_linear_keeps_top_m(linear.W[at(s)])
    assert glued["linear_gram_error"] < 0.05
    assert abs(glued["linear_frob_min"] - 2) < 0.05 and abs(glued["linear_frob_max"] - 2) < 0.05
    assert abs(glued["dpf_linear_min"] - 1) < 0.03 and abs(glued["dpf_linear_max"] - 1) < 0.03
    # the ReLU model: one dimension per feature when dense, below 2/5 at S = 0.99
    assert abs(glued["dpf_relu_dense"] - 1) < 0.03
    assert 0.25 < glued["dpf_relu_sparse"] < 0.4


@claims("box-toy-wtw")
def test_wtw_and_superposition_scores(ns):
    r = ns["result"]
    sup = metrics.superposition_score(r.W)
    norms = metrics.feature_norms(r.W)
    # S = 0: a 2 x 2 identity block, zeros elsewhere, two dark bars of height 1
    G = gram(r.W[at(0.0)])
    np.testing.assert_allclose(G[:2, :2], np.eye(2), atol=0.05)
    rest = G.copy()
    rest[:2, :2] = 0
    assert np.abs(rest).max() < 0.05
    assert np.all(sup[at(0.0), :2] < 0.05)
    # S = 0.7: one strongly negative partner for each of features 0-3, right angles to the
    # others, feature 4 empty; superposition about 1 for each member of a pair
    G = gram(r.W[at(0.7)])
    for i in range(4):
        off = [G[i, j] for j in range(4) if j != i]
        assert sum(v < -0.9 for v in off) == 1 and sum(abs(v) < 0.1 for v in off) == 2, G[i].round(2)
    assert np.abs(G[4]).max() < 0.02 and norms[at(0.7), 4] < 0.05
    np.testing.assert_allclose(sup[at(0.7), :4], 1.0, atol=0.1)
    # S >= 0.9: every entry non-zero; per row two positive entries and two larger negative ones;
    # bright bars of about equal height a little above 1
    for s in (0.9, 0.97, 0.99):
        G = gram(r.W[at(s)])
        assert np.abs(G).min() > 0.2, G.round(2)
        for i in range(5):
            off = np.delete(G[i], i)
            pos, neg = off[off > 0], off[off < 0]
            assert len(pos) == 2 and len(neg) == 2 and np.abs(neg).min() > pos.max(), G[i].round(2)
        assert np.all((sup[at(s)] > 1.6) & (sup[at(s)] < 2.3)), sup[at(s)]
        assert norms[at(s)].max() / norms[at(s)].min() < 1.1 and np.all(norms[at(s)] > 1.0)


# --------------------------------------------------------------------------- the prose


def test_why_the_relu_matters_numbers(ns):
    """The leaks of a lone feature 0, and what the ReLU and the bias do to them, checked by
    running the chapter's S = 0.99 model on lone-feature inputs."""
    r, glued = ns["result"], ns["glued"]
    W, b = r.W[at(0.99)].double(), r.b[at(0.99)].double()
    row0 = gram(W)[0]
    near = [glued["near_0"], glued["near_1"]]
    far = [glued["far_0"], glued["far_1"]]
    assert sorted(near + far) == [1, 2, 3, 4]
    assert all(row0[j] > 0 for j in near) and all(row0[j] < 0 for j in far)
    assert min(abs(row0[j]) for j in far) > max(row0[j] for j in near), "the far ones leak more strongly"
    for k in range(2):
        assert glued[f"leak_near_{k}"] == pytest.approx(row0[near[k]])
        assert glued[f"leak_far_{k}"] == pytest.approx(row0[far[k]])
    clip = glued["clip_below"]
    assert 0.3 < clip < 1.0

    def lone(x0: float) -> np.ndarray:
        x = torch.zeros(1, 1, 5, dtype=torch.float64)
        x[0, 0, 0] = x0
        return toy_lib.forward(W[None], b[None], x)[0, 0].numpy()

    for x0 in np.linspace(0.01, 1.0, 100):
        assert np.all(lone(x0)[far] == 0), "the far vertices' leaks are clipped to exactly 0"
    assert np.all(lone(0.99 * clip)[near] == 0), "below clip_below both neighbours' leaks are cancelled"
    assert lone(1.01 * clip)[near].max() > 0, "above clip_below a neighbour reports a false value"
    assert lone(1.0)[near].max() == pytest.approx(glued["worst_leak"])


def test_loss_curve_prose(ns):
    """ "Most of the drop happens in the first thousand steps"; the glued numbers are the run's."""
    hist = ns["single"].loss_history[:, 0].double().numpy()
    start, end = hist[:50].mean(), hist[-500:].mean()
    assert ns["glued"]["loss_start"] == pytest.approx(start) and ns["glued"]["loss_end"] == pytest.approx(end)
    at_1000 = hist[950:1050].mean()
    assert (start - at_1000) / (start - end) > 0.5
    assert end < ns["glued"]["loss_zero"], "training ends below the always-zero baseline"


# --------------------------------------------------------------------------- the solutions


CHECKERS = {
    "generate_batch": exercises.check_generate_batch,
    "forward": exercises.check_forward,
    "loss": exercises.check_loss,
}


@claims("ex-toy-generate-batch", "ex-toy-forward", "ex-toy-loss")
@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_code_solution_passes_its_checker(ns, name):
    CHECKERS[name](ns[name])


@claims("ex-toy-feature-dimensionality")
def test_feature_dimensionality_solution_passes_and_matches_the_table(ns):
    exercises.check_feature_dimensionality(ns["feature_dimensionality"])
    W = ns["result"].W[at(0.99)]
    np.testing.assert_allclose(
        ns["feature_dimensionality"](W).numpy(), metrics.feature_dimensionality(W), atol=1e-5
    )


@claims("ex-toy-compression")
def test_compression_solution(ns):
    r, linear, glued = ns["result"], ns["linear"], ns["glued"]
    W0 = r.W[at(0.0)].double()
    assert glued["dense_overlap"] == pytest.approx(float(W0[:, 0] @ W0[:, 1]), abs=1e-6)
    assert abs(glued["dense_overlap"]) < 0.02, "at S = 0 features 0 and 1 have directions of their own"
    ratio = float(linear.final_loss[at(0.99)] / r.final_loss[at(0.99)])
    assert glued["loss_ratio_sparse"] == pytest.approx(ratio)
    assert ratio > 3, "the sparse ReLU model reconstructs far more than the linear one"
    # projecting h on W_0 picks up every other feature: row 0 of WᵀW, neighbours and far ones
    row0 = gram(r.W[at(0.99)])[0]
    assert np.all(np.abs(row0[1:]) > 0.2)
    near, far = [glued["near_0"], glued["near_1"]], [glued["far_0"], glued["far_1"]]
    assert sorted(near) == sorted(np.argsort(-row0[1:])[:2] + 1)
    assert min(abs(row0[j]) for j in far) > max(abs(row0[j]) for j in near)


@claims("ex-toy-steering")
def test_steering_solution(ns):
    r, glued = ns["result"], ns["glued"]
    W, b = r.W[at(0.99)].double(), r.b[at(0.99)].double()
    unit0 = W[:, 0] / W[:, 0].norm()
    steer = (W.T @ unit0).numpy()  # alpha * steer[j]: the push on feature j
    near, far = [glued["near_0"], glued["near_1"]], [glued["far_0"], glued["far_1"]]
    for k in range(2):
        assert glued[f"steer_near_{k}"] == pytest.approx(steer[near[k]]) and steer[near[k]] > 0
        assert glued[f"steer_far_{k}"] == pytest.approx(steer[far[k]]) and steer[far[k]] < 0

    def steered(alpha: float) -> np.ndarray:
        """The model's output when no feature is active and alpha * Ŵ_0 is added to h."""
        h = alpha * unit0
        return torch.relu(W.T @ h + b).numpy()

    a0, a1 = glued["alpha_on_0"], glued["alpha_on_1"]
    first, second = glued["first_on_0"], glued["first_on_1"]
    assert sorted([first, second]) == sorted(near) and 0 < a0 <= a1
    others = [j for j in range(1, 5)]
    assert np.all(steered(0.99 * a0)[others] == 0), "small pushes are absorbed by the bias"
    assert steered(0.99 * a0)[0] > 0, "only feature 0, the one steered towards, is reported"
    assert steered(1.01 * a0)[first] > 0
    if a1 > 1.02 * a0:
        assert steered(1.01 * a0)[second] == 0
    assert np.all(steered(1.01 * a1)[near] > 0)
    for alpha in (0.5, 1, 2, 5, 10):
        assert np.all(steered(alpha)[far] == 0), "the far vertices are pushed down and clipped"


@claims("ex-toy-analyze-superposition")
def test_analyze_superposition_solution(ns, book_cache, capsys):
    exercises.check_analyze_superposition(ns["analyze_superposition"])
    assert "passed" in capsys.readouterr().out
    glued = ns["glued"]
    assert abs(glued["analyze_sparse_cos"] - exercises.PENTAGON_MEAN_COS) < 0.03
    assert glued["analyze_dense_cos"] < 0.05


@claims("ex-toy-pentagon-dimensionality")
def test_regular_polygons_have_dimensionality_two_over_k():
    for k in range(2, 9):
        angles = 2 * np.pi * np.arange(k) / k
        W = 1.3 * np.stack([np.cos(angles), np.sin(angles)])
        D = metrics.feature_dimensionality(W)
        expected = 0.5 if k == 2 else 2 / k
        np.testing.assert_allclose(D, expected, atol=1e-12)
        assert D.sum() == pytest.approx(1.0 if k == 2 else 2.0)
    assert math.isclose(
        exercises.PENTAGON_MEAN_COS, (math.cos(math.radians(72)) + math.cos(math.radians(36))) / 2
    )


# --------------------------------------------------------------------------- 20 -> 5, linear vs ReLU

DENSITIES_20 = [1.0, 0.3, 0.1, 0.03, 0.01]


def check_linear_projector(W, m: int = 5, tol: float = 0.05) -> None:
    """T4 for n features in m dimensions: WᵀW within tol of the projector onto the m most
    important features, ||W||_F² within tol of m, dark bars (superposition below tol) for them."""
    n = W.shape[-1]
    P = np.diag([1.0] * m + [0.0] * (n - m))
    err = np.abs(gram(W) - P).max()
    assert err < tol, f"WᵀW should be the projector onto features 0-{m - 1}, off by {err:.3f}"
    frob = float((torch.as_tensor(W, dtype=torch.float64) ** 2).sum())
    assert abs(frob - m) < tol, f"||W||_F² should be m = {m}, got {frob:.3f}"
    assert np.all(metrics.superposition_score(W)[:m] < tol)


def check_relu_twenty(W_relu, W_linear) -> None:
    """T5: dense ReLU = linear; the represented features are the most important ones, their
    number never falls as p falls and grows overall; the features in superposition are the
    least important of the represented ones; at p = 0.3 features 0 and 1 are alone and some
    others are shared."""
    assert np.abs(gram(W_relu[0]) - gram(W_linear[0])).max() < 0.05, "at p = 1 ReLU should equal linear"
    kept = metrics.represented(W_relu)
    sup = metrics.superposition_score(W_relu)
    counts = kept.sum(axis=1)
    assert np.all(np.diff(counts) >= 0) and counts[-1] > counts[0], f"represented counts {counts}"
    for k, p in enumerate(DENSITIES_20):
        idx = np.flatnonzero(kept[k])
        assert list(idx) == list(range(len(idx))), f"p = {p}: represented {idx} are not the most important"
        alone = idx[sup[k, idx] < 0.5]
        shared = idx[sup[k, idx] >= 0.5]
        if len(alone) and len(shared):
            assert alone.max() < shared.min(), f"p = {p}: alone {alone}, in superposition {shared}"
    at03 = DENSITIES_20.index(0.3)
    assert np.all(sup[at03, :2] < 0.1) and np.sum(kept[at03] & (sup[at03] >= 0.5)) >= 2
    # ... and the shared ones there are antipodal pairs: one partner each at cosine below -0.9
    W = np.asarray(W_relu[at03], dtype=np.float64)
    geometry = theory.classify_geometry(W)
    shared03 = np.flatnonzero(kept[at03] & (sup[at03] >= 0.5))
    assert np.all(geometry[shared03] == "antipodal"), geometry


@claims("box-toy-twenty")
def test_twenty_features_linear_keeps_top_five_relu_packs_more(ns):
    linear, relu, glued = ns["linear_20"], ns["relu_20"], ns["glued"]
    assert ns["densities_20"] == DENSITIES_20
    np.testing.assert_allclose(relu.config.importance_matrix()[0], 0.7 ** np.arange(20))
    assert relu.config.activation == "relu" and linear.config.activation == "linear"
    assert relu.recipe["restarts"] >= 4 and relu.recipe["steps"] == 10_000
    assert linear.recipe["steps"] == 10_000
    for k in range(len(DENSITIES_20)):
        check_linear_projector(linear.W[k])
    check_relu_twenty(relu.W, linear.W)
    # the glued numbers are these results'
    P = np.diag([1.0] * 5 + [0.0] * 15)
    assert glued["lin20_gram_error"] == pytest.approx(
        max(np.abs(gram(W) - P).max() for W in linear.W), abs=1e-5
    )
    assert glued["lin20_gram_error"] < 0.05
    assert abs(glued["lin20_frob_min"] - 5) < 0.05 and abs(glued["lin20_frob_max"] - 5) < 0.05
    assert glued["relu20_dense_diff"] < 0.05
    kept = metrics.represented(relu.W)
    shared = metrics.superposition_score(relu.W) > 0.5
    for k in range(len(DENSITIES_20)):
        assert glued[f"relu20_kept_{k}"] == int(kept[k].sum())
        assert glued[f"relu20_shared_{k}"] == int((kept[k] & shared[k]).sum())
    assert glued["relu20_shared_4"] > 0


# --------------------------------------------------------------------------- phase diagrams


def phase_agreement(W, n: int, R, P) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of cells away from the boundaries where the trained extra feature does what the
    theory says; with the trained and predicted phase grids and the mask of cells away."""
    trained = theory.classify_geometry(W)[:, -1].reshape(R.shape)
    predicted = theory.phase(R, P, n_features=n)
    away = ~theory.near_boundary(R, P, n_features=n, margin=0.15)
    return float((trained == predicted)[away].mean()), trained, predicted, away


@claims("box-toy-phase")
def test_phase_diagrams_agree_with_the_closed_form_theory(ns):
    R, P, glued = ns["R"], ns["P"], ns["glued"]
    np.testing.assert_allclose(ns["rel_importance"], np.geomspace(0.1, 10, 11))
    np.testing.assert_allclose(ns["densities_phase"], np.geomspace(1, 0.01, 11))
    for n in (2, 3):
        run = ns["phase_runs"][n]
        assert run.config.n_features == n and run.config.n_hidden == n - 1
        assert run.recipe["restarts"] == glued["phase_restarts"] >= 4 and run.recipe["steps"] == 10_000
        np.testing.assert_allclose(run.config.importance_matrix()[:, -1], R.ravel())
        np.testing.assert_allclose(run.config.importance_matrix()[:, :-1], 1.0)
        np.testing.assert_allclose(run.config.probability_matrix()[:, 0], P.ravel())
        agree, trained, predicted, away = phase_agreement(run.W, n, R, P)
        assert agree >= 0.85, f"{n} -> {n - 1}: agreement {agree:.0%} away from the boundaries"
        assert glued[f"agree_{n}"] == pytest.approx(agree) and glued[f"away_{n}"] == int(away.sum())
        np.testing.assert_array_equal(ns["trained_phase"][n], trained)
        assert glued["phase_cells"] == R.size
    # 2 -> 1: the three regions where the box says, on the trained grid
    _, t2, _, away2 = phase_agreement(ns["phase_runs"][2].W, 2, R, P)
    dense = P == 1.0
    assert np.all(t2[dense & (R < 0.8) & away2] == "ignored")
    assert np.all(t2[dense & (R > 1.25) & away2] == "dedicated")
    assert np.mean(t2[(P <= 0.1) & away2] == "antipodal") >= 0.9
    # 3 -> 2: left half as 2 -> 1; right of r = 1 the extra feature dedicated except at the lowest densities
    _, t3, _, away3 = phase_agreement(ns["phase_runs"][3].W, 3, R, P)
    right = (R > 1) & away3
    assert np.mean(t3[right] == "dedicated") >= 0.85
    assert np.all(P[right & (t3 != "dedicated")] <= 0.03), "exceptions only at the lowest densities"


def test_phase_prose_disagreements_sit_by_the_lines_or_at_the_lowest_densities(ns):
    """ "The disagreements sit next to the lines ... and at the lowest densities of 3 -> 2"."""
    R, P = ns["R"], ns["P"]
    for n in (2, 3):
        _, trained, predicted, away = phase_agreement(ns["phase_runs"][n].W, n, R, P)
        wrong_away = (trained != predicted) & away
        if n == 2:
            near = theory.near_boundary(R, P, n_features=2, margin=0.3)
            assert np.all(near[wrong_away]), "2 -> 1: every disagreement within 0.3 decades of a line"
        else:
            assert np.all(P[wrong_away] <= 0.03), "3 -> 2: away from the lines, only at the lowest densities"


@claims("ex-toy-candidate-losses")
def test_candidate_losses_solution(ns):
    exercises.check_candidate_losses(ns["candidate_losses"])
    assert ns["glued"]["switch_at_half"] == pytest.approx(4 / 9, rel=0.005)


# --------------------------------------------------------------------------- other results

if __name__ == "__main__":  # pragma: no cover
    # Point the checks at a sweep trained as the chapter once did (best of 4 restarts): the S = 0.7
    # checks fail on it. Needs about a minute of training.
    import sys

    restarts = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    config = toy_lib.ToyModelConfig(
        n_features=5,
        n_hidden=2,
        n_instances=5,
        feature_probability=[1 - s for s in SPARSITIES],
        importance=IMPORTANCE,
    )
    res = toy_lib.cached_train(config, steps=10_000, restarts=restarts, seed=0, device="cpu")
    for name, check in [
        ("dense (T2)", lambda: check_dense(res.W[0], res.b[0])),
        ("pairs, feature 4 dropped (T3)", lambda: check_pairs_drop_the_least_important(res.W[1])),
        ("kept beats the 3 <-> 4 swap", lambda: check_kept_beats_the_swap(res.W[1], res.b[1])),
        ("pentagon at S = 0.99 (T1)", lambda: check_pentagon(res.W[4], res.b[4], gap_tol=3.0)),
    ]:
        try:
            check()
            print(f"best of {restarts}: {name}: passes")
        except AssertionError as err:
            print(f"best of {restarts}: {name}: FAILS: {str(err).splitlines()[0]}")
