"""The chapter "Superposition in richer settings" (book/richer.md): every claim its "What you
should see" boxes and its solutions make, asserted on the chapter's own results.

The `chapter` fixture runs the chapter's code against the result cache of the book this test
session built (tests/claims.py), so the weights below are the very weights the chapter's figures
show. The signatures are those of shared/science-targets.md: T9 (correlated pairs orthogonal,
anticorrelated pairs antipodal, three correlated pairs side by side, collapsing toward PCA as
density rises), T10 (the neuron model: monosemantic when dense, polysemantic as features get
sparse, features on pairs of neurons at the sparsest) and T11 (computing |x|: a positive-side
and a negative-side neuron per feature; 100 -> 40 polysemantic as p falls, important features
monosemantic longest), each on the lowest-loss of the chapter's restarts; and the stretch
section's double descent (finite training sets: data points stored at small T, features at
large T, a bump in the test loss between; the shape is asserted, not where the peak sits);
and T12 (adversarial vulnerability rising with the features per dimension).

Each check is a function of the trained weights (``check_*``), so it can be pointed at other
results.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from claims import claims
from scipy.stats import spearmanr

from toy_lib import exercises, geometry, metrics

THREE_DENSITIES = [0.5, 0.3, 0.1, 0.03, 0.01]
NEURON_DENSITIES = [0.75, 0.35, 0.15, 0.1, 0.06, 0.02, 0.01]
ABS_DENSITIES = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003]


@pytest.fixture(scope="module")
def ns(chapter):
    return chapter("richer")


def cos(W, i: int, j: int) -> float:
    W = torch.as_tensor(W, dtype=torch.float64)
    return float(W[:, i] @ W[:, j] / (W[:, i].norm() * W[:, j].norm()))


def poly_count(W, threshold: float = 0.9, min_norm: float = 0.1) -> int:
    W = np.asarray(W, dtype=np.float64)
    alive = np.linalg.norm(W, axis=-1) > min_norm
    return int(((geometry.top_feature_share(W) < threshold) & alive).sum())


def feature_shares(W) -> tuple[np.ndarray, np.ndarray]:
    """Per feature (column): the share of its squared weight on its top neuron, on its top two."""
    sq = np.sort(np.asarray(W, dtype=np.float64) ** 2, axis=0)[::-1]
    total = np.maximum(sq.sum(axis=0), 1e-12)
    return sq[0] / total, (sq[0] + sq[1]) / total


# --------------------------------------------------------------------------- the checks


def check_correlated_pairs(W) -> None:
    """T9: features in correlated pairs (0, 1), (2, 3) represented, partners orthogonal."""
    norms = metrics.feature_norms(W)
    np.testing.assert_allclose(norms, 1.0, atol=0.15)
    for i, j in ((0, 1), (2, 3)):
        assert abs(cos(W, i, j)) < 0.1, f"correlated partners {i}, {j}: cos = {cos(W, i, j):.3f}"


def check_anticorrelated_pairs(W) -> None:
    """T9: anticorrelated partners antipodal."""
    np.testing.assert_allclose(metrics.feature_norms(W), 1.0, atol=0.15)
    for i, j in ((0, 1), (2, 3)):
        assert cos(W, i, j) < -0.9, f"anticorrelated partners {i}, {j}: cos = {cos(W, i, j):.3f}"


def check_side_by_side(W) -> None:
    """T9, sparse: all six features represented, each pair's partners neighbours on the circle,
    at an angle well under 90° (cos above 0.17, i.e. under 80°)."""
    norms = metrics.feature_norms(W)
    assert np.all((norms > 0.8) & (norms < 1.2)), f"norms {norms}"
    order = np.argsort(metrics.feature_angles_2d(W))
    for a in range(3):
        i, j = 2 * a, 2 * a + 1
        pi, pj = int(np.where(order == i)[0][0]), int(np.where(order == j)[0][0])
        assert (pi - pj) % 6 in (1, 5), f"pair {a} is not side by side: angular order {order}"
        assert cos(W, i, j) > 0.17, f"pair {a}: cos = {cos(W, i, j):.3f}"


def check_collapse(three_W) -> None:
    """T9, dense: the in-pair cosine grows with density; at p = 0.5 every pair on one direction."""
    in_pair = [np.mean([cos(W, 2 * a, 2 * a + 1) for a in range(3)]) for W in three_W]
    # listed densest first: the mean cosine must not rise as the density falls
    assert all(b <= a + 0.05 for a, b in zip(in_pair, in_pair[1:])), f"mean in-pair cosines {in_pair}"
    dense = three_W[0]
    assert min(cos(dense, 2 * a, 2 * a + 1) for a in range(3)) > 0.95
    assert metrics.feature_norms(dense).mean() < 0.9


def check_neurons(Ws) -> None:
    """T10 on the seven densities, densest first."""
    dense = np.asarray(Ws[0], dtype=np.float64)
    top1, _ = feature_shares(dense)
    norms = np.linalg.norm(dense, axis=0)
    assert np.all(top1[:5] >= 0.9), f"top-neuron shares of features 0-4 at p = 0.75: {top1[:5]}"
    assert len(set(np.abs(dense[:, :5]).argmax(axis=0).tolist())) == 5, "one neuron per feature"
    assert np.all(norms[5:] < 0.1), f"features 5-9 should not be represented: {norms[5:]}"
    counts = [poly_count(W) for W in Ws]
    assert counts[0] == 0, counts
    assert all(b >= a for a, b in zip(counts, counts[1:])), f"polysemantic counts fall: {counts}"
    assert all(c == 5 for c in counts[NEURON_DENSITIES.index(0.1) :]), counts
    for k, p in enumerate(NEURON_DENSITIES):
        if p <= 0.02:
            W = np.asarray(Ws[k], dtype=np.float64)
            kept = np.linalg.norm(W, axis=0) > 0.5
            top1, top2 = feature_shares(W)
            assert top2[kept].mean() >= 0.75, f"p = {p}: top-two share {top2[kept].mean():.2f}"
            # "its top neuron alone clearly less": at most 3/4, and at least 0.1 below the top two
            one, two = top1[kept].mean(), top2[kept].mean()
            assert one <= 0.75 and one <= two - 0.1, f"p = {p}: top-one share {one:.2f}, top two {two:.2f}"


def check_abs_small(W1, W2, loss) -> None:
    """T11, 3 -> 6: a positive-side and a negative-side neuron per feature, test MSE < 1e-3."""
    W1, W2 = np.asarray(W1), np.asarray(W2)
    assert loss < 1e-3, f"test MSE {loss:.2e}"
    for f in range(3):
        pos, neg = int(W1[:, f].argmax()), int(W1[:, f].argmin())
        assert W1[pos, f] > 0.5 and W1[neg, f] < -0.5, f"feature {f}: {W1[:, f]}"
        assert W2[f, pos] > 0.5 and W2[f, neg] > 0.5, f"feature {f} read out: {W2[f]}"
        for j in (pos, neg):
            others = [g for g in range(3) if g != f]
            assert np.abs(W1[j, others]).max() < 0.1 * abs(W1[j, f]), f"neuron {j}: {W1[j]}"


def mono_features(W, threshold: float = 0.9, min_norm: float = 0.1) -> list[int]:
    W = np.asarray(W, dtype=np.float64)
    mono = (geometry.top_feature_share(W) >= threshold) & (np.linalg.norm(W, axis=-1) > min_norm)
    return sorted(set(np.abs(W[mono]).argmax(axis=1).tolist()))


def check_abs_big(W1s) -> None:
    """T11, 100 -> 40 at six densities, densest first."""
    counts = [poly_count(W) for W in W1s]
    assert counts[0] <= 4, counts
    assert all(b >= a for a, b in zip(counts, counts[1:])), f"polysemantic counts fall: {counts}"
    assert all(c == 40 for c in counts[ABS_DENSITIES.index(0.01) :]), counts
    compared = 0
    for p, W in zip(ABS_DENSITIES, W1s):
        kept = mono_features(W)
        represented = np.flatnonzero(np.linalg.norm(np.asarray(W), axis=0) > 0.5)
        lost = [f for f in represented if f not in kept]
        if kept and lost:
            compared += 1
            assert np.mean(kept) < np.mean(lost) - 1, (
                f"p = {p}: kept a monosemantic neuron {kept}, lost it {lost}"
            )
    assert compared >= 2, (
        "the claim needs densities where some features kept a monosemantic neuron and some lost it"
    )


def _angle_gaps(vectors) -> np.ndarray:
    """The gaps (degrees) between the directions of 2-D vectors ``(k, 2)``, around the circle."""
    v = np.asarray(vectors, dtype=np.float64)
    angles = np.sort(np.degrees(np.arctan2(v[:, 1], v[:, 0])))
    return np.diff(np.append(angles, angles[0] + 360))


def check_regular_polygon(vectors, what: str, spread: float = 1.25) -> None:
    """The directions of ``vectors`` ``(k, 2)``, k >= 3, evenly spaced around the circle."""
    gaps = _angle_gaps(vectors)
    assert len(gaps) >= 3 and gaps.max() < spread * gaps.min(), (
        f"{what}: not a regular polygon, gaps between directions {gaps.round(1)} degrees"
    )


def check_stores_points(h, f) -> None:
    """Small T: the training points' hidden vectors ``h`` (T, 2) form a regular polygon, each
    longer than every feature's column ``f`` (n, 2)."""
    h_norms, f_norms = np.linalg.norm(h, axis=1), np.linalg.norm(f, axis=1)
    assert h_norms.min() > f_norms.max(), (
        f"small T: shortest training point {h_norms.min():.3f} not longer than the longest feature "
        f"{f_norms.max():.3f}"
    )
    check_regular_polygon(h, "small T, the training points")


