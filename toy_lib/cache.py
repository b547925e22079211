"""Train once, reuse everywhere: `cached_train` stores a `TrainResult` on disk.

Several chapters use the same trained models (the 5 → 2 sweep, say). `cached_train` is `train`
with a memory: the first call trains and saves the result; every later call with the same
configuration, the same training arguments, the same library source (`library_hash`) and the
same versions of torch and Numba loads it instead. Any change to one of these is a different key, so a stale
result is never served.

Where results are kept: the folder named by the environment variable ``TOY_LIB_CACHE_DIR``, else
``.toy_lib_cache`` in the current folder (git-ignored). The book's build sets the variable to
``_build/.toy_lib_cache``, so a clean build trains everything once and shares it between
chapters.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

import torch

from . import _cpu_kernels
from .config import ToyModelConfig
from .source_hash import PACKAGE_DIR, library_hash
from .train import TrainResult, pick_device, train

CACHE_ENV = "TOY_LIB_CACHE_DIR"
DEFAULT_DIR = ".toy_lib_cache"
# Arguments of `train` that do not change its result.
_IGNORED = ("progress",)
_TRAIN_SIGNATURE = inspect.signature(train)


def cache_dir() -> Path:
    """The folder where `cached_train` keeps results (``$TOY_LIB_CACHE_DIR`` or ``.toy_lib_cache``)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_DIR)


def _config_record(config: ToyModelConfig) -> dict:
    return dict(
        n_features=config.n_features,
        n_hidden=config.n_hidden,
        n_instances=config.n_instances,
        feature_probability=config.probability_matrix().tolist(),
        importance=config.importance_matrix().tolist(),
        activation=config.activation,
    )


def _numba_version() -> str | None:
    numba = _cpu_kernels.numba_module()
    return numba.__version__ if numba else None


def cache_key(config: ToyModelConfig, library: str | None = None, **train_kwargs) -> str:
    """The key of a training run: SHA-256 over the configuration, every argument of `train`
    (defaults filled in, the device resolved), the library hash and the versions of torch and
    Numba."""
    if not isinstance(config, ToyModelConfig):
        raise ValueError(f"config={config!r}: expected a ToyModelConfig")
    try:
        bound = _TRAIN_SIGNATURE.bind(config, **train_kwargs)
    except TypeError as err:
        raise ValueError(f"train_kwargs={train_kwargs!r}: {err}") from err
    bound.apply_defaults()
    args = {k: v for k, v in bound.arguments.items() if k != "config" and k not in _IGNORED}
    args["device"] = pick_device(args["device"]).type
    record = dict(
        config=_config_record(config),
        train=args,
        torch=torch.__version__,
        # the CPU trainer's compiled kernels: Numba's version, or None where they are not used
        numba=_numba_version(),
        library=library or library_hash(PACKAGE_DIR),
    )
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _save(result: TrainResult, path: Path) -> None:
    state = dict(
        config=_config_record(result.config),
        W=result.W,
        b=result.b,
        loss_history=result.loss_history,
        final_loss=result.final_loss,
        restart_losses=result.restart_losses,
        best_restart=result.best_restart,
        recipe=result.recipe,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _load(path: Path) -> TrainResult:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return TrainResult(config=ToyModelConfig(**state.pop("config")), **state)


def cached_train(config: ToyModelConfig, **train_kwargs) -> TrainResult:
    """`toy_lib.train(config, **train_kwargs)`, computed once and then loaded from disk.

    The result is stored under `cache_dir()` with the name `cache_key`; a later call with the
    same configuration, arguments, library source and torch version returns the stored result,
    bit for bit. ``progress`` does not enter the key.

    Returns:
        The `TrainResult` (on the CPU, as `train` returns it).
    """
    path = cache_dir() / f"{cache_key(config, **train_kwargs)}.pt"
    if path.exists():
        return _load(path)
    result = train(config, **train_kwargs)
    _save(result, path)
    return result
