"""Fixtures for the graders: the submission under test, its device names, and student-facing failures.

``observe(probe, **args)`` runs a probe in the submission's process and returns its plain observations;
if the student's code crashed, hung or raised, the test fails with the explanation written for the student.
What the graders expect (values, tolerances, helpers) is product code in ``expected.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from autograder.devices import NAMES
from autograder.graders import PLUGIN_NAME
from autograder.sandbox import ProbeFailed


@pytest.fixture(scope="session")
def grading(request) -> Any:
    return request.config.pluginmanager.get_plugin(PLUGIN_NAME)


@pytest.fixture
def devices() -> tuple[str, str]:
    """The device names given to the student's code: the same on real GPUs and on the simulation."""
    return NAMES


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
def load_arrays(grading) -> Callable[[str], dict[str, np.ndarray]]:
    return grading.submission.load_arrays
