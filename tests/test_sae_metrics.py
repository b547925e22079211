"""The SAE metrics of toy_lib.metrics on hand-built cases, the SAE exercise checkers (they pass the
reference solutions and fail planted mistakes with a specific hint), and the SAE plots."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from toy_lib import exercises, metrics, plots

matplotlib.use("Agg")

TRUE = np.eye(3)  # three orthogonal features in 3-D, one per row


# --------------------------------------------------------------------------- metrics


def test_mmcs_and_mcc_on_permuted_duplicated_and_dead_dictionaries():
    permuted = TRUE[[2, 0, 1]] * 2.0  # scale does not matter
    assert metrics.mmcs(TRUE, permuted) == pytest.approx(1.0)
    assert metrics.mcc(TRUE, permuted) == pytest.approx(1.0)
    np.testing.assert_array_equal(metrics.matching(TRUE, permuted), [1, 2, 0])
    duplicated = TRUE[[0, 0, 1]]  # feature 2 missing, feature 0 twice
    assert metrics.mmcs(TRUE, duplicated) == pytest.approx(2 / 3)
    np.testing.assert_allclose(metrics.max_cosines(TRUE, duplicated), [1, 1, 0])
    wide = np.vstack([TRUE, TRUE[[0]]])  # 4 latents, one duplicate: MMCS is blind to it
    assert metrics.mmcs(TRUE, wide) == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.max_cosines(wide, TRUE), [1, 1, 1, 1])  # reverse direction
    dead = np.vstack([TRUE[:2], np.zeros(3)])  # a dead latent: zero decoder row
    assert metrics.mmcs(TRUE, dead) == pytest.approx(2 / 3)
    assert metrics.mcc(TRUE, dead) == pytest.approx(2 / 3)
    hedged = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # rotated: cos 0.707
    assert metrics.mmcs(TRUE, hedged) == pytest.approx((2 * 0.5**0.5 + 1) / 3)
    assert metrics.recovered_fraction(TRUE, hedged, 0.9) == pytest.approx(1 / 3)
    # batched over instances
    both = np.stack([permuted, duplicated])
    np.testing.assert_allclose(metrics.mmcs(TRUE[None], both), [1.0, 2 / 3])
    np.testing.assert_allclose(metrics.mcc(np.stack([TRUE, TRUE]), both), [1.0, 2 / 3])


def test_mcc_is_stricter_than_mmcs_with_a_shared_latent():
    # one latent halfway between features 0 and 1 serves both under MMCS, only one under MCC
    shared = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert metrics.mmcs(TRUE, shared) == pytest.approx((2 * 0.5**0.5 + 1) / 3)
    assert metrics.mcc(TRUE, shared) == pytest.approx((0.5**0.5 + 0 + 1) / 3)


def test_explained_variance_is_against_the_mean():
    gen = np.random.default_rng(0)
    x = gen.normal(size=(2, 500, 3)) + 5.0  # far from zero
    assert metrics.explained_variance(x, x) == pytest.approx([1.0, 1.0])
    mean = np.broadcast_to(x.mean(-2, keepdims=True), x.shape)
    assert metrics.explained_variance(x, mean) == pytest.approx([0.0, 0.0], abs=1e-12)
    assert np.all(metrics.explained_variance(x, np.zeros_like(x)) < -10)  # zero is far worse than the mean
    np.testing.assert_allclose(metrics.mse(x, mean), ((x - mean) ** 2).sum(-1).mean(-1))


def test_shrinkage_and_norm_ratio():
    x = np.array([[[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]])
    assert metrics.shrinkage(x, 0.8 * x) == pytest.approx([0.8])
    assert metrics.norm_ratio(x, 0.8 * x) == pytest.approx([0.8])  # the zero input is left out
    assert metrics.shrinkage(x, x) == pytest.approx([1.0])


def test_l0_firing_rates_and_dead_fraction():
    f = np.array([[[0.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    assert metrics.l0(f) == pytest.approx([1.0])  # (1 + 2 + 1 + 0) / 4
    np.testing.assert_allclose(metrics.firing_rates(f), [[0.25, 0.75, 0.0]])
    assert metrics.dead_fraction(f) == pytest.approx([1 / 3])
    with pytest.raises(
        ValueError, match=r"x_hat=.*expected an array of the shape of x, \(2, 3\), got shape \(2, 4\)"
    ):
        metrics.mse(np.zeros((2, 3)), np.zeros((2, 4)))


# --------------------------------------------------------------------------- checkers


def sae_forward(W_enc, W_dec, b_enc, b_dec, x):
    f = torch.relu(torch.einsum("ibd,ids->ibs", x - b_dec[:, None], W_enc) + b_enc[:, None])
    return f, torch.einsum("ibs,isd->ibd", f, W_dec) + b_dec[:, None]


def sae_loss(x, x_hat, f, l1_coefficient):
    return ((x - x_hat).square().sum(-1) + l1_coefficient * f.abs().sum(-1)).mean(-1)


def remove_parallel(W_dec, grad):
    return grad - (grad * W_dec).sum(-1, keepdim=True) * W_dec


def normalise(W_dec):
    return W_dec / W_dec.norm(dim=-1, keepdim=True)


def resample(W_enc, W_dec, b_enc, b_dec, x, dead, generator, weight_power=2):
    W_enc, W_dec, b_enc = W_enc.clone(), W_dec.clone(), b_enc.clone()
    _, x_hat = sae_forward(W_enc, W_dec, b_enc, b_dec, x)
    weights = (x - x_hat).square().sum(-1) ** weight_power
    for i in range(x.shape[0]):
        latents = torch.nonzero(dead[i]).flatten()
        if len(latents) == 0:
            continue
        picks = torch.multinomial(weights[i], len(latents), replacement=True, generator=generator)
        v = x[i, picks] - b_dec[i]
        v = v / v.norm(dim=-1, keepdim=True)
        live = W_enc[i][:, ~dead[i]].norm(dim=0).mean()
        W_dec[i, latents] = v
        W_enc[i][:, latents] = (0.2 * live * v).T
        b_enc[i, latents] = 0
    return W_enc, W_dec, b_enc


def test_checkers_pass_the_references(capsys):
    exercises.check_sae_forward(sae_forward)
    exercises.check_sae_loss(sae_loss)
    exercises.check_decoder_normalisation(remove_parallel, normalise)
    exercises.check_resample(resample)
    assert capsys.readouterr().out.count("passed") == 4


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (
            lambda We, Wd, be, bd, x: sae_forward(We, Wd, be, torch.zeros_like(bd), x + 0 * bd[:, None]),
            "b_dec",
        ),
        (
            lambda We, Wd, be, bd, x: (
                sae_forward(We, Wd, be, bd, x)[0],
                sae_forward(We, Wd, be, bd, x)[1] - bd[:, None],
            ),
            "add b_dec back",
        ),
        (
            lambda We, Wd, be, bd, x: (
                torch.einsum("ibd,ids->ibs", x - bd[:, None], We) + be[:, None],
                sae_forward(We, Wd, be, bd, x)[1],
            ),
            "ReLU",
        ),
    ],
)
def test_check_sae_forward_names_the_mistake(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_sae_forward(wrong)


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (
            lambda x, xh, f, lam: ((x - xh).square().mean(-1) + lam * f.sum(-1)).mean(-1),
            "sum the squared error",
        ),
        (lambda x, xh, f, lam: (x - xh).square().sum(-1).mean(-1), "add the sparsity penalty"),
        (lambda x, xh, f, lam: ((x - xh).square().sum(-1) + lam * f.square().sum(-1)).mean(-1), "L1 norm"),
        (lambda x, xh, f, lam: sae_loss(x, xh, f, lam).mean(), "one loss per instance"),
    ],
)
def test_check_sae_loss_names_the_mistake(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_sae_loss(wrong)


def test_check_decoder_normalisation_names_the_mistakes():
    with pytest.raises(AssertionError, match="over d_in"):
        exercises.check_decoder_normalisation(lambda W, g: g - (g * W).sum(-2, keepdim=True) * W, normalise)
    with pytest.raises(AssertionError, match="each row"):
        exercises.check_decoder_normalisation(remove_parallel, lambda W: W / W.norm(dim=-2, keepdim=True))


def test_check_resample_names_the_mistakes():
    with pytest.raises(AssertionError, match="weighted by the squared error"):
        exercises.check_resample(lambda *a: resample(*a, weight_power=1))

    def touches_alive(W_enc, W_dec, b_enc, b_dec, x, dead, gen):
        W_enc, W_dec, b_enc = resample(W_enc, W_dec, b_enc, b_dec, x, dead, gen)
        return W_enc, W_dec, b_enc.zero_()

    with pytest.raises(AssertionError, match="not dead"):
        exercises.check_resample(touches_alive)

    def unnormalised(W_enc, W_dec, b_enc, b_dec, x, dead, gen):
        W_enc, W_dec, b_enc = resample(W_enc, W_dec, b_enc, b_dec, x, dead, gen)
        W_dec[dead] *= 3
        return W_enc, W_dec, b_enc

    with pytest.raises(AssertionError, match="norm"):
        exercises.check_resample(unnormalised)


# --------------------------------------------------------------------------- plots


def _texts_at_least(fig, size):
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_text():
            assert text.get_fontsize() >= size, (text.get_text(), text.get_fontsize())


def test_sae_plots_draw_in_the_book_style():
    W = np.array([[1.0, 0.3, -0.8], [0.0, 0.95, -0.6]])
    snaps = np.random.default_rng(0).normal(size=(3, 2, 4, 2))
    figs = [
        plots.sae_directions(W, snaps, [0, 100, 200]),
        plots.shrinkage_curves(
            np.linspace(0, 1, 5),
            np.vstack([np.linspace(0, 0.8, 5), np.linspace(0, 1, 5)]),
            ["L1", "JumpReLU"],
        ),
        plots.cosine_heatmap(np.random.default_rng(1).uniform(-1, 1, size=(6, 8))),
        plots.metric_bars(["a", "b"], {"MMCS": [0.9, 1.0], "L0": [1.2, 1.0]}),
    ]
    for fig in figs:
        assert fig.get_size_inches()[0] <= plots.COLUMN_WIDTH + 1e-9
        _texts_at_least(fig, plots.FONT_SIZE)
    assert any(ax.get_label() == "<colorbar>" for ax in figs[2].axes)  # a colour bar for the cosines
    with pytest.raises(
        ValueError,
        match=r"true_W=.*expected an array of shape \(hidden, feature\) with 2 entries on the hidden axis",
    ):
        plots.sae_directions(np.zeros((3, 3)), snaps, [0, 1, 2])
