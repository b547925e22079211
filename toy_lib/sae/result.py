"""`SAEResult`: the trained SAEs, how training went, and the encoder and decoder to use them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import _validate as check
from .config import SAEConfig

__all__ = ["SAEResult"]


@dataclass
class SAEResult:
    """What `train_sae` returns. All tensors are on the CPU; instance ``i`` is the ``i``-th SAE.

    Attributes:
        config: the `SAEConfig` that was trained.
        W_enc: ``(instance, d_in, d_sae)`` encoder.
        W_dec: ``(instance, d_sae, d_in)`` decoder; row ``W_dec[i, j]`` is latent ``j``'s direction
            (unit norm when the decoder was normalised).
        b_enc: ``(instance, d_sae)``; b_dec: ``(instance, d_in)``.
        extra: the architecture's other parameters and buffers by name, each ``(instance, d_sae)``
            or ``(instance,)``: ``log_threshold`` (JumpReLU), ``r_mag`` and ``b_mag`` (gated),
            ``threshold`` (BatchTopK's inference threshold).
        loss_history: ``(step, instance)`` training loss at every step.
        final_loss: ``(instance,)`` loss on ``eval_batch_size`` fresh inputs after training.
        final_mse: ``(instance,)`` ``mean ||x - x̂||²`` on the same inputs.
        final_l0: ``(instance,)`` mean number of latents that fire per input, on the same inputs.
        firing_rate: ``(instance, d_sae)`` fraction of those inputs on which each latent fires.
        dead: ``(instance, d_sae)`` bool: the latent did not fire in the last ``dead_window``
            training steps.
        n_resampled: ``(instance,)`` how many latents resampling re-initialised over training.
        snapshot_steps: the steps at which ``W_dec_snapshots`` were taken (0 = before training).
        W_dec_snapshots: ``(snapshot, instance, d_sae, d_in)`` the decoder at those steps.
        dead_snapshots: ``(snapshot, instance, d_sae)`` bool: which latents were dead (not fired in
            the last ``dead_window`` steps) at those steps; None without snapshots.
        recipe: the training arguments, for the record.
    """

    config: SAEConfig
    W_enc: torch.Tensor
    W_dec: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    extra: dict
    loss_history: torch.Tensor
    final_loss: torch.Tensor
    final_mse: torch.Tensor
    final_l0: torch.Tensor
    firing_rate: torch.Tensor
    dead: torch.Tensor
    n_resampled: torch.Tensor
    snapshot_steps: tuple = ()
    W_dec_snapshots: torch.Tensor | None = None
    recipe: dict = field(default_factory=dict)
    dead_snapshots: torch.Tensor | None = None

    def params(self) -> dict:
        """Every parameter and buffer by name: ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec`` and the
        ``extra`` ones (the tensors themselves, shapes as in the attributes above)."""
        return {
            "W_enc": self.W_enc,
            "W_dec": self.W_dec,
            "b_enc": self.b_enc,
            "b_dec": self.b_dec,
            **self.extra,
        }

    def _architecture(self):
        """The architecture object (``toy_lib.sae._base.SAEArchitecture``) of these SAEs."""
        from . import _ARCHITECTURES

        return _ARCHITECTURES[self.config.architecture](self.config)

    def _inputs(self, x, name: str, width: int, axis: str) -> torch.Tensor:
        """``x`` ``(batch, axis)`` or ``(instance, batch, axis)`` as a float32 CPU tensor
        ``(instance, batch, axis)``, checked (finite, real, the right sizes)."""
        n = self.config.n_instances
        spelled = (
            f"a tensor (batch, {axis}) or (instance, batch, {axis}) with {axis} = {width}, instance = {n}"
        )
        big = max(width, self.config.d_sae, self.config.d_in)
        if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim in (2, 3):  # before reading it
            check.check_memory(
                4 * 4 * n * x.shape[-2] * big,
                torch.device("cpu"),
                {name: x, "config.n_instances": n, "config.d_sae": self.config.d_sae},
            )
        value = x if isinstance(x, torch.Tensor) else check.real_array(x, name, ndim=(2, 3))
        axes = ("batch", axis) if value.ndim == 2 else ("instance", "batch", axis)
        tensor = check.as_tensor(value, name, axes, dtype=torch.float32)
        if tensor.ndim == 2:
            tensor = tensor[None].expand(n, -1, -1)
        if tensor.shape[0] != n or tensor.shape[2] != width:
            raise check.fail(name, x, spelled, f"shape {tuple(value.shape)}")
        check.check_memory(
            4 * 4 * n * tensor.shape[1] * big,
            torch.device("cpu"),
            {name: x, "config.n_instances": n, "config.d_sae": self.config.d_sae},
        )
        return tensor.detach().cpu()

    @torch.no_grad()
    def encode(self, x) -> torch.Tensor:
        """The latents of inputs ``x``, with the architecture's inference encoder (BatchTopK fires a
        latent above its estimated threshold).

        Args:
            x: ``(instance, batch, d_in)``, or ``(batch, d_in)`` for the same inputs to every
                instance: a tensor, a NumPy array or nested lists of finite real numbers.

        Returns:
            ``f``: ``(instance, batch, d_sae)`` float32.
        """
        f = self._architecture().encode(self.params(), self._inputs(x, "x", self.config.d_in, "d_in"))
        return check.finite_result(f, "SAEResult.encode", {"x": x})

    @torch.no_grad()
    def decode(self, f) -> torch.Tensor:
        """The reconstruction ``x̂ = W_dec f + b_dec`` of latents ``f``.

        Args:
            f: ``(instance, batch, d_sae)``, or ``(batch, d_sae)`` for the same latents in every
                instance.

        Returns:
            ``x̂``: ``(instance, batch, d_in)`` float32.
        """
        x_hat = self._architecture().decode(self.params(), self._inputs(f, "f", self.config.d_sae, "d_sae"))
        return check.finite_result(x_hat, "SAEResult.decode", {"f": f})

    def reconstruct(self, x) -> torch.Tensor:
        """``decode(encode(x))``.

        Args:
            x: ``(instance, batch, d_in)`` or ``(batch, d_in)``, as for `encode`.

        Returns:
            ``x̂``: ``(instance, batch, d_in)`` float32.
        """
        return self.decode(self.encode(x))

    def select(self, instances) -> SAEResult:
        """Some of the SAEs as an `SAEResult` of their own, with their own settings and record.

        One `train_sae` call trains restarts, sweeps and variants side by side; ``select`` takes
        them apart again, e.g. ``result.select(range(16))`` for the first 16 instances.

        Args:
            instances: the instance indices to keep, in order: a sequence of integers from 0 to
                ``n_instances - 1`` (a ``range`` will do).

        Returns:
            An `SAEResult` whose instance ``i`` is instance ``instances[i]`` of this one
            (``loss_history`` ``(step, instance)`` and ``W_dec_snapshots``
            ``(snapshot, instance, d_sae, d_in)`` keep their other axes).

        Raises:
            ValueError: naming ``instances``, for an empty selection or an index out of range.
        """
        n = self.config.n_instances
        if isinstance(instances, (str, bytes)) or not hasattr(instances, "__iter__"):
            raise check.fail("instances", instances, f"a sequence of instance indices from 0 to {n - 1}")
        index = [check.integer(i, "instances", minimum=0, maximum=n - 1) for i in instances]
        if not index:
            raise check.fail("instances", instances, "at least one instance index")
        record = self.config._record()
        for name in ("l1_coefficient", "l0_coefficient", "k"):
            if isinstance(record[name], list):
                record[name] = [record[name][i] for i in index]
        record["n_instances"] = len(index)
        recipe = dict(self.recipe)
        if "instance_seeds" in recipe:  # the instances' own seeds, as train_sae derived them
            recipe["seed"] = list(recipe["instance_seeds"])
        for name in ("seed", "resample_dead", "instance_seeds"):
            if isinstance(recipe.get(name), list):
                recipe[name] = [recipe[name][i] for i in index]
        at = torch.tensor(index)
        return SAEResult(
            config=SAEConfig(**record),
            W_enc=self.W_enc[at],
            W_dec=self.W_dec[at],
            b_enc=self.b_enc[at],
            b_dec=self.b_dec[at],
            extra={name: value[at] for name, value in self.extra.items()},
            loss_history=self.loss_history[:, at],
            final_loss=self.final_loss[at],
            final_mse=self.final_mse[at],
            final_l0=self.final_l0[at],
            firing_rate=self.firing_rate[at],
            dead=self.dead[at],
            n_resampled=self.n_resampled[at],
            snapshot_steps=self.snapshot_steps,
            W_dec_snapshots=None if self.W_dec_snapshots is None else self.W_dec_snapshots[:, at],
            recipe=recipe,
            dead_snapshots=None if self.dead_snapshots is None else self.dead_snapshots[:, at],
        )

    # ------------------------------------------------------------------ storage
    def _state(self) -> dict:
        """Everything, as tensors and plain values (what the result cache stores)."""
        return dict(
            config=self.config._record(),
            W_enc=self.W_enc,
            W_dec=self.W_dec,
            b_enc=self.b_enc,
            b_dec=self.b_dec,
            extra=self.extra,
            loss_history=self.loss_history,
            final_loss=self.final_loss,
            final_mse=self.final_mse,
            final_l0=self.final_l0,
            firing_rate=self.firing_rate,
            dead=self.dead,
            n_resampled=self.n_resampled,
            snapshot_steps=list(self.snapshot_steps),
            W_dec_snapshots=self.W_dec_snapshots,
            recipe=self.recipe,
            dead_snapshots=self.dead_snapshots,
        )

    @classmethod
    def _from_state(cls, state: dict) -> SAEResult:
        state = dict(state)
        state["config"] = SAEConfig(**state["config"])
        state["snapshot_steps"] = tuple(state["snapshot_steps"])
        return cls(**state)
