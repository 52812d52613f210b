"""Grade a whole collected tree: ``submitted/<student>/practical8/model_parallel.py`` -> OUT_DIR.

Writes ``OUT_DIR/<student>/results.json`` (Gradescope), ``OUT_DIR/<student>/feedback.md`` and
``OUT_DIR/summary.csv`` (student, total, one column per check). A submission that cannot be graded gets a
result that says why; it never takes the batch down.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .grading import CheckResult, Report, grade
from .reports import feedback_markdown, write_results
from .rubric import Rubric

ASSIGNMENT = "practical8"
MODULE_FILE = "model_parallel.py"


def find_submissions(root: Path, assignment: str = ASSIGNMENT) -> dict[str, Path]:
    """student -> folder, for nbgrader's ``root/<student>/<assignment>/`` or plain ``root/<student>/``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of submissions")
    found = {}
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        nested = student_dir / assignment
        found[student_dir.name] = nested if nested.is_dir() else student_dir
    if not found:
        raise FileNotFoundError(f"{root}: no student folders here (expected {root}/<student>/{assignment}/"
                                f"{MODULE_FILE})")
    return found


def grade_one_safely(student: str, folder: Path, rubric: Rubric, devices: str) -> Report:
    """Grade one student; whatever goes wrong becomes that student's failed checks, with the reason."""
    if not (folder / MODULE_FILE).is_file():
        return _all_failed(student, rubric, devices, f"No {MODULE_FILE} was found in your submission "
                                                     f"({folder.name}/); submit the file with this exact name.")
    try:
        report = grade(folder, rubric, devices)
    except Exception as exc:  # noqa: BLE001 - one broken submission must not take the batch down
        return _all_failed(student, rubric, devices, f"Grading could not run ({type(exc).__name__}: {exc}). "
                                                     "Ask your instructor to look at this submission.")
    report.submission = student
    return report


def _all_failed(student: str, rubric: Rubric, devices: str, why: str) -> Report:
    return Report(student, devices, [CheckResult(c, False, why) for c in rubric.enabled])


def write_student(report: Report, out_dir: Path) -> None:
    folder = out_dir / report.submission
    write_results(report, folder / "results.json")
    (folder / "feedback.md").write_text(feedback_markdown(report))


def write_summary(out_dir: Path, rubric: Rubric) -> Path:
    """summary.csv from every ``OUT_DIR/<student>/results.json`` (so resumed and sharded runs merge)."""
    rows = []
    for results in sorted(out_dir.glob("*/results.json")):
        data = json.loads(results.read_text())
        scores = {t["name"].split(":")[0]: t["score"] for t in data["tests"]}
        rows.append({"student": results.parent.name, "total": data["score"],
                     **{c.id: scores.get(c.id, "") for c in rubric.enabled}})
    path = out_dir / "summary.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "total", *(c.id for c in rubric.enabled)])
        writer.writeheader()
        writer.writerows(rows)
    return path


def grade_class(root: Path, out_dir: Path, rubric: Rubric, devices: str = "auto") -> list[Report]:
    """Grade every submission under ``root``; write each student's files and the class summary."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    submissions = find_submissions(root)
    for student, folder in tqdm(submissions.items(), desc="grading", unit="submission"):
        report = grade_one_safely(student, folder, rubric, devices)
        write_student(report, out_dir)
        reports.append(report)
    write_summary(out_dir, rubric)
    return reports
