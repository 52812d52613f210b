"""Before a CI runner grades: its torch is a CUDA build it brought itself, it sees the GPUs, the submissions are there.

    .venv/bin/python scripts/check_gpu_runner.py --gpus 2 --submitted /srv/practical8/submitted

The CI jobs make their environment with ``python3 -m venv .venv --system-site-packages``, so the runner's own torch
(a CUDA build matching its driver) is used and nothing is downloaded for it. If that torch is missing or outside the
project's range, pip fetches a wheel from PyPI into .venv instead - this refuses that, as it refuses a CPU-only
build, too few GPUs, and a folder of submissions that is missing (actions/checkout and GitLab's fetch clean the
checkout of untracked files: submissions must live outside it). Prints one line and exits 0, or exits 1 naming
what to fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType


def problems(torch: ModuleType, gpus: int, submitted: str | None, prefix: str, base_prefix: str) -> list[str]:
    """What keeps this environment from grading on ``gpus`` real GPUs (``prefix``/``base_prefix``: ``sys``'s)."""
    found = []
    origin = str(Path(torch.__file__).resolve())
    if prefix != base_prefix and origin.startswith(str(Path(prefix).resolve()) + "/"):
        found.append(f"pip downloaded torch {torch.__version__} into this environment ({origin}): the runner's own "
                     "python3 has no torch the project accepts (pyproject.toml: torch>=2.6,<2.15). Install a CUDA "
                     "build of torch for the runner's python3 (https://pytorch.org/get-started/locally/).")
    if torch.version.cuda is None:
        found.append(f"torch {torch.__version__} is a CPU-only build: install the CUDA build for the runner's python3.")
    elif (count := torch.cuda.device_count() if torch.cuda.is_available() else 0) < gpus:
        found.append(f"this runner needs {gpus} CUDA GPU(s) to grade Practical 8; torch sees {count}.")
    if submitted is not None:
        if not str(submitted).strip():
            found.append("no folder of submissions given: set it to the absolute path of the collected submissions.")
        elif not Path(submitted).is_dir():
            found.append(f"no folder of submissions at {submitted}: give the absolute path of a folder on the runner, "
                         "outside the checkout (checking out removes untracked files from it).")
        elif not any(Path(submitted).glob("*/*/model_parallel.py")):
            found.append(f"{submitted} holds no <student>/practical8/model_parallel.py: nothing to grade.")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=2, help="CUDA GPUs the runner must have (default: %(default)s)")
    parser.add_argument("--submitted", help="the folder of collected submissions to grade")
    args = parser.parse_args(argv)
    import torch

    found = problems(torch, args.gpus, args.submitted, sys.prefix, sys.base_prefix)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    if found:
        return 1
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) from {Path(torch.__file__).parent}; "
          f"{len(names)} GPU(s): {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