def check_stores_features(h, f) -> None:
    """Large T: a handful of features (3 to 8 longer than 3/4 of the longest) form a regular
    polygon, the longest more than 5x the median training point's hidden vector."""
    h_norms, f_norms = np.linalg.norm(h, axis=1), np.linalg.norm(f, axis=1)
    long = f_norms > 0.75 * f_norms.max()
    assert 3 <= long.sum() <= 8, f"large T: {long.sum()} features longer than 3/4 of the longest"
    check_regular_polygon(f[long], "large T, the long features")
    assert f_norms.max() > 5 * np.median(h_norms), (
        f"large T: longest feature {f_norms.max():.3f}, median training point {np.median(h_norms):.3f}"
    )


def check_double_descent(test_loss, zero_loss: float) -> None:
    """The test loss against T: near the zero-output loss at the smallest T, a peak at an
    intermediate T more than 1.2x the first two and the last, and below the peak again at the
    largest T."""
    loss = np.asarray(test_loss, dtype=np.float64)
    peak = int(loss.argmax())
    assert 0 < peak < len(loss) - 1, f"the test loss peaks at an end (index {peak}): {loss}"
    assert loss[0] == pytest.approx(zero_loss, rel=0.1), f"smallest T: test loss {loss[0]:.3e}"
    assert loss[peak] > 1.2 * max(loss[0], loss[1], loss[-1]), f"no bump: {loss}"


