"""A normal (non-editable) install works from any folder: the graders' configuration ships with the package, and
the course's own files (grading.yml, the reference) are found in the course directory, or named when missing."""

import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # pip builds and installs the package; .ci/run also installs it this way


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The package built and installed as pip installs it for users (not editable), into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # not a course directory

    def run(*args: str) -> subprocess.CompletedProcess:
        code = ("import sys, autograder; assert autograder.__file__.startswith(sys.argv[1]), autograder.__file__; "
                "from autograder.cli import main; sys.exit(main(sys.argv[2:]))")
        env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(elsewhere)}
        return subprocess.run([sys.executable, "-c", code, str(target), *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    return {"run": run, "target": target, "elsewhere": elsewhere}


def test_the_graders_configuration_is_installed(installed):
    assert (installed["target"] / "autograder" / "graders" / "pytest.ini").is_file()


def test_outside_a_course_directory_the_missing_file_is_named(installed):
    done = installed["run"]("grade", "--devices", "sim")
    assert done.returncode == 2
    assert "grading.yml: not found. Run from your course directory" in done.stderr and "--course-dir" in done.stderr


def test_with_course_dir_it_grades_from_anywhere(installed):
    done = installed["run"]("grade", str(REPO / "solutions" / "practical8"), "--course-dir", str(REPO),
                            "--devices", "sim")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "total                          100/100" in done.stdout
    out = installed["elsewhere"] / "t.png"
    done = installed["run"]("timeline", "--course-dir", str(REPO), "--devices", "sim", "--out", str(out))
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
