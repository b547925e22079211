"""What the chapter "Superposition in richer settings" will cost to train: every planned run, timed
for a few hundred steps and projected to its full length.

    python benchmarks/bench_richer.py            # every case, CPU time and wall time
    python benchmarks/bench_richer.py --only t11  # the cases whose name contains "t11"

Each case is a `toy_lib.train` call of the chapter's plan (science-targets.md T9-T11 as
book/richer.md runs them, and double descent, which the chapter runs at 5,000 steps), at the
planned number of settings, restarts and batch size. A case is timed at ``s``
and ``2 s`` steps; the difference gives the cost of a step without the fixed costs (set-up, the
final evaluation), which are timed once. The projection is ``fixed + steps × per step``. Process
CPU time is reported beside wall time: on a shared machine the wall time of a run depends on who
else is running, its CPU time less so, but still (a busy sibling core slows every product).

For the record, before each case the script also times a fixed workload in CPU time, the five
batched products of `bench_trainer.py`'s case (b) (100 -> 20, 20 instances, batch 1024): the
column ``floor ms`` shows how fast the machine multiplied matrices while that case was timed.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import toy_lib
from toy_lib import ToyModelConfig

DENSITIES_T10 = [0.75, 0.35, 0.15, 0.1, 0.06, 0.02, 0.01]
DENSITIES_T11 = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003]
SIZES_DD = [3, 5, 8, 12, 20, 35, 60, 100, 200, 400, 1000]


def floor_ms(repeats: int = 15) -> float:
    """CPU ms of the calibration workload (bench_trainer's floor of case (b)), median of runs."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1024, 100, generator=g)
    W = torch.randn(20, 20, 100, generator=g)
    h, out = torch.empty(20, 1024, 20), torch.empty(20, 1024, 100)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        torch.bmm(x, W.transpose(1, 2), out=h)
        torch.bmm(h, W, out=out)
        torch.bmm(h.transpose(1, 2), out)
        dh = torch.bmm(out, W.transpose(1, 2))
        torch.bmm(dh.transpose(1, 2), x)
        times.append(time.process_time() - start)
    return 1e3 * float(np.median(times))


def cases() -> dict[str, tuple[ToyModelConfig, dict]]:
    """name -> (config, train arguments) of each planned run."""
    out = {}
    # T9: two correlated pairs, two anticorrelated pairs, three correlated pairs at 5 densities
    for kind in ("correlated", "anticorrelated"):
        config = ToyModelConfig(
            n_features=4, n_instances=1, feature_probability=0.05, **{kind: [(0, 1), (2, 3)]}
        )
        out[f"t9 {kind} pairs (m=2)"] = (config, dict(steps=10_000, restarts=4))
    out["t9 three correlated pairs, 5 densities"] = (
        ToyModelConfig(
            n_features=6, n_hidden=2, n_instances=5, feature_probability=[0.5, 0.3, 0.1, 0.03, 0.01],
            correlated=[(0, 1), (2, 3), (4, 5)],
        ),
        dict(steps=10_000, restarts=4),
    )  # fmt: skip
    out["t10 neuron model 10 -> 5, 7 densities"] = (
        ToyModelConfig(
            n_features=10, n_hidden=5, n_instances=7, feature_probability=DENSITIES_T10,
            importance=0.75 ** np.arange(10), model="neuron",
        ),
        dict(steps=10_000, restarts=4),
    )  # fmt: skip
    out["t11 abs 3 -> 6"] = (
        ToyModelConfig(n_features=3, n_hidden=6, n_instances=1, feature_probability=1.0, model="abs"),
        dict(steps=10_000, restarts=4),
    )
    out["t11 abs 100 -> 40, 6 densities"] = (
        ToyModelConfig(
            n_features=100, n_hidden=40, n_instances=6, feature_probability=DENSITIES_T11,
            importance=0.8 ** np.arange(100), model="abs",
        ),
        dict(steps=5_000, lr=3e-3, restarts=1),  # the chapter's lighter recipe for its largest run
    )  # fmt: skip
    for T in SIZES_DD:
        out[f"double descent T={T}"] = (
            ToyModelConfig(n_features=1000, n_hidden=2, feature_probability=0.01, dataset_size=T),
            dict(steps=10_000, restarts=2, schedule="warmup_cosine"),
        )
    return out


def timed(config, steps, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    toy_lib.train(config, steps=steps, device="cpu", progress=False, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="time only the cases whose name contains this")
    parser.add_argument("--steps", type=int, default=200, help="steps of the short run (default 200)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"{'case':42s} {'ms/step cpu':>11s} {'wall':>7s} {'fixed s':>8s} {'projected s cpu':>16s} {'wall':>7s}"
    )
    total_cpu = total_wall = 0.0
    for name, (config, kwargs) in cases().items():
        if args.only not in name:
            continue
        steps = kwargs.pop("steps")
        s = args.steps
        floor = floor_ms()
        timed(config, 2, **{**kwargs, "eval_batch_size": 64})  # warm-up (compilation, caches)
        w1, c1 = timed(config, s, **{**kwargs, "eval_batch_size": 64})
        w2, c2 = timed(config, 2 * s, **{**kwargs, "eval_batch_size": 64})
        per_cpu, per_wall = max(c2 - c1, 0) / s, max(w2 - w1, 0) / s
        w0, c0 = timed(config, 1, **kwargs)  # set-up and the full final evaluation
        proj_cpu, proj_wall = c0 + steps * per_cpu, w0 + steps * per_wall
        total_cpu += proj_cpu
        total_wall += proj_wall
        print(
            f"{name:42s} {1e3 * per_cpu:11.3f} {1e3 * per_wall:7.3f} {c0:8.2f} {proj_cpu:16.1f} {proj_wall:7.1f}"
            f" {floor:9.2f}",
            flush=True,
        )
    print(f"{'total':42s} {'':11s} {'':7s} {'':8s} {total_cpu:16.1f} {total_wall:7.1f}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