# --------------------------------------------------------------------------- the claims


@pytest.mark.slow
@claims("box-richer-pairs")
def test_correlated_pairs_orthogonal_anticorrelated_antipodal(ns):
    check_correlated_pairs(ns["corr"].W[0])
    check_anticorrelated_pairs(ns["anti"].W[0])
    g = ns["glued"]
    Wc, Wa = ns["corr"].W[0], ns["anti"].W[0]
    assert g["corr_cos_max"] == pytest.approx(max(abs(cos(Wc, 0, 1)), abs(cos(Wc, 2, 3))))
    assert g["anti_cos_max"] == pytest.approx(max(cos(Wa, 0, 1), cos(Wa, 2, 3)))


@pytest.mark.slow
@claims("box-richer-three-pairs")
def test_three_correlated_pairs_side_by_side_then_collapse(ns):
    W = ns["three"].W
    for p in (0.03, 0.01):
        check_side_by_side(W[THREE_DENSITIES.index(p)])
    check_collapse(W)
    g = ns["glued"]
    assert g["three_cos_dense"] == pytest.approx(min(cos(W[0], 2 * a, 2 * a + 1) for a in range(3)))
    assert g["three_cos_sparse_min"] == pytest.approx(min(cos(W[-1], 2 * a, 2 * a + 1) for a in range(3)))


