"""Steps per second of toy_lib's trainer against the original notebook's algorithm.

Run from the repository root:

    python benchmarks/bench_trainer.py            # about 1.5-2 minutes on a 2-core CPU
    python benchmarks/bench_trainer.py --quick    # fewer repeats, for a smoke test

For each configuration it times, side by side in one process and on identical settings:

- **reference**: the algorithm of Anthropic's toy-models notebook, written out below: dense
  uniform draws and a comparison mask for the batch, an ``einsum`` forward pass, autograd and
  ``torch.optim.AdamW``.
- **toy_lib**: ``toy_lib.train`` for the same number of steps (its setup included; its final
  evaluation set to a single batch). On the CPU with Numba installed that is the compiled path
  (``toy_lib/_cpu_kernels.py``); the header line says which Numba, if any, was used.
- **floor**: the batched matrix products alone that one training step of this model performs,
  timed with ``torch.bmm`` on ready-made tensors: ``h = W x`` and ``Wᵀ h`` forward, and the three
  products of the backward pass (two for ``∂W`` and one for ``∂h``). No trainer that multiplies
  dense matrices can beat it; the column ``x floor`` says how far above it toy_lib's step is.

Timings alternate between the contestants and report the median of the repeats, because other
work on the machine slows whichever one happens to be running. Configurations (the notebook's
density sweep ``p = 20^-t``, ``t`` evenly spaced in [0, 1] across instances, batch 1024):

(a) 5 features -> 2 hidden, 10 instances, importance 0.9^i
(b) 100 -> 20, 20 instances, uniform importance
(c) 200 -> 20, 20 instances, uniform importance
(c') as (c) with every instance at density 0.05, where superposition is studied (not a target;
     it shows what drawing only the active entries saves)
(d) an SAE of 5 latents on 2-D activations, 16 instances: skipped until toy_lib has SAEs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import toy_lib  # noqa: E402

BATCH = 1024


@dataclass
class Case:
    name: str
    n_features: int
    n_hidden: int
    n_instances: int
    importance_decay: float  # I_i = decay ** i
    steps: int  # steps per timed run
    density: float | None = None  # one density for every instance instead of the sweep

    def probability(self) -> np.ndarray:
        if self.density is not None:
            return np.full(self.n_instances, self.density)
        return 20.0 ** -np.linspace(0, 1, self.n_instances)

    def importance(self) -> np.ndarray:
        return self.importance_decay ** np.arange(self.n_features)

    def config(self) -> toy_lib.ToyModelConfig:
        return toy_lib.ToyModelConfig(
            n_features=self.n_features,
            n_hidden=self.n_hidden,
            n_instances=self.n_instances,
            feature_probability=self.probability(),
            importance=self.importance(),
        )


CASES = [
    Case("(a) 5 -> 2, 10 instances", 5, 2, 10, 0.9, steps=500),
    Case("(b) 100 -> 20, 20 instances", 100, 20, 20, 1.0, steps=40),
    Case("(c) 200 -> 20, 20 instances", 200, 20, 20, 1.0, steps=40),
    Case("(c') the same, all at p = 0.05", 200, 20, 20, 1.0, steps=40, density=0.05),
]


# ----------------------------------------------------------------------------- the reference
class ReferenceModel(torch.nn.Module):
    """The notebook's model: W (instance, feature, hidden), b_final (instance, feature)."""

    def __init__(
        self,
        n_features: int,
        n_hidden: int,
        n_instances: int,
        feature_probability: torch.Tensor,
        importance: torch.Tensor,
    ):
        super().__init__()
        self.W = torch.nn.Parameter(
            torch.nn.init.xavier_normal_(torch.empty(n_instances, n_features, n_hidden))
        )
        self.b_final = torch.nn.Parameter(torch.zeros(n_instances, n_features))
        self.feature_probability = feature_probability  # (instance, feature)
        self.importance = importance  # (instance, feature)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = torch.einsum("...if,ifh->...ih", features, self.W)
        out = torch.einsum("...ih,ifh->...if", hidden, self.W)
        return torch.relu(out + self.b_final)

    def generate_batch(self, n_batch: int) -> torch.Tensor:
        shape = (n_batch, *self.feature_probability.shape)
        feat = torch.rand(shape)
        return torch.where(torch.rand(shape) <= self.feature_probability, feat, torch.zeros(()))


