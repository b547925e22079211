"""toy_lib's public API and its reference page (issue 9, section 7).

The public API is ``toy_lib.__all__`` plus the ``__all__`` of each documented module; book/api.md
renders exactly those names (``automodule`` with ``:members:`` follows ``__all__``), everything
else is private (an underscore name), and every name a chapter uses is public.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys

import pytest
from book_sources import BOOK, REPO, chapters

import toy_lib

API_PAGE = BOOK / "api.md"
#: Modules a reader imports as modules (``from toy_lib import metrics``).
MODULES = {"metrics", "plots", "exercises", "geometry", "real_model", "theory", "synthetic", "evaluation"}
#: The one public name of a documented module that is not exported from ``toy_lib`` itself.
NOT_AT_TOP = {"toy_lib.training.optimise"}


def _pointers():
    """book/_ext/api_pointers.py: the one place that decides a module's public names."""
    name = "_api_pointers_for_tests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "book" / "_ext" / "api_pointers.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def documented_modules() -> list[str]:
    return re.findall(r"^\.\. automodule:: (\S+)", API_PAGE.read_text(encoding="utf8"), flags=re.MULTILINE)


def documented_names() -> dict[str, object]:
    """``module.name`` -> object, for every entry the API page renders."""
    names = {}
    for modname in documented_modules():
        module = importlib.import_module(modname)
        for name in _pointers().public_names(module):
            names[f"{modname}.{name}"] = getattr(module, name)
    return names


def test_the_names_the_old_page_promised_are_not_public_any_more():
    # The old page said BatchSampler, AdamW, evaluate, loss_and_grad and cache_key were part of
    # the API, but none was importable from toy_lib; they are internals now.
    from toy_lib import cache, data, training

    for module, name in [
        (data, "BatchSampler"),
        (training, "AdamW"),
        (training, "evaluate"),
        (training, "loss_and_grad"),
        (cache, "cache_key"),
    ]:
        assert not hasattr(module, name), f"{module.__name__}.{name} is still public"
        assert hasattr(module, "_" + name), f"{module.__name__}._{name} is missing"
        assert f"{module.__name__}.{name}" not in documented_names()


def test_the_training_module_is_reachable_by_its_name():
    training = importlib.import_module("toy_lib.training")
    assert inspect.ismodule(toy_lib.training) and toy_lib.training is training
    assert training.train is toy_lib.train and training.TrainingDiverged is toy_lib.TrainingDiverged


def test_every_documented_module_declares_its_public_names():
    for modname in documented_modules():
        module = importlib.import_module(modname)
        if modname == "toy_lib.plots" and not hasattr(module, "__all__"):
            continue  # plots.py is being restyled by another change, which adds its __all__
        assert hasattr(module, "__all__"), f"{modname} has no __all__"
        for name in module.__all__:
            assert not name.startswith("_"), f"{modname}.__all__ lists a private name {name}"
            assert hasattr(module, name), f"{modname}.__all__ lists {name}, which does not exist"


def test_the_page_documents_exactly_what_is_importable_from_toy_lib():
    top = {n for n in toy_lib.__all__ if n not in MODULES}
    documented = {
        full.rsplit(".", 1)[1]
        for full in documented_names()
        if full.rsplit(".", 1)[0] not in {f"toy_lib.{m}" for m in MODULES} and full not in NOT_AT_TOP
    }
    assert documented == top, (
        f"on the page but not in toy_lib.__all__: {sorted(documented - top)}; "
        f"in toy_lib.__all__ but not on the page: {sorted(top - documented)}"
    )
    for full, obj in documented_names().items():
        name = full.rsplit(".", 1)[1]
        if full not in NOT_AT_TOP and not full.startswith(tuple(f"toy_lib.{m}." for m in MODULES)):
            assert getattr(toy_lib, name) is obj, f"toy_lib.{name} is not {full}"
    for module in MODULES:
        assert f"toy_lib.{module}" in documented_modules() and module in toy_lib.__all__


