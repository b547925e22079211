"""`train_sae`: train ``n_instances`` sparse autoencoders at once, through `toy_lib.training.optimise`.

One step: draw a batch for every instance, compute every instance's loss with its architecture
(`toy_lib.sae._base.SAEArchitecture.loss`), back-propagate their sum (so each instance gets its own
gradient), take an Adam step, then the bookkeeping of `_Trainer.after_step`. The training tricks,
each switchable:

- **unit-norm decoder** (``normalize_decoder``): before each step the component of each decoder
  row's gradient along the row is removed (it could only change the row's length), and after the
  step every row is rescaled to length 1. Without it an L1 penalty could be dodged by shrinking
  ``f`` and growing ``W_dec``.
- **the encoder's start** (``tied_init``): the transpose of the (random, unit-norm) decoder, so
  that each latent starts by reading the direction it writes; or an independent random matrix.
- **b_dec's start** (``b_dec_init``): the geometric median of a sample of the data (Weiszfeld's
  iterations), its mean, or zeros. The encoder reads ``x - b_dec``, so a good centre helps.
- **dead latents**: a latent is *dead* when it has not fired on any input of the last
  ``dead_window`` training steps.
- **resampling** (``resample_dead``, Anthropic's recipe, Bricken et al. 2023): every
  ``resample_every`` steps, each dead latent is re-initialised on an input drawn from the latest
  training batch with probability proportional to the square of its reconstruction error
  ``||x - x̂||²``: its decoder row becomes the centred input ``x - b_dec``, normalised; its encoder
  column the same direction at ``resample_scale`` × the mean norm of the live latents' encoder
  columns; its encoder bias 0; and its Adam state is reset. It can be switched on for some
  instances and off for others (one flag per instance), so that the same starts train with and
  without it in one batched program.
- **learning-rate schedule** (``schedule``, `toy_lib.lr_factor`): constant, or warm-up and decay
  (``"warmup_cosine"``), or a linear or cosine decay.
- **sparsity-penalty warm-up** (``penalty_warmup_steps``): the L1/L0 coefficient grows linearly
  from 0 to its value over the first steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from .. import _validate as check
from ..training import SCHEDULES, SINGLE_THREAD_BELOW, TrainResult, _check_lr, _cpu_threads, optimise
from . import _cpu_step
from . import _data as sources
from ._base import CORE_PARAMETERS
from .config import SAEConfig
from .result import SAEResult

__all__ = ["train_sae"]

_B_DEC_INITS = ("geometric_median", "mean", "zeros")
#: Which axis of each parameter indexes the latents (for resampling).
_LATENT_AXIS = {"W_enc": 2, "W_dec": 1, "b_enc": 1}
#: Rows of data used to start ``b_dec``.
_B_DEC_SAMPLE = 4096
#: Work units (`toy_lib._validate.check_work`) of one step beyond its multiply-adds: the fixed
#: cost of a step's Python and tensor calls.
_STEP_OVERHEAD = 10**5


def _geometric_median(x: torch.Tensor, iterations: int = 50, tol: float = 1e-7) -> torch.Tensor:
    """The point minimising the sum of Euclidean distances to the rows of each instance's sample:
    ``(instance, n, d) -> (instance, d)``, by Weiszfeld's iterations from the mean."""
    x = x.double()
    point = x.mean(1)
    for _ in range(iterations):
        dist = (x - point[:, None]).norm(dim=-1).clamp_min(1e-12)  # (instance, n)
        weights = 1.0 / dist
        new = (weights[..., None] * x).sum(1) / weights.sum(1, keepdim=True)
        done = bool(((new - point).norm(dim=-1) < tol).all())
        point = new
        if done:
            break
    return point.float()


