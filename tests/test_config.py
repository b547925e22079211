"""ToyModelConfig: accepted forms of probability and importance, and clear errors for bad input."""

import numpy as np
import pytest
import torch

from toy_lib import ToyModelConfig


def test_scalar_per_instance_and_matrix_probability_forms():
    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=3, feature_probability=0.1)
    assert cfg.probability_matrix().shape == (3, 4)
    assert np.all(cfg.probability_matrix() == 0.1)

    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=3, feature_probability=[0.1, 0.2, 0.3])
    np.testing.assert_allclose(cfg.probability_matrix()[:, 0], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(cfg.probability_matrix()[1], 0.2)

    mat = np.linspace(0, 1, 12).reshape(3, 4)
    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=3, feature_probability=torch.tensor(mat))
    np.testing.assert_allclose(cfg.probability_matrix(), mat)


def test_scalar_per_feature_and_matrix_importance_forms():
    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=3, importance=[1.0, 0.9, 0.81, 0.729])
    np.testing.assert_allclose(cfg.importance_matrix()[2], [1.0, 0.9, 0.81, 0.729])
    cfg = ToyModelConfig(n_features=4, n_hidden=2, n_instances=3, importance=2.0)
    assert np.all(cfg.importance_matrix() == 2.0)


def test_with_restarts_repeats_settings_setting_major():
    cfg = ToyModelConfig(n_features=2, n_hidden=1, n_instances=2, feature_probability=[0.1, 0.5])
    rep = cfg.with_restarts(3)
    assert rep.n_instances == 6
    np.testing.assert_allclose(rep.probability_matrix()[:, 0], [0.1, 0.1, 0.1, 0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(n_features=0), ["n_features=0", "positive integer"]),
        (dict(n_hidden=-1), ["n_hidden=-1", "positive integer"]),
        (dict(n_instances=2.5), ["n_instances=2.5", "positive integer"]),
        (dict(feature_probability=1.5), ["feature_probability=1.5", "[0, 1]", "1.5"]),
        (dict(feature_probability=-0.1), ["feature_probability=-0.1", "[0, 1]"]),
        (dict(importance=[1, -1, 1, 1, 1]), ["importance=", "-1", ">= 0"]),
        (dict(importance=float("nan")), ["importance=nan", "finite"]),
        (
            dict(feature_probability=[0.1, 0.2, 0.3]),
            ["feature_probability=[0.1, 0.2, 0.3]", "one value per instance", "(2,)", "got shape (3,)"],
        ),
        (
            dict(importance=np.ones((2, 3))),
            ["importance=array(", "one value per feature", "(2, 5)", "got shape (2, 3)"],
        ),
        (dict(activation="tanh"), ["activation='tanh'", "'relu'", "'linear'"]),
        (dict(importance="heavy"), ["importance='heavy'", "number"]),
    ],
)
def test_bad_config_raises_naming_argument_value_and_expectation(kwargs, fragments):
    base = dict(n_features=5, n_hidden=2, n_instances=2)
    base.update(kwargs)
    with pytest.raises(ValueError) as err:
        ToyModelConfig(**base)
    for fragment in fragments:
        assert fragment in str(err.value), f"{fragment!r} not in message: {err.value}"
