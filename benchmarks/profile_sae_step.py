"""Where one `train_sae` step's time goes on the CPU's compiled path (bench_trainer.py's (d), (e)).

Run from the repository root:

    python benchmarks/profile_sae_step.py [--case e] [--threads 1] [--cpu]

Times, each alone over ``--steps`` calls (mean ms a call): the training batch (the toy model's
sample and ``h = W x``, `ToyActivations.batch`), the compiled SAE step (`_cpu_step.CpuStep`), the
whole of `_Trainer.step_fn` (both, plus the decoder-gradient projection and the bookkeeping),
the Adam update and `_Trainer.after_step`; then a whole `train_sae` of ``--steps`` steps a step
(its start and one-batch evaluation included, as the benchmark times it). With ``--cpu``, process
CPU time (steadier on a machine that other jobs keep busy; use it with ``--threads 1``). Used to
decide what to optimise; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_trainer import BATCH, SAE_CASES  # noqa: E402

import toy_lib  # noqa: E402
from toy_lib import _cpu_kernels  # noqa: E402
from toy_lib.sae import _ARCHITECTURES, _data  # noqa: E402
from toy_lib.sae import training as sae_training  # noqa: E402
from toy_lib.training import _AdamW  # noqa: E402

CLOCK = time.perf_counter


def mean_ms(fn, calls: int) -> float:
    fn()  # warm up (and compile)
    t0 = CLOCK()
    for _ in range(calls):
        fn()
    return (CLOCK() - t0) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["d", "e"], default="e")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    numba = _cpu_kernels.numba_module()
    if numba:  # as `train_sae` does: torch's thread setting governs the compiled kernels too
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if args.cpu:
        global CLOCK
        CLOCK = time.process_time
    case = next(c for c in SAE_CASES if c.name.startswith(f"({args.case})"))
    toy = case.toy()
    cfg = toy_lib.SAEConfig(case.n_hidden, case.d_sae, n_instances=case.n_instances, l1_coefficient=0.4)
    dev = torch.device("cpu")
    seeds = _data.instance_seeds(0, cfg.n_instances)
    source = _data.make_source(toy, cfg, BATCH, seeds, dev)
    arch = _ARCHITECTURES[cfg.architecture](cfg, dev)
    init = sae_training._init_params(cfg, seeds, source, "geometric_median", True, dev)
    trainer = sae_training._Trainer(
        arch,
        init,
        source,
        batch_size=BATCH,
        steps=10**9,
        normalize_decoder=True,
        penalty_warmup_steps=0,
        dead_window=500,
        resample_dead=False,
        resample_every=2500,
        resample_scale=0.2,
        snapshot_steps=(),
        seeds=seeds,
        dev=dev,
    )
    if not trainer.compiled:
        sys.exit("the compiled path is not available here (no Numba?): nothing to profile")
    opt = _AdamW(trainer.flat, weight_decay=0.0)
    loss = torch.empty(cfg.n_instances)
    h = source.batch().clone()
    n = args.steps
    parts = {
        "batch (sample, h = W x)": mean_ms(source.batch, n),
        "compiled SAE step": mean_ms(
            lambda: trainer.cpu_step(h, trainer.flat, trainer.grad, trainer.since_fired, 500, 1.0), n
        ),
        "step_fn (all of the above and more)": mean_ms(lambda: trainer.step_fn(0, loss), n),
        "Adam": mean_ms(lambda: opt.step(trainer.grad, 1e-3), n),
        "after_step": mean_ms(lambda: trainer.after_step(0, [opt]), n),
    }

    def whole() -> None:
        toy_lib.train_sae(
            cfg, toy, steps=n, batch_size=BATCH, device="cpu", eval_batch_size=BATCH, progress=False
        )

    parts["train_sae, a step"] = mean_ms(whole, 1) / n
    clock = "CPU" if args.cpu else "wall"
    print(
        f"{case.name}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); mean {clock} ms a call"
    )
    for name, ms in parts.items():
        print(f"  {name:38s} {ms:7.3f}")


if __name__ == "__main__":
    main()