@pytest.mark.slow
@claims("box-richer-neurons")
def test_neuron_model_monosemantic_dense_polysemantic_sparse(ns):
    check_neurons(ns["neuron"].W.numpy())
    g = ns["glued"]
    top1, _ = feature_shares(ns["neuron"].W[0].numpy())
    assert g["neuron_dense_share_gap"] == pytest.approx(1 - top1[:5].min(), abs=1e-6)
    assert g["neuron_dense_share_gap"] < 0.1
    assert [g[f"neuron_poly_{k}"] for k in range(7)] == [poly_count(W) for W in ns["neuron"].W.numpy()]


@pytest.mark.slow
@claims("box-richer-abs-small")
def test_abs_model_has_a_positive_and_a_negative_neuron_per_feature(ns):
    r = ns["abs_small"]
    check_abs_small(r.W1[0], r.W2[0], float(r.final_loss[0]))


@pytest.mark.slow
@claims("box-richer-abs-big")
def test_abs_model_in_superposition_turns_polysemantic_as_features_get_sparse(ns):
    check_abs_big(ns["abs_big"].W1.numpy())
    # the figure shows features 0-29 only: the rest carry almost none of the weight (under 5%)
    assert np.all(ns["left_out"].numpy() < 0.05), ns["left_out"]
    g = ns["glued"]
    assert [g[f"abs_poly_{k}"] for k in range(6)] == [poly_count(W) for W in ns["abs_big"].W1.numpy()]
    for k in (ABS_DENSITIES.index(0.1), ABS_DENSITIES.index(0.03)):
        W = ns["abs_big"].W1[k].numpy()
        kept = mono_features(W)
        lost = [f for f in np.flatnonzero(np.linalg.norm(W, axis=0) > 0.5) if f not in kept]
        assert g[f"abs_kept_mean_{k}"] == pytest.approx(np.mean(kept))
        assert g[f"abs_lost_mean_{k}"] == pytest.approx(np.mean(lost))


@pytest.mark.slow
@claims("ex-richer-correlated-batch", "ex-richer-neuron-forward", "ex-richer-abs-loss")
def test_the_reference_solutions_pass_their_checkers(ns, capsys):
    exercises.check_correlated_batch(ns["correlated_batch"])
    exercises.check_neuron_forward(ns["neuron_forward"])
    exercises.check_abs_loss(ns["abs_loss"])
    assert capsys.readouterr().out.count("your function passed") == 3


@pytest.mark.slow
@claims("box-richer-double-descent")
def test_double_descent_points_then_features_and_a_bump_in_the_test_loss(ns):
    runs, sizes = ns["dd_runs"], ns["dd_sizes"]
    small, large = ns["dd_small"], ns["dd_large"]
    assert small == min(sizes[1:3]) and large == max(sizes)  # a small T and the largest
    vectors = {}
    for T in (small, large):
        W, X = runs[T].W[0].numpy(), runs[T].training_set()[0].numpy()
        vectors[T] = (X @ W.T, W.T)
    check_stores_points(*vectors[small])
    check_stores_features(*vectors[large])
    test_loss = [float(runs[T].final_loss[0]) for T in sizes]
    train_loss = [float(runs[T].loss_history[-1, 0]) for T in sizes]
    zero = 1 / runs[large].config.n_features
    check_double_descent(test_loss, zero)
    peak = int(np.argmax(test_loss))
    assert train_loss[sizes.index(small)] < 1e-6  # the few points are fitted exactly
    assert train_loss[peak] < zero  # at the peak it fits its training set, not fresh samples
    assert test_loss[-1] < zero  # "just below that level"
    g = ns["glued"]
    assert g["dd_zero_loss"] == pytest.approx(zero)
    assert g["dd_peak_T"] == sizes[peak]
    assert g["dd_peak_loss"] == pytest.approx(test_loss[peak])
    assert (g["dd_first_loss"], g["dd_last_loss"]) == pytest.approx((test_loss[0], test_loss[-1]))
    assert g["dd_peak_ratio"] == pytest.approx(test_loss[peak] / max(test_loss[0], test_loss[-1]))
    h_small, f_small = vectors[small]
    h_large, f_large = vectors[large]
    f_norms = np.linalg.norm(f_large, axis=1)
    assert g["dd_small_h_min"] == pytest.approx(np.linalg.norm(h_small, axis=1).min(), rel=1e-5)
    assert g["dd_small_f_max"] == pytest.approx(np.linalg.norm(f_small, axis=1).max(), rel=1e-5)
    assert g["dd_large_f_max"] == pytest.approx(f_norms.max(), rel=1e-5)
    assert g["dd_large_h_median"] == pytest.approx(np.median(np.linalg.norm(h_large, axis=1)), rel=1e-5)
    assert g["dd_large_n_long"] == int((f_norms > 0.75 * f_norms.max()).sum())


