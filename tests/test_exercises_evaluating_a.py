"""The checker of the exercise of "Evaluating SAEs", part A: it passes the library's function and
another correct one, and fails each planted mistake with its own hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toy_lib import evaluation, exercises


def loop_version(l0, error):
    """Correct, written as a loop."""
    l0, error = np.asarray(l0), np.asarray(error)
    flat_l0, flat_err = l0.reshape(-1, l0.shape[-1]), error.reshape(-1, l0.shape[-1])
    out = np.ones(flat_l0.shape, dtype=bool)
    for s in range(flat_l0.shape[0]):
        for i in range(flat_l0.shape[1]):
            for j in range(flat_l0.shape[1]):
                a, b = (flat_l0[s, j], flat_err[s, j]), (flat_l0[s, i], flat_err[s, i])
                if a[0] <= b[0] and a[1] <= b[1] and a != b:
                    out[s, i] = False
    return out.reshape(l0.shape)


@pytest.mark.parametrize(
    "fn",
    [evaluation.pareto_front, loop_version, lambda a, b: torch.from_numpy(evaluation.pareto_front(a, b))],
)
def test_correct_solutions_pass(fn, capsys):
    exercises.check_pareto_mask(fn)
    assert "passed" in capsys.readouterr().out


def both_strict(l0, error):
    a, b, c, d = l0[..., None, :], l0[..., :, None], error[..., None, :], error[..., :, None]
    return ~((a < b) & (c < d)).any(-1)


def reflexive(l0, error):
    a, b, c, d = l0[..., None, :], l0[..., :, None], error[..., None, :], error[..., :, None]
    return ~((a <= b) & (c <= d)).any(-1)


def flattened(l0, error):
    return evaluation.pareto_front(l0.reshape(-1), error.reshape(-1)).reshape(l0.shape)


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda a, b: ~evaluation.pareto_front(a, b), "returned the dominated points"),
        (both_strict, "strictly better on one"),
        (reflexive, "no worse' than itself"),
        (lambda a, b: evaluation.pareto_front(-a, -b), "lower is better"),
        (flattened, "within their own set"),
        (lambda a, b: evaluation.pareto_front(a, b).astype(int), "dtype"),
        (lambda a, b: evaluation.pareto_front(a, b).reshape(-1), "keep the leading axes"),
        (lambda a, b: None, "shape"),
    ],
)
def test_planted_mistakes_fail_with_their_hint(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        exercises.check_pareto_mask(fn)


def test_a_stub_is_reported_not_attempted(capsys):
    def stub(l0, error):
        raise NotImplementedError

    exercises.check_pareto_mask(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_the_checker_changes_nothing_and_keeps_the_random_state():
    state = np.random.get_state()[1].copy()
    exercises.check_pareto_mask(evaluation.pareto_front)
    assert np.array_equal(np.random.get_state()[1], state)
