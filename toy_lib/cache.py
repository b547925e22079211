"""Train once, reuse everywhere: `cached_train` stores a `TrainResult` on disk, `cached_train_sae`
an `SAEResult`, both through one keyed store (`cached`).

Several chapters use the same trained models (the 5 → 2 sweep, say), and the tests read the very
results the chapters drew. `cached_train` is `train` with a memory: the first call trains and
saves the result; every later call with the same configuration, the same training arguments, the
same library source (`library_hash`) and the same versions of torch and Numba loads it instead.
`cached_train_sae` does the same for `train_sae`, with the data in the key too: a toy model by its
configuration, weights and recipe, a tensor by a hash of its contents. Any change to one of these
is a different key, so a stale result is never served.

Where results are kept: the folder named by the environment variable ``TOY_LIB_CACHE_DIR``, else
``.toy_lib_cache`` in the current folder (git-ignored). The book's build sets the variable to
``_build/.toy_lib_cache``, so a clean build trains everything once and shares it between
chapters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from pathlib import Path

import numpy as np
import torch

from . import _cpu_kernels, _validate
from .config import ToyModelConfig
from .sae import SAEConfig, SAEResult, train_sae
from .sae._data import check_activations as _check_activations
from .sae.training import _check_size as _check_sae_size
from .sae.training import _train_sae_arguments
from .source_hash import PACKAGE_DIR, library_hash
from .training import TrainResult, _train_arguments, train

__all__ = ["cached_train", "cached_train_sae", "cached_activations", "cache_dir"]

CACHE_ENV = "TOY_LIB_CACHE_DIR"
DEFAULT_DIR = ".toy_lib_cache"
# Arguments of `train` that do not change its result.
_IGNORED = ("progress",)
_TRAIN_SIGNATURE = inspect.signature(train)
_TRAIN_SAE_SIGNATURE = inspect.signature(train_sae)


def cache_dir() -> Path:
    """The folder where `cached_train` keeps results: ``$TOY_LIB_CACHE_DIR`` (with ``~``
    expanded to your home folder), or ``.toy_lib_cache`` in the current folder."""
    return _validate.folder(os.environ.get(CACHE_ENV) or DEFAULT_DIR, CACHE_ENV)


def _config_record(config: ToyModelConfig) -> dict:
    return dict(
        n_features=config.n_features,
        n_hidden=config.n_hidden,
        n_instances=config.n_instances,
        feature_probability=config.probability_matrix().tolist(),
        importance=config.importance_matrix().tolist(),
        activation=config.activation,
        model=config.model,
        value_range=list(config.value_range),
        correlated=[list(g) for g in config.correlated],
        anticorrelated=[list(g) for g in config.anticorrelated],
        dataset_size=config.dataset_size,
    )


def _numba_version() -> str | None:
    numba = _cpu_kernels.numba_module()
    return numba.__version__ if numba else None


def _key(kind: str, record: dict, library: str | None) -> str:
    """SHA-256 over what was computed (``kind``, ``record``), the library hash and the versions of
    torch and Numba."""
    full = dict(
        kind=kind,
        **record,
        torch=torch.__version__,
        # the CPU trainers' compiled kernels: Numba's version, or None where they are not used
        numba=_numba_version(),
        library=library or library_hash(PACKAGE_DIR),
    )
    return hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()


def _cache_key(config: ToyModelConfig, library: str | None = None, **train_kwargs) -> str:
    """The key of a training run: SHA-256 over the configuration, every argument of `train`
    (checked and in normal form by the same code as `train`'s, defaults filled in, the device
    resolved to its type), the library hash and the versions of torch and Numba. So
    ``steps=5`` and ``steps=np.int64(5)`` give one key, and an argument `train` would refuse is
    refused here, before anything is trained or stored."""
    _validate.instance_of(config, "config", ToyModelConfig)
    for name, value in train_kwargs.items():
        if name == "config" or name not in _TRAIN_SIGNATURE.parameters:
            known = ", ".join(n for n in _TRAIN_SIGNATURE.parameters if n != "config")
            raise _validate.fail(name, value, f"an argument of toy_lib.train ({known})")
    bound = _TRAIN_SIGNATURE.bind(config, **train_kwargs)
    bound.apply_defaults()
    args = _train_arguments(**bound.arguments)
    args = {k: v for k, v in args.items() if k != "config" and k not in _IGNORED}
    args["device"] = args["device"].type
    return _key("train", dict(config=_config_record(config), train=args), library)


def _tensor_record(tensor: torch.Tensor) -> dict:
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"").hexdigest()
    return dict(shape=list(data.shape), dtype=str(data.dtype), sha256=digest)


def _data_record(data, config: SAEConfig) -> dict:
    """What identifies SAE training data in the key: a toy model by its configuration, weights and
    recipe; a tensor or NumPy array (or a list or tuple of tensors), checked as `train_sae` checks
    it, by its shape, dtype and a hash of its contents. Any other iterable cannot be keyed without
    reading it, so it is refused."""
    if isinstance(data, TrainResult):
        return dict(
            toy=_config_record(data.config),
            params={name: _tensor_record(t) for name, t in data.params.items()},
            recipe=data.recipe,
        )
    d_in, n = config.d_in, config.n_instances
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return dict(tensor=_tensor_record(_check_activations(data, "data", d_in, n)))
    if (
        isinstance(data, (list, tuple))
        and data
        and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in data)
    ):
        tensors = [
            _check_activations(t, f"data (tensor {i + 1} of the iterable)", d_in, n, allow_empty=True)
            for i, t in enumerate(data)
        ]
        return dict(tensors=[_tensor_record(t) for t in tensors])
    raise _validate.fail(
        "data",
        data,
        "a TrainResult, a tensor, or a non-empty list or tuple of tensors for cached_train_sae (another "
        "iterable cannot be keyed without reading it: call toy_lib.train_sae)",
        type(data).__name__,
    )


def _sae_cache_key(config: SAEConfig, data, library: str | None = None, **train_kwargs) -> str:
    """The key of an SAE training run: SHA-256 over the `SAEConfig`, the data (`_data_record`),
    every argument of `train_sae` (checked and in normal form by the same code as `train_sae`'s,
    defaults filled in, the device resolved to its type), the library hash and the versions of
    torch and Numba. An argument `train_sae` would refuse is refused here, before anything is
    trained or stored."""
    _validate.instance_of(config, "config", SAEConfig, "an SAEConfig (toy_lib.SAEConfig)")
    for name, value in train_kwargs.items():
        if name in ("config", "data") or name not in _TRAIN_SAE_SIGNATURE.parameters:
            known = ", ".join(n for n in _TRAIN_SAE_SIGNATURE.parameters if n not in ("config", "data"))
            raise _validate.fail(name, value, f"a keyword argument of toy_lib.train_sae ({known})")
    if "steps" not in train_kwargs:
        raise _validate.fail("steps", None, "the number of training steps (train_sae's steps=, required)")
    bound = _TRAIN_SAE_SIGNATURE.bind(config, data, **train_kwargs)
    bound.apply_defaults()
    args = _train_sae_arguments(**{k: v for k, v in bound.arguments.items() if k != "data"})
    _check_sae_size(args, data)
    args = {k: v for k, v in args.items() if k != "config" and k not in _IGNORED}
    args["device"] = args["device"].type
    return _key(
        "train_sae", dict(config=config._record(), data=_data_record(data, config), train=args), library
    )


def _cached(key: str, compute, to_state, from_state, *, mmap: bool = False):
    """The one store: the result stored under ``key`` in `cache_dir`, or ``compute()``'s, stored.

    ``to_state(result)`` turns a result into tensors and plain values (saved with ``torch.save``),
    ``from_state(state)`` back. With ``mmap=True`` a stored result's tensors are memory-mapped
    rather than read into memory (large activations).
    """
    path = cache_dir() / f"{key}.pt"
    if path.exists():
        return from_state(torch.load(path, map_location="cpu", weights_only=True, mmap=mmap))
    result = compute()
    _save(to_state(result), path)
    return result


def _save(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _train_state(result: TrainResult) -> dict:
    return dict(
        config=_config_record(result.config),
        params=dict(result.params),
        loss_history=result.loss_history,
        final_loss=result.final_loss,
        restart_losses=result.restart_losses,
        best_restart=result.best_restart,
        recipe=result.recipe,
    )


def _train_result(state: dict) -> TrainResult:
    return TrainResult(config=ToyModelConfig(**state.pop("config")), **state)


def cached_train(config: ToyModelConfig, **train_kwargs) -> TrainResult:
    """`toy_lib.train(config, **train_kwargs)`, computed once and then loaded from disk.

    The result is stored under `cache_dir()`, named by a hash of the configuration, the
    arguments (in normal form: ``steps=5`` and ``steps=np.int64(5)`` are the same run), the
    library's source and the versions of torch and Numba; a later call with the same ones
    returns the stored result, bit for bit. ``progress`` does not enter the key.

    Args:
        config: a `ToyModelConfig`.
        train_kwargs: the keyword arguments of `train`, checked as `train` checks them.

    Returns:
        The `TrainResult` (on the CPU, as `train` returns it).

    Raises:
        ValueError: naming the argument, for anything `train` refuses, or an argument `train`
            does not have.
    """
    key = _cache_key(config, **train_kwargs)
    return _cached(key, lambda: train(config, **train_kwargs), _train_state, _train_result)


def cached_train_sae(config: SAEConfig, data, **train_kwargs) -> SAEResult:
    """`toy_lib.train_sae(config, data, **train_kwargs)`, computed once and then loaded from disk.

    The result is stored under `cache_dir()`, named by a hash of the configuration, the data (a
    toy model by its configuration, weights and recipe; a tensor by its contents), every argument
    of `train_sae` in normal form (``steps=5`` and ``steps=np.int64(5)`` are the same run), the
    library's source and the versions of torch and Numba; a later call with the same ones returns
    the stored result, bit for bit. ``progress`` does not enter the key.

    Args:
        config: an `SAEConfig`.
        data: what `train_sae` trains on, in a form that can be keyed: a `TrainResult` (its hidden
            vectors ``(instance, batch, d_in)``), a tensor or NumPy array ``(N, d_in)`` or
            ``(instance, N, d_in)``, or a list or tuple of such tensors (a generator or another
            iterable cannot be keyed without reading it: call `train_sae` itself).
        train_kwargs: the keyword arguments of `train_sae` (``steps`` is required), checked as
            `train_sae` checks them.

    Returns:
        The `SAEResult` (on the CPU, as `train_sae` returns it).

    Raises:
        ValueError: naming the argument, for anything `train_sae` refuses, an argument `train_sae`
            does not have, or data that cannot be keyed; before anything is trained or stored.
    """
    key = _sae_cache_key(config, data, **train_kwargs)
    return _cached(
        key, lambda: train_sae(config, data, **train_kwargs), SAEResult._state, SAEResult._from_state
    )


# --------------------------------------------------------------------------- activations of a real model
# Self-contained on purpose (one more kind of cached result beside `cached_train`): the key is
# everything the activations depend on, and nothing else, so an edit elsewhere in toy_lib does
# not recompute them.


def _activations_key(model, corpus, **extract_kwargs) -> str:
    """The key of `cached_activations`: SHA-256 over the model's and the corpus's hashes, every
    argument of `toy_lib.real_model.extract_activations` (checked and in normal form by the same
    code as its own, defaults filled in, the device resolved to its type), the source of
    ``toy_lib/real_model.py`` and the versions of torch and tokenizers."""
    import tokenizers

    from . import real_model

    signature = inspect.signature(real_model.extract_activations)
    for name, value in extract_kwargs.items():
        if name in ("model", "corpus") or name not in signature.parameters:
            known = ", ".join(n for n in signature.parameters if n not in ("model", "corpus"))
            raise _validate.fail(
                name, value, f"a keyword argument of toy_lib.real_model.extract_activations ({known})"
            )
    if "n_tokens" not in extract_kwargs:
        raise _validate.fail(
            "n_tokens", None, "the number of token rows to keep (extract_activations' n_tokens=, required)"
        )
    bound = signature.bind(model, corpus, **extract_kwargs)
    bound.apply_defaults()
    args = real_model._extract_arguments(**bound.arguments)
    args = {k: v for k, v in args.items() if k not in ("model", "corpus", "progress")}
    args["device"] = args["device"].type
    args["dtype"] = str(args["dtype"])
    record = dict(
        model=model.sha256,
        corpus=corpus.sha256,
        extract=args,
        source=hashlib.sha256(Path(real_model.__file__).read_bytes()).hexdigest(),
        torch=torch.__version__,
        tokenizers=tokenizers.__version__,
    )
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def cached_activations(model, corpus, **extract_kwargs):
    """`toy_lib.real_model.extract_activations(model, corpus, **extract_kwargs)`, computed once
    and then read from disk.

    The activations are stored under `cache_dir()`, named by a hash of the model's and the
    corpus's SHA-256, every argument in normal form (``n_tokens=5`` and ``n_tokens=np.int64(5)``
    are the same extraction), the source of ``toy_lib/real_model.py`` and the versions of torch
    and tokenizers. ``progress`` does not enter the key.

    Args:
        model: the `toy_lib.real_model.Encoder` (`toy_lib.real_model.load_model`).
        corpus: the `toy_lib.real_model.Corpus` (`toy_lib.real_model.load_corpus`).
        extract_kwargs: the keyword arguments of `toy_lib.real_model.extract_activations`
            (``n_tokens`` is required), checked as it checks them.

    Returns:
        The `toy_lib.real_model.Activations`, ``acts`` of shape ``(token, d_model)``; read back
        from disk, ``acts`` is memory-mapped rather than loaded.

    Raises:
        ValueError: naming the argument, for anything `extract_activations` refuses or an
            argument it does not have, before anything is computed or stored.
    """
    from .real_model import Activations, extract_activations

    return _cached(
        f"activations-{_activations_key(model, corpus, **extract_kwargs)}",
        lambda: extract_activations(model, corpus, **extract_kwargs),
        lambda result: {f.name: getattr(result, f.name) for f in dataclasses.fields(result)},
        lambda state: Activations(**state),
        mmap=True,
    )
