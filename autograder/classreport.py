"""The class report: what a whole class did, at a glance, from the reports a class run left in OUT_DIR.

    python -m autograder grade submitted/ --out graded/    # ends with it
    python -m autograder report graded/                    # again, for a folder graded earlier

Per check: the pass rate, the most common first sentence of its failure message and how many students got it; the
score histogram; flagged and not-graded submissions with their reason. The same numbers go to the terminal,
``OUT_DIR/class.json`` and ``OUT_DIR/report.html`` (one self-contained page: the table, a histogram and a per-check
bar chart as embedded PNGs, a link to each student's feedback). Everything a student wrote (names, messages, flag
details) is stripped of control characters and HTML-escaped: a submission cannot script the instructor's page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from .grading import Report, evidence
from .reports import plain, read_student
from .rubric import Rubric

CLASS_JSON, REPORT_HTML = "class.json", "report.html"
BINS = 10  # score histogram: ten equal bins from 0 to the maximum (the last one includes the maximum)
MESSAGE_WIDTH = 58  # characters of the most common message in the terminal table (the page and JSON hold all of it)


def first_sentence(message: str) -> str:
    """A failure message's first sentence: what groups students who made the same mistake (later sentences carry
    their own numbers)."""
    text = " ".join(plain(message).split())
    match = re.search(r"(?<=[.!?])\s", text)
    return text[:match.start()] if match else text


def class_reports(out_dir: Path, rubric: Rubric) -> list[Report]:
    """Every student's report in ``out_dir`` (the folders a class run, a resumed run or a merge wrote), by name."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir}: no such folder (the --out folder of `grade submitted/ --out ...`)")
    found = (read_student(p, rubric) for p in sorted(out_dir.iterdir()) if p.is_dir())
    reports = [report for report in found if report is not None]
    if not reports:
        raise FileNotFoundError(f"{out_dir}: no graded students here (each has <student>/report.json)")
    return reports


def summarize(reports: list[Report], rubric: Rubric) -> dict[str, Any]:
    """The class's numbers (what class.json holds and both other forms show). Not-graded submissions are listed
    with their reason and left out of the pass rates and the histogram: their score says nothing of their work."""
    graded = [r for r in reports if r.not_graded is None]
    checks = []
    for check in rubric.enabled:
        results = [res for r in graded for res in r.results if res.check.id == check.id]
        failed = Counter(first_sentence(res.message) for res in results if not res.passed)
        message, students = failed.most_common(1)[0] if failed else ("", 0)
        passed = sum(res.passed for res in results)
        checks.append({"check": check.id, "title": check.title, "points": check.points, "visibility":
                       check.visibility, "passed": passed, "of": len(results),
                       "pass_rate": round(passed / len(results), 4) if results else None,
                       "most_common_message": message, "students_with_it": students})
    max_score = rubric_max(rubric)
    scores = {plain(r.submission): r.score for r in graded}
    edges = [max_score * i / BINS for i in range(BINS + 1)]
    counts = [0] * BINS
    for score in scores.values():
        counts[min(int(score / max_score * BINS), BINS - 1) if max_score else 0] += 1
    return {
        "students": len(reports), "graded": len(graded), "max_score": max_score,
        "mean": round(statistics.fmean(scores.values()), 2) if scores else None,
        "median": statistics.median(scores.values()) if scores else None,
        "checks": checks,
        "histogram": {"edges": edges, "counts": counts},
        "scores": scores,
        "flagged": [{"student": plain(r.submission), "flags": len(r.flags),
                     "evidence": [plain(evidence(flag)) for flag in r.flags]} for r in reports if r.flags],
        "not_graded": [{"student": plain(r.submission), "reason": plain(r.not_graded)}
                       for r in reports if r.not_graded is not None],
    }


def rubric_max(rubric: Rubric) -> float:
    return float(sum(c.points for c in rubric.enabled))


