"""Shared helpers for the autograder's own tests."""

import dataclasses
from pathlib import Path

import pytest

from autograder.grading import grade
from autograder.rubric import load_rubric

REPO = Path(__file__).resolve().parents[1]
FAST_TIMEOUT_S = 10  # per check; the reference needs < 3 s per check on the 2-core CI box


@pytest.fixture(scope="session")
def fast_rubric():
    """The real rubric with short per-check timeouts, so hanging mutants cost seconds, not minutes."""
    rubric = load_rubric()
    return dataclasses.replace(rubric, submission_timeout=60, checks=tuple(
        dataclasses.replace(c, timeout=FAST_TIMEOUT_S) for c in rubric.checks))


@pytest.fixture(scope="session")
def grade_sim(fast_rubric):
    def run(folder: Path):
        return grade(folder, fast_rubric, "sim")
    return run
