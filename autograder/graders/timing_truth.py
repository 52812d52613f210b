"""The true device time per timed forward, recomputed in the trusted process (simulated GPUs): the bounds any honest
run of the timing probe can report, from the workloads the grader drew and the GPU profile's cost model.

Why bounds, not one number: the probe's truth is the span of CUDA events on device1 from the first timed forward's
start to the last one's end, and that span depends on how the student's host code interleaves with the devices (a
sync between forwards leaves the GPUs idle while the host launches; a loop that runs ahead lets device0 start the next
forward while device1 still finishes the last). Measured on every simulated GPU for the same workload: the reference
reports 2.92 ms, a time_forward without the sync before its clock 2.18 ms (T4, "even", one timed forward). So the
trusted side recomputes what no schedule can go below or above:
- at least the timed forwards' work on device0 plus the last one's work on device1, less what device1 may still owe the
  warm-up when the first timed forward starts (all the work added behind earlier forwards);
- at most all the work added to the timed forwards plus, per forward, twice the forward's own device cost (the
  contract's two Linear layers, two ReLUs and the copy between the GPUs, by ``simgpu``'s cost model) and the host's
  launches of ``HOST_OPS`` kernels while the devices wait for it.
A reported truth outside them is replaced by the nearest bound and flagged (``timing_truth_mismatch``): a truth
rewritten inside the student's process cannot carry a verdict that these bounds contradict. Real GPUs keep the probe's
CUDA events (issue 23: recorded around the student's call, read after it returns).
"""

from __future__ import annotations

from ..contract import LINEAR_LAYERS
from ..simgpu.profiles import GpuProfile, gpu_profile

TRUTH_MISMATCH = "timing truth contradicted"  # the flag's event
HOST_OPS = 40  # kernels the host may launch per forward while the GPUs wait (the wrapper's events and sleeps, the
#                forward's ops, a student's syncs and clock reads): measured at most ~15 for every way of timing
FLOAT_BYTES = 4
# The probe sizes its sleeps by timing one of PROBE_CYCLES cycles with events, which also span a launch: its sleeps run
# short by up to (launch_s + kernel_s) over that probe's length (0.6% on an RTX 4090), so the least bound gives that.
PROBE_CYCLES = 2_000_000  # probes.sleep_cycles' probe


def forward_device_seconds(profile: GpuProfile, batch: int) -> float:
    """One forward of the contract's model (fp32, ``batch`` rows) on ``profile``: addmm + relu on device0, the copy to
    device1 over the peer link, addmm + relu there."""
    seconds, rows = 0.0, batch
    hidden = LINEAR_LAYERS["layer1"][1]
    for n_in, n_out in LINEAR_LAYERS.values():
        flops = 2.0 * rows * n_in * n_out + rows * n_out
        nbytes = FLOAT_BYTES * (rows * n_in + n_in * n_out + n_out + 2 * rows * n_out)
        seconds += profile.kernel_seconds(flops, nbytes)  # addmm
        seconds += profile.kernel_seconds(rows * n_out, FLOAT_BYTES * 2 * rows * n_out)  # relu
    seconds += profile.copy_seconds(FLOAT_BYTES * rows * hidden, peer=True)
    return seconds


def _at(values: list[float], i: int) -> float:
    return values[min(max(i, 0), len(values) - 1)] if values else 0.0


def timed_indices(forwards: int, warmup: int, repeats: int) -> range:
    """Which forwards the probe times (as ``probes.time_forward`` picks them): the ``repeats`` after the warm-up, or
    the last ``repeats`` of a loop that ran fewer."""
    if forwards >= warmup + repeats:
        return range(warmup, warmup + repeats)
    return range(max(forwards - repeats, 0), forwards)


def truth_bounds(before: list[float], after: list[float], forwards: int, warmup: int, repeats: int, gpu: str,
                 batch: int) -> tuple[float, float] | None:
    """(least, most) seconds per timed forward an honest probe can report, or None when no forward was timed."""
    timed = timed_indices(forwards, warmup, repeats)
    if not timed:
        return None
    profile = gpu_profile(gpu)
    n = len(timed)
    owed = sum(_at(after, j) for j in range(timed[0]))  # device1's backlog from earlier forwards, at most
    short = 1 - 2 * (profile.launch_s + profile.kernel_s) * profile.clock_hz / PROBE_CYCLES
    least = max(sum(_at(before, i) for i in timed) + _at(after, timed[-1]) - owed, 0.0) * short / n
    slack = 2 * forward_device_seconds(profile, batch) + HOST_OPS * profile.launch_s
    most = sum(_at(before, i) + _at(after, i) for i in timed) / n + slack
    return least, most


def judged_truth(reported: float | None, bounds: tuple[float, float] | None) -> tuple[float | None, str | None]:
    """The truth the verdict rests on (the reported one within the bounds, else the nearest bound) and, when they
    disagree, the evidence for a flag."""
    if bounds is None or reported is None:
        return reported, None
    least, most = bounds
    if least <= reported <= most:
        return reported, None
    kept = min(max(reported, least), most)
    return kept, (f"the submission's process reported {reported:.9g} s of device time per timed forward; the grader's "
                  f"recomputation from the workloads it drew allows {least:.9g} to {most:.9g} s; judged on {kept:.9g}")
