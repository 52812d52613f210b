"""Eager PyTorch's host time per op, and where the timeline's split-size optimum lies for several per-op costs.

    python benchmarks/bench_host_overhead.py [--rounds 5] [--gpus a100,h100] [--no-sweep]

Part 1 measures, on this machine's torch (a CPU build here), the host time of one eager op on tiny tensors - the
dispatcher, autograd bookkeeping and Python call, without the CUDA launch itself (``cudaLaunchKernel`` adds a few
microseconds more on a CUDA build, which the CPU build cannot show): a lower bound of the per-op cost on a GPU machine.
The simulation charges ``GpuProfile.launch_s`` (5 us) per op. Part 2 redraws the split-size sweep of
``python -m autograder timeline --sweep`` (batch 4096) with ``launch_s`` set to 5, 10 and 25 us: the best split
size and its speed-up for each, i.e. where the optimum moves if real eager PyTorch costs more per op than simulated.
Wall time is read with the real clock, bound at import (inside the simulation ``time.perf_counter`` is virtual).
"""

import argparse
import dataclasses
import os
import statistics
from time import perf_counter as wall_clock
from time import process_time

import torch

LAUNCH_COSTS_S = (5e-6, 10e-6, 25e-6)
CALLS = 20000
SPLIT_SIZES = (2048, 1024, 512, 256, 128, 64, 32)  # the timeline's sweep but for 4096 (= no split)


def per_op_host_seconds(rounds: int) -> dict[str, tuple[float, float]]:
    """Median seconds per call, wall and this process's CPU time (which other processes on a loaded machine inflate
    far less), each op on tiny tensors (the launch-bound regime of batch 32)."""
    x, w = torch.randn(4, 8), torch.randn(8, 8)
    grad_x = torch.randn(4, 8, requires_grad=True)
    ops = {
        "add_ (in place)": lambda: x.add_(1.0),
        "relu": lambda: torch.relu(x),
        "linear (4x8 @ 8x8)": lambda: torch.nn.functional.linear(x, w),
        "split into 2 (a pipeline's micro-batches)": lambda: x.split(2),
        "to(float64)": lambda: x.to(torch.float64),
        "relu with autograd": lambda: torch.relu(grad_x),
    }
    found = {}
    for name, op in ops.items():
        wall, cpu = [], []
        for _ in range(rounds):
            start, start_cpu = wall_clock(), process_time()
            for _ in range(CALLS):
                op()
            wall.append((wall_clock() - start) / CALLS)
            cpu.append((process_time() - start_cpu) / CALLS)
        found[name] = (statistics.median(wall), statistics.median(cpu))
    return found


def sweeps(gpus: list[str]) -> list[dict]:
    from autograder.simgpu import gpu_profile, simulated_gpus
    from autograder.timeline import split_size_sweep

    rows = []
    for key in gpus:
        for launch_s in LAUNCH_COSTS_S:
            profile = dataclasses.replace(gpu_profile(key), launch_s=launch_s)
            with simulated_gpus(2, gpu=profile):
                sweep = split_size_sweep(split_sizes=SPLIT_SIZES)
            best = max(sweep, key=lambda r: r["speed_up"])
            rows.append({"gpu": key, "launch_us": launch_s * 1e6, "best_split": best["split_size"],
                         "best_speed_up": best["speed_up"],
                         "speed_ups": {r["split_size"]: round(r["speed_up"], 3) for r in sweep}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gpus", default="a100")
    parser.add_argument("--no-sweep", action="store_true", help="part 1 only")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {CALLS} calls per round, "
          f"median of {args.rounds} rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(a loaded machine inflates part 1)")
    print("\nPart 1: host time per eager op (CPU build: no CUDA launch included)")
    print(f"  {'op':45s} {'wall':>9s} {'CPU time':>9s}")
    for name, (wall, cpu) in per_op_host_seconds(args.rounds).items():
        print(f"  {name:45s} {wall * 1e6:6.2f} us {cpu * 1e6:6.2f} us")
    if args.no_sweep:
        return
    print("\nPart 2: the timeline's split-size sweep (batch 4096), by the simulated per-op host cost")
    for row in sweeps(args.gpus.split(",")):
        print(f"  {row['gpu']:5s} launch {row['launch_us']:4.0f} us: best split {row['best_split']:5d} "
              f"(speed-up {row['best_speed_up']:.3f}); all: {row['speed_ups']}")


if __name__ == "__main__":
    main()
