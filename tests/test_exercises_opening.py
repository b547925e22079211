"""The checkers of the two opening chapters (toy_lib/exercises.py, the section at its end): correct
functions pass, and each common mistake fails with a message that names it."""

from __future__ import annotations

import pytest
import torch
from test_exercises import _fails

from toy_lib import exercises, geometry


def _todo(*args):
    raise NotImplementedError


# --------------------------------------------------------------------------- top-feature share


def test_check_top_feature_share_accepts_toy_lib_and_a_torch_version(capsys):
    exercises.check_top_feature_share(geometry.top_feature_share)

    def mine(W):
        sq = W**2
        total = sq.sum(dim=1)
        return torch.where(total > 0, sq.amax(dim=1) / total.clamp_min(1e-300), torch.zeros_like(total))

    exercises.check_top_feature_share(mine)
    assert capsys.readouterr().out.count("passed") == 2


def _share_no_zero_guard(W):
    sq = W**2
    return sq.amax(dim=1) / sq.sum(dim=1)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda W: (W**2).amax(dim=0) / (W**2).sum(dim=0), "one value per feature"),
        (lambda W: W.abs().amax(dim=1) / W.abs().sum(dim=1), "squared weights"),
        (lambda W: W.amax(dim=1) ** 2 / (W**2).sum(dim=1).clamp_min(1e-300), "negative weights included"),
        (lambda W: (W**2).amax(dim=1), "divide by the neuron's total"),
        (_share_no_zero_guard, "return 0 for it"),
        (lambda W: None, "returned None"),
    ],
    ids=["per-feature", "absolute", "signed-max", "unnormalised", "no-zero-guard", "none"],
)
def test_check_top_feature_share_rejects(wrong, fragment):
    _fails(exercises.check_top_feature_share, wrong, "check_top_feature_share", fragment)


# --------------------------------------------------------------------------- largest |cos|


def test_check_largest_abs_cosine_accepts_toy_lib_and_a_torch_version(capsys):
    exercises.check_largest_abs_cosine(geometry.max_abs_cosine)

    def mine(W):
        unit = W / W.norm(dim=0, keepdim=True)
        cos = (unit.T @ unit).abs()
        cos.fill_diagonal_(0.0)
        return cos.max().item()

    exercises.check_largest_abs_cosine(mine)
    assert capsys.readouterr().out.count("passed") == 2


def _cos_with_diagonal(W):
    unit = W / W.norm(dim=0, keepdim=True)
    return (unit.T @ unit).abs().max().item()


def _cos_no_abs(W):
    unit = W / W.norm(dim=0, keepdim=True)
    return (unit.T @ unit).fill_diagonal_(-2.0).max().item()


def _cos_unnormalised(W):
    return (W.T @ W).abs().fill_diagonal_(0.0).max().item()


def _cos_of_rows(W):
    unit = W / W.norm(dim=1, keepdim=True)
    return (unit @ unit.T).abs().fill_diagonal_(0.0).max().item()


def _cos_every_pair(W):
    unit = W / W.norm(dim=0, keepdim=True)
    return (unit.T @ unit).abs().fill_diagonal_(0.0)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (_cos_with_diagonal, "leave out the diagonal"),
        (_cos_no_abs, "absolute value"),
        (_cos_unnormalised, "divide the dot products by the lengths"),
        (_cos_of_rows, "columns of W"),
        (_cos_every_pair, "expected one"),
    ],
    ids=["diagonal", "no-abs", "unnormalised", "rows", "matrix"],
)
def test_check_largest_abs_cosine_rejects(wrong, fragment):
    _fails(exercises.check_largest_abs_cosine, wrong, "check_largest_abs_cosine", fragment)


# --------------------------------------------------------------------------- measure_interference


def _reference_interference(W, x):
    gram = W.T @ W
    return x @ (gram - torch.diag(torch.diagonal(gram)))


def test_check_measure_interference_accepts_toy_lib_and_a_torch_version(capsys):
    exercises.check_measure_interference(geometry.interference)
    exercises.check_measure_interference(_reference_interference)
    assert capsys.readouterr().out.count("passed") == 2


def _with_self(W, x):
    return x @ (W.T @ W)


def _whole_error(W, x):
    return x @ (W.T @ W) - x


def _cosines(W, x):
    unit = W / W.norm(dim=0, keepdim=True)
    cos = unit.T @ unit
    return x @ (cos - torch.eye(cos.shape[0], dtype=cos.dtype))


def _wrong_product(W, x):
    gram = W @ W.T  # (hidden, hidden): the wrong Gram matrix
    return x @ gram


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (_with_self, "leave out j = i"),
        (_whole_error, "whole reconstruction error"),
        (_cosines, "not cosines"),
        (lambda W, x: -_reference_interference(W, x), "sign is flipped"),
        (lambda W, x: _reference_interference(W, x) ** 2, "not its square"),
        (lambda W, x: _reference_interference(W, x).sum(dim=1), "do not sum"),
        (_wrong_product, "W is (hidden, feature)"),
    ],
    ids=["with-self", "whole-error", "cosines", "sign", "squared", "summed", "wrong-product"],
)
def test_check_measure_interference_rejects(wrong, fragment):
    _fails(exercises.check_measure_interference, wrong, "check_measure_interference", fragment)


# --------------------------------------------------------------------------- expected interference


def test_check_expected_interference_accepts_toy_lib_and_a_formula(capsys):
    exercises.check_expected_interference(lambda c, si, sj: geometry.expected_interference(c, si, sj))
    exercises.check_expected_interference(lambda c, si, sj: c**2 * (1 - si) * (1 - sj) / 3)
    assert capsys.readouterr().out.count("passed") == 2


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda c, si, sj: c**2 * (1 - sj) / 3, "1 - S_i too"),
        (lambda c, si, sj: c**2 * si * sj / 3, "active with probability 1 - S"),
        (lambda c, si, sj: abs(c) * (1 - si) * (1 - sj) / 3, "use cos²"),
        (lambda c, si, sj: c**2 * (1 - si) * (1 - sj), "E[x²]"),
        (lambda c, si, sj: c**2 * (1 - si) * (1 - sj) / 4, "E[x²]"),
    ],
    ids=["one-density", "sparsity-for-density", "cos-not-squared", "no-third", "quarter"],
)
def test_check_expected_interference_rejects(wrong, fragment):
    _fails(exercises.check_expected_interference, wrong, "check_expected_interference", fragment)


def test_the_checkers_do_not_change_their_inputs_or_the_global_rng():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    exercises.check_measure_interference(geometry.interference)
    exercises.check_largest_abs_cosine(geometry.max_abs_cosine)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "checker",
    [
        exercises.check_top_feature_share,
        exercises.check_largest_abs_cosine,
        exercises.check_measure_interference,
        exercises.check_expected_interference,
    ],
)
def test_an_unattempted_stub_is_reported_without_raising(checker, capsys):
    assert checker(_todo) is None
    assert (
        capsys.readouterr().out
        == f"{checker.__name__}: not attempted yet — fill in the TODO, then run this cell again\n"
    )
