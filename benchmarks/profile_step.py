"""Where one training step's time goes, for the reference algorithm and for toy_lib.

Run from the repository root:

    python benchmarks/profile_step.py [--threads 1] [--config c]

Times each phase of a step (median wall time over the steps; process CPU time would count the
threads that spin while they wait for the next parallel region): for the reference (bench_trainer.ReferenceModel) the batch
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

from toy_lib.data import BatchSampler  # noqa: E402
from toy_lib.train import AdamW, _CpuStep, _StepBuffers, loss_and_grad  # noqa: E402


def phases(steps: int, step) -> dict[str, float]:
    """Run ``step(tick)`` ``steps`` times; ``tick(name)`` closes a phase. Median ms per phase."""
    times: dict[str, list[float]] = {}
    for i in range(steps + 2):
        last = [time.perf_counter()]

        def tick(name: str, last=last, record=i >= 2) -> None:
            now = time.perf_counter()
            if record:
                times.setdefault(name, []).append(now - last[0])
            last[0] = now

        step(tick)
    return {name: statistics.median(v) * 1e3 for name, v in times.items()}


def reference_phases(case, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    prob = torch.tensor(case.probability(), dtype=torch.float32)[:, None].expand(
        case.n_instances, case.n_features
    )
    importance = torch.tensor(case.importance(), dtype=torch.float32)[None, :]
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
    sampler = BatchSampler(prob, BATCH, generator=torch.Generator().manual_seed(0), backend=backend)
    Wb = torch.cat(
        [
            torch.randn(case.n_instances, case.n_hidden, case.n_features) * 0.3,
            torch.zeros(case.n_instances, 1, case.n_features),
        ],
        dim=1,
    )
    sqrt_weight = (importance / (BATCH * case.n_features)).sqrt()[:, :, None]
    buffers = _StepBuffers(case.n_instances, case.n_hidden, BATCH, case.n_features, "cpu", torch.float32)
    opt = AdamW(Wb)

    if sampler.backend == "numba":  # what `train` does on the CPU
        cpu_step = _CpuStep(
            case.n_instances, case.n_hidden, BATCH, case.n_features, importance / (BATCH * case.n_features)
        )
        loss = np.empty(case.n_instances, dtype=np.float32)

        def compiled_step(tick):
            x = sampler.sample()
            tick("sample the batch")
            grad = cpu_step(Wb, x, "relu", loss, tick)
            opt.step(grad, 1e-3)
            tick("AdamW")

        return phases(steps, compiled_step)

    def step(tick):
        xt = sampler.sample().transpose(1, 2)
        tick("sample the batch")
        _, grad = loss_and_grad(Wb, xt, sqrt_weight, "relu", buffers)
        tick("loss and gradient")
        opt.step(grad, 1e-3)
        tick("AdamW")

    return phases(steps, step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--config", choices=["a", "b", "c"], default=None, help="one configuration")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--backend",
        choices=["numba", "torch"],
        default=None,
        help="toy_lib's sampler and step (default: train's)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); median wall ms per phase")
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
