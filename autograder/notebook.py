"""Helpers for the practical's notebook: pick real or simulated GPUs, and run the public checks.

    from autograder.notebook import use_gpus, public_checks
    print(use_gpus())          # "Running on 2 real GPUs: ..." or "... two simulated GPUs ..."
    public_checks()            # the visible checks on ./model_parallel.py, as a table
"""

from __future__ import annotations

from pathlib import Path

import torch

from .devices import resolve, torch_gpu_count
from .simgpu import DEFAULT_GPU, simulated_gpus

_SIMULATION = None  # the Simulation this kernel runs in, when there are no two real GPUs (never exited)
_CONTEXT = None  # its context manager: held so that it is not garbage-collected (which would end it)


def use_gpus(gpu: str = DEFAULT_GPU) -> str:
    """Two real GPUs when present, otherwise two simulated ``gpu`` (a profile: t4, a100, h100) for the rest of
    this kernel's life."""
    global _SIMULATION, _CONTEXT
    if _SIMULATION is None:
        if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
            return f"Running on {torch.cuda.device_count()} real GPUs: {torch.cuda.get_device_name(0)}."
        _CONTEXT = simulated_gpus(2, gpu=gpu)
        _SIMULATION = _CONTEXT.__enter__()
    return (f"Running on two simulated {_SIMULATION.profile.name} (cuda:0, cuda:1) on the CPU: no two real GPUs "
            "here. Their timings follow that GPU's datasheet, on a virtual clock.")


def public_checks(folder: str | Path = ".") -> float:
    """Grade ``folder/model_parallel.py`` on the visible checks only, as ``python -m autograder check`` does (the
    kit's public rubric, or the course's visible checks; never refused for want of Landlock); print the table;
    return the score."""
    from .check import run_check, summary

    # Inside this kernel's simulation torch.cuda answers for the simulated GPUs; torch_gpu_count sees the real ones.
    mode = "sim" if _SIMULATION is not None else resolve("auto", torch_gpu_count)
    report = run_check(folder, sim_gpu=_SIMULATION.profile.key if _SIMULATION else DEFAULT_GPU, mode=mode)
    print(summary(report))
    return report.score
