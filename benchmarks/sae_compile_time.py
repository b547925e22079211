"""How long Numba takes to compile `train_sae`'s CPU step the first time, and to load it after.

Run from the repository root:

    python benchmarks/sae_compile_time.py
    python benchmarks/sae_compile_time.py --source /tmp/old   # the toy_lib of another checkout,
                                                            # e.g. `git archive <rev> toy_lib | tar -x -C /tmp/old`

Each measurement runs in a fresh Python process with ``NUMBA_CACHE_DIR`` pointing at a new,
empty folder (so nothing compiled earlier is reused; the toy sampler's kernels are compiled and
timed first, apart). In that process it times (wall clock, and the process's CPU time, which a
busy machine disturbs far less) the first 2-step `train_sae` of each
architecture in turn (on the CPU, d_in 2, d_sae 5: the compiled path), minus the same call once
compiled: that difference is the compile time of what that architecture needs. Then a second
fresh process with the same cache folder repeats the calls: the time to load the compiled code
from the on-disk cache (``cache=True``), which is what every later build pays.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("relu", "topk", "batchtopk", "gated", "jumprelu")

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
import toy_lib
t_import = time.perf_counter() - t0, time.process_time()
torch.set_num_threads(1)
c0 = time.process_time()
toy = toy_lib.train(toy_lib.ToyModelConfig(n_features=5, n_hidden=2, feature_probability=0.1),
                    steps=2, batch_size=64, eval_batch_size=64, device="cpu", progress=False)
t_toy = time.perf_counter() - t0 - t_import[0], time.process_time() - c0
out = {"import": t_import, "toy kernels": t_toy}
settings = {"relu": {}, "topk": {"k": 2}, "batchtopk": {"k": 2}, "gated": {}, "jumprelu": {}}
def run(arch):
    cfg = toy_lib.SAEConfig(2, 5, architecture=arch, **settings[arch])
    t, c = time.perf_counter(), time.process_time()
    toy_lib.train_sae(cfg, toy, steps=2, batch_size=64, eval_batch_size=64, device="cpu", progress=False)
    return time.perf_counter() - t, time.process_time() - c
for arch in sys.argv[1].split(","):
    first = run(arch)
    again = [min(t) for t in zip(*(run(arch) for _ in range(3)))]
    out[arch] = (first[0] - again[0], first[1] - again[1])
print(json.dumps(out))
"""


def child(cache: str, archs, source: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(archs)],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="a folder holding the toy_lib to time")
    args = parser.parse_args()
    print(
        f"SAE kernel compile time of {args.source / 'toy_lib'}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache:
        t = time.perf_counter()
        cold = child(cache, ARCHS, args.source)
        wall_cold = time.perf_counter() - t
        t = time.perf_counter()
        warm = child(cache, ARCHS, args.source)
        wall_warm = time.perf_counter() - t
    print(f"{'seconds: wall (CPU)':26s}{'empty cache':>20s}{'from the cache':>20s}")
    for key in cold:
        (w0, c0), (w1, c1) = cold[key], warm[key]
        print(f"{key:26s}{w0:12.1f} ({c0:5.1f}){w1:12.1f} ({c1:5.1f})")
    print(f"{'whole process (wall)':26s}{wall_cold:13.1f}s{wall_warm:15.1f}s")
    print(f"load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