def public_modules() -> set[str]:
    """Every module of toy_lib, subpackages included, with no underscore in its dotted name."""
    found = set()
    for info in pkgutil.walk_packages(toy_lib.__path__, "toy_lib."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.add(info.name)
    # source_hash is the build's fingerprint of the library (loaded by path, standard library
    # only), not something a reader calls
    return found - {"toy_lib.source_hash"}


def test_every_public_module_declares_its_public_names_and_underscores_the_rest():
    for modname in sorted(public_modules()):
        module = importlib.import_module(modname)
        if modname == "toy_lib.plots" and not hasattr(module, "__all__"):
            continue  # plots.py is being restyled by another change, which adds its __all__
        assert hasattr(module, "__all__"), f"{modname} has no __all__"
        for name, obj in vars(module).items():
            defined_here = getattr(obj, "__module__", None) == modname and (
                inspect.isfunction(obj) or inspect.isclass(obj)
            )
            if defined_here and not name.startswith("_"):
                assert name in module.__all__, f"{modname}.{name} is neither in __all__ nor private (_{name})"


def test_every_toy_lib_module_with_public_names_is_on_the_page():
    assert public_modules() == set(documented_modules())


def _documented_entries():
    for full, obj in documented_names().items():
        if callable(obj):
            yield pytest.param(full, obj, id=full)


@pytest.mark.parametrize("full, obj", list(_documented_entries()))
def test_every_entry_has_a_docstring_that_names_its_arguments(full, obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{full} has no docstring"
    if full.startswith("toy_lib.plots."):
        return  # plots.py's own tests judge its docstrings
    assert len(doc) > 40, f"{full} has no real docstring"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return
    target = obj.__init__ if inspect.isclass(obj) and not hasattr(obj, "__dataclass_fields__") else obj
    for param in inspect.signature(target).parameters:
        if param in ("self", "args", "kwargs"):
            continue
        assert re.search(rf"\b{param}\b", doc), f"{full}'s docstring does not describe {param!r}"


TENSOR_ENTRIES = [
    "toy_lib.config.ToyModelConfig",
    "toy_lib.data.generate_batch",
    "toy_lib.model.hidden",
    "toy_lib.model.forward",
    "toy_lib.model.loss_per_instance",
    "toy_lib.model.init_weights",
    "toy_lib.model.ToyModel",
    "toy_lib.model.neuron_forward",
    "toy_lib.model.abs_forward",
    "toy_lib.model.NeuronModel",
    "toy_lib.model.AbsModel",
    "toy_lib.training.train",
    "toy_lib.training.TrainResult",
    "toy_lib.training.optimise",
    "toy_lib.exercises.check_generate_batch",
    "toy_lib.exercises.check_forward",
    "toy_lib.exercises.check_loss",
    "toy_lib.exercises.check_feature_dimensionality",
    "toy_lib.exercises.check_sae_forward",
    "toy_lib.exercises.check_sae_loss",
    "toy_lib.exercises.check_decoder_normalisation",
    "toy_lib.exercises.check_resample",
    "toy_lib.sae.config.SAEConfig",
    "toy_lib.sae.training.train_sae",
    "toy_lib.sae.result.SAEResult",
    "toy_lib.cache.cached_train_sae",
    "toy_lib.exercises.check_matryoshka_loss",  # beyond SAEs
] + [
    f"toy_lib.metrics.{n}"
    for n in _pointers().public_names(toy_lib.metrics)
    if callable(getattr(toy_lib.metrics, n))
]


@pytest.mark.parametrize("full", TENSOR_ENTRIES)
def test_every_entry_that_takes_or_returns_arrays_names_their_axes(full):
    doc = inspect.getdoc(documented_names()[full])
    assert re.search(r"\((\.\.\., |instance, )?\w+(, \w+)*\)", doc) and re.search(r"instance|feature", doc), (
        f"{full}'s docstring names no shapes"
    )


#: The real model's entries: their arrays run over tokens and texts, not instances and features.
REAL_MODEL_ENTRIES = [
    f"toy_lib.real_model.{n}"
    for n in (
        "hidden_states",
        "tokenize",
        "embed",
        "corpus_windows",
        "extract_activations",
        "Activations",
        "top_contexts",
        "feature_browser_html",
    )
] + ["toy_lib.cache.cached_activations"]


@pytest.mark.parametrize("full", REAL_MODEL_ENTRIES)
def test_every_real_model_entry_names_the_axes_of_its_arrays(full):
    doc = inspect.getdoc(documented_names()[full])
    assert re.search(r"\((batch|text|token|window)(, \w+)*,?\)", doc), f"{full}'s docstring names no shapes"


def _used_names(text: str) -> set[tuple[str, str]]:
    """``(module, name)`` for every ``toy_lib.X``, ``metrics.X``, ``plots.X``, ``exercises.X`` and
    ``from toy_lib[.module] import X`` in a chapter's source."""
    used = set()
    for module, name in re.findall(r"\b(toy_lib|metrics|plots|exercises)\.([A-Za-z_]\w*)", text):
        used.add(("toy_lib" if module == "toy_lib" else f"toy_lib.{module}", name))
    for module, names in re.findall(
        r"^\s*from (toy_lib(?:\.\w+)?) import ([\w, ]+)", text, flags=re.MULTILINE
    ):
        used |= {(module, n.strip()) for n in names.split(",") if n.strip()}
    return used


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_chapters_use_only_the_public_api(chapter):
    public = {("toy_lib", n) for n in toy_lib.__all__}
    public.add(("toy_lib", "__version__"))  # the version, printed "for the record"
    for full in documented_names():
        module, name = full.rsplit(".", 1)
        public.add((module, name))
    used = _used_names(chapter.read_text(encoding="utf8"))
    private = sorted(f"{m}.{n}" for m, n in used if (m, n) not in public)
    assert not private, f"{chapter.name} uses names outside the public API: {private}"
