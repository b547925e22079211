"""Feature dimensionality with many features (200 -> 20) and the pentagon's collapse: the
library's plateau helpers, plots and checker, and every claim of the toy-models chapter's
sections on them, asserted on the chapter's own results (science targets T7 and T8).

The `chapter` fixture runs the chapter against the result cache of the book this session
built (tests/claims.py), so the weights below are the ones the chapter's figures show.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from claims import claims

from toy_lib import exercises, metrics, plots

PLATEAUS = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)


# --------------------------------------------------------------------------- the library


def test_plateau_values_are_the_geometries_shares():
    assert metrics.DIMENSIONALITY_PLATEAUS == PLATEAUS
    for value, _name, k, d in metrics.PLATEAU_GEOMETRIES:
        assert math.isclose(value, d / k)


def test_near_plateau_and_fraction():
    D = np.array([[0.5, 0.52, 0.48, 0.3], [0.66, 0.41, 0.0, 1.0]])
    np.testing.assert_array_equal(
        metrics.near_plateau(D), [[True, True, True, False], [True, True, False, True]]
    )
    np.testing.assert_array_equal(metrics.near_plateau([0.46], tol=0.05), [True])
    np.testing.assert_array_equal(metrics.near_plateau([0.46]), [False])
    np.testing.assert_allclose(metrics.nearest_plateau([0.69, 0.39, 0.36, 0.05]), [2 / 3, 0.4, 3 / 8, 3 / 8])
    assert metrics.plateau_fraction([0.5, 0.5, 0.3, 0.2]) == 0.5
    assert metrics.plateau_fraction([0.3], values=[0.3]) == 1.0


def test_longest_run():
    assert metrics.longest_run(np.array([True, True, False, True, True, True, False])) == (3, 6)
    assert metrics.longest_run([False, True, True]) == (1, 3)
    assert metrics.longest_run([True, False, True]) == (0, 1)  # the first of equal runs
    assert metrics.longest_run(np.zeros(4, dtype=bool)) == (0, 0)
    assert metrics.longest_run(np.zeros(0, dtype=bool)) == (0, 0)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: metrics.near_plateau([0.5, 1.5]),
            r"D=.*expected feature dimensionalities in \[0, 1\], got 1.5",
        ),
        (
            lambda: metrics.near_plateau([-0.1]),
            r"D=.*expected feature dimensionalities in \[0, 1\], got -0.1",
        ),
        (lambda: metrics.near_plateau([0.5], tol=0), r"tol=0: expected a number in \(0, 0.5\]"),
        (lambda: metrics.near_plateau([0.5], tol=float("nan")), r"tol=nan: expected"),
        (lambda: metrics.near_plateau([np.nan]), r"D=.*expected finite numbers"),
        (lambda: metrics.near_plateau([0.5], values=[0.0, 0.5]), r"values=.*expected a non-empty list"),
        (lambda: metrics.near_plateau([0.5], values=[]), r"values=.*expected a non-empty list"),
        (lambda: metrics.plateau_fraction([]), r"D=\[\]: expected at least one dimensionality"),
        (lambda: metrics.nearest_plateau("0.5"), r"D='0.5': expected real numbers"),
        (
            lambda: metrics.longest_run([1, 0, 1]),
            r"mask=.*expected a 1-D sequence of booleans, got shape \(3,\)",
        ),
        (lambda: metrics.longest_run(np.ones((2, 2), bool)), r"mask=.*expected a 1-D sequence of booleans"),
    ],
)
def test_plateau_helpers_refuse_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _sweep_weights(k=6, hidden=3, features=8, seed=0):
    rng = np.random.default_rng(seed)
    return np.geomspace(1, 0.05, k), rng.normal(size=(k, hidden, features))


def test_the_plots_draw_in_the_books_style():
    density, W = _sweep_weights()
    figs = [
        plots.dimensions_per_feature_curve(density, W, plateau=(1, 3)),
        plots.dimensionality_scatter(density, W),
        plots.sparser_feature_collapse(1 / density, W[:, :2, :5], feature=4, collapse=(2.0, 3.0)),
    ]
    for fig in figs:
        assert fig.get_figwidth() <= plots.MAX_WIDTH + 1e-9
        for text in fig.findobj(matplotlib.text.Text):
            if text.get_text() and text.get_visible():
                assert text.get_fontsize() >= plots.FONT_SIZE - 1e-9, text.get_text()
    # the scatter labels its six reference lines; the collapse figure names the features
    labels = {t.get_text() for t in figs[1].axes[0].texts}
    for frac in ("1", "3/4", "2/3", "1/2", "2/5", "3/8"):
        assert any(label.split()[0] == frac for label in labels), f"no reference line labelled {frac}"
    legend = [t.get_text() for t in figs[2].axes[1].get_legend().get_texts()]
    assert legend == ["0", "1", "2", "3"]
    for fig in figs:
        plt.close(fig)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d, W: plots.dimensions_per_feature_curve(d[:-1], W), r"W=.*one model per entry of density"),
        (lambda d, W: plots.dimensions_per_feature_curve(d * 2, W), r"density=.*densities 1 - S in \(0, 1\]"),
        (lambda d, W: plots.dimensions_per_feature_curve(d, W, plateau=(3, 3)), r"plateau=\(3, 3\)"),
        (lambda d, W: plots.dimensionality_scatter(-d, W), r"density=.*positive densities"),
        (lambda d, W: plots.dimensionality_scatter(d, W, min_norm=-1), r"min_norm=-1"),
        (lambda d, W: plots.sparser_feature_collapse(1 / d, W, collapse=(3, 2)), r"collapse=\(3, 2\)"),
        (lambda d, W: plots.sparser_feature_collapse(1 / d, W, feature=8), r"feature=8"),
        (lambda d, W: plots.sparser_feature_collapse(1 / d, W * np.nan), r"W=.*finite"),
    ],
)
def test_the_plots_refuse_bad_input(call, match):
    density, W = _sweep_weights()
    with pytest.raises(ValueError, match=match):
        call(density, W)
    plt.close("all")


def test_check_plateau_dimensionality_passes_the_reference(capsys):
    exercises.check_plateau_dimensionality(lambda k, d: d / k)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, diagnostic",
    [
        (lambda k, d: k / d, "features per dimension"),
        (lambda k, d: 1 / k, "share all n_hidden dimensions"),
        (lambda k, d: 2 / k, "around a circle"),
        (lambda k, d: np.array([d / k, d / k]), "expected one number"),
        (lambda k, d: None, "forget the `return`"),
        (lambda k, d: d / (k + 1), r"predicted D = 0.5, but its features measure D = 1"),
    ],
)
def test_check_plateau_dimensionality_fails_planted_mistakes(wrong, diagnostic):
    with pytest.raises(AssertionError, match=diagnostic):
        exercises.check_plateau_dimensionality(wrong)


# --------------------------------------------------------------------------- the chapter (slow)


@pytest.fixture(scope="module")
def ns(chapter):
    return chapter("toy_models")


def _many(ns):
    return ns["densities"], ns["many_result"]


@pytest.mark.slow
def test_the_sweep_is_the_advertised_one(ns):
    """200 -> 20, uniform importance, 25+ models from dense to p = 0.01, in one cached call."""
    densities, result = _many(ns)
    config = result.config
    assert (config.n_features, config.n_hidden) == (200, 20)
    assert config.n_instances == len(densities) >= 25
    np.testing.assert_allclose(config.importance_matrix(), 1.0)
    assert densities[0] == 1.0 and math.isclose(densities[-1], 0.01)
    assert np.all(np.diff(densities) < 0)
    assert ns["glued"]["dim_n_models"] == len(densities)


@pytest.mark.slow
@claims("box-toy-dims-per-feature")
def test_dims_per_feature_is_sticky_at_one_half(ns):
    """T7: m/||W||_F² about 1 when dense, then a contiguous run of sparsities within 0.04 of 1/2
    over which it moves much more slowly than on either side, then lower at p = 0.01."""
    densities, result = _many(ns)
    dpf = metrics.dimensions_per_feature(result.W)
    g = ns["glued"]
    assert abs(dpf[0] - 1.0) < 0.03 and g["dpf_dense_many"] == pytest.approx(dpf[0])
    # (the prose) dense and of equal importance, the 20 dimensions are spread over all 200
    # features: none has a norm above 0.5, yet ||W||_F² is 20
    assert not metrics.represented(result.W[0]).any()
    # sticky at 1 too, from the dense end
    d_start, d_stop = metrics.longest_run(np.abs(dpf - 1.0) < 0.03)
    assert d_start == 0 and d_stop >= 2, dpf.round(3)
    assert g["dense_models"] == d_stop and g["dense_to"] == pytest.approx(1 / densities[d_stop - 1])
    start, stop = metrics.longest_run(np.abs(dpf - 0.5) < 0.04)
    assert stop - start >= 3, f"the plateau at 1/2 spans only {stop - start} models: {dpf.round(3)}"
    assert (start, stop) == tuple(ns["plateau"])
    assert g["plateau_models"] == stop - start
    assert g["plateau_from"] == pytest.approx(1 / densities[start])
    assert g["plateau_to"] == pytest.approx(1 / densities[stop - 1])
    # sticky: the slope in log(1/(1-S)) on the plateau is a fraction of the slope around it
    logx = np.log(1 / densities)
    slope = np.abs(np.diff(dpf) / np.diff(logx))
    on = slope[start : stop - 1].mean()
    before = slope[max(0, start - 2) : start].mean()
    after = slope[stop - 1 : stop + 1].mean()
    assert on < 0.35 * before and on < 0.6 * after, (on, before, after)
    assert dpf[-1] < 0.1 and g["dpf_sparsest_many"] == pytest.approx(dpf[-1])
    assert np.all(np.diff(dpf[stop:]) < 0.005), "beyond the plateau the curve keeps falling"


@pytest.mark.slow
@claims("box-toy-dims-scatter")
def test_dimensionalities_cluster_on_the_plateaus(ns):
    """T7: every D_i in [0, 1]; Σ D_i <= m, and ≈ m at moderate sparsity; the represented
    features at moderate sparsity cluster at the rational values (fraction glued); at high
    sparsity every D_i lies far below 3/8."""
    densities, result = _many(ns)
    g = ns["glued"]
    D = metrics.feature_dimensionality(result.W)
    assert D.min() >= 0 and D.max() <= 1 + 1e-9
    sums = D.sum(axis=1)
    assert np.all(sums <= 20 + 1e-6) and g["sum_D_max"] == pytest.approx(sums.max())
    dpf = metrics.dimensions_per_feature(result.W)
    moderate = (dpf >= 3 / 8) & (dpf < 0.95)
    np.testing.assert_array_equal(moderate, ns["moderate"])
    assert moderate.sum() >= 5, "moderate sparsity should span several models"
    assert np.all(np.abs(sums[moderate] - 20) < 0.05)
    assert g["sum_D_moderate_min"] == pytest.approx(sums[moderate].min())
    assert g["moderate_from"] == pytest.approx(1 / densities[moderate].max())
    assert g["moderate_to"] == pytest.approx(1 / densities[moderate].min())
    kept = metrics.represented(result.W)
    Dm = D[moderate][kept[moderate]]
    assert g["moderate_features"] == Dm.size >= 100
    fraction = metrics.plateau_fraction(Dm)
    assert g["plateau_fraction"] == pytest.approx(fraction)
    assert fraction >= 0.8, f"only {fraction:.0%} of the represented features sit on a plateau"
    # not an artefact of the tolerance: features spread evenly over [3/8, 1] would land within
    # 0.03 of a plateau value far less often
    even = np.linspace(3 / 8, 1, 10_001)
    assert fraction > metrics.plateau_fraction(even) + 0.3
    # which plateaus, as the box says: pairs most, then triangles and pentagons
    nearest = metrics.nearest_plateau(Dm[metrics.near_plateau(Dm)])
    counts = {v: int((nearest == v).sum()) for v in PLATEAUS}
    for key, v in (("1_2", 1 / 2), ("2_3", 2 / 3), ("2_5", 2 / 5)):
        assert g[f"on_plateau_{key}"] == counts[v]
    assert counts[1 / 2] > max(counts[2 / 3], counts[2 / 5]) > 0 and min(counts[2 / 3], counts[2 / 5]) > 0
    # triangles at the dense end, pentagons at the sparse end
    idx = np.flatnonzero(moderate)
    first, last = idx[0], idx[-1]
    assert np.any(np.abs(D[first][kept[first]] - 2 / 3) < 0.03)
    assert np.any(np.abs(D[last][kept[last]] - 2 / 5) < 0.03)
    # high sparsity: far below 3/8, close to the dimensions per feature
    sparse = 1 / densities >= 20
    assert np.all(D[sparse] < 3 / 8 - 0.15)
    mean_D = np.array([d[k].mean() for d, k in zip(D[sparse], kept[sparse])])
    assert np.all(np.abs(mean_D - dpf[sparse]) < 0.05), (mean_D.round(3), dpf[sparse].round(3))


@pytest.mark.slow
@claims("ex-toy-plateau-values")
def test_plateau_solution(ns, capsys):
    """The solution's rule d/k passes the checker, and the counts it quotes are the sweep's."""
    fn = ns["plateau_dimensionality"]
    exercises.check_plateau_dimensionality(fn)
    assert "passed" in capsys.readouterr().out
    for value, _name, k, d in metrics.PLATEAU_GEOMETRIES:
        assert fn(k, d) == pytest.approx(value)
    assert fn(6, 2) == pytest.approx(1 / 3) and fn(12, 3) == pytest.approx(1 / 4)
    # "pairs most, then triangles and pentagons"
    g = ns["glued"]
    assert g["on_plateau_1_2"] > max(g["on_plateau_2_3"], g["on_plateau_2_5"]) > 0
    assert min(g["on_plateau_2_3"], g["on_plateau_2_5"]) > 0


def _collapse(ns):
    return ns["ratios"], ns["collapse_result"]


@pytest.mark.slow
@claims("box-toy-collapse")
def test_the_pentagon_collapses_once_into_two_antipodal_pairs(ns):
    """T8: four features at p = 0.05, the fifth r times sparser: a pentagon up to some r, two
    antipodal pairs (the sparse feature dropped) from the next r on, one change between 2 and 5."""
    ratios, result = _collapse(ns)
    config = result.config
    prob = config.probability_matrix()
    np.testing.assert_allclose(prob[:, :4], 0.05)
    np.testing.assert_allclose(prob[:, 4], 0.05 / ratios)
    np.testing.assert_allclose(config.importance_matrix(), 1.0)
    assert ratios[0] == 1.0 and len(ratios) >= 20
    norms = metrics.feature_norms(result.W)
    D = metrics.feature_dimensionality(result.W)
    low, high = ns["collapse"]
    g = ns["glued"]
    assert g["collapse_low"] == low and g["collapse_high"] == high
    assert 2.0 <= low < high <= 5.0, f"the collapse is between {low:.2f} and {high:.2f}"
    k = int(np.flatnonzero(ratios == low)[0])
    assert ratios[k + 1] == high
    # a pentagon up to low: five represented, dimensionalities near 2/5, feature 4 a little above 1
    for i in range(k + 1):
        assert np.all(norms[i] > 1.0), f"r = {ratios[i]:.2f}: norms {norms[i].round(3)}"
        assert np.all(np.abs(D[i] - 0.4) < 0.03), f"r = {ratios[i]:.2f}: D {D[i].round(3)}"
        assert len(metrics.angular_gaps_2d(result.W[i])) == 5
    assert np.all((norms[: k + 1, 4] > 1.0) & (norms[: k + 1, 4] < 1.3))
    # two antipodal pairs at right angles from high on, feature 4 gone
    for i in range(k + 1, len(ratios)):
        assert norms[i, 4] < 0.05, f"r = {ratios[i]:.2f}: feature 4 has norm {norms[i, 4]:.3f}"
        assert np.all(np.abs(D[i, :4] - 0.5) < 0.02), f"r = {ratios[i]:.2f}: D {D[i].round(3)}"
        W4 = np.asarray(result.W[i])[:, :4]
        cos = (W4.T @ W4) / np.outer(norms[i, :4], norms[i, :4])
        assert sorted((cos < -0.98).sum(axis=1)) == [1, 1, 1, 1], cos.round(2)
        np.testing.assert_allclose(metrics.angular_gaps_2d(result.W[i]), 90.0, atol=3.0)
    # the last pentagon is bent: the gaps next to the sparser feature are narrower
    gaps = metrics.angular_gaps_2d(result.W[k])
    assert g["collapse_gap_min"] == pytest.approx(gaps.min()) and g["collapse_gap_max"] == pytest.approx(
        gaps.max()
    )
    assert gaps.min() < 72 - 3 and gaps.max() > 72 + 3
    angles = metrics.feature_angles_2d(result.W[k])
    nearest_to_4 = np.sort(np.abs((angles[:4] - angles[4] + 180) % 360 - 180))[:2]
    np.testing.assert_allclose(nearest_to_4, gaps.min(), atol=1.5)
    assert g["collapse_restarts"] == 8 and g["collapse_n_models"] == len(ratios)


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda d, W: (d, np.ones(len(d) - 1), W), r"^gain=.*one per entry of density"),
        (lambda d, W: (d, -np.ones(len(d)), W), r"^gain=.*non-negative"),
        (lambda d, W: (d[:-1], np.ones(len(d) - 1), W), r"^W=.*one model per entry of density"),
        (lambda d, W: (d * 2, np.ones(len(d)), W), r"^density=.*densities 1 - S in \(0, 1\]"),
    ],
)
def test_the_adversarial_gain_figure_refuses_bad_input(args, message):
    d, W = np.geomspace(1, 0.01, 4), np.random.default_rng(0).normal(size=(4, 3, 8))
    with pytest.raises(ValueError, match=message):
        plots.adversarial_gain_curve(*args(d, W))
