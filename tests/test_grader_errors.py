"""Only a passed grader earns points: a grader that skips or is marked xfail decides nothing, and the submission is
reported as not graded (an error of the graders), never as passed.

Each test grades the reference with a copy of the graders in which one grader was edited, so the real graders stay
untouched; the copy is a package of its own name (pytest imports its conftest under it).
"""

import dataclasses
import shutil
import uuid

import pytest
from conftest import REPO

import autograder.grading
from autograder.grading import GRADERS_DIR, grade

PLACEMENT = '@pytest.mark.check("placement")\ndef test_placement(observe, devices):\n'
OUTPUT_DEVICE = '@pytest.mark.check("output_device")\ndef test_output_device(observe, devices):\n'


@pytest.fixture
def edited_graders(tmp_path, monkeypatch):
    """edit(file, old, new) -> grade the reference with the graders so edited (only placement and output_device
    enabled: fast)."""
    copy = tmp_path / f"graders_{uuid.uuid4().hex[:8]}"
    shutil.copytree(GRADERS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(autograder.grading, "GRADERS_DIR", copy)

    def edit_and_grade(fast_rubric, edits: list[tuple[str, str, str]]):
        for name, old, new in edits:
            text = (copy / name).read_text()
            assert old in text, f"{old!r} is not in the graders' {name} any more"
            (copy / name).write_text(text.replace(old, new, 1))
        rubric = dataclasses.replace(fast_rubric, checks=tuple(
            dataclasses.replace(c, enabled=c.id in {"placement", "output_device"}) for c in fast_rubric.checks))
        return grade(REPO / "solutions" / "practical8", rubric, "sim")

    return edit_and_grade


def test_the_unedited_copy_grades_the_reference_in_full(edited_graders, fast_rubric):
    report = edited_graders(fast_rubric, [])
    assert not report.not_graded and report.failed() == set() and report.score == 15


@pytest.mark.parametrize(("edits", "says"), [
    ([("test_placement.py", PLACEMENT, PLACEMENT + '    pytest.skip("no time today")\n')],
     "the grader of placement was skipped (no time today)"),
    ([("test_placement.py", PLACEMENT, '@pytest.mark.skipif(True, reason="always")\n' + PLACEMENT)],
     "the grader of placement was skipped (always)"),
    ([("test_forward.py", OUTPUT_DEVICE, '@pytest.mark.xfail(reason="flaky")\n' + OUTPUT_DEVICE)],  # and passes
     "the grader of output_device is marked xfail"),
    ([("test_forward.py", OUTPUT_DEVICE, '@pytest.mark.xfail(strict=True)\n' + OUTPUT_DEVICE)],  # a strict xpass
     "the grader of output_device is marked xfail"),
    ([("test_forward.py", OUTPUT_DEVICE, OUTPUT_DEVICE + '    pytest.xfail("later")\n')],
     "the grader of output_device is marked xfail"),
    ([("conftest.py", "    return NAMES\n", "    pytest.skip('no devices')\n")],  # at set-up, for both
     "the grader of output_device was skipped (no devices); the grader of placement was skipped (no devices)"),
], ids=["skip", "skipif", "xfail_passing", "xfail_strict", "imperative_xfail", "skip_in_a_fixture"])
def test_a_grader_that_decides_nothing_leaves_the_submission_not_graded(edited_graders, fast_rubric, edits, says):
    report = edited_graders(fast_rubric, edits)
    assert report.not_graded and says in report.not_graded, report.not_graded
    assert report.score == 0 and report.failed() == {"placement", "output_device"}
    assert all(r.message == report.not_graded for r in report.results)