def reference_run(case: Case, steps: int) -> None:
    torch.manual_seed(0)
    model = ReferenceModel(
        case.n_features,
        case.n_hidden,
        case.n_instances,
        torch.tensor(case.probability(), dtype=torch.float32)[:, None].expand(
            case.n_instances, case.n_features
        ),
        torch.tensor(case.importance(), dtype=torch.float32)[None, :],
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        batch = model.generate_batch(BATCH)  # (batch, instance, feature)
        out = model(batch)
        error = model.importance * (batch.abs() - out) ** 2
        loss = error.mean(dim=(0, 2)).sum()
        loss.backward()
        opt.step()


def toy_lib_run(case: Case, steps: int) -> None:
    toy_lib.train(
        case.config(),
        steps=steps,
        batch_size=BATCH,
        seed=0,
        device="cpu",
        eval_batch_size=BATCH,
        progress=False,
    )


def floor_run(case: Case, steps: int) -> None:
    """The five batched products of a training step, on ready tensors, ``steps`` times."""
    g = torch.Generator().manual_seed(0)
    inst, feat, hid = case.n_instances, case.n_features, case.n_hidden
    x = torch.rand(inst, BATCH, feat, generator=g)
    W = torch.randn(inst, hid, feat, generator=g)
    h = torch.empty(inst, BATCH, hid)
    out = torch.empty(inst, BATCH, feat)
    for _ in range(steps):
        torch.bmm(x, W.transpose(1, 2), out=h)  # h = W x
        torch.bmm(h, W, out=out)  # Wᵀ h
        torch.bmm(h.transpose(1, 2), out)  # ∂W from the read-out
        dh = torch.bmm(out, W.transpose(1, 2))  # ∂h
        torch.bmm(dh.transpose(1, 2), x)  # ∂W from the write-in


def timed(fn, case: Case, steps: int) -> float:
    t0 = time.perf_counter()
    fn(case, steps)
    return (time.perf_counter() - t0) / steps


# ----------------------------------------------------------------------------- report
def numba_version() -> str:
    try:
        import numba
    except ImportError:
        return "no numba (toy_lib's torch path)"
    return f"numba {numba.__version__}"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    uptime = (
        subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        if Path("/usr/bin/uptime").exists()
        else ""
    )
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {model}; nproc {os.cpu_count()}; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; {numba_version()}; "
        f"load average {load}\n  uptime: {uptime}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer steps")
    parser.add_argument(
        "--only", default=None, help="run only the configurations whose name starts with this, e.g. '(c)'"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice, one per core); on a machine "
        "that other jobs keep busy, 1 avoids threads waiting on each other",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    start = time.perf_counter()
    print("toy_lib trainer benchmark:", machine())
    print(f"batch {BATCH}; median of {repeats} timed runs each; steps/s higher is better\n")
    header = (
        f"{'configuration':30s} {'reference':>11s} {'toy_lib':>11s} {'speed-up':>9s} "
        f"{'floor':>9s} {'x floor':>8s}"
    )
    print(header)
    print(f"{'':30s} {'steps/s':>11s} {'steps/s':>11s} {'':>9s} {'ms/step':>9s} {'':>8s}")
    for case in CASES:
        if args.only and not case.name.startswith(args.only):
            continue
        steps = max(2, case.steps // 4) if args.quick else case.steps
        for fn in (reference_run, toy_lib_run, floor_run):  # warm up every code path
            fn(case, 2)
        times: dict[str, list[float]] = {"reference": [], "toy_lib": [], "floor": []}
        for _ in range(repeats):
            times["reference"].append(timed(reference_run, case, steps))
            times["toy_lib"].append(timed(toy_lib_run, case, steps))
            times["floor"].append(timed(floor_run, case, steps))
        ref, ours, floor = (statistics.median(times[k]) for k in ("reference", "toy_lib", "floor"))
        print(
            f"{case.name:30s} {1 / ref:11.1f} {1 / ours:11.1f} {ref / ours:8.1f}x "
            f"{floor * 1e3:9.2f} {ours / floor:7.1f}x",
            flush=True,
        )
    print(f"{'(d) SAE, 5 latents on 2-D, 16 instances':30s} skipped: toy_lib has no SAE yet")
    print(
        f"\nfinished in {time.perf_counter() - start:.0f} s; load average now "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
