"""The students' own command: the public (visible) checks on their model_parallel.py, with the fix-it messages.

    python -m autograder check                 # ./model_parallel.py
    python -m autograder check path/to/folder  # the folder that holds model_parallel.py

The same in the student kit (``kit.py``) and in the instructor's package. Only the rubric's visible checks run, so
no hidden check's name or message is ever printed; on two real GPUs when present, else on two simulated ones. A
student checking their own code needs no protection from it: the sandbox applies what this machine offers and
never refuses to run (macOS, WSL and older kernels have no Landlock).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .devices import resolve
from .grading import Report, grade
from .reports import table
from .rubric import Rubric, load_rubric
from .sandbox import gpu_count
from .sandbox.limits import Limits
from .simgpu.profiles import DEFAULT_GPU

# The student kit ships its rubric of visible checks here (the kit has no course directory and no grading.yml);
# the instructor's package has no such file and reads the course's grading.yml.
PUBLIC_RUBRIC = Path(__file__).resolve().parent / "public_rubric.yml"
SHOWN = ("visible",)  # Gradescope's visibility that a student sees before the due date
HIDDEN_NOTE = "The hidden checks are graded after you submit."


def visible_only(rubric: Rubric) -> Rubric:
    """``rubric`` with every check a student must not see yet disabled: neither run nor shown."""
    return dataclasses.replace(rubric, checks=tuple(
        c if c.visibility in SHOWN else dataclasses.replace(c, enabled=False) for c in rubric.checks))


def public_rubric() -> Rubric:
    """The kit's rubric of visible checks, or else the course's grading.yml with only its visible checks enabled."""
    return visible_only(load_rubric(PUBLIC_RUBRIC if PUBLIC_RUBRIC.is_file() else None))


def student_limits() -> Limits:
    """The sandbox as far as this machine allows, never a refusal: the code under test is the student's own."""
    return Limits(require_landlock=False)


def run_check(folder: Path | str = ".", devices: str = "auto", sim_gpu: str = DEFAULT_GPU,
              mode: str | None = None) -> Report:
    """Grade ``folder/model_parallel.py`` on the public checks; ``mode`` (sim or cuda), when given, skips counting
    the GPUs (the notebook knows where it runs)."""
    folder = Path(folder)
    report = grade(folder, public_rubric(), mode or resolve(devices, gpu_count), student_limits(), sim_gpu=sim_gpu)
    report.submission = f"{folder / 'model_parallel.py'} - public checks"
    return report


def summary(report: Report) -> str:
    """The table, then one line: how many public checks pass, and what to do next."""
    passed = sum(r.passed for r in report.results)
    total = len(report.results)
    if report.not_graded:
        verdict = f"The checks could not run here: {report.not_graded}"
    elif passed == total:
        verdict = f"All {total} public checks pass. {HIDDEN_NOTE}"
    else:
        verdict = (f"{passed} of {total} public checks pass: fix the FAIL rows (each message says what to change), "
                   f"then run this again. {HIDDEN_NOTE}")
    return f"{table(report)}\n\n{verdict}"


def exit_status(report: Report) -> int:
    """0 when every public check passes, 1 when one fails (so a CI job shows red), 2 when they could not run."""
    if report.not_graded:
        return 2
    return 0 if all(r.passed for r in report.results) else 1
