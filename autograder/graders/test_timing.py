"""Part 4: time_forward waits for the GPUs - both of them, after the warm-up too - and returns seconds per forward.

Each check calls time_forward while the probe adds known GPU work to its forwards (``expected.timing_workloads``,
drawn afresh each grading run), and judges k, the seconds it returns over the true device time per timed forward
(CUDA events; on simulated GPUs only within the bounds the grader recomputes, timing_truth.py). Each check judges
one wait, in scenarios where only that wait changes the seconds:
the final wait with one timed forward (nothing after it to hide behind), the wait for device1 with work only there on
that forward, the wait after the warm-up with work left over from it. Each is judged against a scenario of the same
shape, so a constant factor (milliseconds, a wrong divisor, the warm-up timed too) costs timing_measures_device_time
only; how many forwards run is counted by calling time_forward again with more warm-up or more timed forwards. Which
waits the log saw only chooses the message.
"""

import random

import pytest

from autograder.graders.expected import (
    SEED,
    TIMING_HIGH,
    TIMING_LAST,
    TIMING_LOW,
    TIMING_MORE,
    TIMING_REPEATS,
    TIMING_WARMUP,
    timing_workloads,
)
from autograder.graders.timing_truth import TRUTH_MISMATCH, judged_truth, truth_bounds
from autograder.sandbox.inputs import TIMING_BATCH


def _call(observe, devices, grading, scenario: str | None, warmup: int = TIMING_WARMUP,
          repeats: int = TIMING_REPEATS) -> dict:
    # One draw per scenario and grading run: checks that time the same scenario with the same counts share one call
    # (the replies are cached). No scenario: no added work (the counting calls look only at how many forwards ran).
    rng = random.Random(f"{grading.seed}:{scenario}")
    before, after = timing_workloads(rng, scenario, warmup) if scenario else ([0.0], [0.0])
    observed = observe("time_forward", devices=list(devices), seed=SEED, warmup=warmup, repeats=repeats,
                       before=before, after=after)
    if not scenario or grading.mode != "sim":
        return observed  # real GPUs: the probe's CUDA events; the counting calls judge no seconds
    # Simulated GPUs: the truth the verdict rests on is recomputed here, from the workloads just drawn and the cost
    # model (timing_truth.py); a reported truth outside what honest code can give is replaced and flagged.
    bounds = truth_bounds(before, after, observed["forwards"], warmup, repeats, grading.sim_gpu, TIMING_BATCH)
    truth, evidence = judged_truth(observed["true_seconds"], bounds)
    if evidence:
        flag = {"event": TRUTH_MISMATCH, "where": f"time_forward ({scenario}, repeats={repeats})", "detail": evidence}
        if flag not in grading.submission.flags:
            grading.submission.flags.append(flag)
    return {**observed, "true_seconds": truth}


def _timed(observe, devices, grading, scenario: str, repeats: int = TIMING_REPEATS) -> tuple[float, dict]:
    """k for ``scenario`` (seconds returned / true seconds per timed forward), and the observations."""
    observed = _call(observe, devices, grading, scenario, repeats=repeats)
    seconds, true = observed["seconds"], observed["true_seconds"]
    assert isinstance(seconds, float), (
        f"time_forward returned a {str(seconds).strip(chr(39))}; expected a Python float, the seconds per forward. "
        "Return `elapsed / repeats`, not a tensor or a list (a tensor's `.item()` is its float).")
    assert true, "time_forward never called the model; expected warm-up forwards, then the timed ones."
    return seconds / true, observed


def _follows_the_gpus(observe, devices, grading) -> tuple[float, str, dict]:
    """How far the seconds time_forward returns follow the GPUs' work when the one timed forward is the last -
    k("on_device0") / k("even"), ~1 for any clock that waits after it, whatever its units or divisor; ~0.1 for one
    that does not (no wait at all, or one before each forward only) - the numbers, for a message, and the "even"
    observations."""
    usual, even = _timed(observe, devices, grading, "even", TIMING_LAST)
    large, on_device0 = _timed(observe, devices, grading, "on_device0", TIMING_LAST)
    seen = large / usual if usual > 0 else 0.0
    numbers = (f"time_forward returned {even['seconds']:.3g} s per forward when the GPUs took "
               f"{even['true_seconds']:.3g} s, and {on_device0['seconds']:.3g} s when they took "
               f"{on_device0['true_seconds']:.3g} s")
    return seen, numbers, even


def _waited(observed: dict) -> str:
    return ", ".join(observed["waited_for"]) or "no device"


def _more_forwards(observe, devices, grading, observed: dict, **more: int) -> tuple[int, int]:
    """(forwards run with ``more`` warm-up or timed forwards asked for, forwards run with the usual counts)."""
    counts = {"warmup": TIMING_WARMUP, "repeats": TIMING_REPEATS}
    counts.update({name: counts[name] + n for name, n in more.items()})
    return _call(observe, devices, grading, None, **counts)["forwards"], observed["forwards"]


def _hint(ratio: float) -> str:
    """What a k outside the window most likely means (every forward of "even" carries the same work)."""
    warmup_too = (TIMING_WARMUP + TIMING_REPEATS) / TIMING_REPEATS
    if ratio > 100:
        return "It looks like milliseconds: return seconds. "
    if ratio > TIMING_HIGH and abs(ratio - TIMING_REPEATS) < abs(ratio - warmup_too):
        return (f"That is about {TIMING_REPEATS}x: the time of all {TIMING_REPEATS} timed forwards, not of one. "
                "A clock started inside the loop, at the last forward, counts the earlier ones too: the host runs "
                "ahead of the GPUs, which are still working on them when it starts. Start the clock once, before the "
                "loop, and divide the elapsed time by repeats. ")
    if ratio > TIMING_HIGH:
        return (f"It counted the warm-up too: start the clock after the warm-up forwards (and a wait for them), and "
                f"divide by repeats={TIMING_REPEATS}. ")
    return (f"Divide the elapsed time by the number of timed forwards (repeats={TIMING_REPEATS}, not warmup + "
            "repeats), and synchronize after the last forward, before reading the clock. ")


