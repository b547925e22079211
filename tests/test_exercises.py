"""The exercise checkers (toy_lib/exercises.py): toy_lib's own functions pass, wrong ones fail
with a message that names the mistake."""

from __future__ import annotations

import pytest
import torch

import toy_lib
from toy_lib import exercises, metrics

# --------------------------------------------------------------------------- correct functions


def test_check_generate_batch_accepts_toy_lib(capsys):
    exercises.check_generate_batch(toy_lib.generate_batch)
    assert "passed" in capsys.readouterr().out


def test_check_generate_batch_accepts_another_correct_implementation(capsys):
    def mine(feature_probability, batch_size):
        n_inst, n_feat = feature_probability.shape
        mask = torch.rand(n_inst, batch_size, n_feat) < feature_probability.unsqueeze(1)
        return torch.where(mask, torch.rand(n_inst, batch_size, n_feat), torch.zeros(()))

    exercises.check_generate_batch(mine)
    assert "passed" in capsys.readouterr().out


def test_check_generate_batch_restores_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    exercises.check_generate_batch(toy_lib.generate_batch)
    assert torch.equal(torch.rand(3), expected)


def test_check_forward_accepts_toy_lib(capsys):
    exercises.check_forward(toy_lib.forward)
    assert "passed" in capsys.readouterr().out


def test_check_forward_accepts_an_einsum_implementation(capsys):
    def mine(W, b, x):
        h = torch.einsum("ihf,ibf->ibh", W, x)
        return torch.relu(torch.einsum("ihf,ibh->ibf", W, h) + b[:, None, :])

    exercises.check_forward(mine)
    assert "passed" in capsys.readouterr().out


def test_check_loss_accepts_toy_lib(capsys):
    exercises.check_loss(toy_lib.loss_per_instance)
    assert "passed" in capsys.readouterr().out


def test_check_feature_dimensionality_accepts_toy_lib(capsys):
    exercises.check_feature_dimensionality(metrics.feature_dimensionality)
    assert "passed" in capsys.readouterr().out


# --------------------------------------------------------------------------- wrong functions


def _fails(checker, fn, *fragments: str) -> str:
    with pytest.raises(AssertionError) as info:
        checker(fn)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in the checker's message:\n{message}"
    return message


@pytest.mark.parametrize(
    "wrong, fragments",
    [
        # every entry active: values are plain uniform numbers
        (lambda p, n: torch.rand(p.shape[0], n, p.shape[1]), ["probability 0"]),
        # active entries are 1 instead of uniform
        (
            lambda p, n: (torch.rand(p.shape[0], n, p.shape[1]) < p[:, None, :]).float(),
            ["standard deviation", "torch.rand"],
        ),
        # one activity draw per row, shared by all features
        (
            lambda p, n: (
                torch.rand(p.shape[0], n, p.shape[1]) * (torch.rand(p.shape[0], n, 1) < p[:, None, :])
            ),
            ["independent"],
        ),
        # batch axis first
        (lambda p, n: toy_lib.generate_batch(p, n).transpose(0, 1), ["expected (3, 20000, 6)"]),
        # a stub that has not been filled in
        (lambda p, n: None, ["returned None"]),
    ],
    ids=["always-active", "values-are-one", "shared-mask", "wrong-axes", "returns-none"],
)
def test_check_generate_batch_rejects(wrong, fragments):
    _fails(exercises.check_generate_batch, wrong, "check_generate_batch", *fragments)


def test_check_generate_batch_rejects_a_repeated_batch():
    fixed = {}

    def same_every_time(p, n):
        if "x" not in fixed:
            fixed["x"] = toy_lib.generate_batch(p, n)
        return fixed["x"]

    _fails(exercises.check_generate_batch, same_every_time, "same batch")


def test_check_generate_batch_names_a_todo():
    def todo(p, n):
        raise NotImplementedError

    _fails(exercises.check_generate_batch, todo, "NotImplementedError", "TODO")


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda W, b, x: toy_lib.forward(W, b, x, activation="linear"), "without the ReLU"),
        (lambda W, b, x: toy_lib.forward(W, torch.zeros_like(b), x), "add the bias"),
        (
            lambda W, b, x: torch.relu(torch.bmm(torch.bmm(x, W.transpose(1, 2)), W) - b[:, None, :]),
            "differs from toy_lib.forward",
        ),
        (lambda W, b, x: toy_lib.forward(W, b, x)[0], "expected (3, 8, 5)"),
    ],
    ids=["no-relu", "no-bias", "bias-subtracted", "drops-instance-axis"],
)
def test_check_forward_rejects(wrong, fragment):
    _fails(exercises.check_forward, wrong, "check_forward", fragment)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda x, xh, imp: (x - xh).square().mean(dim=(1, 2)), "ignores the importance"),
        (lambda x, xh, imp: toy_lib.loss_per_instance(x, xh, imp).mean(), "one loss per instance"),
        (lambda x, xh, imp: (imp[:, None, :] * (x - xh).square()).sum(dim=(1, 2)), "take the mean"),
        (
            lambda x, xh, imp: (imp[:, None, :] * (x - xh).square()).sum(dim=2).mean(dim=1),
            "average over them too",
        ),
        (lambda x, xh, imp: (imp[:, None, :] * (x - xh).abs()).mean(dim=(1, 2)), "square the errors"),
    ],
    ids=["no-importance", "one-scalar", "sum", "sum-over-features", "absolute-error"],
)
def test_check_loss_rejects(wrong, fragment):
    _fails(exercises.check_loss, wrong, "check_loss", fragment)


def _dim_without_self(W):
    norms = torch.linalg.norm(W, dim=0)
    gram = (W / norms).T @ W
    sq = gram.square()
    return norms.square() / (sq.sum(1) - sq.diagonal())


def _dim_raw_overlap(W):
    norms = torch.linalg.norm(W, dim=0)
    return norms.square() / (W.T @ W).square().sum(1)


def _dim_no_zero_guard(W):
    norms = torch.linalg.norm(W, dim=0)
    return norms.square() / ((W / norms).T @ W).square().sum(1)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (_dim_without_self, "includes j = i"),
        (_dim_raw_overlap, "unit vector"),
        (_dim_no_zero_guard, "return 0"),
        (lambda W: metrics.feature_dimensionality(W).sum(), "expected (3,)"),
    ],
    ids=["without-self", "raw-overlap", "no-zero-guard", "summed"],
)
def test_check_feature_dimensionality_rejects(wrong, fragment):
    _fails(exercises.check_feature_dimensionality, wrong, "check_feature_dimensionality", fragment)


def test_checkers_reject_something_that_is_not_a_function():
    _fails(exercises.check_forward, 42, "expected a function")
