"""Shared trained results: `toy_lib.cached_train` and the library fingerprint."""

import shutil

import pytest
import torch

import toy_lib
from toy_lib import cache
from toy_lib.source_hash import PACKAGE_DIR, library_hash

CFG = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=[0.1, 1.0])
ARGS = dict(steps=30, batch_size=64, device="cpu", eval_batch_size=128, seed=1)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    real = cache.train

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "train", counting)
    return calls


def test_second_call_is_loaded_bit_for_bit(cache_dir, count_training):
    first = toy_lib.cached_train(CFG, **ARGS)
    second = toy_lib.cached_train(CFG, **ARGS, progress=False)  # progress is not part of the key
    assert len(count_training) == 1
    assert len(list(cache_dir.glob("*.pt"))) == 1
    for name in ("W", "b", "loss_history", "final_loss", "restart_losses", "best_restart"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert second.recipe == first.recipe
    assert (second.config.probability_matrix() == CFG.probability_matrix()).all()
    fresh = toy_lib.train(CFG, **ARGS)
    assert torch.equal(fresh.W, second.W)  # what is stored is what train returns


@pytest.mark.parametrize(
    "change",
    [
        dict(
            config=toy_lib.ToyModelConfig(
                n_features=5, n_hidden=2, n_instances=2, feature_probability=[0.1, 0.9]
            )
        ),
        dict(
            config=toy_lib.ToyModelConfig(
                n_features=5, n_hidden=2, n_instances=2, feature_probability=[0.1, 1.0], activation="linear"
            )
        ),
        dict(seed=2),
        dict(lr=2e-3),
    ],
)
def test_a_different_configuration_or_argument_trains_again(cache_dir, count_training, change):
    toy_lib.cached_train(CFG, **ARGS)
    change = dict(change)
    config = change.pop("config", CFG)
    toy_lib.cached_train(config, **{**ARGS, **change})
    assert len(count_training) == 2
    assert len(list(cache_dir.glob("*.pt"))) == 2


def test_a_library_edit_changes_the_key(tmp_path):
    copy = shutil.copytree(PACKAGE_DIR, tmp_path / "toy_lib", ignore=shutil.ignore_patterns("__pycache__"))
    before = library_hash(copy)
    assert before == library_hash(PACKAGE_DIR)
    assert cache._cache_key(CFG, library=before, **ARGS) == cache._cache_key(CFG, **ARGS)
    (copy / "model.py").write_text((copy / "model.py").read_text() + "\n# an edit\n")
    after = library_hash(copy)
    assert after != before
    assert cache._cache_key(CFG, library=after, **ARGS) != cache._cache_key(CFG, library=before, **ARGS)
    (copy / "notes.txt").write_text("not Python source")
    assert library_hash(copy) == after


def test_another_numba_version_changes_the_key(monkeypatch):
    # The compiled kernels decide the CPU trainer's arithmetic: their compiler is part of the key.
    before = cache._cache_key(CFG, **ARGS)
    monkeypatch.setattr(cache, "_numba_version", lambda: "0.0.1")
    assert cache._cache_key(CFG, **ARGS) != before


def test_a_library_edit_trains_again(cache_dir, count_training, monkeypatch):
    toy_lib.cached_train(CFG, **ARGS)
    monkeypatch.setattr(cache, "library_hash", lambda directory: "another library")
    toy_lib.cached_train(CFG, **ARGS)
    assert len(count_training) == 2


def test_bad_arguments_are_named(cache_dir):
    with pytest.raises(ValueError, match="config=.*expected a ToyModelConfig"):
        toy_lib.cached_train({"n_features": 5})
    with pytest.raises(ValueError, match="stepz=10: expected an argument of toy_lib.train"):
        toy_lib.cached_train(CFG, stepz=10)
    with pytest.raises(ValueError, match="directory=.*expected a folder"):
        library_hash("/nonexistent/toy_lib")


RICHER = [
    dict(model="abs"),
    dict(model="neuron"),
    dict(correlated=[(0, 1)], anticorrelated=[(2, 3)]),
    dict(activation="linear", value_range=(-1, 1)),
    dict(dataset_size=16),
]


@pytest.mark.parametrize("kind", RICHER, ids=["abs", "neuron", "groups", "signed", "finite"])
def test_every_model_and_data_option_is_stored_and_loaded_bit_for_bit(cache_dir, count_training, kind):
    cfg = toy_lib.ToyModelConfig(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.3, **kind)
    args = {**ARGS, "batch_size": None}
    first = toy_lib.cached_train(cfg, **args)
    second = toy_lib.cached_train(cfg, **args)
    assert len(count_training) == 1
    assert second.params.keys() == first.params.keys()
    for name in first.params:
        assert torch.equal(first.params[name], second.params[name]), name
    for field in ("model", "activation", "value_range", "correlated", "anticorrelated", "dataset_size"):
        assert getattr(second.config, field) == getattr(cfg, field), field
    assert type(second.model()) is type(first.model())
    if cfg.dataset_size:
        assert torch.equal(second.training_set(), first.training_set())


def test_each_model_and_data_option_has_its_own_key():
    base = dict(n_features=5, n_hidden=2, n_instances=2, feature_probability=0.3)
    args = {**ARGS, "batch_size": None}
    keys = {cache._cache_key(toy_lib.ToyModelConfig(**base), library="x", **args)}
    for kind in RICHER + [dict(correlated=[(0, 1, 2)]), dict(anticorrelated=[(0, 1)]), dict(dataset_size=17)]:
        keys.add(cache._cache_key(toy_lib.ToyModelConfig(**base, **kind), library="x", **args))
    assert len(keys) == len(RICHER) + 4
    # a finite data set's batch size is the data set: None and the size are one run
    finite = toy_lib.ToyModelConfig(**base, dataset_size=16)
    with_none = cache._cache_key(finite, library="x", **{**ARGS, "batch_size": None})
    assert cache._cache_key(finite, library="x", **{**ARGS, "batch_size": 16}) == with_none
