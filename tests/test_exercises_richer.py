"""The checkers of the chapter "Superposition in richer settings" (toy_lib/exercises.py): each
accepts toy_lib's own function and another correct implementation, and rejects each common
mistake with its own diagnostic."""

from __future__ import annotations

import pytest
import torch

import toy_lib
from toy_lib import exercises


def correlated_reference(p, n):
    """Another correct generator: one draw per pair, repeated for its two features."""
    active = (torch.rand(p.shape[0], n, p.shape[1]) < p[:, None, :]).repeat_interleave(2, dim=2)
    return torch.rand(active.shape) * active


def correlated_with_toy_lib(p, n):
    """toy_lib's own generator, with the pairs as correlated groups."""
    prob = p.repeat_interleave(2, dim=1)
    pairs = [(2 * k, 2 * k + 1) for k in range(p.shape[1])]
    return toy_lib.generate_batch(prob, n, correlated=pairs)


def abs_loss_reference(W1, W2, b, x, importance):
    return toy_lib.loss_per_instance(x.abs(), toy_lib.abs_forward(W1, W2, b, x), importance)


@pytest.mark.parametrize("fn", [correlated_reference, correlated_with_toy_lib])
def test_check_correlated_batch_accepts_correct_generators(fn, capsys):
    exercises.check_correlated_batch(fn)
    assert "your function passed" in capsys.readouterr().out


def test_check_correlated_batch_restores_the_global_rng():
    before = torch.random.get_rng_state()
    exercises.check_correlated_batch(correlated_reference)
    assert torch.equal(before, torch.random.get_rng_state())


def _independent(p, n):  # each feature with the pair's probability, but on its own
    prob = p.repeat_interleave(2, dim=1)
    return torch.rand(p.shape[0], n, 2 * p.shape[1]) * (
        torch.rand(p.shape[0], n, 2 * p.shape[1]) < prob[:, None, :]
    )


def _same_value(p, n):  # both features of a pair take the same value
    active = torch.rand(p.shape[0], n, p.shape[1]) < p[:, None, :]
    return (torch.rand(active.shape) * active).repeat_interleave(2, dim=2)


def _one_draw_per_sample(p, n):  # every pair of a sample active together
    active = (torch.rand(p.shape[0], n, 1) < p[:, None, :]).repeat_interleave(2, dim=2)
    return torch.rand(active.shape) * active


def _first_pair_probability(p, n):  # every pair with pair 0's probability
    return correlated_reference(p[:, :1].expand_as(p).contiguous(), n)


def _ones(p, n):  # active features are 1
    return (correlated_reference(p, n) != 0).double()


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (_independent, "must be active together"),
        (_same_value, "each feature must draw its own value"),
        (_one_draw_per_sample, "independent pairs would be both active in 0.04"),
        (_first_pair_probability, "should be active with probability"),
        (_ones, "standard deviation"),
        (lambda p, n: correlated_reference(p, n)[:, :, ::2], "expected (2, 20000, 6)"),
        (lambda p, n: None, "forget the `return`"),
    ],
)
def test_check_correlated_batch_rejects(wrong, fragment):
    with pytest.raises(AssertionError, match="check_correlated_batch") as err:
        exercises.check_correlated_batch(wrong)
    assert fragment in str(err.value), str(err.value)


def test_check_neuron_forward_accepts_toy_lib_and_an_einsum_version(capsys):
    exercises.check_neuron_forward(toy_lib.neuron_forward)

    def mine(W, b, x):
        h = torch.relu(torch.einsum("ihf,ibf->ibh", W, x))
        return torch.relu(torch.einsum("ihf,ibh->ibf", W, h) + b[:, None, :])

    exercises.check_neuron_forward(mine)
    assert capsys.readouterr().out.count("your function passed") == 2


def _hidden(W, x):
    return torch.einsum("ihf,ibf->ibh", W, x)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda W, b, x: toy_lib.forward(W, b, x), "apply a ReLU to the hidden layer"),
        (
            lambda W, b, x: torch.einsum("ihf,ibh->ibf", W, torch.relu(_hidden(W, x))) + b[:, None, :],
            "no ReLU at the end",
        ),
        (
            lambda W, b, x: torch.relu(torch.einsum("ihf,ibh->ibf", W, torch.relu(_hidden(W, x)))),
            "add the bias b",
        ),
        (lambda W, b, x: x, "torch.einsum"),
    ],
)
def test_check_neuron_forward_rejects(wrong, fragment):
    with pytest.raises(AssertionError, match="check_neuron_forward") as err:
        exercises.check_neuron_forward(wrong)
    assert fragment in str(err.value), str(err.value)


def test_check_abs_loss_accepts_toy_lib_and_an_einsum_version(capsys):
    exercises.check_abs_loss(abs_loss_reference)

    def mine(W1, W2, b, x, importance):
        h = torch.relu(torch.einsum("ihf,ibf->ibh", W1, x))
        y = torch.relu(torch.einsum("ifh,ibh->ibf", W2, h) + b[:, None, :])
        return (importance[:, None, :] * (x.abs() - y) ** 2).mean(dim=(1, 2))

    exercises.check_abs_loss(mine)
    assert capsys.readouterr().out.count("your function passed") == 2


def _y(W1, W2, b, x):
    return toy_lib.abs_forward(W1, W2, b, x)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda W1, W2, b, x, imp: toy_lib.loss_per_instance(x, _y(W1, W2, b, x), imp), "your target is x"),
        (
            lambda W1, W2, b, x, imp: ((x.abs() - _y(W1, W2, b, x)) ** 2).mean(dim=(1, 2)),
            "ignores the importance",
        ),
        (
            lambda W1, W2, b, x, imp: (imp[:, None, :] * (x.abs() - _y(W1, W2, b, x)) ** 2).sum(dim=(1, 2)),
            "take the mean instead",
        ),
        (
            lambda W1, W2, b, x, imp: abs_loss_reference(W1, W2, torch.zeros_like(b), x, imp),
            "add the output bias",
        ),
        (lambda W1, W2, b, x, imp: abs_loss_reference(W1, W2, b, x, imp).mean(), "one loss per instance"),
        (
            lambda W1, W2, b, x, imp: abs_loss_reference(W1, W2, b, x, imp) * 2,
            "W2 is (instance, feature, hidden)",
        ),
    ],
)
def test_check_abs_loss_rejects(wrong, fragment):
    with pytest.raises(AssertionError, match="check_abs_loss") as err:
        exercises.check_abs_loss(wrong)
    assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "checker, arity",
    [
        (exercises.check_correlated_batch, 2),
        (exercises.check_neuron_forward, 3),
        (exercises.check_abs_loss, 5),
    ],
)
def test_a_stub_is_reported_as_not_attempted(checker, arity, capsys):
    def stub(*args):
        raise NotImplementedError

    checker(stub)
    assert "not attempted yet" in capsys.readouterr().out
