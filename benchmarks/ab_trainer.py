"""toy_lib's trainer now against toy_lib at another git revision, interleaved in one process.

Run from the repository root:

    python benchmarks/ab_trainer.py --base 300f3b1 [--threads 1] [--only '(g']

The revision's ``toy_lib`` is extracted (``git archive``) into a temporary folder and imported
under another name, so both versions run in the same process, alternating run by run, on the
configurations of ``bench_trainer.py``; each run is ``toy_lib.train`` for the case's number of
steps, setup included, as in ``bench_trainer.py``. Reports the median ms per step of each, in
wall time and in process CPU time (with ``--threads 1`` the CPU time does not count the time
other jobs hold the core, so it is the steadier number on a busy machine), and the speed-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from bench_trainer import BATCH, CASES, machine  # noqa: E402

import toy_lib  # noqa: E402


def load_revision(rev: str, folder: Path):
    """``toy_lib`` as it was at git revision ``rev``, imported as ``toy_lib_at_<rev>``."""
    data = subprocess.run(
        ["git", "archive", rev, "toy_lib"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    tarfile.open(fileobj=io.BytesIO(data)).extractall(folder, filter="data")
    name = f"toy_lib_at_{rev.replace('-', '_').replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(
        name, folder / "toy_lib" / "__init__.py", submodule_search_locations=[str(folder / "toy_lib")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run(lib, case, steps: int) -> None:
    cfg = case.config()
    cfg = lib.ToyModelConfig(
        n_features=cfg.n_features,
        n_hidden=cfg.n_hidden,
        n_instances=cfg.n_instances,
        feature_probability=cfg.probability_matrix(),
        importance=cfg.importance_matrix(),
    )
    lib.train(cfg, steps=steps, batch_size=BATCH, seed=0, device="cpu", eval_batch_size=BATCH, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="300f3b1", help="the git revision to compare with")
    parser.add_argument("--only", default=None, help="configurations whose name starts with this")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=float, default=1.0, help="multiply each case's steps by this")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print("toy_lib A/B:", machine())
    print(f"base {args.base} against the working tree; median of {args.repeats} interleaved runs\n")
    print(
        f"{'configuration':38s} {'base':>9s} {'now':>9s} {'speed-up':>9s} {'base':>9s} {'now':>9s} {'speed-up':>9s}"
    )
    print(f"{'':38s} {'wall ms/step':>19s} {'':>9s} {'CPU ms/step':>19s}")
    with tempfile.TemporaryDirectory() as tmp:
        base = load_revision(args.base, Path(tmp))
        for case in CASES:
            if args.only and not case.name.startswith(args.only):
                continue
            steps = max(2, int(case.steps * args.steps))
            for lib in (base, toy_lib):
                run(lib, case, 2)  # compile and warm up
            wall = {"base": [], "now": []}
            cpu = {"base": [], "now": []}
            for _ in range(args.repeats):
                for key, lib in (("base", base), ("now", toy_lib)):
                    t0, c0 = time.perf_counter(), time.process_time()
                    run(lib, case, steps)
                    wall[key].append((time.perf_counter() - t0) / steps * 1e3)
                    cpu[key].append((time.process_time() - c0) / steps * 1e3)
            w = {k: statistics.median(v) for k, v in wall.items()}
            c = {k: statistics.median(v) for k, v in cpu.items()}
            print(
                f"{case.name:38s} {w['base']:9.2f} {w['now']:9.2f} {w['base'] / w['now']:8.1f}x "
                f"{c['base']:9.2f} {c['now']:9.2f} {c['base'] / c['now']:8.1f}x",
                flush=True,
            )
    print(
        f"\nfinished in {time.perf_counter() - start:.0f} s; load average now "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
