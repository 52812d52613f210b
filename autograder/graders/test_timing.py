"""Part 4: time_forward waits for the GPUs - both of them, after the warm-up too - and returns seconds per forward.

Each check calls time_forward while the probe adds known GPU work to its forwards (``expected.timing_workloads``,
drawn afresh each grading run), and judges the seconds it returns against the true device time per timed forward,
measured with CUDA events (simulated or real). Which waits the log saw only chooses the message.
"""

import random

import pytest

from autograder.graders.expected import SEED, TIMING_HIGH, TIMING_LOW, TIMING_REPEATS, TIMING_WARMUP, timing_workloads


def _timed(observe, devices, grading, scenario: str) -> tuple[float, dict]:
    # One draw per scenario and grading run: checks that time the same scenario share one call of time_forward.
    before, after = timing_workloads(random.Random(f"{grading.seed}:{scenario}"), scenario)
    observed = observe("time_forward", devices=list(devices), seed=SEED, warmup=TIMING_WARMUP,
                       repeats=TIMING_REPEATS, before=before, after=after)
    seconds, true = observed["seconds"], observed["true_seconds"]
    assert isinstance(seconds, (int, float)), f"time_forward returned {seconds}; expected a float (seconds)."
    assert true, "time_forward never called the model; expected warm-up forwards, then the timed ones."
    return seconds / true, observed


def _waited(observed: dict) -> str:
    return ", ".join(observed["waited_for"]) or "no device"


@pytest.mark.check("timing_synchronizes")
def test_timing_synchronizes(observe, devices, grading):
    ratio, observed = _timed(observe, devices, grading, "even")
    assert ratio >= TIMING_LOW, (
        f"time_forward returned {ratio:.0%} of the time the GPUs really took (it waited for {_waited(observed)} "
        "after the timed forwards). CUDA work is asynchronous: the loop returns before the GPUs finish. Call "
        "torch.cuda.synchronize(...) after the loop and before reading the clock.")


@pytest.mark.check("timing_covers_output_device")
def test_timing_covers_output_device(observe, devices, grading):
    ratio, observed = _timed(observe, devices, grading, "heavy_on_device1")
    assert ratio >= TIMING_LOW, (
        f"When each forward ends with long work on {devices[1]}, time_forward returned {ratio:.0%} of the time the "
        f"GPUs took: the clock stopped before {devices[1]} finished (it waited for {_waited(observed)}). A bare "
        f"torch.cuda.synchronize() waits only for the current device ({devices[0]}): use "
        "torch.cuda.synchronize(model.device1) (or both devices) before reading the clock.")


@pytest.mark.check("timing_measures_device_time")
def test_timing_measures_device_time(observe, devices, grading):
    ratio, observed = _timed(observe, devices, grading, "even")
    hint = ("It looks like milliseconds: return seconds. " if ratio > 100 else
            f"Did you time the warm-up too, or divide by something other than repeats={TIMING_REPEATS}? "
            if ratio > TIMING_HIGH else
            "Divide the elapsed time by the number of timed forwards (repeats), and synchronize before reading "
            "the clock. ")
    assert TIMING_LOW <= ratio <= TIMING_HIGH, (
        f"time_forward returned {observed['seconds']:.4g} s per forward; the GPUs really took "
        f"{observed['true_seconds']:.4g} s per timed forward (CUDA events on {devices[1]}). {hint}")


@pytest.mark.check("timing_excludes_warmup")
def test_timing_excludes_warmup(observe, devices, grading):
    ratio, observed = _timed(observe, devices, grading, "after_warmup")
    expected = TIMING_WARMUP + TIMING_REPEATS
    assert observed["forwards"] >= expected, (
        f"time_forward(warmup={TIMING_WARMUP}, repeats={TIMING_REPEATS}) ran the model {observed['forwards']} "
        f"time(s); expected {TIMING_WARMUP} untimed warm-up forwards, then {TIMING_REPEATS} timed ones.")
    # Against what the same function returns without heavy warm-up work (so the units and arithmetic, which
    # timing_measures_device_time judges, do not count here); 1 when it returns nearly nothing (no sync at all).
    usual, _ = _timed(observe, devices, grading, "even")  # the same call timing_measures_device_time made
    relative = ratio / usual if usual >= TIMING_LOW else ratio
    assert relative <= TIMING_HIGH, (
        f"When the last warm-up forward leaves long work on the GPUs, time_forward returned {relative:.1f}x what it "
        "returns otherwise: the clock started before the warm-up work had finished. Synchronize both devices "
        "after the warm-up loop, then start the clock.")
