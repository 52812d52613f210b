"""Fixtures for the graders: the submission under test, its devices, and student-facing failures.

``observe(probe, **args)`` runs a probe in the submission's process and returns its plain observations;
if the student's code crashed, hung or raised, the test fails with the explanation written for the student.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from autograder.sandbox import ProbeFailed
from autograder.sandbox.inputs import SEED, initial_weights

DEVICES = ("cuda:0", "cuda:1")  # the same names on real GPUs and on the simulation
__all__ = ["DEVICES", "SEED", "require_layers", "unsplit_forward"]


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
def load_arrays(grading) -> Callable[[str], dict[str, np.ndarray]]:
    return grading.submission.load_arrays


def require_layers(observed: dict) -> None:
    """Probes that compute put the graders' initial weights into layer1/layer2: fail if there were none."""
    assert not observed["not_loaded"], (
        f"The model has no {', '.join(observed['not_loaded'])} of the expected shape; it needs "
        "self.layer1 = nn.Linear(1000, 2000) and self.layer2 = nn.Linear(2000, 1000).")


def unsplit_forward(x: np.ndarray, seed: int = SEED) -> np.ndarray:
    """relu(W2 relu(W1 x + b1) + b2) with the graders' initial weights: what every forward must return."""
    w = initial_weights(seed)
    hidden = np.maximum(x @ w["layer1.weight"].T + w["layer1.bias"], 0)
    return np.maximum(hidden @ w["layer2.weight"].T + w["layer2.bias"], 0)
