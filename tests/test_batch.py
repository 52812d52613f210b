"""Class grading: resumable, sharded and merged, parallel, and robust to a missing file."""

import csv
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO

from autograder.batch import grade_class, select_shard
from autograder.cli import main
from autograder.reports import write_junit
from autograder.samples import REFERENCE, by_name

STUB = (REPO / "assignment" / "practical8" / "model_parallel.py").read_text()


def _class(root, sources: dict[str, str]):
    for student, source in sources.items():
        folder = root / student / "practical8"
        folder.mkdir(parents=True)
        if source is not None:
            (folder / "model_parallel.py").write_text(source)
    return root


def _totals(out):
    with (out / "summary.csv").open() as f:
        return {row["student"]: float(row["total"]) for row in csv.DictReader(f)}


def test_rerun_skips_unchanged_and_regrades_changed(tmp_path, fast_rubric):
    root = _class(tmp_path / "submitted", {"ann": STUB, "ben": by_name("bare_sync").source()})
    out = tmp_path / "graded"
    assert {r.submission for r in grade_class(root, out, fast_rubric, "sim")} == {"ann", "ben"}
    assert grade_class(root, out, fast_rubric, "sim") == []  # nothing changed: nothing re-graded
    (root / "ann" / "practical8" / "model_parallel.py").write_text(REFERENCE.read_text())
    assert [r.submission for r in grade_class(root, out, fast_rubric, "sim")] == ["ann"]
    assert _totals(out) == {"ann": 100.0, "ben": 90.0}
    assert len(grade_class(root, out, fast_rubric, "sim", force=True)) == 2


def test_shards_cover_the_class_once_and_merge(tmp_path, fast_rubric, monkeypatch):
    students = {f"s{i}": STUB for i in range(5)}
    root = _class(tmp_path / "submitted", students)
    assert sorted(select_shard(sorted(students), "1/2") + select_shard(sorted(students), "2/2")) == sorted(students)
    for shard in ("1/2", "2/2"):
        grade_class(root, tmp_path / f"graded-{shard[0]}", fast_rubric, "sim", shard=shard)
    monkeypatch.chdir(tmp_path)
    assert main(["merge", "graded-1", "graded-2", "--out", "graded", "--course-dir", str(REPO)]) == 0  # as the README
    assert _totals(tmp_path / "graded") == {s: 0.0 for s in students}


@pytest.mark.parametrize("shard", ["3/2", "x", "0/4"])
def test_bad_shard_is_refused(shard):
    with pytest.raises(ValueError, match="--shard"):
        select_shard(["a", "b"], shard)


def test_parallel_grading_and_a_missing_file(tmp_path, fast_rubric):
    root = _class(tmp_path / "submitted", {"ann": REFERENCE.read_text(), "ben": STUB, "cat": None})
    out = tmp_path / "graded"
    reports = {r.submission: r for r in grade_class(root, out, fast_rubric, "sim", jobs=2)}
    assert _totals(out) == {"ann": 100.0, "ben": 0.0, "cat": 0.0}
    assert "No model_parallel.py was found" in reports["cat"].results[0].message
    write_junit(list(reports.values()), out / "junit.xml")
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    checks = len(fast_rubric.enabled)
    assert {s.get("name"): int(s.get("failures")) for s in suites} == {"ann": 0, "ben": checks, "cat": checks}


def _serve_but_die_on_bob(tasks, results, rubric, mode, sim_gpu, limits):
    """A stand-in grading process (no real grading: fast) that dies while it holds bob's submission."""
    import os

    from autograder.grading import CheckResult, Report

    while (task := tasks.get()) is not None:
        results.put(("started", os.getpid(), task[0]))
        if task[0] == "bob":
            results.close()
            results.join_thread()  # what it sent arrives; then it dies as a crashed process does
            os._exit(1)
        results.put(("done", os.getpid(), Report(task[0], mode, [CheckResult(c, True, "") for c in rubric.enabled])))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dead_grading_process_costs_only_its_student(tmp_path, fast_rubric, jobs):
    from autograder.batch import _grade_in_pool

    students = {name: tmp_path / name for name in ("ann", "bob", "cat", "dan", "eve")}
    reports = []
    _grade_in_pool(students, fast_rubric, "sim", jobs, reports.append, serve=_serve_but_die_on_bob)
    by_student = {r.submission: r for r in reports}
    assert len(reports) == len(students) and set(by_student) == set(students)  # each reported exactly once
    assert by_student["bob"].score == 0 and "grading process stopped" in by_student["bob"].results[0].message
    survivors = {s for s, r in by_student.items() if r.score == r.max_score}
    if jobs == 2:  # the other process grades everyone else
        assert survivors == set(students) - {"bob"}
    else:  # no process is left after bob: the students still queued are reported as not graded, not lost
        assert survivors == {"ann"}
    assert all(by_student[s].not_graded for s in set(students) - survivors)


def test_students_whose_grading_could_not_run_are_graded_on_the_next_run(tmp_path, fast_rubric, monkeypatch):
    import autograder.batch

    root = _class(tmp_path / "submitted", {"ann": REFERENCE.read_text(), "ben": STUB})
    out = tmp_path / "graded"

    def broken(*args, **kwargs):
        raise RuntimeError("the graders' session crashed")

    monkeypatch.setattr(autograder.batch, "grade_all", broken)
    reports = grade_class(root, out, fast_rubric, "sim")
    assert all(r.not_graded and r.score == 0 for r in reports) and _totals(out) == {"ann": 0.0, "ben": 0.0}
    monkeypatch.undo()
    assert sorted(r.submission for r in grade_class(root, out, fast_rubric, "sim")) == ["ann", "ben"]
    assert _totals(out) == {"ann": 100.0, "ben": 0.0}
    assert grade_class(root, out, fast_rubric, "sim") == []  # now graded: skipped


def test_a_report_reads_back_as_it_was_written(tmp_path, fast_rubric):
    """Resumed and merged runs summarise from report.json; what comes back is the report that was written."""
    from autograder.grading import CheckResult, Report
    from autograder.reports import read_student, write_student

    checks = fast_rubric.enabled
    report = Report("ann", "sim", [CheckResult(c, i % 2 == 0, f"message {i}: with a colon") for i, c in
                                   enumerate(checks)])
    assert read_student(write_student(report, tmp_path), fast_rubric) == report
    lost = Report.could_not_grade("ben", fast_rubric, "sim", "the grading process stopped")
    assert read_student(write_student(lost, tmp_path), fast_rubric) == lost
    assert lost.not_graded and all("Ask your instructor" in r.message for r in lost.results)
    assert read_student(tmp_path / "nobody", fast_rubric) is None