def terminal_text(summary: dict[str, Any], out_dir: Path) -> str:
    """The class table, the histogram and the lists a person reads in the terminal after grading."""
    mean = "-" if summary["mean"] is None else f"{summary['mean']:g}"
    median = "-" if summary["median"] is None else f"{summary['median']:g}"
    students = f"{summary['students']} student{'' if summary['students'] == 1 else 's'}"
    lines = [f"Class report: {students} in {out_dir} ({summary['graded']} graded, "
             f"{len(summary['not_graded'])} not graded, {len(summary['flagged'])} flagged); "
             f"mean {mean}/{summary['max_score']:g}, median {median}", "",
             f"{'check':<28} {'passed':>7} {'rate':>5}  {'most common first message (failed)':<{MESSAGE_WIDTH}} "
             f"students", "-" * (28 + 7 + 5 + MESSAGE_WIDTH + 14)]
    for c in summary["checks"]:
        rate = _rate(c)
        message = c["most_common_message"]
        message = message if len(message) <= MESSAGE_WIDTH else message[:MESSAGE_WIDTH - 3] + "..."
        count = str(c["students_with_it"]) if c["students_with_it"] else ""
        lines.append(f"{c['check']:<28} {c['passed']:>3}/{c['of']:<3} {rate:>5}  {message:<{MESSAGE_WIDTH}} "
                     f"{count:>8}")
    lines += ["", f"Scores (out of {summary['max_score']:g}), students per bin:"]
    edges, counts = summary["histogram"]["edges"], summary["histogram"]["counts"]
    for i, count in enumerate(counts):
        upper = "]" if i == len(counts) - 1 else ")"
        lines.append(f"  [{edges[i]:>5g}, {edges[i + 1]:>5g}{upper} {'#' * count:<{max(counts) or 1}} {count}")
    for item in summary["flagged"]:
        lines.append(f"flagged for review: {item['student']} ({item['flags']} flag(s)); first: {item['evidence'][0]}")
    for item in summary["not_graded"]:
        reason = item["reason"].splitlines()[0] if item["reason"].strip() else ""
        lines.append(f"not graded: {item['student']}: {reason[:200]} (the full reason: its feedback.md)")
    lines.append(f"Written: {out_dir / REPORT_HTML} (pictures, a link to each student's feedback) and "
                 f"{out_dir / CLASS_JSON} (the same numbers).")
    return plain("\n".join(lines))


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pictures(summary: dict[str, Any]) -> dict[str, str]:
    """The score histogram and the per-check pass rates, as base64 PNGs (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    histogram = Figure(figsize=(6, 3))
    ax = histogram.add_subplot()
    edges, counts = summary["histogram"]["edges"], summary["histogram"]["counts"]
    ax.bar(edges[:-1], counts, width=edges[1] - edges[0] if len(edges) > 1 else 1, align="edge",
           color="#4477aa", edgecolor="white")
    ax.set_xlabel(f"score (out of {summary['max_score']:g})")
    ax.set_ylabel("students")
    ax.set_title(f"Scores of the {summary['graded']} graded students")
    ax.yaxis.get_major_locator().set_params(integer=True)

    checks = summary["checks"]
    bars = Figure(figsize=(6, 0.35 * len(checks) + 1))
    ax = bars.add_subplot()
    rates = [100 * (c["pass_rate"] or 0) for c in checks]
    ax.barh([c["check"] for c in checks], rates, color="#228833")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("students passing (%)")
    ax.set_title("Pass rate per check")
    return {"histogram": _png(histogram), "checks": _png(bars)}


def html_page(summary: dict[str, Any], images: dict[str, str]) -> str:
    """One self-contained page: nothing is fetched, every picture is embedded; links are relative to OUT_DIR."""
    e = html.escape
    rows = "".join(
        f"<tr><td><code>{e(c['check'])}</code></td><td>{e(c['title'])}</td><td>{c['passed']}/{c['of']}</td>"
        f"<td>{_rate(c)}</td>"
        f"<td>{e(c['most_common_message'])}</td><td>{c['students_with_it'] or ''}</td></tr>"
        for c in summary["checks"])
    students = "".join(
        f"<li><a href=\"{e(_href(name))}/feedback.md\">{e(name)}</a>: {score:g}/{summary['max_score']:g}"
        f" (<a href=\"{e(_href(name))}/results.json\">results.json</a>)</li>"
        for name, score in sorted(summary["scores"].items()))
    flagged = "".join(f"<li><a href=\"{e(_href(f['student']))}/feedback.md\">{e(f['student'])}</a>: "
                      f"{e('; '.join(f['evidence']))}</li>" for f in summary["flagged"]) or "<li>none</li>"
    not_graded = "".join(f"<li><a href=\"{e(_href(n['student']))}/feedback.md\">{e(n['student'])}</a>: "
                         f"{e(n['reason'])}</li>" for n in summary["not_graded"]) or "<li>none</li>"
    mean = "-" if summary["mean"] is None else f"{summary['mean']:g}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Practical 8: class report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}}</style></head><body>
<h1>Practical 8: class report</h1>
<p>{summary['students']} students: {summary['graded']} graded, {len(summary['not_graded'])} not graded,
{len(summary['flagged'])} flagged; mean {mean} of {summary['max_score']:g}.</p>
<h2>Checks</h2>
<table id="checks"><tr><th>check</th><th>title</th><th>passed</th><th>rate</th>
<th>most common first message (failed)</th><th>students</th></tr>{rows}</table>
<h2>Scores</h2>
<img id="histogram" alt="score histogram" src="data:image/png;base64,{images['histogram']}">
<img id="check-rates" alt="pass rate per check" src="data:image/png;base64,{images['checks']}">
<h2>Flagged for review</h2><ul id="flagged">{flagged}</ul>
<h2>Not graded</h2><ul id="not-graded">{not_graded}</ul>
<h2>Students</h2><ul id="students">{students}</ul>
</body></html>
"""


def _rate(check: dict[str, Any]) -> str:
    return "-" if check["pass_rate"] is None else f"{check['pass_rate']:.0%}"


def _href(student: str) -> str:
    from urllib.parse import quote

    return quote(student)


def write_class_report(out_dir: Path, rubric: Rubric) -> str:
    """class.json and report.html in ``out_dir``, from every student's report there; returns the terminal text."""
    out_dir = Path(out_dir)
    summary = summarize(class_reports(out_dir, rubric), rubric)
    (out_dir / CLASS_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    (out_dir / REPORT_HTML).write_text(html_page(summary, pictures(summary)))
    return terminal_text(summary, out_dir)
