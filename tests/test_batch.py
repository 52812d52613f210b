"""Class grading: resumable, sharded and merged, parallel, and robust to a missing file."""

import csv
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO

from autograder.batch import grade_class, merge, select_shard
from autograder.mutants import REFERENCE, by_name
from autograder.reports import write_junit

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


def test_shards_cover_the_class_once_and_merge(tmp_path, fast_rubric):
    students = {f"s{i}": STUB for i in range(5)}
    root = _class(tmp_path / "submitted", students)
    assert sorted(select_shard(sorted(students), "1/2") + select_shard(sorted(students), "2/2")) == sorted(students)
    for shard in ("1/2", "2/2"):
        grade_class(root, tmp_path / f"out{shard[0]}", fast_rubric, "sim", shard=shard)
    merge([tmp_path / "out1", tmp_path / "out2"], tmp_path / "merged", fast_rubric)
    assert _totals(tmp_path / "merged") == {s: 0.0 for s in students}


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
    assert {s.get("name"): int(s.get("failures")) for s in suites} == {"ann": 0, "ben": 12, "cat": 12}
