"""Projected wall time of the toy-models chapter's heaviest training runs (issue 12).

Run from the repository root:

    python benchmarks/chapter_runs.py                # torch's default threads
    python benchmarks/chapter_runs.py --threads 1    # one core
    python benchmarks/chapter_runs.py --fraction 0.5 # twice as many steps, steadier

Trains each run at the chapter's size for a fraction of its steps with ``toy_lib.train`` (setup
and final evaluation included) and projects the time of 10,000 and 5,000 steps from it, in wall
time and in process CPU time. The cost of a step does not change as training proceeds, so the
projection is linear; the fixed cost per run (setup, the final evaluation, loading the compiled
kernels) is included once in each measurement, which makes the projection an upper bound.

- the feature-dimensionality sweep: 200 -> 20, uniform importance, 30 densities log-spaced from
  1 to 0.01; and the same with 2 restarts (60 instances);
- the phase diagrams: 2 -> 1 and 3 -> 2, a 20 x 20 grid of the extra feature's relative
  importance (0.1 ... 10) x density (1 ... 0.01), 4 restarts a cell (1600 instances each).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_trainer import machine  # noqa: E402

import toy_lib  # noqa: E402


def phase_diagram(n_features: int, n_hidden: int, grid: int = 20) -> toy_lib.ToyModelConfig:
    relative, density = np.meshgrid(np.logspace(-1, 1, grid), np.logspace(0, -2, grid), indexing="ij")
    importance = np.ones((grid * grid, n_features))
    importance[:, -1] = relative.reshape(-1)
    return toy_lib.ToyModelConfig(
        n_features=n_features,
        n_hidden=n_hidden,
        n_instances=grid * grid,
        feature_probability=density.reshape(-1),
        importance=importance,
    )


SWEEP = toy_lib.ToyModelConfig(
    n_features=200, n_hidden=20, n_instances=30, feature_probability=np.logspace(0, -2, 30)
)
RUNS = [  # name, configuration, restarts, steps measured (at --fraction 1)
    ("200 -> 20 sweep, 30 densities", SWEEP, 1, 300),
    ("200 -> 20 sweep, 30 densities x 2 restarts", SWEEP, 2, 150),
    ("2 -> 1 phase diagram, 20 x 20 x 4 restarts", phase_diagram(2, 1), 4, 1000),
    ("3 -> 2 phase diagram, 20 x 20 x 4 restarts", phase_diagram(3, 2), 4, 1000),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fraction", type=float, default=1.0, help="multiply the steps measured by this")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("toy-models chapter runs:", machine())
    print(f"\n{'run':45s} {'steps':>6s} {'wall s':>8s} {'CPU s':>8s}   per 10,000 steps (5,000): wall, CPU")
    for name, cfg, restarts, steps in RUNS:
        steps = max(10, int(steps * args.fraction))
        toy_lib.train(cfg, steps=2, restarts=restarts, device="cpu", eval_batch_size=1024, progress=False)
        t0, c0 = time.perf_counter(), time.process_time()
        toy_lib.train(cfg, steps=steps, restarts=restarts, device="cpu", progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        w10, c10 = wall / steps * 1e4, cpu / steps * 1e4
        print(
            f"{name:45s} {steps:6d} {wall:8.1f} {cpu:8.1f}   {w10:6.0f} s ({w10 / 2:4.0f} s), "
            f"{c10:6.0f} s ({c10 / 2:4.0f} s)",
            flush=True,
        )
    print(f"\nload average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
