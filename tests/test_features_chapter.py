"""The claims of the "Features" chapter (book/features.md), asserted on the chapter's own results.

`chapter("features")` runs the chapter's code cells in this process (tests/claims.py); nothing in
the chapter is trained through a cache, and everything it computes is deterministic, so the
namespace holds exactly the numbers the book printed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from claims import claims

import toy_lib
from toy_lib import geometry


@pytest.fixture(scope="module")
def features(chapter):
    return chapter("features")


@claims("box-features-rotation")
def test_rotation_scrambles_the_neurons_and_keeps_the_function(features):
    ns = features
    W, W_rot = ns["W"][0], ns["W_rot"][0]
    n = len(ns["names"])
    assert torch.equal(W, torch.eye(n, dtype=torch.float64)), "before the rotation: one feature per neuron"
    assert np.array_equal(geometry.top_feature_share(W), np.ones(n)), "every top-feature share exactly 1"
    # the rotated model computes the same function, recomputed here from the chapter's weights
    change = (
        toy_lib.forward(ns["W"], ns["b"], ns["x"]) - toy_lib.forward(ns["W_rot"], ns["b"], ns["x"])
    ).abs()
    assert change.max().item() < 1e-12
    assert ns["glued"]["output_change"] == pytest.approx(change.max().item(), abs=1e-15)
    # ... while the neurons change a lot
    assert ns["glued"]["hidden_change"] > 0.1
    # every rotated neuron responds to several features
    assert geometry.top_feature_share(W_rot).max() < 0.7
    assert int(((W_rot**2) > 0.1).sum(dim=1).min()) >= 2
    assert ns["glued"]["responds_min"] == int(((W_rot**2) > 0.1).sum(dim=1).min())


@claims("box-features-probe")
def test_a_probe_reads_every_feature_off_the_rotated_layer(features):
    ns = features
    probe_acc, neuron_acc = ns["probe_acc"], ns["neuron_acc"]
    assert probe_acc.min() > 0.98, probe_acc
    assert ns["alignment"].min().item() > 0.99, "each probe reads along its feature's direction R e_j"
    assert neuron_acc.max() < 0.95, neuron_acc
    assert np.all(probe_acc - neuron_acc >= 0.05), (probe_acc, neuron_acc)
    assert np.array_equal(ns["neuron_acc_before"], np.ones(len(probe_acc))), "one neuron per feature, before"
    assert ns["always_absent"] == pytest.approx(0.8, abs=0.02)
    # the glued numbers are the chapter's
    assert ns["glued"]["probe_acc_min"] == pytest.approx(float(probe_acc.min()))
    assert ns["glued"]["neuron_acc_max"] == pytest.approx(float(neuron_acc.max()))


def test_the_probe_only_misses_features_that_are_barely_present(features):
    """The prose: the probe's mistakes are present features with tiny values."""
    assert 0 < features["glued"]["largest_missed"] < 0.1


def test_many_more_random_directions_fit_at_looser_tolerances(features):
    """The prose: in 768 dimensions, ~16 random directions within 0.1, thousands within 0.2,
    hundreds of millions within 0.3."""
    counts = features["counts"]
    assert counts[0.1] < 768 < counts[0.2] < counts[0.3]
    assert counts[0.3] > 1e8


@claims("ex-features-top-feature-share")
def test_the_solution_reproduces_the_figure_shares(features):
    ns = features
    assert np.allclose(ns["mine"].numpy(), geometry.top_feature_share(ns["W_rot"][0]))


@claims("ex-features-privileged-basis")
def test_a_relu_on_the_hidden_layer_makes_the_rotation_matter(features):
    glued = features["glued"]
    assert glued["relu_mse_before"] == 0.0, "with one feature per neuron the hidden ReLU changes nothing"
    assert glued["relu_change"] > 0.5
    assert glued["relu_mse_after"] > 0.01
