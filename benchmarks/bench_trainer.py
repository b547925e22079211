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
(d) 16 SAEs of 5 latents (L1) on the activations of a 5 -> 2 toy model (p = 0.025)
(e) 8 SAEs of 20 latents (L1) on the activations of a 20 -> 5 toy model (p = 0.05)
    For (d) and (e) the reference is a straightforward SAE trainer written below: for each SAE in
    turn, a fresh batch from the toy model (dense draws), the forward pass, autograd,
    torch.optim.Adam, decoder rows renormalised; toy_lib is `train_sae` with the same recipe
    (its setup and a one-batch evaluation included).

The toy-models chapter's heaviest runs (issue 12), 10,000 steps each in the book:

(f) the feature-dimensionality sweep: 200 -> 20, 30 instances, uniform importance, densities
    log-spaced from p = 1 down to 0.01 (the chapter's sweep; 60 instances with 2 restarts);
(g) the 2 -> 1 phase diagram: a 16 x 16 grid of relative importance of the second feature
    (0.1 ... 10, log-spaced) x density (1 ... 0.01, both features), 4 restarts a cell: 1024
    instances (the chapter's 20 x 20 grid has 1600);
(g') the same for 3 -> 2 (the third feature's importance relative to the other two).
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
    lowest_density: float = 0.05  # the sweep runs log-spaced from p = 1 down to this
    grid: int | None = None  # a phase diagram: grid x grid cells (relative importance x density)
    restarts: int = 1  # instances per cell of a phase diagram

    def probability(self) -> np.ndarray:
        """``(instance,)`` densities, or ``(instance, feature)`` for a phase diagram."""
        if self.grid is not None:
            _, density = self._cells()
            return np.repeat(density, self.n_features, axis=1)
        if self.density is not None:
            return np.full(self.n_instances, self.density)
        return self.lowest_density ** np.linspace(0, 1, self.n_instances)

    def importance(self) -> np.ndarray:
        """``(feature,)`` importances, or ``(instance, feature)`` for a phase diagram."""
        if self.grid is not None:
            relative, _ = self._cells()
            imp = np.ones((self.n_instances, self.n_features))
            imp[:, -1:] = relative  # the extra (last) feature's importance relative to the others
            return imp
        return self.importance_decay ** np.arange(self.n_features)

    def _cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Relative importance 0.1..10 x density 1..0.01, log-spaced, ``restarts`` instances a
        cell (setting-major, as ``train(restarts=...)`` lays them out): two ``(instance, 1)``."""
        r, p = np.meshgrid(np.logspace(-1, 1, self.grid), np.logspace(0, -2, self.grid), indexing="ij")
        cell = lambda a: np.repeat(a.reshape(-1), self.restarts)[:, None]  # noqa: E731
        return cell(r), cell(p)

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
    # the toy-models chapter's heaviest runs (issue 12)
    Case("(f) 200 -> 20, 30 inst., p 1..0.01", 200, 20, 30, 1.0, steps=30, lowest_density=0.01),
    Case("(g) 2 -> 1 phase diagram, 1024 inst.", 2, 1, 1024, 1.0, steps=50, grid=16, restarts=4),
    Case("(g') 3 -> 2 phase diagram, 1024 inst.", 3, 2, 1024, 1.0, steps=50, grid=16, restarts=4),
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
        torch.tensor(case.config().probability_matrix(), dtype=torch.float32),
        torch.tensor(case.config().importance_matrix(), dtype=torch.float32),
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


@dataclass
class SAECase:
    name: str
    n_features: int
    n_hidden: int
    density: float
    d_sae: int
    n_instances: int
    steps: int

    def toy(self) -> toy_lib.TrainResult:
        cfg = toy_lib.ToyModelConfig(
            n_features=self.n_features, n_hidden=self.n_hidden, feature_probability=self.density
        )
        return toy_lib.train(cfg, steps=300, seed=0, device="cpu", eval_batch_size=BATCH, progress=False)


SAE_CASES = [
    SAECase("(d) 16 SAEs 2 -> 5", 5, 2, 0.025, 5, 16, steps=200),
    SAECase("(e) 8 SAEs 5 -> 20", 20, 5, 0.05, 20, 8, steps=100),
]


def sae_reference_run(case: SAECase, toy: toy_lib.TrainResult, steps: int) -> None:
    """One SAE at a time, each with its own loop: autograd and torch.optim.Adam."""
    torch.manual_seed(0)
    W = toy.W[0]  # (hidden, feature)
    p = case.density
    for _ in range(case.n_instances):
        W_enc = torch.nn.Parameter(torch.randn(case.n_hidden, case.d_sae) * 0.5)
        W_dec = torch.nn.Parameter(
            torch.nn.functional.normalize(torch.randn(case.d_sae, case.n_hidden), dim=-1)
        )
        b_enc = torch.nn.Parameter(torch.zeros(case.d_sae))
        b_dec = torch.nn.Parameter(torch.zeros(case.n_hidden))
        opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=1e-3)
        for _ in range(steps):
            x = torch.rand(BATCH, case.n_features) * (torch.rand(BATCH, case.n_features) < p)
            h = x @ W.T
            f = torch.relu((h - b_dec) @ W_enc + b_enc)
            h_hat = f @ W_dec + b_dec
            loss = ((h - h_hat) ** 2).sum(-1).mean() + 0.4 * f.sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                W_dec /= W_dec.norm(dim=-1, keepdim=True)


def sae_toy_lib_run(case: SAECase, toy: toy_lib.TrainResult, steps: int) -> None:
    cfg = toy_lib.SAEConfig(case.n_hidden, case.d_sae, n_instances=case.n_instances, l1_coefficient=0.4)
    toy_lib.train_sae(
        cfg, toy, steps=steps, batch_size=BATCH, device="cpu", eval_batch_size=BATCH, progress=False
    )


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
        f"{'configuration':38s} {'reference':>11s} {'toy_lib':>11s} {'toy_lib':>9s} {'speed-up':>9s} "
        f"{'floor':>9s} {'x floor':>8s}"
    )
    print(header)
    print(f"{'':38s} {'steps/s':>11s} {'steps/s':>11s} {'ms/step':>9s} {'':>9s} {'ms/step':>9s} {'':>8s}")
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
            f"{case.name:38s} {1 / ref:11.1f} {1 / ours:11.1f} {ours * 1e3:9.2f} {ref / ours:8.1f}x "
            f"{floor * 1e3:9.2f} {ours / floor:7.1f}x",
            flush=True,
        )
    for sae_case in SAE_CASES:
        if args.only and not sae_case.name.startswith(args.only):
            continue
        toy = sae_case.toy()
        steps = max(2, sae_case.steps // 4) if args.quick else sae_case.steps
        for fn in (sae_reference_run, sae_toy_lib_run):  # warm up (compiles toy_lib's kernel once)
            fn(sae_case, toy, 2)
        times = {"reference": [], "toy_lib": []}
        for _ in range(repeats):
            for key, fn in (("reference", sae_reference_run), ("toy_lib", sae_toy_lib_run)):
                t0 = time.perf_counter()
                fn(sae_case, toy, steps)
                times[key].append((time.perf_counter() - t0) / steps)
        ref, ours = (statistics.median(times[k]) for k in ("reference", "toy_lib"))
        print(f"{sae_case.name:30s} {1 / ref:11.1f} {1 / ours:11.1f} {ref / ours:8.1f}x", flush=True)
    print(
        f"\nfinished in {time.perf_counter() - start:.0f} s; load average now "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
