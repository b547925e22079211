"""Time a clean build of the book, then a warm rebuild with nothing changed, and the peak memory.

Run from the repository root:

    python benchmarks/bench_build.py

It copies the working tree (tracked and untracked-but-not-ignored files, as a clean clone would
have them, so no ``_build`` comes along) into a temporary folder and runs, there,

1. ``jupyter-book build book/`` from an empty ``_build``: every chapter executes;
2. the same command again with nothing changed: everything comes from the caches.

Both run with ``PYTHONPATH`` at the copy, so the build and its kernels import the copy's toy_lib.
Peak memory is the largest total resident memory of the build's whole process tree (jupyter-book,
Sphinx and the Jupyter kernels it starts), sampled every 0.1 s with psutil; without psutil the
script reports the largest single process instead (``getrusage``). Targets on the 2-core
reference machine: clean build under 10 minutes, warm rebuild under 60 s, peak under 4 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import copy_repo, jupyter_book_exe  # noqa: E402  (the tests' clean-copy helpers)

TARGETS = {"clean": 600.0, "warm": 60.0, "peak_gb": 4.0}


class TreeMemory(threading.Thread):
    """Samples the summed resident memory of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        import psutil

        self.psutil, self.root, self.interval = psutil, psutil.Process(pid), interval
        self.peak, self.done = 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except self.psutil.Error:
                break
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except self.psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.done.wait(self.interval)


def build(root: Path, jupyter_book: str) -> tuple[float, int | None, str]:
    """Run the build in ``root``; return (seconds, peak bytes of the process tree or None, log)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("TOY_LIB_CACHE_DIR", None)  # the build sets it to its own _build
    start = time.perf_counter()
    proc = subprocess.Popen(
        [jupyter_book, "build", "book/"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = None
    try:
        sampler = TreeMemory(proc.pid)
        sampler.start()
    except ImportError:
        pass
    log, _ = proc.communicate()
    seconds = time.perf_counter() - start
    if sampler is not None:
        sampler.done.set()
        sampler.join()
    if proc.returncode != 0:
        sys.exit(f"build failed in {root}:\n{log[-4000:]}")
    return seconds, (sampler.peak if sampler else None), log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args()
    jupyter_book = jupyter_book_exe()
    tmp = Path(tempfile.mkdtemp(prefix="bench_build_"))
    try:
        root = copy_repo(tmp)
        print(
            f"book build benchmark: {time.strftime('%Y-%m-%d %H:%M %Z')}; nproc {os.cpu_count()}; "
            f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; copy in {root}"
        )
        clean, peak, log = build(root, jupyter_book)
        executed = log.count("Executed notebook")
        warm, _, log2 = build(root, jupyter_book)
        re_executed = log2.count("Executed notebook")
        largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
        print(
            f"clean build: {clean:7.1f} s  ({executed} notebook(s) executed; target < "
            f"{TARGETS['clean']:.0f} s)"
        )
        print(
            f"warm rebuild: {warm:6.1f} s  ({re_executed} notebook(s) executed; target < "
            f"{TARGETS['warm']:.0f} s)"
        )
        if peak is not None:
            print(
                f"peak memory of the clean build's process tree: {peak / 2**30:.2f} GiB "
                f"(target < {TARGETS['peak_gb']:.0f} GB)"
            )
        print(f"largest single process (getrusage): {largest / 2**30:.2f} GiB")
        print(f"load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
