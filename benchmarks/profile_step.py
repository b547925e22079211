"""Where one training step's time goes, for the reference algorithm and for toy_lib.

Run from the repository root:

    python benchmarks/profile_step.py [--threads 1] [--config c] [--cpu]

Times each phase of a step (median wall time over the steps; process CPU time would count the
threads that spin while they wait for the next parallel region, but with ``--threads 1 --cpu``
it is the steadier measure on a machine that other jobs keep busy): for the reference (bench_trainer.ReferenceModel) the batch
draw, the forward pass with the loss, the backward pass and AdamW; for toy_lib the path that
`toy_lib.train` takes on this machine: with Numba, the compiled sampler, the forward products, the
compiled residual pass, the backward products and the optimiser; without it (or with
``--backend torch``), the torch sampler, the hand-written loss and gradient, and the optimiser. Used to decide what to optimise; see
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_trainer import BATCH, CASES, ReferenceModel  # noqa: E402

from toy_lib import _cpu_kernels  # noqa: E402
from toy_lib.data import _BatchSampler  # noqa: E402
from toy_lib.training import _AdamW, _CpuStep, _loss_and_grad, _StepBuffers  # noqa: E402

CLOCK = time.perf_counter  # wall time; --cpu: process CPU time (steadier on a busy machine, one thread)


def phases(steps: int, step) -> dict[str, float]:
    """Run ``step(tick)`` ``steps`` times; ``tick(name)`` closes a phase. Median ms per phase."""
    times: dict[str, list[float]] = {}
    for i in range(steps + 2):
        last = [CLOCK()]

        this_step: dict[str, float] = {}

        def tick(name: str, last=last, this_step=this_step) -> None:
            now = CLOCK()
            this_step[name] = this_step.get(name, 0.0) + now - last[0]  # summed over chunks
            last[0] = now

        step(tick)
        if i >= 2:
            for name, t in this_step.items():
                times.setdefault(name, []).append(t)
    return {name: statistics.median(v) * 1e3 for name, v in times.items()}


def reference_phases(case, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    prob = torch.tensor(case.config().probability_matrix(), dtype=torch.float32)
    importance = torch.tensor(case.config().importance_matrix(), dtype=torch.float32)
    model = ReferenceModel(case.n_features, case.n_hidden, case.n_instances, prob, importance)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(tick):
        opt.zero_grad(set_to_none=True)
        batch = model.generate_batch(BATCH)
        tick("draw the batch")
        loss = (model.importance * (batch.abs() - model(batch)) ** 2).mean(dim=(0, 2)).sum()
        tick("forward and loss")
        loss.backward()
        tick("backward")
        opt.step()
        tick("AdamW")

    return phases(steps, step)


def toy_lib_phases(case, steps: int, backend: str | None = None) -> dict[str, float]:
    cfg = case.config()
    prob = torch.tensor(cfg.probability_matrix(), dtype=torch.float32)
    importance = torch.tensor(cfg.importance_matrix(), dtype=torch.float32)
    sampler = _BatchSampler(prob, BATCH, generator=torch.Generator().manual_seed(0), backend=backend)
    Wb = torch.cat(
        [
            torch.randn(case.n_instances, case.n_hidden, case.n_features) * 0.3,
            torch.zeros(case.n_instances, 1, case.n_features),
        ],
        dim=1,
    )
    sqrt_weight = (importance / (BATCH * case.n_features)).sqrt()[:, :, None]
    buffers = _StepBuffers(case.n_instances, case.n_hidden, BATCH, case.n_features, "cpu", torch.float32)
    opt = _AdamW(Wb)

    if sampler.backend == "numba":  # what `train` does on the CPU
        cpu_step = _CpuStep(
            case.n_instances,
            case.n_hidden,
            BATCH,
            case.n_features,
            importance / (BATCH * case.n_features),
            workers=torch.get_num_threads(),
        )
        loss = np.empty(case.n_instances, dtype=np.float32)

        def compiled_step(tick):
            grad = cpu_step.step(Wb, sampler, "relu", loss, tick)
            opt.step(grad, 1e-3)
            tick("AdamW")

        return phases(steps, compiled_step)

    def step(tick):
        xt = sampler.sample().transpose(1, 2)
        tick("sample the batch")
        _, grad = _loss_and_grad(Wb, xt, sqrt_weight, "relu", buffers)
        tick("loss and gradient")
        opt.step(grad, 1e-3)
        tick("AdamW")

    return phases(steps, step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--config",
        choices=[c.name[1 : c.name.index(")")] for c in CASES],
        default=None,
        help="one configuration (its letter, e.g. c, c' or g)",
    )
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--backend",
        choices=["numba", "torch"],
        default=None,
        help="toy_lib's sampler and step (default: train's)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time in process CPU time (with --threads 1, the time other jobs hold the core is not counted)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    numba = _cpu_kernels.numba_module()
    if numba:  # as `train` does: torch's thread setting governs the compiled kernels too
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if args.cpu:
        global CLOCK
        CLOCK = time.process_time
    clock = "CPU" if args.cpu else "wall"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); median {clock} ms per phase")
    for case in CASES:
        if args.config and not case.name.startswith(f"({args.config})"):
            continue
        steps = args.steps or (200 if case.n_features < 20 else 15)
        for who, fn in (("reference", reference_phases), ("toy_lib", toy_lib_phases)):
            ph = fn(case, steps) if fn is reference_phases else fn(case, steps, args.backend)
            parts = ", ".join(f"{k} {v:.2f}" for k, v in ph.items())
            print(f"{case.name:28s} {who:9s} total {sum(ph.values()):7.2f} ms: {parts}")


if __name__ == "__main__":
    main()
