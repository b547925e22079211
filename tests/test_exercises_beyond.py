"""The checker of the chapter "Beyond SAEs" (`toy_lib.exercises.check_matryoshka_loss`): the
library's own loss and another correct implementation pass; planted mistakes fail naming them."""

from __future__ import annotations

import pytest
import torch

from toy_lib import SAEConfig, exercises
from toy_lib.sae import _ARCHITECTURES


def reference(x, f, W_dec, b_dec, prefix_widths):
    total = 0
    for w in prefix_widths:
        x_hat = torch.einsum("ibs,isd->ibd", f[..., :w], W_dec[:, :w]) + b_dec[:, None]
        total = total + ((x - x_hat) ** 2).sum(-1).mean(-1)
    return total


def through_the_library(x, f, W_dec, b_dec, prefix_widths):
    """The library's own Matryoshka SAE (its prefix reconstructions), in float64."""
    n_inst, _, d_sae = f.shape
    cfg = SAEConfig(
        x.shape[-1], d_sae, n_instances=n_inst, architecture="matryoshka", k=1, prefix_widths=prefix_widths
    )
    arch = _ARCHITECTURES["matryoshka"](cfg)
    x_hats = arch.prefix_reconstructions({"W_dec": W_dec, "b_dec": b_dec}, f)
    return sum(((x - x_hat) ** 2).sum(-1).mean(-1) for x_hat in x_hats)


def cumulative(x, f, W_dec, b_dec, prefix_widths):
    """Another correct way: every latent's contribution, cumulated along the latent axis."""
    parts = torch.einsum("ibs,isd->ibsd", f, W_dec).cumsum(2)  # (instance, batch, latent, d_in)
    idx = torch.tensor(prefix_widths) - 1
    x_hats = parts[:, :, idx] + b_dec[:, None, None]
    return ((x[:, :, None] - x_hats) ** 2).sum(-1).mean(1).sum(-1)


@pytest.mark.parametrize("fn", [reference, through_the_library, cumulative])
def test_correct_solutions_pass(fn, capsys):
    exercises.check_matryoshka_loss(fn)
    assert "passed" in capsys.readouterr().out


def _whole(x, f, W_dec, b_dec, prefix_widths):
    return reference(x, f, W_dec, b_dec, prefix_widths[-1:])


def _groups(x, f, W_dec, b_dec, prefix_widths):
    total, start = 0, 0
    for w in prefix_widths:
        x_hat = torch.einsum("ibs,isd->ibd", f[..., start:w], W_dec[:, start:w]) + b_dec[:, None]
        total = total + ((x - x_hat) ** 2).sum(-1).mean(-1)
        start = w
    return total


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_whole, "add the error of every prefix"),
        (lambda *a: reference(*a) / len(a[-1]), "do not average them"),
        (_groups, "not only its own group"),
        (lambda x, f, W, b, p: reference(x, f, W, torch.zeros_like(b), p), "add b_dec"),
        (
            lambda x, f, W, b, p: reference(x, f, W, b, tuple(w + 1 for w in p[:-1]) + p[-1:]),
            "indices 0 to w_m - 1",
        ),
        (lambda *a: reference(*a) / a[0].shape[-1], "sum the squared error over d_in"),
        (lambda *a: reference(*a).mean(), "one loss per instance"),
        (lambda *a: None, "forget the `return`"),
        (lambda *a: reference(*a) * float("nan"), "NaN"),
    ],
)
def test_planted_mistakes_are_named(wrong, words):
    with pytest.raises(AssertionError, match="check_matryoshka_loss") as err:
        exercises.check_matryoshka_loss(wrong)
    assert words in str(err.value)


def test_a_stub_is_not_attempted_yet(capsys):
    def stub(*args):
        raise NotImplementedError

    exercises.check_matryoshka_loss(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_the_checker_leaves_its_arguments_and_random_state_alone():
    state = torch.random.get_rng_state()
    exercises.check_matryoshka_loss(reference)
    assert torch.equal(state, torch.random.get_rng_state())
