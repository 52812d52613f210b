"""Hostile submissions gain nothing, break nothing, and the batch around them completes intact."""

import json
import os

import pytest
from conftest import REPO

from autograder.batch import grade_class
from autograder.samples import REFERENCE

from .cases import CASES

AS_ROOT = os.geteuid() == 0
BYSTANDER = "zz_bystander"  # a correct submission graded in the same batch, after all the hostile ones


def test_there_are_at_least_fifteen_cases():
    assert len(CASES) >= 15


@pytest.fixture(scope="module")
def batch(tmp_path_factory, fast_rubric):
    root = tmp_path_factory.mktemp("hostile")
    submitted, out = root / "submitted", root / "graded"
    for case in CASES:
        if case.needs_root and not AS_ROOT:
            continue
        (submitted / case.name / "practical8").mkdir(parents=True)
        (submitted / case.name / "practical8" / "model_parallel.py").write_text(case.source)
    (submitted / BYSTANDER / "practical8").mkdir(parents=True)
    (submitted / BYSTANDER / "practical8" / "model_parallel.py").write_text(REFERENCE.read_text())
    reports = grade_class(submitted, out, fast_rubric, "sim")
    return {r.submission: r for r in reports}, out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_submission_gets_only_what_its_work_deserves(case, batch):
    if case.needs_root and not AS_ROOT:
        pytest.skip("isolation by user id needs the grader to run as root")
    reports, out = batch
    report = reports[case.name]
    assert report.score == case.score, {r.check.id: r.message for r in report.results if not r.passed}
    assert all(r.message for r in report.results if not r.passed)
    written = json.loads((out / case.name / "results.json").read_text())
    assert written["score"] == case.score, "the results file on disk is not the grader's own"


def test_every_other_result_is_intact(batch):
    reports, out = batch
    assert reports[BYSTANDER].score == 100
    assert json.loads((out / BYSTANDER / "results.json").read_text())["score"] == 100
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + len(reports)


def test_private_files_survive(batch):
    for private in ("autograder/graders/test_timing.py", "solutions/practical8/model_parallel.py", "grading.yml"):
        assert (REPO / private).is_file(), f"{private} was deleted by a submission"
