"""toy_lib: the library behind the executable textbook on superposition and sparse autoencoders.

The public API the book introduces, chapter by chapter:

- `ToyModelConfig`, `train`, `TrainResult`: configure and train many toy models at once
  (the toy-models chapter); `cached_train`: the same, computed once and reused from disk
  (under `cache_dir()`); `TrainingDiverged`: what `train` raises when a loss becomes NaN.
- `generate_batch`: the sparse synthetic data.
- `ToyModel`, `forward`, `hidden`, `loss_per_instance`: the model and its loss.
- `NeuronModel`, `neuron_forward` (a privileged basis) and `AbsModel`, `abs_forward`
  (computation in superposition): the models of "Superposition in richer settings", trained by
  the same `train` (``ToyModelConfig(model=...)``, with correlated groups and finite data sets).
- `toy_lib.metrics`: feature norms, dimensionality, superposition scores, angles.
- `toy_lib.plots`: the figures.
- `toy_lib.real_model`: a small pretrained transformer (all-MiniLM-L6-v2) run offline over Jane
  Austen's novels, its activations at a layer, and a feature browser (the real-model chapter);
  `cached_activations`: those activations, computed once and reused from disk.
- `SAEConfig`, `train_sae`, `SAEResult`: sparse autoencoders of six architectures, batched over
  instances (five in the chapter "Sparse autoencoders"; the sixth,
  ``SAEConfig(architecture="matryoshka", prefix_widths=...)``, nested prefixes of the dictionary
  each reconstructing on its own, in "Beyond SAEs"); `cached_train_sae`: the same, stored on disk.
- `toy_lib.geometry`: directions in activation space: rotated bases and probes (the features
  chapter); nearly orthogonal directions, packing, interference and a hand-built pentagon (the
  geometry chapter).
- `toy_lib.exercises`: the checkers of the coding exercises.
- `toy_lib.theory`: the phase diagrams of the toy-models chapter: closed-form losses of the
  candidate arrangements, which one wins, and what each feature of a trained model does.
- `toy_lib.synthetic`: activations built from feature directions we choose (independent,
  correlated, parent/child and mutually exclusive features): the ground truth the SAE
  evaluation chapters grade SAEs against.
- `toy_lib.evaluation`: the evaluations of the chapter "Evaluating SAEs": the
  sparsity-reconstruction Pareto mask, the toy model's loss with an SAE spliced in (loss
  recovered) and the edit of one latent for a causal test.
- `train_transcoder`, `TranscoderResult`: transcoders, sparse latents that read one activation
  and predict another (the chapter "Beyond SAEs"), trained like `train_sae`.

Every public function checks its arguments and answers a mistake with a ``ValueError`` that
names the argument, the value and what was expected (see ``toy_lib/_validate.py``).
"""

from . import evaluation, exercises, geometry, metrics, plots, real_model, synthetic, theory
from .cache import cache_dir, cached_activations, cached_train, cached_train_sae
from .config import ToyModelConfig
from .data import generate_batch
from .model import (
    AbsModel,
    NeuronModel,
    ToyModel,
    abs_forward,
    forward,
    hidden,
    init_weights,
    loss_per_instance,
    neuron_forward,
)
from .sae import SAEConfig, SAEResult, train_sae
from .sae.transcoder import TranscoderResult, train_transcoder
from .training import TrainingDiverged, TrainResult, lr_factor, pick_device, train

__all__ = [
    "ToyModelConfig",
    "TrainResult",
    "TrainingDiverged",
    "cache_dir",
    "cached_activations",
    "cached_train",
    "ToyModel",
    "NeuronModel",
    "AbsModel",
    "forward",
    "neuron_forward",
    "abs_forward",
    "generate_batch",
    "geometry",
    "hidden",
    "init_weights",
    "loss_per_instance",
    "lr_factor",
    "exercises",
    "metrics",
    "pick_device",
    "plots",
    "real_model",
    "train",
    "SAEConfig",
    "SAEResult",
    "train_sae",
    "cached_train_sae",
    "theory",
    "synthetic",
    "evaluation",
    "train_transcoder",
    "TranscoderResult",
]

__version__ = "0.1.0"
