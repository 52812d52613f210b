"""How a GPU machine is set up, and what that means for grading in the sandbox (the doctor reports it).

    found = gpu_setup()        # {"compute_modes", "mps", "kernels_compiled_at_run_time", ..., "problems", "advice"}

Beyond "two GPUs are there", four settings change what grading needs:
- **compute mode** (``nvidia-smi``): in EXCLUSIVE_PROCESS one process per GPU may hold a context, so two submissions
  graded at once on the same GPUs fail ("busy or unavailable"): grade one at a time (``-j 1``; the Slurm and CI
  scripts do, ``scripts/grading_jobs.sh``). The grading process itself never holds a context (it never imports torch).
- **MPS**: an MPS server serves one user id at a time (nvidia-cuda-mps-control(1)), and run as root the autograder
  gives every submission a user of its own; the sandbox also keeps clients from the MPS pipe, so they run without
  MPS, which an exclusive compute mode (usual with MPS) refuses. Stop MPS on grading machines.
- **kernels the torch build lacks**: when torch carries no binary kernels (SASS) for the GPU's architecture, CUDA
  compiles them from PTX at first use - in every submission's fresh process (its HOME is new each time), minutes
  each. Set ``CUDA_CACHE_PATH`` to a folder, run the doctor once to fill it, and keep it set when grading: the
  sandbox lets submissions read it, never write it.
- **device files** ``/dev/nvidia*`` open to one group only (``NVreg_DeviceFileMode=0660``, group ``video``): as
  root, the submission's user keeps that group (``sandbox.limits.gpu_groups``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MPS_PIPE_DEFAULT = "/tmp/nvidia-mps"


def compute_modes(run: Callable[..., Any] = subprocess.run) -> list[str] | None:
    """Each GPU's compute mode as nvidia-smi names it (``Default``, ``Exclusive_Process``, ``Prohibited``), or None
    when nvidia-smi is missing."""
    try:
        done = run(["nvidia-smi", "--query-gpu=compute_mode", "--format=csv,noheader"], capture_output=True,
                   text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def mps_active(environ: dict[str, str] | None = None, proc: str = "/proc") -> bool:
    """Whether an MPS control daemon runs here (its process, or a pipe folder the job points to)."""
    environ = os.environ if environ is None else environ
    pipe = environ.get("CUDA_MPS_PIPE_DIRECTORY")
    if pipe and Path(pipe, "control").exists():
        return True
    try:
        entries = os.listdir(proc)
    except OSError:
        return False
    for entry in entries:
        if entry.isdigit():
            try:
                if Path(proc, entry, "comm").read_text().strip() in ("nvidia-cuda-mps", "nvidia-cuda-mps-control"):
                    return True
            except OSError:
                continue
    return False


def has_binary_kernels(capability: tuple[int, int], arch_list: Iterable[str]) -> bool:
    """Whether a torch build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``: ``sm_80``, ``sm_90a`` ...)
    carries kernels that run as they are on a GPU of ``capability``: a cubin for ``sm_XY`` runs on ``X.Z`` for
    every Z >= Y (CUDA's binary compatibility); ``sm_90a``-style targets run on exactly their own architecture."""
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"sm_(\d+)(\d)([a-z]?)", arch)
        if match:
            arch_major, arch_minor, suffix = int(match[1]), int(match[2]), match[3]
            if arch_major == major and (arch_minor == minor if suffix else arch_minor <= minor):
                return True
    return False


def group_only_device_files(paths: Iterable[str]) -> list[str]:
    """GPU device files that other users cannot open but a group can (``path (group gid)``)."""
    from .sandbox.limits import gpu_groups

    return [f"{path} (group {os.stat(path).st_gid})" for path in paths if gpu_groups((path,))]


def gpu_setup(torch_module: Any = None, run: Callable[..., Any] = subprocess.run,
              environ: dict[str, str] | None = None) -> dict[str, Any]:
    """This machine's GPU setup as it bears on grading: the facts, ``problems`` (grading would fail or hang: the
    doctor fails) and ``advice`` (grading works, better with the change)."""
    from .sandbox.limits import GPU_DEVICES

    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {"compute_modes": compute_modes(run), "mps": mps_active(environ),
                             "kernel_cache": environ.get("CUDA_CACHE_PATH"),
                             "group_only_device_files": group_only_device_files(GPU_DEVICES)}
    problems, advice = [], []
    if torch_module is not None and torch_module.cuda.is_available():
        arch_list = torch_module.cuda.get_arch_list()
        found["kernels_compiled_at_run_time"] = [
            torch_module.cuda.get_device_name(i) for i in range(torch_module.cuda.device_count())
            if not has_binary_kernels(torch_module.cuda.get_device_capability(i), arch_list)]
        if found["kernels_compiled_at_run_time"] and not found["kernel_cache"]:
            advice.append(f"torch {torch_module.__version__} has no binary kernels for "
                          f"{', '.join(found['kernels_compiled_at_run_time'])} (it has {', '.join(arch_list)}): every "
                          "submission's process compiles them again. Set CUDA_CACHE_PATH to a folder, run the doctor "
                          "once to fill it, and keep it set when grading - or install a torch built for this GPU.")
    if found["compute_modes"] and any(mode.lower().startswith("exclusive") for mode in found["compute_modes"]):
        advice.append("the GPUs run in an exclusive compute mode: grade one submission at a time (-j 1, as "
                      "scripts/grading_jobs.sh chooses).")
    if found["compute_modes"] and any(mode.lower() == "prohibited" for mode in found["compute_modes"]):
        problems.append("a GPU's compute mode is Prohibited: no process may use it (nvidia-smi -c DEFAULT).")
    if found["mps"]:  # nvidia-cuda-mps-control(1): one server per user id at a time; no pipe, no MPS for a client
        exclusive = any(mode.lower().startswith("exclusive") for mode in found["compute_modes"] or [])
        (problems if exclusive else advice).append(
            "an MPS daemon runs here: it serves one user id at a time, each submission runs as a user of its own, "
            "and the sandbox keeps it from MPS's pipe, so it runs without MPS" + (
                " - which an exclusive compute mode refuses. Stop MPS on grading machines "
                "(echo quit | nvidia-cuda-mps-control)." if exclusive else
                ". Stop MPS on grading machines for timings like the doctor's."))
    found["problems"], found["advice"] = problems, advice
    return found
