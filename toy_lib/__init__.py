"""toy_lib: the library behind the executable textbook on superposition and sparse autoencoders.

The public API the book introduces, chapter by chapter:

- `ToyModelConfig`, `train`, `TrainResult`: configure and train many toy models at once
  (the toy-models chapter); `cached_train`: the same, computed once and reused from disk.
- `generate_batch`: the sparse synthetic data.
- `ToyModel`, `forward`, `hidden`, `loss_per_instance`: the model and its loss.
- `toy_lib.metrics`: feature norms, dimensionality, superposition scores, angles.
- `toy_lib.plots`: the figures.
"""

from . import metrics, plots
from .cache import cached_train
from .config import ToyModelConfig
from .data import generate_batch
from .model import ToyModel, forward, hidden, init_weights, loss_per_instance
from .train import TrainResult, lr_factor, pick_device, train

__all__ = [
    "ToyModelConfig",
    "TrainResult",
    "cached_train",
    "ToyModel",
    "forward",
    "generate_batch",
    "hidden",
    "init_weights",
    "loss_per_instance",
    "lr_factor",
    "metrics",
    "pick_device",
    "plots",
    "train",
]

__version__ = "0.1.0"
