"""Fixtures for the graders: the submission under test, its device names, and student-facing failures.

``observe(probe, **args)`` runs a probe in the submission's process and returns its plain observations, re-checked
against the probe's declared reply shape (``replies.py``); if the student's code crashed, hung or raised, the test
fails with the explanation written for the student.
What the graders expect (values, tolerances, helpers) is product code in ``expected.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from autograder.devices import NAMES
from autograder.graders import PLUGIN_NAME
from autograder.graders.replies import MalformedReply, validated
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
            reply = grading.submission.probe(probe, timeout, **args)
        except ProbeFailed as exc:
            pytest.fail(str(exc), pytrace=False)
        try:  # made in the student's process: only the declared plain shape reaches a grader
            return validated(probe, reply)
        except MalformedReply as exc:
            pytest.fail(f"The observations of your code came back malformed ({exc}), so this check could not be "
                        "judged. Code that reaches into the grader (its probes, json, the reply pipe) causes this; "
                        "leave them alone.", pytrace=False)

    return run


@pytest.fixture
def load_arrays(grading) -> Callable[[str], dict[str, np.ndarray]]:
    return grading.submission.load_arrays
