"""The checker of the exercise of "Evaluating SAEs", part B (`check_absorption_fraction`): it
passes the library's function and another correct solution, and fails planted mistakes with a
specific hint."""

from __future__ import annotations

import pytest

from toy_lib import exercises, metrics


def test_absorption_checker_passes_the_library_and_another_correct_solution(capsys):
    exercises.check_absorption_fraction(lambda f, c: metrics.absorption_fraction(f, c))
    exercises.check_absorption_fraction(lambda f, c: ((f == 0) & c[:, None]).sum(0) / c.sum())
    assert capsys.readouterr().out.count("passed") == 2


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda f, c: (f[c] != 0).double().mean(0), "silent (f == 0), not those on which it fires"),
        (lambda f, c: ((f == 0) & c[:, None]).double().mean(0), "divide by the number of inputs on which"),
        (lambda f, c: (f == 0).double().mean(0), "look only at the inputs on which the child fires"),
        (lambda f, c: (f[~c] == 0).double().mean(0), "where child_fires is True, not False"),
        (lambda f, c: (f[c] == 0).double().mean(), "one number per latent"),
        (lambda f, c: None, "forget the `return`"),
    ],
)
def test_absorption_checker_fails_planted_mistakes_with_a_hint(wrong, hint):
    with pytest.raises(AssertionError) as err:
        exercises.check_absorption_fraction(wrong)
    assert hint in str(err.value), str(err.value)


def test_absorption_checker_reports_a_stub_as_not_attempted(capsys):
    def stub(f, c):
        raise NotImplementedError

    exercises.check_absorption_fraction(stub)
    assert "not attempted yet" in capsys.readouterr().out
