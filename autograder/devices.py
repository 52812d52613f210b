"""Which GPUs grading runs on, decided once and passed down as a plain value.

Three words, three meanings, never mixed:
- a **choice** is what the user asked for: ``auto``, ``cuda`` or ``sim`` (``--devices``);
- a **mode** is what grading runs on: ``cuda`` (two real GPUs) or ``sim`` (two simulated ones);
- the device **names** the student's code is given: ``NAMES`` (the same on real and simulated GPUs).

    mode = resolve("auto", gpu_count)     # at the top (CLI, notebook, doctor); everything below takes `mode`

This module imports nothing of the autograder and not torch: ``gpu_count`` is passed in, so the grading
process can count the GPUs in a process that has torch (the warm server's child) without importing it.
"""

from __future__ import annotations

from collections.abc import Callable

CHOICES = ("auto", "cuda", "sim")
MODES = ("cuda", "sim")
NAMES = ("cuda:0", "cuda:1")  # device0, device1: what every grader and probe passes to the student's code


class DevicesUnavailable(RuntimeError):
    """Real GPUs were demanded (--devices cuda) but fewer than two are present."""


def resolve(choice: str, gpu_count: Callable[[], tuple[int, str]]) -> str:
    """``auto`` -> ``cuda`` when two GPUs are present, else ``sim``; ``cuda`` refuses to simulate.

    ``gpu_count()`` returns (how many CUDA GPUs torch sees, a description of the build for messages); it is
    not called for ``sim``.
    """
    if choice not in CHOICES:
        raise ValueError(f"devices must be one of {', '.join(CHOICES)}; got {choice!r}")
    if choice == "sim":
        return "sim"
    count, build = gpu_count()
    if choice == "cuda" and count < 2:
        raise DevicesUnavailable(
            f"--devices cuda needs two CUDA GPUs, but this machine has {count} ({build}). Run on a two-GPU "
            "machine, or use --devices sim for two simulated ones.")
    return "cuda" if count >= 2 else "sim"


def require_mode(mode: str) -> str:
    """``mode`` itself, or a ValueError for a choice that was never resolved (e.g. ``auto``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (resolve --devices with devices.resolve "
                         f"first); got {mode!r}")
    return mode


def torch_gpu_count() -> tuple[int, str]:
    """The real CUDA GPUs torch sees in *this* process (imports torch), even inside a simulation.

    It asks torch's C extension, which ``simulated_gpus`` never replaces, rather than ``torch.cuda``.
    """
    import torch

    build = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'not built in'}"
    if not torch.backends.cuda.is_built():
        return 0, build
    return int(torch._C._cuda_getDeviceCount()), build
