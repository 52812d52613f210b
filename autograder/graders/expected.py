"""What the graders expect, as product code: the values and tolerances they judge by, computed in the trusted
process with NumPy from the same seeded inputs and initial weights the probes feed the student's code.

The graders (``test_*.py``) import this module, and so does the doctor, which proves on a GPU machine that the
reference meets these expectations there; nothing here imports a test file.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np

from ..contract import LAYER_SHAPES, expected_layer, home_device
from ..sandbox.inputs import SEED, initial_weights, make_batch, make_batches

__all__ = ["SEED", "LAYER_SHAPES", "home_device", "misplaced", "require_layers", "layer_problem", "unsplit_forward",
           "contract_forward", "mse", "expected_output", "reference_sgd", "expected_training", "unexplained_loss",
           "timing_workloads", "training_tolerances", "TIMING_LAST"]

# Forward values. Measured: the simulation is bit-exact to PyTorch on the CPU, which differs from this NumPy reference
# by at most 6.3e-7 (absolute; outputs up to ~1) over 120 forwards of batch 1, 7 and 32 and the pipelined model's
# (tests/test_tolerances.py re-checks 36 of them with a 10x margin); fp32 GPU kernels without TF32 differ by ~1e-6
# relative. A missing ReLU is off by ~1.
FORWARD_RTOL, FORWARD_ATOL = 1e-5, 1e-5

# Training (train_matches_reference): REFERENCE_STEPS random batches at REFERENCE_LR from the graders' weights.
# Measured (tests/test_tolerances.py, 6 seeds): PyTorch on the CPU (and so the simulation, bit-exact to it) vs this
# NumPy reference differ by <= 9.3e-8 relative in the losses and <= 7.5e-9 absolute in the final weights (|w| <= 0.04).
# The tolerances are ~20x that. What they separate: a layer1 that never updates moves the losses by 2.8e-6 (step 1) and
# 1.2e-5, an lr 0.1% off by 2.4e-6 and 6.8e-6, a weight decay of 1e-4 by 1.6e-6 and 4.3e-6 - all beyond LOSS_RTOL
# by step 2. The doctor (training_numerics) checks the reference against LOSS_RTOL on a real GPU before GPU grading.
LOSS_RTOL = 2e-6
WEIGHT_RTOL, WEIGHT_ATOL = 1e-5, 1e-7
# Real GPUs: cuBLAS sums fp32 products in another order than the CPU's BLAS (and splits K across thread blocks): ~1e-6
# relative per product (no TF32: PyTorch leaves it off for matmul), compounded over forward, backward and 4 steps. Not
# measured yet (no GPU has been lent to this project): 10x that per-product noise, and the doctor's training_numerics
# checks the reference against it on each machine before grading. What this gives up on real GPUs only: losses off by
# under 2e-5 (a layer1 that never updates still fails, by its weights).
GPU_LOSS_RTOL = 2e-5
GPU_WEIGHT_RTOL, GPU_WEIGHT_ATOL = 1e-4, 1e-6


def training_tolerances(mode: str) -> tuple[float, float, float]:
    """(loss rtol, weight rtol, weight atol) for ``mode``: the simulation computes on the CPU, real GPUs do not."""
    return (LOSS_RTOL, WEIGHT_RTOL, WEIGHT_ATOL) if mode == "sim" else (GPU_LOSS_RTOL, GPU_WEIGHT_RTOL,
                                                                      GPU_WEIGHT_ATOL)
REFERENCE_LR, REFERENCE_STEPS = 0.2, 4

# Timing: time_forward(warmup=TIMING_WARMUP, repeats=...) while the probe adds known GPU work to its forwards
# (``timing_workloads``). Judged: k = seconds returned / true device seconds per timed forward (CUDA events in the same
# run). Each check judges one wait, in scenarios where only that wait changes the seconds, and against a scenario of
# the same shape, so a constant factor (milliseconds, a wrong divisor, the warm-up timed too) cancels:
# - timing_measures_device_time: k("even") at TIMING_REPEATS in [TIMING_LOW, TIMING_HIGH]. Every forward, warm-up or
#   timed, carries the same work and the warm-up is as long as the timed part, so each off-by-the-warm-up mistake is
#   at least 2x off: timing the warm-up too (or starting the clock before the warm-up's work finished) reads 2.1,
#   dividing by warmup + repeats 0.50, by repeats + 1 0.75, the sum of the timed forwards (or a clock restarted
#   at each forward, which still counts the earlier forwards the GPUs are running) 3.0, milliseconds 1000.
# - timing_synchronizes (the final wait): k("on_device0") / k("even"), both at TIMING_LAST repeats: the one timed
#   forward is the last, with nothing after it to hide behind, so a clock with no wait after it (none at all, or one
#   before each forward only) reads the host's launches only, ~0.1 of the ratio; any clock that waits reads ~1.
# - timing_covers_output_device (the wait for device1): k("heavy_on_device1") / k("on_device0") at TIMING_LAST: the
#   timed forward ends with long work on device1 and its warm-up forwards have none there (their work is on device0,
#   as long as in "on_device0"), so a wait for cuda:0 alone - after the loop, after the warm-up too, or events recorded
#   on cuda:0 - gains nothing at the clock's start and misses nearly all of it at its end (< 0.05).
# - timing_excludes_warmup (the wait after the warm-up): k("after_warmup") / k("even") at TIMING_REPEATS <= TIMING_HIGH:
#   the last warm-up forward leaves long work on device1, which a clock started before it finished counts (>= 3).
# Measured on every simulated GPU for every way of timing the samples hold (tests/test_timing_table.py asserts them).
TIMING_LOW, TIMING_HIGH = 0.8, 1.3
TIMING_WARMUP = TIMING_REPEATS = 3
TIMING_LAST = 1  # timed forwards in the final-wait scenarios: the last one is the only one
# How many more forwards the counting calls ask for (warmup + 2, then repeats + 2): a time_forward that ignores an
# argument runs as many forwards as before. (The seconds cannot show it: the forwards it times carry the same work.)
TIMING_MORE = 2
TIMING_SCENARIOS = ("even", "on_device0", "heavy_on_device1", "after_warmup")


def timing_workloads(rng: random.Random, scenario: str, warmup: int = TIMING_WARMUP) -> tuple[list[float], list[float]]:
    """Seconds of GPU work the probe adds ahead of each forward (``before``, on device0) and behind it (``after``, on
    device1), by position; the last value of each list applies to every later forward too, so every timed forward
    carries the same work however many the student's loop runs (``torch.utils.benchmark.Timer`` warms up twice more;
    one more after the clock stopped changes nothing), and the student's last timed forward always carries it. Sizes
    are drawn from ``rng`` (fresh each grading run), in milliseconds: far more than the host's launches.

    - even: every forward starts with work w on device0 and ends with w/3 on device1: any wait for the GPUs sees
      nearly all of it, and the per-forward arithmetic shows;
    - on_device0: every forward carries 8-12x w, all on device0: even a bare wait for cuda:0 sees all of it;
    - heavy_on_device1: the warm-up forwards carry that same work on device0 (so counting them costs what it costs in
      "on_device0"), the timed forwards as much on device1 and nothing on device0: nothing of device1's is left from
      the warm-up for a clock to gain at its start, and a wait for cuda:0 misses the last timed forward's;
    - after_warmup: as even, and the last warm-up forward ends with 24-36x w on device1: a clock started before
      waiting for it (or a missing warm-up) counts it.
    """
    if scenario not in TIMING_SCENARIOS:
        raise ValueError(f"unknown timing scenario {scenario!r}")
    w = rng.uniform(2e-3, 4e-3)
    heavy = rng.uniform(8, 12) * w
    if scenario == "on_device0":
        return [heavy], [0.0]
    if scenario == "heavy_on_device1":
        return [heavy] * warmup + [0.0], [0.0] * warmup + [heavy]
    if scenario == "after_warmup":
        return [w], [w / 3] * (warmup - 1) + [heavy * TIMING_REPEATS, w / 3]
    return [w], [w / 3]


def misplaced(devices_of: dict[str, str], devices: tuple[str, str] | list[str]) -> list[tuple[str, str, str]]:
    """(parameter, where it is, where it must be) for every layer parameter that is not on its home device."""
    return [(name, where, home) for name, where in devices_of.items()
            if (home := home_device(name, devices)) is not None and where != home]


def layer_problem(observed: dict) -> str | None:
    """What is wrong with model.layer1 / model.layer2 in the student's terms (from the probe's ``layers``
    descriptions), or None when both are Linear layers of the contract's shapes."""
    layers = sorted({name.split(".")[0] for name in observed["not_loaded"]})
    if not layers:
        return None
    found = "; ".join(f"`model.{layer}` is {observed['layers'].get(layer, 'missing')}" for layer in layers)
    wanted = " and ".join(f"self.{layer} = {expected_layer(layer)}" for layer in layers)
    return f"{found}; expected {wanted}."