@claims("box-richer-adversarial")
def test_adversarial_gain_rises_with_features_per_dimension(ns):
    models, densities = ns["adv_models"], ns["adv_densities"]
    assert models.config.n_features == 200 and models.config.n_hidden == 20 and len(densities) == 26
    x = ns["adv_inputs"]
    # recomputed here, from the chapter's models and inputs (the attack is deterministic)
    gain = geometry.adversarial_gain(models.W, models.b, x, epsilon=0.1)
    assert np.array_equal(gain, ns["adv_gain"])
    fpd = 1 / metrics.dimensions_per_feature(models.W)
    assert densities[0] == 1.0 and abs(fpd[0] - 1) < 0.1  # the dense model: one feature per dimension
    assert 0.9 < gain[0] < 1.1  # "a gain of about 1"
    peak = int(np.argmax(gain))
    assert gain[peak] > 3 * gain[0]  # "a peak more than three times the dense model's gain"
    assert spearmanr(gain, fpd).statistic > 0.85  # "rank correlation above 0.85"
    assert gain[-1] < 0.9 * gain[peak] and fpd[-1] > fpd[peak]  # the gain falls back, fpd keeps rising
    # the prose: below ||W||_F^2 / m wherever that is above 2, less than half of it at the peak
    assert np.all(gain[fpd > 2] < fpd[fpd > 2]) and gain[peak] < 0.5 * fpd[peak]
    g = ns["glued"]
    assert g["adv_max_gain_over_fpd"] == pytest.approx((gain[fpd > 2] / fpd[fpd > 2]).max())
    assert g["adv_peak_gain_over_fpd"] == pytest.approx(gain[peak] / fpd[peak])
    # the dip: between 1/(1-S) = 2 and 3 the gain falls by more than 0.2 while fpd stays near 2
    band = (1 / densities >= 2) & (1 / densities <= 3.05)  # 1/(1-S) = 2.09, 2.51, 3.02
    assert np.all(np.abs(fpd[band] - 2) < 0.25), fpd[band]
    assert gain[band][0] - gain[band].min() > 0.2, gain[band]
    # the sparsest model: about two active features an input, most outputs held below zero ...
    W, b = models.W[-1].double(), models.b[-1].double()
    xs = x[-1].double()
    active = (xs > 0).sum(-1).float().mean().item()
    assert abs(active - 2) < 0.5 and g["adv_last_active"] == pytest.approx(active)
    pre = xs @ W.T @ W + b
    below = (pre < 0).double().mean().item()
    assert below > 0.9 and g["adv_last_below_zero"] == pytest.approx(below)
    # ... and a larger push finds more of them
    wider = geometry.adversarial_gain(models.W[-1:], models.b[-1:], x[-1:], epsilon=0.5)
    assert wider[0] > gain[-1] and g["adv_last_gain_wide"] == pytest.approx(wider[0])
    assert g["adv_dense_gain"] == pytest.approx(gain[0])
    assert (g["adv_peak_gain"], g["adv_peak_ratio"]) == pytest.approx((gain[peak], gain[peak] / gain[0]))
    assert g["adv_peak_inverse_density"] == pytest.approx(1 / densities[peak])
    assert (g["adv_peak_fpd"], g["adv_last_fpd"]) == pytest.approx((fpd[peak], fpd[-1]))
    assert g["adv_last_gain"] == pytest.approx(gain[-1])
    assert g["adv_rank_corr"] == pytest.approx(spearmanr(gain, fpd).statistic)


# --------------------------------------------------------------------------- the checks can fail


