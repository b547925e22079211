"""The claims of "The geometry of superposition" (book/geometry.md), asserted on the chapter's own
results.

`chapter("geometry")` runs the chapter's code cells in this process (tests/claims.py). The chapter
trains no toy model; its optimisations (`geometry.pack_count`) and draws are seeded and run in
float64 on one CPU thread, so re-running them here gives bitwise the numbers the book printed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from claims import claims

from toy_lib import geometry


@pytest.fixture(scope="module")
def geo(chapter):
    return chapter("geometry")


def test_one_direction_too_many_gives_a_simplex(geo):
    """The prose: five directions in four dimensions reach |cos| = 1/4 at best (a simplex)."""
    packing = geo["five_in_four"]
    assert not packing.fits
    assert packing.max_abs_cos == pytest.approx(0.25, abs=2e-3)
    cos = geometry.cosine_matrix(packing.W)
    off = cos[~torch.eye(5, dtype=torch.bool)]
    assert torch.allclose(off.abs(), torch.full_like(off, 0.25), atol=5e-3)


def test_random_cosines_have_spread_one_over_root_d(geo):
    for d, std in geo["cos_std"].items():
        assert std == pytest.approx(1 / math.sqrt(d), rel=0.05)


@claims("box-geometry-max-cosine")
def test_largest_cosine_of_random_directions_falls_like_root_log_n_over_d(geo):
    median, predicted = geo["median"], geo["predicted"]
    dims, ns = geo["dims"], geo["n_vectors"]
    assert np.all(np.abs(median / predicted - 1) <= 0.10), median / predicted
    # the lines fall with d and rise with N
    assert np.all(np.diff(median, axis=1) < 0)
    assert np.all(np.diff(median, axis=0) > 0)
    # the trend: slope -1/2 on log-log axes, and a constant fraction of 2 sqrt(ln N / d)
    for k in range(len(ns)):
        slope = np.polyfit(np.log(dims), np.log(median[k]), 1)[0]
        assert -0.6 <= slope <= -0.4, (ns[k], slope)
    rate = np.array([[2 * math.sqrt(math.log(n) / d) for d in dims] for n in ns])
    ratio = median / rate
    assert ratio.min() >= 0.65 and ratio.max() <= 0.95, ratio
    # only the 10 directions in 1,024 dimensions get below 0.1
    below = [(ns[k], dims[j]) for k in range(len(ns)) for j in range(len(dims)) if median[k, j] < 0.1]
    assert below == [(10, 1024)], below


@claims("box-geometry-packing", "ex-geometry-packing-bound")
def test_the_optimiser_packs_more_than_d_and_faster_than_linearly(geo):
    dims, packed, packings = geo["packed_dims"], geo["packed"], geo["packings"]
    threshold = geo["threshold"]
    at = dict(zip(dims, packed))
    assert at[4] == 4 and at[8] == 8, "below d = 10 the bound leaves room for d directions only"
    for d, p in zip(dims, packings):
        assert p.W.shape == (d, p.count)
        assert torch.allclose(p.W.norm(dim=0), torch.ones(p.count, dtype=torch.float64))
        assert geometry.max_abs_cosine(p.W) <= threshold, "every packing returned really fits"
        assert p.count <= geometry.packing_bound(d, threshold), "no packing beats the bound"
        if d >= 12:
            assert p.count > d
    # faster than linear over the range shown: directions per dimension rise, to >= 1.5 at d = 64
    per_dim = packed / np.array(dims)
    assert np.all(np.diff(per_dim) >= 0) and per_dim[-1] > per_dim[2], per_dim
    assert at[64] / 64 >= 1.5
    slope = np.polyfit(np.log(dims[2:]), np.log(packed[2:]), 1)[0]
    assert slope > 1.2, f"log-log slope of the packed count against d: {slope:.2f}"


@claims("box-geometry-packing")
def test_random_directions_fit_far_fewer(geo):
    rdims, rmed, rpred = geo["random_dims"], geo["random_median"], geo["random_predicted"]
    packed = dict(zip(geo["packed_dims"], geo["packed"]))
    for d, m, p in zip(rdims, rmed, rpred):
        if d <= 256:
            assert m < 5, (d, m)
        if d in packed:
            assert m <= packed[d] / 4, (d, m, packed[d])
        if d >= 256:
            assert p / 2 <= m <= 2 * p, (d, m, p)
    assert rmed[-1] < rdims[-1], "fewer random directions than dimensions, even at d = 1024"


@claims("box-geometry-leakage")
def test_three_directions_in_a_plane_leak_minus_a_half(geo):
    gram = geo["gram3"]
    assert torch.allclose(
        gram,
        torch.tensor([[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]], dtype=torch.float64),
        atol=1e-12,
    )
    expect = {
        "readout3": [[1.0, -0.5, -0.5], [0.5, 0.5, -1.0]],
        "leak3": [[0.0, -0.5, -0.5], [-0.5, -0.5, -1.0]],
        "relu3": [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]],
    }
    for name, values in expect.items():
        assert torch.allclose(geo[name], torch.tensor(values, dtype=torch.float64), atol=1e-12), name


@claims("box-geometry-sparsity")
def test_simulated_interference_matches_the_formulas(geo):
    z = geo["z"]
    assert np.abs(z).max() <= 3.0, z
    assert geo["cost_slopes"][0] == pytest.approx(1.0, abs=0.1)
    assert geo["cost_slopes"][1] == pytest.approx(2.0, abs=0.1)
    ratio = geo["glued"]["cost_ratio_99"]
    assert 0.0007 <= ratio <= 0.0013, "about a thousandth"
    # the two lines meet at density 1 (S = 0), where every input has both features on
    assert geo["expected"][0, 0] == pytest.approx(geo["expected"][1, 0])


@claims("box-geometry-pentagon")
def test_the_hand_built_pentagon(geo):
    W5, b5, out5 = geo["W5"][0], geo["b5"][0], geo["out5"]
    norms_sq = (W5**2).sum(dim=0)
    assert torch.allclose(norms_sq, norms_sq[0].expand(5)) and norms_sq[0].item() == pytest.approx(
        1.45, abs=0.01
    )
    assert torch.allclose(b5, b5[0].expand(5)) and b5[0].item() == pytest.approx(-0.45, abs=0.01)
    assert geo["one_hot_error"] < 1e-12
    assert out5[1, 0].item() == pytest.approx(0.28, abs=0.01), "feature 0 alone at 0.5"
    assert out5[2, :2].tolist() == pytest.approx([1.45, 1.45], abs=0.01) and torch.all(out5[2, 2:] == 0)
    assert out5[3, 0].item() == 0.0 and out5[3, 2].item() == 0.0, "two far features vanish"
    assert out5[3, 1].item() == pytest.approx(0.45, abs=0.01), "the feature between them lights up"
    assert out5[3, 3].item() == 0.0 and out5[3, 4].item() == 0.0


@claims("ex-geometry-largest-cosine")
def test_the_learners_random_counts(geo):
    medians = geo["my_medians"]
    for d, m in medians.items():
        predicted = geometry.predicted_random_count(d, 0.1)
        assert predicted / 2 <= m <= 2 * predicted, (d, m, predicted)
        assert m < d / 10
    assert medians[1024] < dict(zip(geo["packed_dims"], geo["packed"]))[64]


@claims("ex-geometry-measure-interference")
def test_far_features_in_the_pentagon(geo):
    glued = geo["glued"]
    r2, bias = glued["r_squared"], glued["bias"]
    assert glued["far_leak_own"] == pytest.approx(r2 * math.cos(math.radians(144)))
    assert glued["far_leak_between"] == pytest.approx(2 * r2 * math.cos(math.radians(72)))
    assert r2 + glued["far_leak_own"] + bias < 0, "feature 0's pre-activation is negative"
    assert glued["far_out_between"] == pytest.approx(glued["far_leak_between"] + bias)


@claims("ex-geometry-expected-interference")
def test_the_learners_simulation_matches_the_formula(geo):
    glued = geo["glued"]
    assert glued["ex_formula"] == pytest.approx(0.5**2 * 0.1 * 0.5 / 3)
    assert glued["ex_z"] <= 3.0
