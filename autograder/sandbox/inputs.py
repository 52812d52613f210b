"""What the graders feed the student's code: seeded batches and the layers' initial weights.

NumPy only, so both sides make them bit for bit alike without exchanging them: the submission's
process wraps them with ``torch.from_numpy``, and the trusted grading process (which never imports
torch, so it starts in a fraction of a second) computes its expectations from the same arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from ..contract import LAYER_SHAPES

TIMING_BATCH = 4  # rows of the timing probe's input (the graders recompute its device cost: timing_truth.py)

SEED = 1234  # the graders' seed: models, batches and the initial weights all derive from it
# The one request that is not a probe: the trusted side asks a fresh process, before any student code, whether the
# machine works (client._machine_failed, worker._machine_check). Here because both sides import this light module.
MACHINE_CHECK = "machine_check"


def make_batch(seed: int, *shape: int) -> np.ndarray:
    """A float32 standard-normal batch."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def make_batches(seed: int, steps: int, fixed: bool, rows: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` (x, y) pairs of (rows, 1000); targets are >= 0 (reachable through the final ReLU)."""
    seeds = [seed + (0 if fixed else i) for i in range(steps)]
    return [(make_batch(s, rows, 1000), np.maximum(make_batch(s + 1000, rows, 1000), 0)) for s in seeds]


@functools.lru_cache(maxsize=4)
def initial_weights(seed: int) -> dict[str, np.ndarray]:
    """The weights the graders put into layer1 and layer2 before running them: nn.Linear's own init
    distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Cached (read-only): made once per process."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in LAYER_SHAPES.items():
        bound = np.float32(1 / np.sqrt(LAYER_SHAPES[name.split(".")[0] + ".weight"][1]))
        weights[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        weights[name].flags.writeable = False
    return weights
