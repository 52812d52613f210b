"""The instructors' whole nbgrader flow, end to end, on a temporary course and exchange.

generate -> release -> fetch and submit as three students (correct, one bug, untouched stub) -> collect ->
nbgrader autograde -> `python -m autograder grade submitted/ --out` -> gradebook write-back -> export.
One machine plays all three students: nbgrader names a submitter after the OS user, so each student's
`submit` runs with nbgrader's user lookup answering that student's name.
"""

import csv
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from autograder.samples import REFERENCE, by_name

pytestmark = pytest.mark.slow  # nbgrader's commands, each ~2 s to start, and real gradings: minutes in all

ASSIGNMENT, COURSE_ID = "practical8", "p8"
STUDENTS = {"alice": "correct", "bob": "bare_sync", "carol": "stub"}
EXPECTED_SCORES = {"alice": 100.0, "bob": 90.0, "carol": 0.0}


def _nbgrader(*args, cwd, user=None, exchange):
    argv = ["nbgrader", *args, f"--Exchange.root={exchange}", f"--CourseDirectory.course_id={COURSE_ID}"]
    code = "import sys\nfrom nbgrader.apps.nbgraderapp import main\n"
    if user:
        code += f"import nbgrader.utils\nnbgrader.utils.get_osusername = lambda: {user!r}\n"
    code += f"sys.argv = {argv!r}\nmain()\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _autograder(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"autograder {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    course, exchange = root / "course", root / "exchange"
    course.mkdir()
    exchange.mkdir()
    shutil.copytree(REPO / "solutions", course / "solutions")
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copy(REPO / "grading.yml", course)  # the course directory holds its rubric
    nb = lambda *a, **k: _nbgrader(*a, exchange=exchange, **k)  # noqa: E731
    nb("generate_assignment", ASSIGNMENT, "--force", cwd=course)
    for student in STUDENTS:
        nb("db", "student", "add", student, cwd=course)
    nb("release_assignment", ASSIGNMENT, cwd=course)
    for student, work in STUDENTS.items():
        home = root / student
        home.mkdir()
        nb("fetch_assignment", ASSIGNMENT, cwd=home, user=student)
        mine = home / ASSIGNMENT / "model_parallel.py"
        if work == "correct":
            mine.write_text(REFERENCE.read_text())
        elif work != "stub":
            mine.write_text(by_name(work).source())
        nb("submit", ASSIGNMENT, cwd=home, user=student)
    nb("collect", ASSIGNMENT, cwd=course)
    nb("autograde", ASSIGNMENT, cwd=course)
    _autograder("grade", "submitted", "--out", "graded", "--devices", "sim", cwd=course)
    _autograder("gradebook", "graded", cwd=course)
    nb("export", cwd=course)
    return {"course": course, "release": exchange / COURSE_ID / "outbound" / ASSIGNMENT}


def test_release_has_no_solution_and_no_grader(flow):
    release = flow["release"]
    stub = (release / "model_parallel.py").read_text()
    assert stub.count("raise NotImplementedError()") == 5 and ".to(self.device1)" not in stub
    notebook = (release / "practical8.ipynb").read_text()
    assert "BEGIN SOLUTION" not in notebook and "It solves memory" not in notebook
    assert "YOUR ANSWER HERE" in notebook
    names = {p.name for p in release.rglob("*")}
    assert names <= {"model_parallel.py", "practical8.ipynb"}, names
    for path in release.rglob("*"):
        text = path.read_text()
        assert "def test_" not in text and "mark.check" not in text, f"grader code in the release: {path}"


def test_each_student_is_graded_on_their_own_code(flow):
    course = flow["course"]
    assert (course / "autograded" / "carol" / ASSIGNMENT / "model_parallel.py").read_text().count(
        "raise NotImplementedError()") == 5, "nbgrader replaced carol's model_parallel.py with the instructor's"
    with (course / "graded" / "summary.csv").open() as f:
        totals = {row["student"]: float(row["total"]) for row in csv.DictReader(f)}
    assert totals == EXPECTED_SCORES


def test_feedback_shows_visible_checks_and_hidden_ones_only_as_a_total(flow):
    feedback = (flow["course"] / "graded" / "bob" / "feedback.md").read_text()
    assert "timing_synchronizes" in feedback and "10 / 10" in feedback  # a visible check bob passed
    assert "timing_covers_output_device" not in feedback and "waits only for the current device" not in feedback
    assert "hidden checks (6), released later | 35 / 45" in feedback  # bob lost the hidden timing check's 10
    assert "def test_" not in feedback and "assert " not in feedback and "conftest" not in feedback


def test_exported_grades_agree_with_summary(flow):
    with (flow["course"] / "grades.csv").open() as f:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert exported == EXPECTED_SCORES


def _readme_trial() -> str:
    """The one-machine trial of docs/instructors.md, exactly as a reader copies it: the first bash block after its
    heading."""
    from docs_commands import block

    return block("docs/instructors.md", "**Try the whole flow on one machine first**")


def test_the_readme_one_machine_trial_runs_as_written(tmp_path):
    import getpass
    import os
    from pathlib import Path

    course = tmp_path / "course"
    course.mkdir()
    for name in ("solutions", "nbgrader_config.py", "grading.yml"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, course / name)
    shared = Path("/usr/local/share/nbgrader/exchange")
    existed = shared.exists()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("NBGRADER_EXCHANGE", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", _readme_trial()], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    me = getpass.getuser()
    with (course / "graded" / "summary.csv").open() as f:
        assert {row["student"]: float(row["total"]) for row in csv.DictReader(f)} == {me: 100.0}
    with (course / "grades.csv").open() as f:
        assert {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)} == {me: 100.0}
    assert (course / "exchange" / "practical8-course" / "inbound").is_dir()  # the private exchange was used
    assert shared.exists() == existed, "the trial created nbgrader's shared exchange"
