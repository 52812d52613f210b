"""Where the course's own files are: the nbgrader course directory (grading.yml, solutions/, nbgrader_config.py).

    --course-dir DIR  >  the current directory, if it has grading.yml or nbgrader_config.py  >  this source
    checkout, if it has grading.yml  >  the current directory

An installed package carries the autograder only; the rubric and the reference solution belong to the course, so a
command run from elsewhere without --course-dir gets an error that names the missing file and what to do.
"""

from __future__ import annotations

from pathlib import Path

SOURCE_CHECKOUT = Path(__file__).resolve().parents[1]
RUBRIC_FILE, NBGRADER_CONFIG = "grading.yml", "nbgrader_config.py"
_chosen: list[Path] = []


class CourseFileMissing(FileNotFoundError):
    """A file of the course directory is not there; the message says where it was looked for and what to do."""


def use(path: Path | str) -> Path:
    """Make ``path`` the course directory for the rest of this process (``--course-dir``)."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise CourseFileMissing(f"--course-dir {path}: no such folder")
    _chosen[:] = [path]
    return path


def course_dir() -> Path:
    if _chosen:
        return _chosen[0]
    here = Path.cwd()
    if (here / RUBRIC_FILE).is_file() or (here / NBGRADER_CONFIG).is_file():
        return here
    return SOURCE_CHECKOUT if (SOURCE_CHECKOUT / RUBRIC_FILE).is_file() else here


def course_file(*parts: str) -> Path:
    """``course_dir()/parts``, or a CourseFileMissing that says how to point to the course directory."""
    path = course_dir().joinpath(*parts)
    if not path.exists():
        raise CourseFileMissing(f"{path}: not found. Run from your course directory (the folder with {RUBRIC_FILE}, "
                                "solutions/ and nbgrader_config.py), or pass --course-dir DIR.")
    return path
