"""Per-device busy time: what each GPU was doing during some work, as intervals (recording, not drawing).

    busy = record(lambda: model(x))          # after a sync; waits for both devices at the end
    overlap_seconds(busy), idle_fraction(busy)

Intervals come from the simulation's clocks on simulated GPUs and from ``torch.profiler`` (CUDA kernels and
copies) on real ones. ``idle_fraction`` is the pipeline bubble to compare with (p-1)/(m+p-1). The probes
(Part 5's overlap check) and ``timeline.py`` (the picture) both read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .devices import NAMES
from .simgpu.active import active_simulation, simulation_active


@dataclass(frozen=True)
class Busy:
    device: str
    start: float  # seconds, from the start of the recording
    end: float
    kind: str  # "compute" or "copy"
    name: str = ""


def record(work: Callable[[], object], devices: tuple[str, ...] = NAMES) -> list[Busy]:
    """Run ``work`` (after a sync), wait for both devices, and return what each device was busy with."""
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

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            work()
            for d in devices:
                torch.cuda.synchronize(d)
        raw = [(f"cuda:{e.device_index}", e.time_range.start / 1e6, e.time_range.end / 1e6,
                "copy" if "memcpy" in e.name.lower() or "copy" in e.name.lower() else "compute", e.name)
               for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    if not raw:
        return []
    origin = min(r[1] for r in raw)
    return sorted((Busy(d, s - origin, e - origin, k, n) for d, s, e, k, n in raw), key=lambda b: b.start)


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