def require_layers(observed: dict) -> None:
    """Probes that compute put the graders' initial weights into model.layer1/layer2: fail if they could not."""
    problem = layer_problem(observed)
    assert problem is None, (
        f"{problem} The grader puts its own weights into model.layer1 and model.layer2 to check what your code "
        "computes, so it needs both, with these shapes.")


@functools.lru_cache(maxsize=8)
def expected_output(batch_seed: int, rows: int, seed: int = SEED) -> np.ndarray:
    """``unsplit_forward`` of the seeded batch ``make_batch(batch_seed, rows, 1000)``: the same for every
    submission, so made once per grading process (read-only)."""
    out = unsplit_forward(make_batch(batch_seed, rows, 1000), seed)
    out.flags.writeable = False
    return out


def unsplit_forward(x: np.ndarray, seed: int = SEED) -> np.ndarray:
    """relu(W2 relu(W1 x + b1) + b2) with the graders' initial weights: what every forward must return."""
    return contract_forward(initial_weights(seed), x)


def contract_forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """relu(W2 relu(W1 x + b1) + b2) with ``weights`` named as in the contract (``layer1.weight`` ...)."""
    hidden = np.maximum(x @ weights["layer1.weight"].T + weights["layer1.bias"], 0)
    return np.maximum(hidden @ weights["layer2.weight"].T + weights["layer2.bias"], 0)


