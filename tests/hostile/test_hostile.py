"""Hostile submissions gain nothing undetected, break nothing, and the batch around them completes intact -
graded as root (as CI and many GPU runners grade) and as a throwaway normal user (a runner or Slurm account)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import FAST_TIMEOUT_S, REPO

from autograder.batch import grade_class
from autograder.graders.timing_truth import TRUTH_MISMATCH
from autograder.reports import read_student
from autograder.rubric import load_rubric
from autograder.samples import REFERENCE

from .cases import CASES

AS_ROOT = os.geteuid() == 0
THROWAWAY_UID = 4343
BYSTANDER = "zz_bystander"  # a correct submission graded in the same batch, after all the hostile ones
USERS = ["root", "normal user"] if AS_ROOT else ["normal user"]


def test_there_are_at_least_thirty_five_cases():
    assert len(CASES) >= 35


def _submitted(root: Path, user: str) -> Path:
    submitted = root / "submitted"
    for case in CASES:
        if case.root_only and user != "root":
            continue
        (submitted / case.name / "practical8").mkdir(parents=True)
        module = submitted / case.name / "practical8" / "model_parallel.py"
        if case.link:
            module.symlink_to(os.path.relpath(REPO / case.link, module.parent))
        else:
            module.write_text(case.source)
    (submitted / BYSTANDER / "practical8").mkdir(parents=True)
    (submitted / BYSTANDER / "practical8" / "model_parallel.py").write_text(REFERENCE.read_text())
    return submitted


def _fast_rubric_file(root: Path) -> Path:
    """grading.yml with the short timeouts of the `fast_rubric` fixture, for the command line."""
    data = yaml.safe_load((REPO / "grading.yml").read_text())
    data["submission_timeout"] = 60
    data["defaults"]["timeout"] = FAST_TIMEOUT_S
    for check in data["checks"].values():
        check.pop("timeout", None)
    path = root / "grading.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module", params=USERS)
def batch(request, fast_rubric):
    user = request.param
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    root.chmod(0o777)  # the throwaway user grades into it
    submitted, out = _submitted(root, user), root / "graded"
    if user == "root":
        reports = grade_class(submitted, out, fast_rubric, "sim", jobs=2)
    else:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o644)
        command = [sys.executable, str(REPO / "tests" / "throwaway_user.py"), str(THROWAWAY_UID), str(REPO), str(root),
                   "--", sys.executable, "-m", "autograder", "grade", str(submitted), "--out", str(out),
                   "--devices", "sim", "--rubric", str(_fast_rubric_file(root)), "-j", "2"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        reports = [read_student(folder, fast_rubric) for folder in sorted(out.iterdir()) if folder.is_dir()]
    return user, {r.submission: r for r in reports}, out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_submission_gains_nothing_undetected(case, batch):
    user, reports, out = batch
    if case.root_only and user != "root":
        pytest.skip("a fork bomb as a normal user would count the grader's own processes (RLIMIT_NPROC is per user)")
    report = reports[case.name]
    failed = {r.check.id for r in report.results if not r.passed}
    assert not report.not_graded, report.not_graded
    if case.fails is not None:
        assert failed == set(case.fails), {r.check.id: r.message for r in report.results if not r.passed}
    if case.honest:
        assert report.score == 100 and not report.flags, (report.flags, {r.check.id: r.message
                                                                         for r in report.results if not r.passed})
    if case.flagged:
        assert report.flags, f"as {user}: {case.attack}, and nothing was flagged"
        # evidence: a line of the student's file, or the grader's own recomputation contradicting the child's reply
        assert all(flag.get("where", "").startswith("model_parallel.py") or flag["event"] == TRUTH_MISMATCH
                   for flag in report.flags), report.flags
        assert any(flag.get("where", "").startswith("model_parallel.py") for flag in report.flags), report.flags
    assert all(r.message for r in report.results if not r.passed)
    written = json.loads((out / case.name / "results.json").read_text())
    checks = {r.check.id for r in report.results}  # (the file may carry other entries, e.g. about flags)
    on_disk = {name for test in written["tests"] if (name := test["name"].split(":")[0]) in checks
               and test["status"] != "passed"}
    assert on_disk == failed and written["score"] == report.score, "the results file on disk is not the grader's own"


def test_every_other_result_is_intact(batch):
    user, reports, out = batch
    assert reports[BYSTANDER].failed() == set() and reports[BYSTANDER].score == 100 and not reports[BYSTANDER].flags
    written = json.loads((out / BYSTANDER / "results.json").read_text())
    assert all(test["status"] == "passed" for test in written["tests"]) and written["score"] == 100
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + len(reports)


def test_private_files_survive(batch):
    for private in ("autograder/graders/test_timing.py", "solutions/practical8/model_parallel.py", "grading.yml"):
        assert (REPO / private).is_file(), f"{private} was deleted by a submission"
    assert load_rubric(REPO / "grading.yml").max_score == 100


def test_nothing_outlives_the_batch(batch):
    user, _, _ = batch
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _is_sleep_3600(pid)]
    for pid in left:
        os.kill(int(pid), 9)
    assert not left, f"as {user}: processes started by submissions outlived their grading"


def _is_sleep_3600(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"3600"]
    except OSError:
        return False


def test_the_reference_scores_100_after_each_hostile_case_in_one_session(fast_rubric):
    """Nothing one submission does touches the next (issue 23, item 5): one graders' session grades each hostile case
    and then the reference, in turn; the reference gets 100, unflagged, every time. (A forged machine problem used to
    leave a check without its teardown: "previous item was not torn down properly" failed the next student's check.)"""
    from autograder.grading import grade_all

    root = Path(tempfile.mkdtemp(prefix="hostile-then-reference-"))
    order = []
    for case in CASES:
        folder = root / case.name
        folder.mkdir()
        if case.link:
            (folder / "model_parallel.py").symlink_to(os.path.relpath(REPO / case.link, folder))
        else:
            (folder / "model_parallel.py").write_text(case.source)
        order += [(case.name, folder), (f"reference after {case.name}", REFERENCE.parent)]
    reports = []
    grade_all(order, fast_rubric, "sim", on_report=reports.append)
    assert [r.submission for r in reports] == [name for name, _ in order]
    hurt = {r.submission: r.not_graded or r.flags or {c.check.id: c.message for c in r.results if not c.passed}
            for r in reports if r.submission.startswith("reference after") and (r.score != 100 or r.flags)}
    assert not hurt, hurt
