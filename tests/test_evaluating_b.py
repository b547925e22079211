"""The chapter "Evaluating SAEs", part B (book/evaluating.md): the metrics it adds to
toy_lib.metrics (seed stability, components along given directions, absorption), and every box
and glued number of part B asserted on the chapter's own results (signatures S4, S5, S6, S8 and
S10 of science-targets.md, as measured)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from claims import claims

from toy_lib import exercises, metrics

# --------------------------------------------------------------------------- the metrics


def test_seed_stability_counts_matched_latents_one_to_one():
    a = np.eye(4)
    assert metrics.seed_stability(a, a[[2, 0, 3, 1]] * 3.0) == pytest.approx(1.0)  # order, scale
    b = a.copy()
    b[3] = [0.5, 0.0, 0.0, 0.75**0.5]  # latent 3 tilted by 30 degrees: cosine 0.87 < 0.9
    assert metrics.seed_stability(a, b) == pytest.approx(0.75)
    assert metrics.seed_stability(a, b, threshold=0.5) == pytest.approx(1.0)
    assert metrics.seed_stability(a, -a) == 0.0  # a latent writing -v is not one writing v
    duplicated = a[[0, 0, 1, 2]]  # one-to-one: the copy cannot stand for feature 3
    assert metrics.seed_stability(a, duplicated) == pytest.approx(0.75)
    assert metrics.mmcs(a, duplicated) == pytest.approx(0.75)
    wide = np.vstack([a, a])  # 8 latents against 4: at most half of the wider one matched
    assert metrics.seed_stability(wide, a) == pytest.approx(0.5)
    assert metrics.seed_stability(a, wide) == pytest.approx(1.0)


def test_seed_stability_takes_the_instance_axis():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5, 8))
    b = a.copy()
    b[1, :2] = rng.normal(size=(2, 8))  # instance 1 loses two latents
    got = metrics.seed_stability(a, torch.tensor(b))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, [1.0, 0.6, 1.0])
    np.testing.assert_allclose(metrics.seed_stability(a, a[0]), [1.0, *metrics.seed_stability(a[1:], a[0])])
    # a zero row (cosine 0 with everything) never counts as matched, even at threshold 0
    assert metrics.seed_stability(np.eye(3), np.eye(3) * [[1], [1], [0]], threshold=0.0) == pytest.approx(
        2 / 3
    )


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda: metrics.seed_stability(np.eye(3), np.eye(4)), ["dec_b=", "rows of width 3"]),
        (lambda: metrics.seed_stability(np.eye(3), np.eye(3), threshold=2), ["threshold=2"]),
        (lambda: metrics.seed_stability(np.eye(3), np.eye(3), threshold=-0.5), ["threshold=-0.5", "[0, 1)"]),
        (lambda: metrics.seed_stability(np.ones(3), np.eye(3)), ["dec_a=", "shape (..., n, d)"]),
        (lambda: metrics.seed_stability(np.eye(3) * np.nan, np.eye(3)), ["dec_a=", "finite"]),
        (lambda: metrics.components(np.eye(3), np.zeros((1, 3))), ["directions=", "non-zero length"]),
        (lambda: metrics.components(np.eye(3), np.eye(4)), ["directions=", "rows of width 3"]),
        (lambda: metrics.components(np.ones((2, 2, 3)), np.ones((3, 1, 3))), ["directions=", "broadcast"]),
        (lambda: metrics.absorption_fraction(np.ones((4, 2)), [False] * 4), ["child_fires=", "at least one"]),
        (
            lambda: metrics.absorption_fraction(np.ones((4, 2)), [True] * 3),
            ["child_fires=", "one boolean per input"],
        ),
        (lambda: metrics.absorption_fraction(np.ones((4, 2)), [0, 1, 2, 1]), ["child_fires=", "0/1"]),
        (lambda: metrics.absorption_fraction(np.ones(4), [True] * 4), ["f=", "(..., batch, d_sae)"]),
    ],
)
def test_part_b_metrics_refuse_bad_input(call, fragments):
    with pytest.raises(ValueError) as err:
        call()
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_components_keep_the_length_of_the_vectors():
    dirs = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])  # the directions' lengths do not matter
    vec = np.array([[0.97, 0.1, 0.24], [-1.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.components(vec, dirs), [[0.97, 0.24], [-1.0, 0.0]])
    batched = metrics.components(torch.tensor(np.stack([vec, 2 * vec])), dirs)
    assert batched.shape == (2, 2, 2)
    np.testing.assert_allclose(batched[1], 2 * batched[0])


def test_absorption_fraction_on_a_hand_built_absorbed_parent():
    f = np.array([[1.0, 0.0], [0.0, 1.4], [0.0, 1.3], [0.5, 1.1], [0.9, 0.0]])
    child = np.array([False, True, True, True, False])
    np.testing.assert_allclose(metrics.absorption_fraction(f, child), [2 / 3, 0.0])
    np.testing.assert_allclose(metrics.absorption_fraction(f, child.astype(float)), [2 / 3, 0.0])
    batched = metrics.absorption_fraction(np.stack([f, f[:, ::-1]]), torch.tensor(child))
    np.testing.assert_allclose(batched, [[2 / 3, 0.0], [0.0, 2 / 3]])
    per_instance = np.stack([child, ~child])  # one mask per instance
    np.testing.assert_allclose(metrics.absorption_fraction(np.stack([f, f]), per_instance)[1], [0.0, 1.0])


# --------------------------------------------------------------------------- the chapter's results


@pytest.fixture(scope="module")
def ns(chapter):
    return chapter("evaluating")


def size_sweep_signatures(table):
    """The box of the dictionary-size sweep, as a function of the chapter's table."""
    assert 0.7 < table[6]["mmcs"] < 0.9, table[6]  # clearly below 0.95 at half the true count, "about 0.8"
    assert table[6]["mcc"] > table[6]["mmcs"] + 0.05, table[6]  # the prose: MCC higher (6 pairs only)
    for d in (12, 24, 48):
        assert table[d]["mmcs"] > 0.97, (d, table[d])  # > 0.95 with margin
        assert table[d]["mcc"] > 0.95, (d, table[d])
    assert table[12]["unmatched"] <= 1 / 12 + 1e-9
    assert table[12]["unmatched"] < table[24]["unmatched"] < table[48]["unmatched"]
    assert 0.3 < table[48]["unmatched"] < 0.7, table[48]  # "about half"
    assert table[48]["rare"] > 0 and table[12]["rare"] == 0
    assert table[48]["rare"] < table[48]["unmatched"] / 2  # the prose: most spare latents still fire
    assert table[48]["dead_all"] <= 8 and table[12]["dead_all"] == 0  # few strictly dead
    assert table[12]["stability"] > 0.85, table[12]  # above 0.8 with margin
    assert table[12]["stability"] > table[24]["stability"] > table[48]["stability"]
    assert 0.3 < table[48]["stability"] < 0.65, table[48]  # "about a half"
    assert table[6]["stability"] > 0.8, table[6]  # the prose: high at 6 too (the same mixtures)