def mse(output: np.ndarray, target: np.ndarray) -> float:
    """nn.MSELoss()'s value (the mean over every element), accumulated in float64."""
    return float(np.mean((output - target) ** 2, dtype=np.float64))


def unexplained_loss(losses: list[float], outputs: list[np.ndarray], targets: list[np.ndarray],
                     rtol: float) -> int | None:
    """The first step whose returned loss is not the MSE of one of the model's outputs against that step's target,
    or None. ``outputs`` are the forwards train() made, in order; step i takes the first unused forward after step
    i-1's that explains it, so extra forwards (a print, an evaluation) are allowed, invented numbers are not."""
    k = 0
    for step, (loss, target) in enumerate(zip(losses, targets, strict=True)):
        while k < len(outputs):
            out, k = outputs[k], k + 1
            if out.shape == target.shape and math.isclose(mse(out, target), loss, rel_tol=rtol):
                break
        else:
            return step
    return None


def reference_sgd(initial: dict, batches, lr: float) -> tuple[list[float], dict]:
    """Plain SGD on the MSE loss of relu(W2 relu(W1 x + b1) + b2), from ``initial`` (trusted, NumPy).

    The gradients are written out (two Linear layers, two ReLUs, mean squared error), so the reference
    shares no code with the PyTorch the student's process runs. Returns the losses and the final
    weights, named as in SimpleMPModel.
    """
    w1, b1, w2, b2 = (np.array(initial[f"layer{i}.{kind}"]) for i in (1, 2) for kind in ("weight", "bias"))
    losses = []
    for x, y in batches:  # the values of the loop below are contract_forward's, kept for the backward
        h1 = x @ w1.T + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T + b2
        out = np.maximum(h2, 0)
        losses.append(mse(out, y))
        d_h2 = np.where(h2 > 0, 2 * (out - y) / out.size, 0).astype(np.float32)  # relu'(0) = 0, as in torch
        d_h1 = np.where(h1 > 0, d_h2 @ w2, 0).astype(np.float32)
        w2 -= lr * (d_h2.T @ a1)
        b2 -= lr * d_h2.sum(0)
        w1 -= lr * (d_h1.T @ x)
        b1 -= lr * d_h1.sum(0)
    return losses, {"layer1.weight": w1, "layer1.bias": b1, "layer2.weight": w2, "layer2.bias": b2}


@functools.lru_cache(maxsize=1)
def expected_training(seed: int = SEED, steps: int = REFERENCE_STEPS,
                      lr: float = REFERENCE_LR) -> tuple[list[float], dict]:
    """Reference SGD from the graders' initial weights: the same for every submission, so made once."""
    return reference_sgd(initial_weights(seed), make_batches(seed, steps, False), lr)
