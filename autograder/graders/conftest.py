"""Fixtures for the graders: the submission under test, its devices, and student-facing failures.

``observe(probe, **args)`` runs a probe in the submission's process and returns its plain observations;
if the student's code crashed, hung or raised, the test fails with the explanation written for the student.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autograder.sandbox import ProbeFailed

DEVICES = ("cuda:0", "cuda:1")  # the same names on real GPUs and on the simulation
SEED = 1234


@pytest.fixture(scope="session")
def grading(request) -> Any:
    return request.config.pluginmanager.get_plugin("practical8-grading")


@pytest.fixture
def devices() -> tuple[str, str]:
    return DEVICES


@pytest.fixture
def observe(grading, request) -> Callable[..., dict]:
    timeout = grading.timeout_for(request.node)

    def run(probe: str, **args: Any) -> dict:
        try:
            return grading.submission.probe(probe, timeout, **args)
        except ProbeFailed as exc:
            pytest.fail(str(exc), pytrace=False)

    return run


@pytest.fixture
def load_tensors(grading) -> Callable[[str], dict]:
    return grading.submission.load_tensors
