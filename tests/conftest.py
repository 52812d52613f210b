"""Shared helpers for the autograder's own tests."""

import dataclasses
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from autograder.grading import grade
from autograder.rubric import load_rubric

REPO = Path(__file__).resolve().parents[1]
FAST_TIMEOUT_S = 10  # per check; the reference needs < 3 s per check on the 2-core CI box


def answer_of_forked_child(target, *args):
    """What ``target(*args, scratch, answer)`` sends on ``answer`` from a forked child: a test of ``limits.apply``,
    which sandboxes (and forks) the process calling it. ``scratch`` is laid out as the sandbox lays it out (a fresh
    folder in /tmp: as root, the dropped user must reach it), and removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="practical8-test-")) / "run1"
    scratch.mkdir()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(*args, str(scratch), send))
    child.start()
    send.close()
    try:
        assert receive.poll(60), f"the child sent nothing (exit code {child.join(5) or child.exitcode})"
        return receive.recv()
    finally:
        child.join(30)
        shutil.rmtree(scratch.parent, ignore_errors=True)
HOME_VARIABLES = ("HOME", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR")


def pytest_configure(config):
    """The tests (and the nbgrader, Jupyter and autograder processes they start) write nothing into the real home
    directory: every per-user folder points into one temporary directory for the session."""
    home = Path(tempfile.mkdtemp(prefix="autograder-tests-home-"))
    for name in HOME_VARIABLES:
        os.environ[name] = str(home if name == "HOME" else home / name.lower())


# The simulated GPUs the quick run (`python -m pytest -q`) covers in the per-profile tables: the default (a100, TF32)
# and the one without TF32 (t4); .ci/run's `-m slow` step covers the other profiles.
QUICK_PROFILES = ("t4", "a100")


def every_profile() -> list:
    """``PROFILES`` as pytest parameters, those outside QUICK_PROFILES marked ``slow``."""
    from autograder.simgpu import PROFILES

    return [pytest.param(gpu, marks=() if gpu in QUICK_PROFILES else pytest.mark.slow) for gpu in PROFILES]


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


@pytest.fixture(scope="session")
def graded_samples(fast_rubric, tmp_path_factory):
    """The bundled mutants' and variants' reports (fast_rubric), each graded once per session (graded_samples.py)."""
    from graded_samples import GradedSamples

    return GradedSamples(fast_rubric, tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def graded_part5(fast_rubric, tmp_path_factory):
    """The same for the Part 5 mutants, graded with the pipeline checks enabled."""
    from graded_samples import GradedSamples

    from autograder.samples import PIPELINE_CHECKS

    return GradedSamples(fast_rubric.with_enabled(PIPELINE_CHECKS), tmp_path_factory.mktemp("part5"))