@pytest.mark.slow
@claims("box-evaluating-size-sweep")
def test_s4_s10_dictionary_size_and_seed_stability(ns):
    sweep, data = ns["eb_sweep"], ns["eb_data"]
    assert data.n_features == 12 and data.d_in == 10 and np.allclose(data.marginal_probabilities, 0.05)
    for d, result in sweep.items():
        assert result.config.d_sae == d and result.config.n_instances == 4
        assert result.recipe["steps"] == 6000
    table = {d: ns["eb_size_summary"](sweep[d], data.directions) for d in ns["eb_sizes"]}
    size_sweep_signatures(table)
    glued = ns["glued"]
    assert glued["eb_mmcs_half"] == table[6]["mmcs"] and glued["eb_stab_true"] == table[12]["stability"]
    assert glued["eb_stab_widest"] == table[48]["stability"]
    assert glued["eb_unmatched_widest"] == table[48]["unmatched"]
    assert glued["eb_dead_widest_all"] == table[48]["dead_all"]
    assert glued["eb_dead_rest_all"] == sum(table[d]["dead_all"] for d in (6, 12, 24))
    assert glued["eb_mmcs_min_wide"] == min(table[d]["mmcs"] for d in (12, 24, 48))


@pytest.mark.slow
def test_size_sweep_signatures_would_catch_a_wrong_sweep(ns):
    """The check fails when the half-size SAE is swapped for a full-size one, or the stability
    ordering breaks."""
    table = {d: dict(row) for d, row in ns["eb_table"].items()}
    table[6] = dict(table[12])
    with pytest.raises(AssertionError):
        size_sweep_signatures(table)
    table = {d: dict(row) for d, row in ns["eb_table"].items()}
    table[48]["stability"] = table[12]["stability"]
    with pytest.raises(AssertionError):
        size_sweep_signatures(table)


def sparse_wrong_signatures(k):
    assert k[11]["mmcs"] > 0.96 and k[11]["mcc"] > 0.93, k[11]
    assert 0.6 < k[5]["mmcs"] < 0.8 and 0.6 < k[5]["mcc"] < 0.8, k[5]  # "clearly lower (about 0.7)"
    assert k[5]["cos0_others"] > 0.015 and k[5]["cos0_others"] > k[11]["cos0_others"] + 0.015, (k[5], k[11])
    assert k[11]["mse"] < k[5]["mse"] < 0.8 * k[5]["true_dict_mse"], k[5]
    assert abs(k[5]["l0"] - 5) < 0.5 and abs(k[11]["l0"] - 11) < 0.5


