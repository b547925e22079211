"""Sparse autoencoders, batched over instances like the toy models: `SAEConfig` (the sizes, the
architecture and its settings), `train_sae` (train every instance at once) and `SAEResult` (the
trained SAEs, their record, and their encoder and decoder). All three are importable from
`toy_lib` itself (`toy_lib.train_sae`, ...); `toy_lib.cached_train_sae` stores results on disk.

Six architectures, chosen by name with ``SAEConfig(architecture=...)``, behind one encode /
decode / loss surface: ``"relu"`` (ReLU and an L1 penalty), ``"topk"`` (the ``k`` largest
pre-activations of each input, optional AuxK loss), ``"batchtopk"`` (the ``k × batch`` largest of
the batch; a threshold for inference), ``"gated"`` (a gate decides which latents fire, a magnitude
path how much), ``"jumprelu"`` (learned thresholds, an L0 penalty, straight-through gradients) and
``"matryoshka"`` (BatchTopK, with the summed reconstruction error of nested prefixes of the
dictionary in its loss).

Shapes carry the instance axis first everywhere: ``W_enc`` ``(instance, d_in, d_sae)``, ``W_dec``
``(instance, d_sae, d_in)``, ``b_enc`` ``(instance, d_sae)``, ``b_dec`` ``(instance, d_in)``; a
batch ``(instance, batch, d_in)``; latents ``(instance, batch, d_sae)``.

The modules, for contributors: ``config`` (`SAEConfig`), ``training`` (`train_sae` and its
training tricks), ``result`` (`SAEResult`); internal: ``_base`` (what every architecture
shares), one module per architecture (``_relu``, ``_topk``, ``_batchtopk``, ``_gated``,
``_jumprelu``, ``_matryoshka``), ``_data`` (where activations come from), ``_cpu_step`` (the compiled CPU step of
small SAEs). Adding an architecture: write a module with a subclass of
``toy_lib.sae._base.SAEArchitecture``, add its settings to `SAEConfig`, its hand-written
gradients to ``_cpu_step`` (or leave it to the PyTorch path), and register its name in
``_ARCHITECTURES`` below.
"""

from ._batchtopk import BatchTopKSAE
from ._gated import GatedSAE
from ._jumprelu import JumpReLUSAE
from ._matryoshka import MatryoshkaSAE
from ._relu import ReLUSAE
from ._topk import TopKSAE
from .config import SAEConfig
from .result import SAEResult
from .training import train_sae

#: The architectures by name: what `SAEConfig.architecture` selects.
_ARCHITECTURES = {
    "relu": ReLUSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "gated": GatedSAE,
    "jumprelu": JumpReLUSAE,
    "matryoshka": MatryoshkaSAE,
}

__all__ = ["SAEConfig", "SAEResult", "train_sae"]