@pytest.mark.check("timing_synchronizes")
def test_timing_synchronizes(observe, devices, grading):
    seen, numbers, even = _follows_the_gpus(observe, devices, grading)
    assert seen >= TIMING_LOW, (
        f"With repeats={TIMING_LAST}, {numbers}: the seconds it returns do not follow the GPUs' work, so the clock "
        f"stops before they finish (it waited for {_waited(even)} after the last timed forward). CUDA work is "
        "asynchronous: the loop returns before the GPUs finish, and a wait before each forward leaves the last one "
        "running. Call torch.cuda.synchronize(...) after the loop and before reading the clock.")


@pytest.mark.check("timing_covers_output_device")
def test_timing_covers_output_device(observe, devices, grading):
    seen, numbers, _ = _follows_the_gpus(observe, devices, grading)
    assert seen >= TIMING_LOW, (
        f"With repeats={TIMING_LAST}, {numbers}: the clock waits for neither GPU after the last timed forward, so "
        f"not for {devices[1]}, where it ends. Call torch.cuda.synchronize(model.device1) (or synchronize both "
        "devices) after the loop, before reading the clock.")
    # Against the same function's reading when all the work is on device0 (which even a wait for cuda:0 alone sees
    # whole), warm-up included: its units, divisor and warm-up cancel, what it misses on device1 remains.
    heavy, observed = _timed(observe, devices, grading, "heavy_on_device1", TIMING_LAST)
    large, _ = _timed(observe, devices, grading, "on_device0", TIMING_LAST)
    relative = heavy / large if large > 0 else 0.0
    assert relative >= TIMING_LOW, (
        f"When the timed forward ends with long work on {devices[1]}, time_forward counted {relative:.0%} of the time "
        f"the GPUs took (against what it counts when all the work is on {devices[0]}): the clock stopped before "
        f"{devices[1]} finished (it waited for {_waited(observed)}). A bare torch.cuda.synchronize(), and CUDA events "
        f"recorded on the current device, wait only for the current device ({devices[0]}): use "
        "torch.cuda.synchronize(model.device1) (or both devices) before reading the clock, or record the events on "
        "model.device1.")


@pytest.mark.check("timing_measures_device_time")
def test_timing_measures_device_time(observe, devices, grading):
    ratio, observed = _timed(observe, devices, grading, "even")
    assert TIMING_LOW <= ratio <= TIMING_HIGH, (
        f"time_forward returned {observed['seconds']:.4g} s per forward; the GPUs really took "
        f"{observed['true_seconds']:.4g} s per timed forward (CUDA events on {devices[1]}). {_hint(ratio)}")
    more, usual = _more_forwards(observe, devices, grading, observed, repeats=TIMING_MORE)
    assert more - usual == TIMING_MORE, (
        f"time_forward(warmup={TIMING_WARMUP}, repeats={TIMING_REPEATS + TIMING_MORE}) ran the model {more} time(s) "
        f"and time_forward(warmup={TIMING_WARMUP}, repeats={TIMING_REPEATS}) {usual}; expected {TIMING_MORE} "
        "more. Time exactly `repeats` forwards (the argument, not a number of your own) and divide by it.")


@pytest.mark.check("timing_excludes_warmup")
def test_timing_excludes_warmup(observe, devices, grading):
    ratio, observed = _timed(observe, devices, grading, "after_warmup")
    expected = TIMING_WARMUP + TIMING_REPEATS
    assert observed["forwards"] >= expected, (
        f"time_forward(warmup={TIMING_WARMUP}, repeats={TIMING_REPEATS}) ran the model {observed['forwards']} "
        f"time(s); expected {TIMING_WARMUP} untimed warm-up forwards, then {TIMING_REPEATS} timed ones.")
    more, usual = _more_forwards(observe, devices, grading, observed, warmup=TIMING_MORE)
    assert more - usual == TIMING_MORE, (
        f"time_forward(warmup={TIMING_WARMUP + TIMING_MORE}, repeats={TIMING_REPEATS}) ran the model {more} time(s) "
        f"and time_forward(warmup={TIMING_WARMUP}, repeats={TIMING_REPEATS}) {usual}; expected {TIMING_MORE} "
        "more. Run exactly `warmup` untimed forwards first (the argument, not a number of your own).")
    # Against what the same function returns without heavy warm-up work (so the units and arithmetic, which
    # timing_measures_device_time judges, do not count here); a clock that never waits cannot count the warm-up's
    # work, and its k (~0) stands as it is.
    usual_k, _ = _timed(observe, devices, grading, "even")
    waits, _, _ = _follows_the_gpus(observe, devices, grading)
    relative = ratio / usual_k if waits >= TIMING_LOW and usual_k > 0 else ratio
    assert relative <= TIMING_HIGH, (
        f"When the last warm-up forward leaves long work on the GPUs, time_forward returned {relative:.1f}x what it "
        "returns otherwise: the clock started before the warm-up work had finished. Synchronize both devices "
        "after the warm-up loop, then start the clock.")
