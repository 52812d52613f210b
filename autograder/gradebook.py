"""Write the autograder's code scores into nbgrader's gradebook, so export and formgrader show them.

The notebook has a task cell ``code_score`` (a manually graded task worth 100). After ``nbgrader autograde``
created each student's submission, its manual score is set here from ``OUT_DIR/summary.csv``. nbgrader
keeps manual scores when ``autograde --force`` runs again, so the code score survives re-grading.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .contract import ASSIGNMENT

TASK_CELL, NOTEBOOK = "code_score", ASSIGNMENT  # the notebook is named after the assignment


def write_scores(out_dir: Path, course_dir: Path | None = None) -> dict[str, float]:
    """Set each student's ``code_score`` from ``out_dir/summary.csv``; returns what was written."""
    from nbgrader.api import Gradebook, MissingEntry

    summary = Path(out_dir) / "summary.csv"
    if not summary.is_file():
        raise FileNotFoundError(f"{summary}: grade the collected submissions first (python -m autograder grade "
                                "submitted/ --out OUT_DIR)")
    db = Path(course_dir or Path.cwd()) / "gradebook.db"
    if not db.is_file():
        raise FileNotFoundError(f"{db}: no nbgrader gradebook here; run from the course directory after "
                                f"`nbgrader autograde {ASSIGNMENT}`")
    written, missing = {}, []
    with Gradebook(f"sqlite:///{db}") as gb:
        for row in csv.DictReader(summary.open()):
            try:
                grade = gb.find_grade(TASK_CELL, NOTEBOOK, ASSIGNMENT, row["student"])
            except MissingEntry:
                missing.append(row["student"])
                continue
            grade.manual_score = float(row["total"])
            grade.needs_manual_grade = False
            written[row["student"]] = grade.manual_score
        gb.db.commit()
    if missing:
        raise LookupError(f"no autograded submission in the gradebook for: {', '.join(missing)}. Run "
                          f"`nbgrader autograde {ASSIGNMENT}` first (scores written for the others).")
    return written
