"""Overhead of the simulated GPUs: the seed's 5 training steps, simulated vs plain CPU tensors.

    python benchmarks/bench_simgpu_overhead.py [--rounds 5]

Prints the median wall time of each and the ratio (goal: under 3x). The simulation never sleeps (its clock is
virtual): what it costs is its bookkeeping of every op (a TorchFunctionMode and a TorchDispatchMode in Python).
Wall time is read with the real clock, bound at import (inside the simulation ``time.perf_counter`` is virtual).
"""

import argparse
import contextlib
import io
import statistics
import sys
from pathlib import Path
from time import perf_counter as wall_clock  # the real one: bound before any simulation replaces it

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from seed_program import SimpleMPModel, train_random_batches  # noqa: E402

from autograder import simulated_gpus  # noqa: E402
from autograder.simgpu import DEFAULT_GPU  # noqa: E402


def five_steps(device0: str, device1: str) -> float:
    torch.manual_seed(0)
    model = SimpleMPModel(device0, device1)
    start = wall_clock()
    with contextlib.redirect_stdout(io.StringIO()):  # the seed prints each loss
        train_random_batches(model, steps=5)
    return wall_clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    plain, simulated = [], []
    for _ in range(rounds):
        plain.append(five_steps("cpu", "cpu"))
        with simulated_gpus(2):
            simulated.append(five_steps("cuda:0", "cuda:1"))
    p, s = statistics.median(plain), statistics.median(simulated)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, simulated {DEFAULT_GPU}")
    print(f"plain CPU : {p * 1000:8.1f} ms for 5 steps (median of {rounds})")
    print(f"simulated : {s * 1000:8.1f} ms for 5 steps")
    print(f"ratio     : {s / p:8.2f}x (goal < 3x)")


if __name__ == "__main__":
    main()
