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


@pytest.mark.parametrize(
    "checker, arity",
    [
        (exercises.check_generate_batch, 2),
        (exercises.check_forward, 3),
        (exercises.check_loss, 3),
        (exercises.check_feature_dimensionality, 1),
    ],
)
def test_a_stub_not_filled_in_is_reported_in_one_line_without_raising(checker, arity, capsys):
    # The Colab edition's "Run all" runs through the exercise stubs: a stub raises
    # NotImplementedError, and the checker says so and returns.
    def todo(*args):
        assert len(args) == arity
        raise NotImplementedError

    assert checker(todo) is None
    out = capsys.readouterr().out
    assert out == f"{checker.__name__}: not attempted yet — fill in the TODO, then run this cell again\n"


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
    with pytest.raises(ValueError, match=r"fn=42: expected a function \(your solution\), got int"):
        exercises.check_forward(42)


CHECKERS = [
    (exercises.check_generate_batch, 2, "feature_probability of shape (3, 6)"),
    (exercises.check_forward, 3, "W (3, 2, 5)"),
    (exercises.check_loss, 3, "x and x_hat of shape (3, 16, 5)"),
    (exercises.check_feature_dimensionality, 1, "three orthogonal features"),
]


@pytest.mark.parametrize("checker, arity, case", CHECKERS, ids=lambda c: getattr(c, "__name__", None))
def test_a_function_that_raises_fails_naming_the_case_and_the_exception(checker, arity, case):
    def broken(*args):
        assert len(args) == arity
        raise KeyError("oops")

    with pytest.raises(AssertionError) as info:
        checker(broken)
    message = str(info.value)
    assert message.startswith(f"{checker.__name__}: for {case}"), message
    assert "your function raised KeyError: 'oops'" in message and "expected it to return" in message
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("checker, arity, case", CHECKERS, ids=lambda c: getattr(c, "__name__", None))
def test_a_nan_output_is_reported_as_nan(checker, arity, case):
    references = {
        "check_generate_batch": toy_lib.generate_batch,
        "check_forward": toy_lib.forward,
        "check_loss": toy_lib.loss_per_instance,
        "check_feature_dimensionality": metrics.feature_dimensionality,
    }
    reference = references[checker.__name__]

    def nan_everywhere(*args):
        return torch.as_tensor(reference(*args)) * float("nan")

    message = _fails(
        checker, nan_everywhere, f"{checker.__name__}: for {case}", "your output is NaN at index"
    )
    assert "differs" not in message and "up to nan" not in message


# --------------------------------------------------------------------------- analyze_superposition


def _analyze_reference(n_features, n_hidden, sparsity, steps=3_000):
    """A correct analyze_superposition (the chapter's solution, trained for real)."""
    from toy_lib import plots

    config = toy_lib.ToyModelConfig(
        n_features=n_features,
        n_hidden=n_hidden,
        n_instances=1,
        feature_probability=1 - sparsity,
        importance=[0.9**i for i in range(n_features)],
    )
    trained = toy_lib.train(config, steps=steps, restarts=2, seed=0, device="cpu")
    W = trained.W[0]
    kept = W[:, torch.from_numpy(metrics.represented(W))]
    unit = kept / kept.norm(dim=0)
    cos = unit.T @ unit
    off = ~torch.eye(cos.shape[0], dtype=torch.bool)
    mean_cos = cos[off].abs().mean().item() if kept.shape[1] > 1 else 0.0
    if n_hidden == 2:
        fig = plots.feature_arrows(trained.W, importance=config.importance_matrix())
    else:
        fig = plots.wtw_and_norms(trained.W)
    return fig, mean_cos


def _ideal_W(n_features, n_hidden, sparsity):
    """What the checker's settings train to, built by hand (no training): orthogonal features
    when dense, a regular pentagon of norm 1.16 in the plane when sparse."""
    if sparsity == 0.0:
        return torch.eye(n_hidden, n_features, dtype=torch.float64)
    angles = torch.arange(n_features, dtype=torch.float64) * 2 * torch.pi / n_features
    return 1.16 * torch.stack([torch.cos(angles), torch.sin(angles)])


def _planted(statistic, returns="pair"):
    """An analyze_superposition that skips training and computes ``statistic(W)`` on the ideal
    weights: quick, and wrong only where ``statistic`` is."""
    import matplotlib.pyplot as plt

    def fn(n_features, n_hidden, sparsity, steps=3_000):
        W = _ideal_W(n_features, n_hidden, sparsity)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        value = statistic(W)
        return {"pair": (fig, value), "swapped": (value, fig), "figure": fig, "no-figure": (None, value)}[
            returns
        ]

    return fn


def _cos(W):
    unit = W / W.norm(dim=0)
    return unit.T @ unit


def _mean_off_diagonal(M):
    off = ~torch.eye(M.shape[0], dtype=torch.bool)
    return M[off].mean().item()


def test_check_analyze_superposition_accepts_a_correct_solution(capsys):
    exercises.check_analyze_superposition(_analyze_reference)
    assert "passed" in capsys.readouterr().out


def test_check_analyze_superposition_accepts_the_ideal_geometry(capsys):
    exercises.check_analyze_superposition(_planted(lambda W: _mean_off_diagonal(_cos(W).abs())))
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, fragments",
    [
        (_planted(lambda W: _mean_off_diagonal(_cos(W))), ["mean |cos| = -0.25", "not cos"]),
        (_planted(lambda W: _cos(W).abs().mean().item()), ["leave out", "i = j"]),
        (_planted(lambda W: _mean_off_diagonal((W.T @ W).abs())), ["divide each column by its norm"]),
        (_planted(lambda W: float("nan")), ["mean_cos = nan", "represented"]),
        (
            _planted(lambda W: _mean_off_diagonal(_cos(W).abs()), returns="swapped"),
            ["order (figure, mean_cos)"],
        ),
        (_planted(lambda W: 0.0, returns="figure"), ["returned only a figure"]),
        (_planted(lambda W: 0.0, returns="no-figure"), ["NoneType as its figure"]),
        (lambda n, m, s, steps=3_000: None, ["returned NoneType", "return"]),
        (lambda n, m, s: None, ["TypeError", "steps as the fourth argument"]),
    ],
    ids=[
        "no-abs",
        "with-diagonal",
        "dot-not-cos",
        "nan",
        "swapped",
        "figure-only",
        "no-figure",
        "none",
        "no-steps",
    ],
)
def test_check_analyze_superposition_rejects(wrong, fragments):
    _fails(exercises.check_analyze_superposition, wrong, "check_analyze_superposition", *fragments)


def test_check_analyze_superposition_names_the_setting_of_an_empty_figure():
    import matplotlib.pyplot as plt

    def empty(n, m, s, steps=3_000):
        return plt.figure(), 0.0

    _fails(exercises.check_analyze_superposition, empty, "(3, 3, 0.0, 2000)", "nothing drawn")


def test_check_analyze_superposition_reports_a_todo_without_raising(capsys):
    def todo(n, m, s, steps=3_000):
        raise NotImplementedError

    assert exercises.check_analyze_superposition(todo) is None
    assert "check_analyze_superposition: not attempted yet" in capsys.readouterr().out