def _circle(angles_deg, norm: float = 1.0) -> np.ndarray:
    a = np.radians(np.asarray(angles_deg, dtype=float))
    return norm * np.stack([np.cos(a), np.sin(a)])  # (2, feature)


def test_the_pair_checks_tell_orthogonal_from_antipodal():
    square = _circle([0, 90, 180, 270])  # 0 ⊥ 1 and 2 ⊥ 3
    swapped = _circle([0, 180, 90, 270])  # 0, 1 antipodal and 2, 3 antipodal
    check_correlated_pairs(square)
    check_anticorrelated_pairs(swapped)
    with pytest.raises(AssertionError, match="correlated partners"):
        check_correlated_pairs(swapped)
    with pytest.raises(AssertionError, match="anticorrelated partners"):
        check_anticorrelated_pairs(square)


def test_the_side_by_side_check_refuses_pairs_split_across_the_circle():
    check_side_by_side(_circle([0, 60, 120, 180, 240, 300]))
    with pytest.raises(AssertionError, match="side by side"):
        check_side_by_side(_circle([0, 180, 60, 240, 120, 300]))  # partners opposite


def test_the_collapse_check_needs_collapsed_pairs_when_dense():
    hexagon = _circle([0, 60, 120, 180, 240, 300])
    collapsed = _circle([0, 0, 120, 120, 240, 240], norm=0.65)
    check_collapse(np.stack([collapsed, hexagon, hexagon]))
    with pytest.raises(AssertionError):
        check_collapse(np.stack([hexagon, collapsed, hexagon]))


def test_the_neuron_check_refuses_a_polysemantic_dense_model():
    dense = np.zeros((5, 10))
    dense[np.arange(5), np.arange(5)] = 1.0
    mixed = np.random.default_rng(0).normal(size=(5, 10))
    pairs = np.zeros((5, 10))
    for f in range(10):  # each feature on two neurons, every neuron polysemantic
        pairs[f % 5, f], pairs[(f + 1) % 5, f] = 1.0, 0.8
    check_neurons([dense, dense, mixed, mixed, mixed, pairs, pairs])
    with pytest.raises(AssertionError):
        check_neurons([mixed, dense, mixed, mixed, mixed, pairs, pairs])
    with pytest.raises(AssertionError, match="top-one share|top-two share"):
        spread = np.ones((5, 10))  # every feature spread evenly over all five neurons
        check_neurons([dense, dense, mixed, mixed, mixed, spread, spread])


def test_the_abs_check_needs_one_neuron_per_sign():
    W1 = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    W2 = np.abs(W1).T
    check_abs_small(W1, W2, 1e-6)
    with pytest.raises(AssertionError, match="feature 0"):
        check_abs_small(np.abs(W1), W2, 1e-6)  # two positive-side neurons, none for x < 0
    with pytest.raises(AssertionError, match="test MSE"):
        check_abs_small(W1, W2, 0.01)


def test_the_double_descent_checks_can_fail():
    pentagon = _circle([0, 72, 144, 216, 288]).T  # (5, 2)
    short = 0.3 * _circle(np.arange(0, 360, 7)).T
    check_stores_points(pentagon, short)
    check_stores_features(0.05 * _circle(np.arange(0, 360, 11)).T, np.concatenate([pentagon, short]))
    with pytest.raises(AssertionError, match="not longer"):
        check_stores_points(short, pentagon)
    with pytest.raises(AssertionError, match="regular polygon"):
        check_stores_points(_circle([0, 10, 20, 200, 300]).T, short)
    with pytest.raises(AssertionError, match="median training point"):
        check_stores_features(pentagon, np.concatenate([pentagon, short]))
    with pytest.raises(AssertionError, match="longer than 3/4"):
        check_stores_features(0.05 * pentagon, _circle(np.arange(0, 360, 11)).T)
    bump = [1.0e-3, 1.0e-3, 2.0e-3, 9.0e-3, 1.0e-3]
    check_double_descent(bump, 1e-3)
    with pytest.raises(AssertionError, match="no bump"):
        check_double_descent([1.0e-3, 1.0e-3, 1.1e-3, 1.0e-3], 1e-3)
    with pytest.raises(AssertionError, match="peaks at an end"):
        check_double_descent([1.0e-3, 2e-3, 3e-3, 5e-3], 1e-3)
