"""Issue 23, item 1: on simulated GPUs the timing checks judge against a device time the trusted process recomputes
(autograder/graders/timing_truth.py), not the one the submission's process reports.

(a) The recomputation is bounds, not one number (the span the probe's events measure depends on how the student's host
code interleaves with the GPUs): every way of timing the samples hold - the reference, every mutant and variant whose
time_forward differs, the correct styles - reports a truth inside them, in every scenario, on every simulated GPU, so
honest work is never judged on a replaced number nor flagged.
(b) A submission that rewrites the reported truth (here a test double of the reply: the probe's real observations of a
time_forward that never synchronizes, with ``true_seconds`` set to the seconds it returned, as a frame walk into the
probe could) gets the verdict the recomputation gives - the check fails - and a flag with the evidence.
"""

import random
from types import SimpleNamespace

import pytest
from conftest import every_profile
from test_timing_table import STYLES, _module_source
from test_timing_workloads import CORRECT
from timing_measure import CALLS, load, sample_source

from autograder.graders import test_timing as timing_checks
from autograder.graders.expected import TIMING_WARMUP, timing_workloads
from autograder.graders.timing_truth import TRUTH_MISMATCH, judged_truth, truth_bounds
from autograder.sandbox import probes
from autograder.sandbox.inputs import TIMING_BATCH
from autograder.simgpu import simulated_gpus

DEVICES = ["cuda:0", "cuda:1"]


def _source(style: str, tmp_path) -> tuple[str, str]:
    if style.startswith("style:"):
        name = style.split(":", 1)[1]
        return name, _module_source(CORRECT[name], tmp_path, name)
    return style, sample_source(style)


@pytest.mark.parametrize("gpu", every_profile())
def test_every_honest_truth_lies_within_the_recomputed_bounds(gpu, tmp_path):
    outside, judged = [], 0
    for style in STYLES:
        name, source = _source(style, tmp_path)
        with simulated_gpus(2, gpu=gpu) as sim:
            module, folder = load(source, name)
            for scenario, repeats in CALLS:
                sim.reset()
                probes._BUILT.clear()
                before, after = timing_workloads(random.Random(f"7:{scenario}"), scenario)
                observed = probes.time_forward(probes.Context(module, sim.clocks, folder), DEVICES, 0, TIMING_WARMUP,
                                               repeats, before, after)
                bounds = truth_bounds(before, after, observed["forwards"], TIMING_WARMUP, repeats, gpu, TIMING_BATCH)
                assert (bounds is None) == (observed["true_seconds"] is None), (style, scenario, repeats)
                if bounds is None:
                    continue
                judged += 1
                kept, evidence = judged_truth(observed["true_seconds"], bounds)
                if evidence or kept != observed["true_seconds"]:
                    outside.append((style, scenario, repeats, observed["true_seconds"], bounds))
    assert judged >= len(CALLS) * (len(STYLES) - 5), "hardly any call timed a forward: the test would prove nothing"
    assert not outside, outside


class _Submission:
    def __init__(self) -> None:
        self.flags: list[dict[str, str]] = []


def _forging_observe(module, folder, sim, forge: bool):
    """``observe`` for the graders' timing checks, run in-process: the probe's real observations, and (``forge``) the
    truth rewritten to the seconds returned, as a submission that reached the probe's state would write it."""

    def observe(probe: str, devices, seed, warmup, repeats, before, after) -> dict:
        assert probe == "time_forward"
        sim.reset()
        probes._BUILT.clear()
        observed = probes.time_forward(probes.Context(module, sim.clocks, folder), devices, seed, warmup, repeats,
                                       before, after)
        if forge:
            observed["true_seconds"] = observed["seconds"]
        return observed

    return observe


@pytest.mark.parametrize("check", ["test_timing_synchronizes", "test_timing_measures_device_time"])
def test_a_rewritten_truth_gets_the_recomputed_verdict_and_a_flag(check):
    with simulated_gpus(2, gpu="a100") as sim:
        module, folder = load(sample_source("no_sync"), "no_sync")
        grading = SimpleNamespace(seed=11, mode="sim", sim_gpu="a100", submission=_Submission())
        # The forgery works where the reported truth is believed (the real-GPU path reads the probe's events) ...
        believed = SimpleNamespace(seed=11, mode="cuda", sim_gpu=None, submission=_Submission())
        getattr(timing_checks, check)(_forging_observe(module, folder, sim, True), tuple(DEVICES), believed)
        # ... and not where the trusted side recomputes it: the check fails, and the flag says why.
        with pytest.raises(AssertionError):
            getattr(timing_checks, check)(_forging_observe(module, folder, sim, True), tuple(DEVICES), grading)
    assert grading.submission.flags, "the rewritten truth was not flagged"
    assert {flag["event"] for flag in grading.submission.flags} == {TRUTH_MISMATCH}
    assert "recomputation" in grading.submission.flags[0]["detail"]


def test_the_reference_is_neither_failed_nor_flagged_by_the_recomputation():
    with simulated_gpus(2, gpu="a100") as sim:
        module, folder = load(sample_source("reference"), "reference")
        grading = SimpleNamespace(seed=11, mode="sim", sim_gpu="a100", submission=_Submission())
        for check in ("test_timing_synchronizes", "test_timing_covers_output_device",
                      "test_timing_measures_device_time", "test_timing_excludes_warmup"):
            getattr(timing_checks, check)(_forging_observe(module, folder, sim, False), tuple(DEVICES), grading)
    assert grading.submission.flags == []

