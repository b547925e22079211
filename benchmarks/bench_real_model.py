"""The real-model chapter's cost: loading all-MiniLM-L6-v2, tokenising the corpus, and
extracting activations, with the peak memory of the process; with ``--sae-steps``, also training
the chapter's TopK SAE (384 -> 3072, k = 32) on them.

    python benchmarks/bench_real_model.py                      # 50,000 tokens at block 3
    python benchmarks/bench_real_model.py --tokens 5000 --batch-sizes 16 32 64
    python benchmarks/bench_real_model.py --tokens 100000 --sae-steps 250 --sae-batch 1024

Prints the machine's load average beside each number: on a shared machine, timings are noisy.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch

from toy_lib import real_model as rm


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--sae-steps", type=int, default=0, help="train the chapter's SAE this many steps")
    parser.add_argument("--sae-batch", type=int, default=1024)
    parser.add_argument("--sae-lr", type=float, default=3e-3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}")

    start = time.perf_counter()
    model = rm.load_model()
    print(f"load_model: {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    corpus = rm.load_corpus()
    print(f"load_corpus: {time.perf_counter() - start:.2f} s (janeaustenr {corpus.version})")
    start = time.perf_counter()
    windows, _ = rm.corpus_windows(model, corpus, args.context)
    n_available = windows.shape[0] * (args.context - 2)
    print(
        f"corpus_windows: {time.perf_counter() - start:.2f} s, {n_available:,} tokens in {windows.shape[0]:,} windows"
    )

    for batch_size in args.batch_sizes:
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        acts = rm.extract_activations(
            model,
            corpus,
            n_tokens=args.tokens,
            layer=args.layer,
            context=args.context,
            batch_size=batch_size,
            dtype=getattr(torch, args.dtype),
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        print(
            f"extract_activations: {args.tokens:,} tokens, layer {args.layer}, context {args.context}, "
            f"batch {batch_size}: {seconds:.1f} s = {args.tokens / seconds:,.0f} tokens/s "
            f"({1e3 * seconds / args.tokens:.3f} ms a token; CPU time {1e3 * cpu / args.tokens:.3f} ms a token "
            f"over all threads); {acts.acts.nbytes / 2**20:.0f} MiB of activations; "
            f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
        )
    if args.sae_steps:
        from toy_lib import SAEConfig, train_sae

        config = SAEConfig(d_in=acts.acts.shape[1], d_sae=8 * acts.acts.shape[1], architecture="topk", k=32)
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        result = train_sae(
            config,
            acts.acts,
            steps=args.sae_steps,
            batch_size=args.sae_batch,
            lr=args.sae_lr,
            seed=0,
            device="cpu",
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        print(
            f"train_sae: {args.sae_steps} steps of {args.sae_batch}: {seconds:.1f} s "
            f"({seconds / args.sae_steps:.3f} s a step; CPU time {cpu / args.sae_steps:.3f} s a step over all "
            f"threads); final loss {float(result.loss_history[-1, 0]):.3f}; "
            f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
        )
    print(f"peak memory of the process: {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
