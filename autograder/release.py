"""Generate the students' files from the reference: ``solutions/`` -> ``assignment/``.

Each ``### BEGIN SOLUTION`` / ``### END SOLUTION`` region in a ``.py`` file becomes ``# YOUR CODE HERE`` +
``raise NotImplementedError()``, using nbgrader's own ``ClearSolutions`` code (the same rule nbgrader
applies to notebooks), so there is one rule and one parser. Other files are copied unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = REPO_ROOT / "solutions"
ASSIGNMENT_DIR = REPO_ROOT / "assignment"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}


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


def generate_assignment(solutions_dir: Path = SOLUTIONS_DIR, assignment_dir: Path = ASSIGNMENT_DIR) -> list[Path]:
    """Regenerate ``assignment_dir`` from ``solutions_dir`` (replaces it entirely)."""
    if not solutions_dir.is_dir():
        raise FileNotFoundError(f"{solutions_dir}: no solutions folder to generate the assignment from")
    if assignment_dir.exists():
        shutil.rmtree(assignment_dir)
    written = []
    for path in sorted(solutions_dir.rglob("*")):
        if path.is_dir() or SKIPPED & set(path.parts):
            continue
        target = assignment_dir / path.relative_to(solutions_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            target.write_text(clear_solutions(path.read_text(), str(path)))
        else:
            shutil.copyfile(path, target)
        written.append(target)
    return written