@pytest.mark.slow
@claims("box-evaluating-sparse-wrong")
def test_s5_s8_k_below_the_true_l0_is_sparse_but_wrong(ns):
    data, run = ns["eb_topk_data"], ns["eb_topk"]
    assert data.n_features == 50 and data.d_in == 100
    assert abs(data.true_l0 - 11.0) < 1e-6 and ns["glued"]["eb_true_l0"] == pytest.approx(11.0)
    assert list(run.config.k) == [11, 11, 5, 5] and run.config.architecture == "batchtopk"
    loss = run.final_loss.numpy()
    best = {k: min((i for i in range(4) if run.config.k[i] == k), key=lambda i: loss[i]) for k in (11, 5)}
    k = {kk: ns["eb_k_summary"](run, i) for kk, i in best.items()}
    sparse_wrong_signatures(k)
    # the other restart agrees (the signature is not one lucky start)
    other = {
        kk: ns["eb_k_summary"](run, ({0, 1} if kk == 11 else {2, 3}).difference({i}).pop())
        for kk, i in best.items()
    }
    assert other[11]["mcc"] > 0.9 and other[5]["mcc"] < 0.8 and other[5]["mse"] < other[5]["true_dict_mse"]
    glued = ns["glued"]
    for name in ("mmcs", "mcc", "mse"):
        assert glued[f"eb_k11_{name}"] == k[11][name] and glued[f"eb_k5_{name}"] == k[5][name]
    assert glued["eb_k5_cos0"] == k[5]["cos0_others"] and glued["eb_k5_true_mse"] == k[5]["true_dict_mse"]


@pytest.mark.slow
def test_sparse_wrong_signatures_would_catch_swapped_runs(ns):
    k = ns["eb_k"]
    with pytest.raises(AssertionError):
        sparse_wrong_signatures({11: k[5], 5: k[11]})


def absorption_signatures(dec2, enc2, absorbed, child_latent, dec1, deci, bdeci, child_rate):
    parent_latent = 1 - child_latent
    assert absorbed[parent_latent] > 0.95, absorbed  # "above 0.9", with margin
    assert absorbed[child_latent] < 0.05, absorbed
    assert enc2[parent_latent, 1] < -0.3, enc2
    assert 0.6 < dec2[child_latent, 0] < 0.8 and dec2[child_latent, 1] > 0.6, dec2  # parent ~ 0.7
    assert 0.15 < dec1[1] < 0.35 and dec1[0] > 0.9, dec1  # hedging: about 0.25
    assert abs(deci[1]) < 0.015 and deci[0] > 0.99, deci
    assert abs(bdeci[1] - child_rate) < 0.008, (bdeci, child_rate)


@pytest.mark.slow
@claims("box-evaluating-absorption")
def test_s6_absorption_and_hedging(ns):
    hier = ns["eb_hier"]
    for name, d_sae in (("two", 2), ("one", 1), ("indep", 1)):
        assert hier[name].config.d_sae == d_sae and hier[name].config.l1_coefficient == (1e-3,)
    nested, indep = ns["eb_nested"], ns["eb_indep"]
    np.testing.assert_allclose(nested.marginal_probabilities, [0.25, 0.05], atol=1e-9)
    np.testing.assert_allclose(indep.marginal_probabilities, [0.25, 0.05], atol=1e-9)
    assert abs(float(nested.directions[0] @ nested.directions[1])) < 1e-6
    absorption_signatures(
        ns["eb_dec2"], ns["eb_enc2"], ns["eb_absorbed"], ns["eb_child_latent"],
        ns["eb_dec1"], ns["eb_deci"], ns["eb_bdeci"], 0.05,
    )  # fmt: skip
    glued = ns["glued"]
    assert glued["eb_abs_silent"] == ns["eb_absorbed"][1 - ns["eb_child_latent"]]
    assert glued["eb_hedge_child"] == ns["eb_dec1"][1] and glued["eb_indep_bdec_child"] == ns["eb_bdeci"][1]
    assert glued["eb_child_rate"] == pytest.approx(0.05)


@pytest.mark.slow
def test_absorption_signatures_would_catch_a_clean_sae(ns):
    """A clean two-latent SAE (decoder = the features, parent latent firing with the child) and an
    unhedged single latent fail the check."""
    clean = np.eye(2)
    with pytest.raises(AssertionError):
        absorption_signatures(
            clean, clean, np.zeros(2), 1, ns["eb_dec1"], ns["eb_deci"], ns["eb_bdeci"], 0.05
        )
    with pytest.raises(AssertionError):
        absorption_signatures(
            ns["eb_dec2"], ns["eb_enc2"], ns["eb_absorbed"], ns["eb_child_latent"],
            np.array([1.0, 0.0]), ns["eb_deci"], ns["eb_bdeci"], 0.05,
        )  # fmt: skip


@pytest.mark.slow
@claims("ex-evaluating-absorption")
def test_the_absorption_solution_passes_its_checker(ns, capsys):
    exercises.check_absorption_fraction(ns["absorption_fraction"])
    assert "passed" in capsys.readouterr().out
