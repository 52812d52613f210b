"""Generate the students' files from the reference: ``solutions/`` -> ``assignment/``, with nbgrader.

``nbgrader generate_assignment practical8`` (configured by ``nbgrader_config.py``) clears the notebook; its
post-convert hook ``clear_released_python`` clears each ``.py`` by the same rule with nbgrader's own
``ClearSolutions`` code: every ``### BEGIN SOLUTION`` / ``### END SOLUTION`` region becomes
``# YOUR CODE HERE`` + ``raise NotImplementedError()``. One rule, one parser.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .contract import ASSIGNMENT
from .course import course_dir

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}  # as nbgrader_config.py's CourseDirectory.ignore


class SolutionMarkerError(ValueError):
    """A BEGIN/END SOLUTION pair is broken; the message names the file."""


def clear_solutions(source: str, filename: str = "<source>") -> str:
    """``source`` with every solution region replaced by the stub (nbgrader's ClearSolutions rule)."""
    from nbformat.v4 import new_code_cell
    from nbgrader.preprocessors import ClearSolutions

    begins, ends = source.count(BEGIN), source.count(END)
    if begins != ends:
        raise SolutionMarkerError(f"{filename}: {begins} '{BEGIN}' but {ends} '{END}' markers; every region needs both")
    cell = new_code_cell(source)
    try:
        ClearSolutions(code_stub={"python": "# YOUR CODE HERE\nraise NotImplementedError()"}) \
            ._replace_solution_region(cell, "python")
    except RuntimeError as exc:  # nested or unterminated regions
        raise SolutionMarkerError(f"{filename}: {exc}") from None
    return cell.source


def generate_python_stubs(source_dir: Path, release_dir: Path) -> list[Path]:
    """Write the stub of every ``.py`` under ``source_dir`` to the same place under ``release_dir``."""
    written = []
    for path in sorted(source_dir.rglob("*.py")):
        if SKIPPED & set(path.parts):
            continue
        target = release_dir / path.relative_to(source_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(clear_solutions(path.read_text(), str(path)))
        written.append(target)
    return written


def clear_released_python(assignment: str, **_: object) -> None:
    """nbgrader post-convert hook (GenerateAssignment): stub every .py nbgrader just copied into the release."""
    release = Path(assignment_release_dir(assignment))
    if release.is_dir():
        generate_python_stubs(release, release)


def assignment_release_dir(assignment: str) -> Path:
    return Path.cwd() / "assignment" / assignment


def generate_assignment(course: Path | None = None, assignment: str = ASSIGNMENT) -> list[Path]:
    """``nbgrader generate_assignment`` in the course directory (uses its nbgrader_config.py); the files written."""
    root = course or course_dir()
    if not (root / "solutions" / assignment).is_dir():
        raise FileNotFoundError(f"{root / 'solutions' / assignment}: no such assignment to generate")
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--no-db"],
                          cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.stdout}\n{done.stderr}")
    release = root / "assignment" / assignment
    return sorted(p for p in release.rglob("*") if p.is_file())
