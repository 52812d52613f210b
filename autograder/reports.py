"""Reports of graded submissions: the terminal table, Gradescope's results.json, per-student feedback, the
class summary.csv and JUnit XML - all made from ``Report`` objects.

A class run keeps each student's ``report.json`` (``Report.to_dict``) beside the student-facing files, so a
resumed or merged run summarises every student from reports, never by parsing its own output back.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from .grading import Report, evidence
from .rubric import Rubric

REPORT_FILE = "report.json"
# C0 and C1 control characters but newline and tab: a submission's exception message or flag detail carrying
# "\x1b[2J" or an OSC 52 sequence must not clear the instructor's terminal or write to their clipboard.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """``text`` without control characters (``\n`` and ``\t`` stay): what every report prints or writes."""
    return CONTROL.sub("", str(text))


def _plain_all(value: Any) -> Any:
    """``plain`` applied to every string in nested dicts and lists (keys too)."""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {_plain_all(key): _plain_all(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_all(item) for item in value]
    return value


def gradescope_results(report: Report) -> dict[str, Any]:
    """Gradescope's results.json: score plus one test per check (name = "<check id>: <title>")."""
    flagged = "".join(f"\n{line}" for line in flagged_lines(report))
    return _plain_all({
        "score": report.score,
        "output": (report.not_graded or f"Graded on {report.graded_on} (cuda:0, cuda:1).") + flagged,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"flags": report.flags},  # Gradescope keeps it for the instructor; empty when clean
        "tests": [
            {
                "name": f"{r.check.id}: {r.check.title}",
                "score": r.score,
                "max_score": r.check.points,
                "status": "passed" if r.passed else "failed",
                "output": r.message or "Passed.",
                "visibility": r.check.visibility,
            }
            for r in report.results
        ],
    })


def flagged_lines(report: Report) -> list[str]:
    """What the student reads about their flags: that the submission is flagged for review, and the evidence (their
    own code, nothing of the graders)."""
    if not report.flags:
        return []
    return ["Your submission was flagged for review by your instructor: it does things graded code must not do "
            "(walk stack frames, patch the libraries, import the autograder, start processes, read /proc ...):",
            *(f"- {evidence(flag)}" for flag in report.flags)]


def write_results(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gradescope_results(report), indent=2) + "\n")


def table(report: Report, width: int = 100) -> str:
    """A plain-text table: check, points, PASS/FAIL, message (wrapped); a message that several checks share is
    written once, at the first of them, and the others point to it."""
    import textwrap

    lines = [f"{plain(report.submission)}  ({report.graded_on})",
             f"{'check':<30} {'points':>9}  result  message", "-" * width]
    first_with: dict[str, str] = {}
    for r in report.results:
        points = f"{r.score:g}/{r.check.points:g}"
        text = f"(as {first_with[r.message]})" if r.message in first_with else plain(r.message)
        if r.message and r.message not in first_with:
            first_with[r.message] = r.check.id
        message = textwrap.wrap(text, width - 50) or [""]
        verdict = "PASS" if r.passed else "-" if report.not_graded else "FAIL"  # not graded: nothing failed
        lines.append(f"{r.check.id:<30} {points:>9}  {verdict:<6}  {message[0]}")
        lines += [" " * 50 + more for more in message[1:]]
    lines += ["-" * width, f"{'total':<30} {report.score:g}/{report.max_score:g}"]
    if report.flags:
        lines.append(f"flagged: {len(report.flags)} - review it; first: {evidence(report.flags[0])}")
    return plain("\n".join(lines))


HIDDEN_UNTIL_RELEASED = ("hidden", "after_due_date", "after_published")  # Gradescope's visibilities a student
# does not see at once


def feedback_markdown(report: Report, release_hidden: bool = False) -> str:
    """Per-student feedback: each visible check, points, message; hidden checks (hidden, after_due_date,
    after_published) only as their total until ``release_hidden``. Identical messages are written once, with the
    checks they apply to. Never any grader source."""
    shown = [r for r in report.results if release_hidden or r.check.visibility not in HIDDEN_UNTIL_RELEASED]
    hidden = [r for r in report.results if r not in shown]
    lines = [f"# Practical 8 feedback: {report.submission}", "",
             f"**Score: {report.score:g} / {report.max_score:g}** "
             f"(graded on {report.graded_on})", "",
             "| check | points | result |", "|---|---:|---|"]
    lines += [f"| {r.check.id}: {r.check.title} | {r.score:g} / {r.check.points:g} | "
              f"{'passed' if r.passed else 'failed'} |" for r in shown]
    if hidden:
        lines.append(f"| hidden checks ({len(hidden)}), released later | {sum(r.score for r in hidden):g} / "
                     f"{sum(r.check.points for r in hidden):g} | |")
    by_message: dict[str, list[str]] = {}
    for r in shown:
        if not r.passed:
            by_message.setdefault(r.message, []).append(r.check.id)
    if by_message:
        lines += ["", "## What to fix", ""]
        lines += [f"- **{', '.join(checks)}**: {message}" for message, checks in by_message.items()]
    if report.flags:
        lines += ["", "## Flagged for review", "", *flagged_lines(report)]
    return plain("\n".join(lines)) + "\n"


def write_junit(reports: list[Report], path: Path) -> None:
    """JUnit XML for CI: one testsuite per submission, one testcase per check."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites")
    for report in reports:
        suite = ET.SubElement(root, "testsuite", name=plain(report.submission), tests=str(len(report.results)),
                              failures=str(sum(not r.passed for r in report.results)))
        for r in report.results:
            case = ET.SubElement(suite, "testcase", classname=plain(report.submission), name=r.check.id)
            if not r.passed:
                message = plain(r.message)
                ET.SubElement(case, "failure", message=message[:500]).text = message
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_student(report: Report, out_dir: Path, release_hidden: bool = False) -> Path:
    """``out_dir/<student>/``: results.json (Gradescope, which applies each test's visibility itself), feedback.md
    (the student's: hidden checks as a total until ``release_hidden``) and report.json (ours: everything)."""
    folder = out_dir / report.submission
    write_results(report, folder / "results.json")
    (folder / "feedback.md").write_text(feedback_markdown(report, release_hidden))
    (folder / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return folder


def read_student(folder: Path, rubric: Rubric) -> Report | None:
    """The report ``write_student`` left in ``folder``, or None when there is none (or it names unknown checks)."""
    try:
        return Report.from_dict(json.loads((folder / REPORT_FILE).read_text()), rubric)
    except (OSError, ValueError, KeyError):
        return None


def write_summary(reports: list[Report], path: Path, rubric: Rubric) -> Path:
    """summary.csv: one row per student (sorted), its total, one column per enabled check, ``flags``
    (``event@file:line; ...``: what to review; empty when clean) and ``not_graded`` (why the checks could not run:
    the machine's failure, or a construct only real GPUs run; empty when graded)."""
    columns = [c.id for c in rubric.enabled]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "total", *columns, "flags", "not_graded"])
        writer.writeheader()
        for report in sorted(reports, key=lambda r: r.submission):
            scores = {r.check.id: r.score for r in report.results}
            writer.writerow({"student": plain(report.submission), "total": report.score,
                             **{check: scores.get(check, "") for check in columns},
                             "flags": plain("; ".join(f"{flag['event']}@{flag['where']}" for flag in report.flags)),
                             "not_graded": plain(report.not_graded or "")})  # why: grade it again, or on real GPUs
    return path
