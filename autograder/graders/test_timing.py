"""Part 4: time_forward waits for the GPUs - both of them - and returns seconds per forward.

The probe adds a known workload on device1 to every forward (``torch.cuda._sleep``, 10 ms), so the true
device time per forward is large, known, and measured independently with CUDA events on device1.
"""

import pytest

from autograder.graders.expected import SEED
from autograder.graders.expected import TIMING_HIGH as HIGH
from autograder.graders.expected import TIMING_LOW as LOW

WARMUP, REPEATS = 1, 5


def _timed(observe, devices) -> dict:
    return observe("time_forward", devices=list(devices), seed=SEED, warmup=WARMUP, repeats=REPEATS)


def _window(observed: dict) -> tuple[int, int]:
    """From the end of the last forward to the clock's last read (or the end of the call)."""
    assert observed["forward_seqs"], "time_forward() never called the model; expected warm-up + timed forwards."
    last_forward = observed["forward_seqs"][-1]
    reads = [r for r in observed["clock_reads"] if r > last_forward]
    return last_forward, reads[-1] if reads else observed["call_end_seq"]


@pytest.mark.check("timing_synchronizes")
def test_timing_synchronizes(observe, devices):
    observed = _timed(observe, devices)
    start, stop = _window(observed)
    waits = [s for s in observed["syncs"] if start < s["seq"] < stop]
    assert waits, ("time_forward read the clock without waiting for the GPUs after the timed forwards. CUDA "
                   "work is asynchronous: the loop returns before the GPUs finish. Call "
                   "torch.cuda.synchronize(...) after the loop and before reading the clock.")


@pytest.mark.check("timing_covers_output_device")
def test_timing_covers_output_device(observe, devices):
    observed = _timed(observe, devices)
    start, stop = _window(observed)
    waited_for = sorted({s["device"] for s in observed["syncs"] if start < s["seq"] < stop})
    assert devices[1] in waited_for, (
        f"Before stopping the clock time_forward waited for {', '.join(waited_for) or 'no device'}; expected it to "
        f"wait for {devices[1]} too, where the forward's last kernels run. A bare torch.cuda.synchronize() waits "
        f"only for the current device ({devices[0]}): use torch.cuda.synchronize(model.device1) (or both devices).")


@pytest.mark.check("timing_measures_device_time")
def test_timing_measures_device_time(observe, devices):
    observed = _timed(observe, devices)
    seconds, true = observed["seconds"], observed["true_seconds"]
    assert isinstance(seconds, (int, float)), f"time_forward returned {seconds}; expected a float (seconds)."
    assert true, "time_forward must run the forward at least once."
    ratio = seconds / true
    hint = ("It looks like milliseconds: return seconds. " if ratio > 100 else
            "Did you divide by the number of timed repeats? " if ratio > HIGH else
            "The clock stopped before the GPUs finished: synchronize both devices before reading it. ")
    assert LOW <= ratio <= HIGH, (
        f"time_forward returned {seconds:.4g} s per forward; the GPUs really took {true:.4g} s per forward "
        f"(measured with CUDA events on {devices[1]}). {hint}")
