"""On simulated GPUs a verdict is a fact: the same submission gets the same observations, messages and verdicts
every time, on a loaded machine as on an idle one (time is virtual; nothing depends on how fast the host is)."""

import dataclasses
import random
import subprocess
import sys

import pytest

from autograder.graders.expected import timing_workloads
from autograder.grading import GradingPlugin, grade_all
from autograder.samples import REFERENCE, TIMING_CHECKS, by_name

RUNS = 10
TIMING_SAMPLES = ("no_sync", "bare_sync", "sync_after_clock")


@pytest.fixture
def cpu_hogs():
    """Two busy processes beside the test, one per core of the CI box: what made the old clock-based verdicts
    change (a no-sync submission passed the timing check once in three runs)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


@pytest.mark.slow  # gradings beside busy processes
def test_timing_verdicts_and_messages_are_identical_under_load(fast_rubric, tmp_path, cpu_hogs):
    rubric = dataclasses.replace(fast_rubric, checks=tuple(
        dataclasses.replace(c, enabled=c.id in TIMING_CHECKS) for c in fast_rubric.checks))
    submissions = [("reference", REFERENCE.parent)]
    submissions += [(name, by_name(name).write(tmp_path / name)) for name in TIMING_SAMPLES]
    runs = []
    for _ in range(RUNS):
        reports = []
        grade_all(submissions, rubric, "sim", on_report=reports.append, seed=2026)
        runs.append([r.to_dict() for r in reports])
    assert all(run == runs[0] for run in runs), "a run differed"
    failed = {r["submission"]: {c["check"] for c in r["results"] if not c["passed"]} for r in runs[0]}
    assert failed == {"reference": set(), **{name: set(by_name(name).fails) for name in TIMING_SAMPLES}}
    # the messages carry the measured numbers, so equal messages mean equal observations
    assert any("%" in c["message"] for r in runs[0] for c in r["results"] if not c["passed"])


def test_a_fresh_seed_draws_other_workloads_but_the_same_verdicts(fast_rubric, tmp_path):
    """The workloads are drawn in the trusted process, afresh for each grading run (no constant a submission could
    read and add); the verdicts do not depend on the draw."""
    rubric = dataclasses.replace(fast_rubric, checks=tuple(
        dataclasses.replace(c, enabled=c.id in TIMING_CHECKS) for c in fast_rubric.checks))
    folder = by_name("bare_sync").write(tmp_path / "bare_sync")
    reports = []
    for seed in (1, 2):
        grade_all([("bare_sync", folder)], rubric, "sim", on_report=reports.append, seed=seed)
    assert reports[0].failed() == reports[1].failed() == {"timing_covers_output_device"}
    draws = [timing_workloads(random.Random(f"{seed}:heavy_on_device1"), "heavy_on_device1") for seed in (1, 2)]
    assert draws[0] != draws[1]
    assert GradingPlugin(rubric, "sim", None, [], print).seed != GradingPlugin(rubric, "sim", None, [], print).seed
