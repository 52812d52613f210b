"""Per-device busy time: what each GPU was doing during some work, as intervals (recording, not drawing).

    busy = record(lambda: model(x))          # after a sync; waits for both devices at the end
    overlap_seconds(busy), idle_fraction(busy)

Intervals come from the simulation's clocks on simulated GPUs and from ``torch.profiler`` (CUDA kernels and
copies) on real ones. ``idle_fraction`` is the pipeline bubble to compare with (p-1)/(m+p-1). The probes
(Part 5's overlap check) and ``timeline.py`` (the picture) both read them.

The profiler is not taken on trust: with CUDA activity alone some sessions return no kernel events at all
(meta-pytorch/tritonbench#401), and CUPTI can hand back kernel records stamped far outside the session
(pytorch/pytorch#192021). So CPU activity is recorded too, device events outside the host's window are dropped, and
a caller that knows how many kernels it launched (``launched``) gets ``ProfilerMissedWork`` - the machine's failure,
never the student's - when fewer were seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from .devices import NAMES
from .simgpu.active import active_simulation, simulation_active

WINDOW_SLACK_US = 1000.0  # device events may end this long after the host's last event (the final synchronize)


class ProfilerMissedWork(RuntimeError):
    """torch.profiler saw fewer GPU kernels than were launched: a profiling failure of the machine."""


@dataclass(frozen=True)
class Busy:
    device: str
    start: float  # seconds, from the start of the recording
    end: float
    kind: str  # "compute" or "copy"
    name: str = ""


def record(work: Callable[[], object], devices: tuple[str, ...] = NAMES,
           launched: Callable[[], int] | None = None) -> list[Busy]:
    """Run ``work`` (after a sync), wait for both devices, and return what each device was busy with. ``launched``:
    how many kernels the caller has launched so far (read before and after ``work``), checked on real GPUs."""
    for d in devices:
        torch.cuda.synchronize(d)
    if simulation_active():
        sim = active_simulation()
        first = len(sim.clocks.intervals)
        work()
        for d in devices:
            torch.cuda.synchronize(d)
        raw = [(i.device, i.start, i.end, "copy" if i.kind == "copy" else "compute", i.name)
               for i in sim.clocks.intervals[first:]]
    else:
        from torch.profiler import ProfilerActivity, profile

        before = launched() if launched is not None else 0
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            work()
            for d in devices:
                torch.cuda.synchronize(d)
        raw = device_intervals(prof.events())
        expected = launched() - before if launched is not None else 0
        if len(raw) < expected:
            raise ProfilerMissedWork(f"torch.profiler recorded {len(raw)} GPU kernel(s) and copies where {expected} "
                                     "kernels were launched: this machine's profiler (CUPTI) drops GPU activity, so "
                                     "the GPUs' busy time cannot be measured here.")
    if not raw:
        return []
    origin = min(r[1] for r in raw)
    return sorted((Busy(d, s - origin, e - origin, k, n) for d, s, e, k, n in raw), key=lambda b: b.start)


def device_intervals(events: Iterable[Any]) -> list[tuple[str, float, float, str, str]]:
    """(device, start s, end s, kind, name) of the CUDA events of a profile (``prof.events()``) that lie in the window
    of its host events: records stamped outside it (pytorch/pytorch#192021) are dropped."""
    cpu, cuda = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
    events = list(events)
    host = [e.time_range for e in events if e.device_type == cpu]
    low = min((r.start for r in host), default=float("-inf"))
    high = max((r.end for r in host), default=float("inf")) + WINDOW_SLACK_US
    return [(f"cuda:{e.device_index}", e.time_range.start / 1e6, e.time_range.end / 1e6,
             "copy" if "memcpy" in e.name.lower() or "copy" in e.name.lower() else "compute", e.name)
            for e in events if e.device_type == cuda and low <= e.time_range.start and e.time_range.end <= high]


def merged(intervals: list[Busy], device: str,
           kinds: tuple[str, ...] = ("compute", "copy")) -> list[tuple[float, float]]:
    """The device's busy time as disjoint (start, end) spans."""
    spans = sorted((b.start, b.end) for b in intervals if b.device == device and b.kind in kinds)
    out: list[list[float]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def overlap_seconds(intervals: list[Busy], a: str = NAMES[0], b: str = NAMES[1]) -> float:
    """How long both devices computed at the same time (copies, which occupy both, excluded)."""
    total = 0.0
    for s1, e1 in merged(intervals, a, ("compute",)):
        for s2, e2 in merged(intervals, b, ("compute",)):
            total += max(0.0, min(e1, e2) - max(s1, s2))
    return total


def utilisation(intervals: list[Busy], device: str) -> float:
    """Fraction of the whole recording during which ``device`` was busy."""
    if not intervals:
        return 0.0
    span = max(b.end for b in intervals) - min(b.start for b in intervals)
    return sum(e - s for s, e in merged(intervals, device)) / span if span > 0 else 0.0


def idle_fraction(intervals: list[Busy], devices: tuple[str, ...] = NAMES) -> float:
    """The bubble: the devices' mean idle share of the recording (p-1)/(m+p-1) for an ideal pipeline)."""
    return 1.0 - sum(utilisation(intervals, d) for d in devices) / len(devices)