def _init_params(config: SAEConfig, seeds: list[int], source, b_dec_init: str, tied_init: bool, dev) -> dict:
    """Random unit decoder rows per instance (each from its own generator); the encoder their
    transpose (``tied_init``) or drawn independently, uniform in ``±1/sqrt(d_in)``; ``b_enc = 0``;
    ``b_dec`` from the data."""
    W_dec, W_enc = [], []
    bound = 1.0 / math.sqrt(config.d_in)
    for gen in sources.generators(seeds, sources.INIT, "cpu"):
        rows = torch.randn(config.d_sae, config.d_in, generator=gen)
        W_dec.append(rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        if not tied_init:
            W_enc.append((torch.rand(config.d_in, config.d_sae, generator=gen) * 2 - 1) * bound)
    W_dec = torch.stack(W_dec).to(dev)
    params = {
        "W_enc": W_dec.transpose(1, 2).contiguous() if tied_init else torch.stack(W_enc).to(dev),
        "W_dec": W_dec,
        "b_enc": torch.zeros(config.n_instances, config.d_sae, device=dev),
    }
    if b_dec_init == "zeros":
        params["b_dec"] = torch.zeros(config.n_instances, config.d_in, device=dev)
    else:
        sample = source.sample(_B_DEC_SAMPLE, sources.INIT).to(dev)
        params["b_dec"] = (
            _geometric_median(sample) if b_dec_init == "geometric_median" else sample.mean(1)
        ).to(dev)
    return params


class _Trainer:
    """The state of one `train_sae` call between steps: the parameters, the step function, the
    bookkeeping after each step, resampling.

    Every trained parameter is a view of one flat ``(instance, n)`` tensor (`_cpu_step.layout`),
    so that one Adam update covers them all; ``buffers`` (BatchTopK's threshold) live apart.
    """

    def __init__(
        self,
        arch,
        init: dict,
        source,
        *,
        batch_size,
        steps,
        normalize_decoder,
        penalty_warmup_steps,
        dead_window,
        resample_dead,
        resample_every,
        resample_scale,
        snapshot_steps,
        seeds,
        dev,
    ):
        self.arch, self.source = arch, source
        cfg = arch.config
        self.spots = _cpu_step.layout(cfg.d_in, cfg.d_sae, arch.extra_parameters)
        n_inst = cfg.n_instances
        self.flat = torch.zeros(n_inst, max(b for _, b, _ in self.spots.values()), device=dev)
        for name, view in _cpu_step.views(self.flat, self.spots).items():
            view.copy_(init[name])
        self.buffers = {name: init[name] for name in arch.buffers}
        #: the decoder, a view of ``flat``
        self.W_dec = _cpu_step.views(self.flat, self.spots)["W_dec"]
        self.compiled = _cpu_step.available(cfg, dev)
        #: a large TopK SAE without AuxK: the hand-written sparse step (`TopKSAE.sparse_step`)
        self.sparse = not self.compiled and arch.steps_sparsely
        if self.compiled:
            self.cpu_step = _cpu_step.CpuStep(arch, self.spots, batch_size)
        if self.compiled or self.sparse:
            self.grad = torch.zeros_like(self.flat)
            self.grad_W_dec = _cpu_step.views(self.grad, self.spots)["W_dec"]
        else:
            self.flat.requires_grad_(True)
        self.steps, self.normalize_decoder = steps, normalize_decoder
        # a float: the step counters are float tensors (and a window of 10**30 steps is valid)
        self.warmup, self.dead_window = penalty_warmup_steps, float(dead_window)
        #: (instance,) bool: which instances resample their dead latents
        self.resample_mask = torch.as_tensor(resample_dead, dtype=torch.bool, device=dev).expand(n_inst)
        self.resample_dead = bool(self.resample_mask.any())
        self.resample_every, self.resample_scale = resample_every, resample_scale
        self.snapshot_steps = snapshot_steps
        #: steps since each latent last fired on some input, (instance, d_sae)
        self.since_fired = torch.zeros(n_inst, cfg.d_sae, device=dev)
        self.n_resampled = torch.zeros(n_inst, dtype=torch.long)
        self.snapshots = {}
        #: which latents were dead at each snapshot step, {step: (instance, d_sae) bool}
        self.dead_snapshots = {}
        self.uses_dead = getattr(cfg, "aux_k", None) is not None
        self.resample_gens = sources.generators(seeds, sources.RESAMPLE, dev) if self.resample_dead else None
        self.x = None

    def params(self, flat: torch.Tensor | None = None) -> dict:
        """Every parameter (views of ``flat``, by default the trained one) and buffer, by name."""
        return {**_cpu_step.views(self.flat if flat is None else flat, self.spots), **self.buffers}

    def W_dec(self, flat: torch.Tensor) -> torch.Tensor:
        """The decoder ``(instance, d_sae, d_in)`` as a view of ``flat`` (or of a gradient or moment
        of the same layout); cheaper than `params` in the per-step bookkeeping."""
        start, stop, shape = self.spots["W_dec"]
        return flat[:, start:stop].view(flat.shape[0], *shape)

    def dead(self) -> torch.Tensor:
        """``(instance, d_sae)`` bool: not fired in the last ``dead_window`` steps."""
        return self.since_fired >= self.dead_window

    def step_fn(self, step: int, loss_out: torch.Tensor) -> list[torch.Tensor]:
        x = self.x = self.source.batch()
        scale = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.compiled:
            x = self.x = x.contiguous()
            loss = self.cpu_step(x, self.flat, self.grad, self.since_fired, self.dead_window, scale)
            loss_out.copy_(torch.from_numpy(loss))
            if self.buffers:
                self.arch.update_buffers(self.buffers, torch.from_numpy(self.cpu_step.smallest).float())
            grad = self.grad
        elif self.sparse:
            loss, fired = self.arch.sparse_step(self.params(), x, _cpu_step.views(self.grad, self.spots))
            loss_out.copy_(loss)
            self.since_fired.add_(1).masked_fill_(fired, 0)
            grad = self.grad
        else:
            self.flat.grad = None
            with torch.enable_grad():
                out = self.arch.loss(
                    self.params(), x, penalty_scale=scale, dead=self.dead() if self.uses_dead else None
                )
                out.loss.sum().backward()
            with torch.no_grad():
                loss_out.copy_(out.loss)
                fired = (out.f > 0).any(1)
                self.since_fired.add_(1).masked_fill_(fired, 0)
                self.arch.after_batch(self.buffers, out)
            grad = self.flat.grad
        if self.normalize_decoder:  # remove the part of each row's gradient along the row
            with torch.no_grad():
                W_dec = self.W_dec
                g = (
                    self.grad_W_dec
                    if self.compiled or self.sparse
                    else _cpu_step.views(grad, self.spots)["W_dec"]
                )
                g.sub_((g * W_dec).sum(-1, keepdim=True) * W_dec)
        return [grad]

    @torch.no_grad()
    def after_step(self, step: int, optimisers) -> None:
        done = step + 1
        if self.normalize_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        if self.resample_dead and done % self.resample_every == 0 and done < self.steps:
            self.resample(optimisers[0])
        if done in self.snapshot_steps:
            self.snapshots[done] = self.W_dec.detach().cpu().clone()
            self.dead_snapshots[done] = self.dead().cpu().clone()

    @torch.no_grad()
    def resample(self, optimiser) -> None:
        """Re-initialise every dead latent of the resampling instances on a high-error input of the
        latest batch (see the module)."""
        dead = self.dead() & self.resample_mask[:, None]
        if not bool(dead.any()):
            return
        params, x = self.params(self.flat.detach()), self.x
        x_hat = self.arch.decode(params, self.arch.encode(params, x))
        weights = (x - x_hat).square().sum(-1).square()  # (instance, batch): loss²
        W_enc, W_dec, b_enc, b_dec = (params[n] for n in CORE_PARAMETERS)
        enc_norms = W_enc.norm(dim=1)  # (instance, d_sae)
        moments = [_cpu_step.views(m, self.spots) for m in (optimiser.exp_avg, optimiser.exp_avg_sq)]
        for i in torch.nonzero(dead.any(1)).flatten().tolist():
            latents = torch.nonzero(dead[i]).flatten()
            n = len(latents)
            w = weights[i]
            if not bool((w > 0).any()):
                w = torch.ones_like(w)  # nothing is reconstructed badly: any input will do
            picks = torch.multinomial(
                w, n, replacement=int((w > 0).sum()) < n, generator=self.resample_gens[i]
            )
            v = x[i, picks] - b_dec[i]
            norms = v.norm(dim=-1, keepdim=True)
            if bool((norms < 1e-8).any()):  # an input at b_dec has no direction: draw one
                rnd = torch.randn(v.shape, generator=self.resample_gens[i], device=v.device)
                v = torch.where(norms < 1e-8, rnd, v)
                norms = v.norm(dim=-1, keepdim=True)
            v = v / norms
            alive = ~dead[i]
            scale = self.resample_scale * (float(enc_norms[i, alive].mean()) if bool(alive.any()) else 1.0)
            W_dec[i, latents] = v
            W_enc[i][:, latents] = (scale * v).T
            b_enc[i, latents] = 0.0
            self.arch.reset_latents(params, i, latents)
            for views in moments:  # Adam's state of everything that belongs to these latents
                for name, view in views.items():
                    if name != "b_dec":
                        view[i].index_fill_(_LATENT_AXIS.get(name, 1) - 1, latents, 0.0)
            self.since_fired[i, latents] = 0
            self.n_resampled[i] += n


def _resample_flags(value, n_instances: int):
    """``resample_dead`` checked: one flag, or one per instance (returned as a tuple of bools)."""
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        flags = list(value.tolist() if hasattr(value, "tolist") else value)
        if len(flags) != n_instances:
            raise check.fail(
                "resample_dead",
                value,
                f"True, False, or one of them per instance ({n_instances})",
                f"{len(flags)} flags",
            )
        return tuple(check.flag(v, "resample_dead") for v in flags)
    return check.flag(value, "resample_dead")


def _train_sae_arguments(
    config,
    steps,
    batch_size,
    lr,
    seed,
    resample_dead,
    device,
    schedule,
    normalize_decoder,
    b_dec_init,
    tied_init,
    penalty_warmup_steps,
    dead_window,
    resample_every,
    resample_scale,
    eval_batch_size,
    snapshot_steps,
    progress,
) -> dict:
    """`train_sae`'s arguments (all but ``data``) checked and in normal form: Python numbers,
    ``seed`` an integer or a tuple of one per instance, ``snapshot_steps`` a sorted tuple, a
    ``torch.device``. `train_sae` trains with them and `toy_lib.cached_train_sae` keys stored
    results by them, so ``steps=5`` and ``steps=np.int64(5)`` are the same run."""
    config = check.instance_of(config, "config", SAEConfig, "an SAEConfig (toy_lib.SAEConfig)")
    steps = check.integer(steps, "steps", minimum=1)
    if isinstance(snapshot_steps, (str, bytes)) or not isinstance(snapshot_steps, Iterable):
        raise check.fail(
            "snapshot_steps",
            snapshot_steps,
            f"a sequence of steps from 0 to steps = {steps}",
            type(snapshot_steps).__name__,
        )
    if isinstance(snapshot_steps, torch.Tensor) and snapshot_steps.ndim == 0:
        raise check.fail(
            "snapshot_steps", snapshot_steps, f"a sequence of steps from 0 to steps = {steps}", "a 0-d tensor"
        )
    expected = f"a sequence of distinct steps from 0 to steps = {steps}"
    n_snaps = len(snapshot_steps) if hasattr(snapshot_steps, "__len__") else None
    if len(getattr(snapshot_steps, "shape", (0,))) > 1 or (n_snaps is not None and n_snaps > steps + 1):
        raise check.fail("snapshot_steps", snapshot_steps, expected)
    snaps = list(snapshot_steps)
    return dict(
        config=config,
        steps=steps,
        batch_size=check.integer(batch_size, "batch_size", minimum=1),
        lr=_check_lr(lr),
        seed=sources.check_seed(seed, config.n_instances),
        resample_dead=_resample_flags(resample_dead, config.n_instances),
        device=check.device(device),
        schedule=check.choice(schedule, "schedule", SCHEDULES),
        normalize_decoder=check.flag(normalize_decoder, "normalize_decoder"),
        b_dec_init=check.choice(b_dec_init, "b_dec_init", _B_DEC_INITS),
        tied_init=check.flag(tied_init, "tied_init"),
        penalty_warmup_steps=check.integer(penalty_warmup_steps, "penalty_warmup_steps", minimum=0),
        dead_window=check.integer(dead_window, "dead_window", minimum=1),
        resample_every=check.integer(resample_every, "resample_every", minimum=1),
        resample_scale=check.positive(resample_scale, "resample_scale"),
        eval_batch_size=check.integer(eval_batch_size, "eval_batch_size", minimum=1),
        snapshot_steps=tuple(
            sorted(
                {
                    check.integer(t, "snapshot_steps", minimum=0, maximum=steps, expected=expected)
                    for t in snaps
                }
            )
        ),
        progress=check.flag(progress, "progress", allow_none=True),
    )


def _check_size(args: dict, data) -> None:
    """Refuse, before anything is allocated, a run that cannot fit in memory or would take hours."""
    config, dev = args["config"], args["device"]
    n, d_in, d_sae = config.n_instances, config.d_in, config.d_sae
    steps, batch, n_eval = args["steps"], args["batch_size"], args["eval_batch_size"]
    width = data.W.shape[2] if isinstance(data, TrainResult) else d_in  # a toy model draws its features
    sizes = {"config.n_instances": n, "config.d_in": d_in, "config.d_sae": d_sae}
    chunk = min(batch, n_eval)
    # float32 numbers, by the arguments that set them
    terms = {
        ("steps",): steps * n,  # the loss history
        ("snapshot_steps",): len(args["snapshot_steps"]) * n * d_sae * d_in,
        (): 8 * n * (2 * d_in + 4) * d_sae + 6 * n * _B_DEC_SAMPLE * d_in,  # parameters, Adam, b_dec's start
        ("batch_size",): n * batch * (2 * width + 4 * d_in + 10 * d_sae),  # a step's batch and latents
        ("batch_size", "eval_batch_size"): n * chunk * (2 * width + 4 * d_in + 10 * d_sae),  # evaluation
    }
    values = {
        "steps": steps,
        "batch_size": batch,
        "eval_batch_size": n_eval,
        "snapshot_steps": args["snapshot_steps"],
    }
    largest = max(terms, key=terms.get)
    blame = {name: values[name] for name in largest}
    check.check_memory(4 * sum(terms.values()), dev, {**blame, **sizes})
    per_row = n * (d_in * d_sae * 6 + width * d_in)
    work = (
        steps * (batch * per_row + _STEP_OVERHEAD)
        + n_eval * per_row
        + math.ceil(n_eval / batch) * _STEP_OVERHEAD
    )
    blame = {"steps": steps, "batch_size": batch} if steps * batch >= n_eval else {"eval_batch_size": n_eval}
    check.check_work(work, {**blame, **sizes}, device=dev)


def train_sae(
    config: SAEConfig,
    data,
    *,
    steps: int,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed=0,
    resample_dead: bool = False,
    device=None,
    schedule: str = "constant",
    normalize_decoder: bool = True,
    b_dec_init: str = "geometric_median",
    tied_init: bool = True,
    penalty_warmup_steps: int = 0,
    dead_window: int = 500,
    resample_every: int = 2500,
    resample_scale: float = 0.2,
    eval_batch_size: int = 16_384,
    snapshot_steps=(),
    progress: bool | None = None,
) -> SAEResult:
    """Train every instance of ``config`` at once on ``data``; return the SAEs and their record.

    The optimiser is Adam (`toy_lib.training.optimise` with no weight decay), on every parameter,
    each with the instance axis first: ``W_enc`` ``(instance, d_in, d_sae)``, ``W_dec``
    ``(instance, d_sae, d_in)``, ``b_enc`` ``(instance, d_sae)``, ``b_dec`` ``(instance, d_in)`` and
    the architecture's own (see `SAEConfig`). The training tricks and their switches are described
    in the docstring of this module, `toy_lib.sae.training`.

    Args:
        config: the `SAEConfig`.
        data: a trained toy model (`toy_lib.TrainResult`: the SAEs train on its hidden vectors
            ``h = W x``, ``(instance, batch, hidden)`` with ``hidden = d_in``, ``x`` drawn fresh
            each step from the toy model's own data distribution; a toy model with one instance
            feeds every SAE, one with ``n_instances`` feeds them one to one), a tensor or NumPy
            array ``(N, d_in)`` (rows shared by every instance) or ``(instance, N, d_in)`` (one set
            per instance), drawn uniformly with replacement, or an iterable (a list, a generator)
            of such tensors, read in order ``batch_size`` rows at a time (a list is read again
            from the start when it runs out; a generator that runs out is an error).
        steps: the number of training steps.
        batch_size: inputs per instance per step.
        lr: Adam's learning rate (positive, at most 1e37).
        seed: an integer, or a sequence of one integer per instance. Each instance's
            initialisation, data and resampling come from its own seed, recorded in the result as
            ``recipe["instance_seeds"]``: on the CPU the same seeds give bitwise-identical SAEs,
            and instance ``i`` of a batched run equals a run of that instance alone with
            ``seed=[recipe["instance_seeds"][i]]``.
        resample_dead: resample dead latents every ``resample_every`` steps (not at the last step):
            one flag for every instance, or one per instance (a sequence of ``n_instances`` bools),
            so that the same starts train with and without it in one batched program.
        device: ``None`` picks CUDA, then MPS, then the CPU (as `toy_lib.train`).
        schedule: the learning-rate schedule (`toy_lib.lr_factor`): ``"constant"``,
            ``"warmup_cosine"`` (warm-up, then decay), ``"linear"`` or ``"cosine"``.
        normalize_decoder: keep decoder rows at unit norm.
        b_dec_init: ``"geometric_median"``, ``"mean"`` or ``"zeros"``.
        tied_init: start the encoder as the decoder's transpose (else independently at random).
        penalty_warmup_steps: grow the sparsity coefficient linearly over these first steps.
        dead_window: steps without firing after which a latent counts as dead.
        resample_every: steps between resamplings.
        resample_scale: the norm of a resampled latent's encoder column, relative to the mean norm
            of the live latents' columns.
        eval_batch_size: inputs per instance for the final loss and firing statistics (for an
            iterable, its last training batch is used instead).
        snapshot_steps: steps after which to keep a copy of ``W_dec`` and of which latents are
            dead (0: before training).
        progress: show a progress bar; ``None`` shows one only when stderr is a terminal.

    Returns:
        An `SAEResult` (on the CPU).

    Raises:
        ValueError: a bad argument or bad data, naming the argument, the value and the expectation;
            a run too large for the machine's memory (or for several hours of a laptop CPU),
            before it starts.
        toy_lib.training.TrainingDiverged: a loss became NaN or infinite (naming the instance and the
            step).
    """
    args = _train_sae_arguments(
        config,
        steps,
        batch_size,
        lr,
        seed,
        resample_dead,
        device,
        schedule,
        normalize_decoder,
        b_dec_init,
        tied_init,
        penalty_warmup_steps,
        dead_window,
        resample_every,
        resample_scale,
        eval_batch_size,
        snapshot_steps,
        progress,
    )
    _check_size(args, data)
    dev, snaps = args["device"], args["snapshot_steps"]
    seeds = sources.instance_seeds(args["seed"], config.n_instances)
    source = sources.make_source(data, config, args["batch_size"], seeds, dev)
    from . import _ARCHITECTURES

    arch = _ARCHITECTURES[config.architecture](config, dev)
    small = config.n_instances * args["batch_size"] * max(config.d_sae, config.d_in) < SINGLE_THREAD_BELOW
    with _cpu_threads(1 if small and dev.type == "cpu" else None):
        init = _init_params(config, seeds, source, args["b_dec_init"], args["tied_init"], dev)
        init.update(arch.init_extra(init))
        trainer = _Trainer(
            arch,
            init,
            source,
            seeds=seeds,
            dev=dev,
            **{
                name: args[name]
                for name in (
                    "batch_size",
                    "steps",
                    "normalize_decoder",
                    "penalty_warmup_steps",
                    "dead_window",
                    "resample_dead",
                    "resample_every",
                    "resample_scale",
                    "snapshot_steps",
                )
            },
        )
        if 0 in snaps:
            trainer.snapshots[0] = trainer.W_dec.detach().cpu().clone()
            trainer.dead_snapshots[0] = trainer.dead().cpu().clone()
        history = optimise(
            [trainer.flat],
            trainer.step_fn,
            steps=args["steps"],
            lr=args["lr"],
            schedule=args["schedule"],
            weight_decay=0.0,
            progress=args["progress"],
            caller="train_sae",
            after_step=trainer.after_step,
        )
        params = trainer.params(trainer.flat.detach())
        final = _evaluate(arch, params, source, args["eval_batch_size"], args["batch_size"], trainer)
    params = {name: p.detach().cpu().clone() for name, p in params.items()}
    recipe = {k: v for k, v in args.items() if k not in ("config", "progress", "snapshot_steps")}
    recipe.update(
        seed=list(args["seed"]) if isinstance(args["seed"], tuple) else args["seed"],
        resample_dead=list(args["resample_dead"])
        if isinstance(args["resample_dead"], tuple)
        else args["resample_dead"],
        device=str(dev),
        instance_seeds=seeds,
    )
    return SAEResult(
        config=config,
        W_enc=params.pop("W_enc"),
        W_dec=params.pop("W_dec"),
        b_enc=params.pop("b_enc"),
        b_dec=params.pop("b_dec"),
        extra=params,
        loss_history=history.cpu(),
        snapshot_steps=snaps,
        W_dec_snapshots=torch.stack([trainer.snapshots[s] for s in snaps]) if snaps else None,
        dead_snapshots=torch.stack([trainer.dead_snapshots[s] for s in snaps]) if snaps else None,
        dead=trainer.dead().cpu(),
        n_resampled=trainer.n_resampled,
        recipe=recipe,
        **final,
    )


@torch.no_grad()
def _evaluate(arch, params, source, eval_batch_size: int, batch_size: int, trainer) -> dict:
    """Loss, MSE, L0 and firing rates on ``eval_batch_size`` fresh inputs per instance, in chunks."""
    n_inst, d_sae = params["b_enc"].shape
    totals = {"loss": 0.0, "mse": 0.0, "l0": 0.0}
    fired = torch.zeros(n_inst, d_sae, device=params["b_enc"].device)
    rows = 0
    for _ in range(max(1, math.ceil(eval_batch_size / batch_size))):
        x = source.sample(min(batch_size, eval_batch_size - rows) or batch_size, sources.EVAL)
        dead = trainer.dead() if trainer.uses_dead else None
        out = arch.loss(params, x, dead=dead)
        n = x.shape[1]
        active = out.f > 0
        totals["loss"] = totals["loss"] + out.loss * n
        totals["mse"] = totals["mse"] + out.parts["mse"] * n
        totals["l0"] = totals["l0"] + active.sum(-1).float().mean(-1) * n
        fired += active.sum(1)
        rows += n
        if rows >= eval_batch_size or isinstance(source, sources.IterableActivations):
            break
    return dict(
        final_loss=(totals["loss"] / rows).cpu(),
        final_mse=(totals["mse"] / rows).cpu(),
        final_l0=(totals["l0"] / rows).cpu(),
        firing_rate=(fired / rows).cpu(),
    )
