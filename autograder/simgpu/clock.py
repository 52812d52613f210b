"""Per-device clocks for the simulated GPUs: queues, busy intervals, transfers and sync points.

The host is the real Python process and its clock is the real ``time.perf_counter``. Each simulated
device keeps a "ready at" time: work launched on it starts when both the host has launched it and the
device has finished what came before, and lasts the CPU time it really took times ``scale`` (plus a
launch latency). The host never waits for a device except at a sync point, where it really sleeps
until that device is done. So a timer without a sync stops early with *any* clock the student uses.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from time import perf_counter  # bound at import: graders may wrap time.perf_counter to log clock reads

# Device time = SCALE x the CPU time the op really took + LAUNCH_LATENCY. SCALE > 1 makes the device the
# bottleneck, as on a real GPU driven by a fast host, so missing syncs are visible
# (a timer without one reads ~40% of the truth).
DEFAULT_SCALE = 2.5
LAUNCH_LATENCY_S = 10e-6  # order of a real CUDA kernel launch
SLEEP_CYCLES_PER_S = 1.0e9  # torch.cuda._sleep(cycles) on the simulated device: 1 GHz


@dataclass(frozen=True)
class Interval:
    """A stretch of time during which one device was busy."""

    device: str
    start: float
    end: float
    name: str
    kind: str  # "compute", "copy" or "sleep"


@dataclass(frozen=True)
class Transfer:
    """One copy of tensor data between two places (``cpu`` or ``cuda:i``)."""

    seq: int
    src: str
    dst: str
    nbytes: int
    via_host: bool  # True when one end is the host (cpu), i.e. not a direct GPU-to-GPU copy


@dataclass(frozen=True)
class Sync:
    """A point where the host waited for a device (``device`` is ``cuda:i``)."""

    seq: int
    device: str
    reason: str  # "synchronize", "event", "item", "print", "copy to host", ...
    host_time: float


@dataclass
class DeviceClocks:
    """The simulated devices' clocks and everything they recorded."""

    n: int
    scale: float = DEFAULT_SCALE
    launch_latency: float = LAUNCH_LATENCY_S
    ready_at: list[float] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    syncs: list[Sync] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        now = perf_counter()
        self.ready_at = [now] * self.n

    def next_seq(self) -> int:
        """A global order number shared by transfers, syncs and whatever callers log."""
        return next(self._seq)

    def device_time(self, cpu_seconds: float) -> float:
        return self.launch_latency + self.scale * cpu_seconds

    def charge(self, index: int, host_start: float, seconds: float, name: str, kind: str = "compute") -> float:
        """Queue ``seconds`` of work on device ``index``, launched by the host at ``host_start``."""
        start = max(host_start, self.ready_at[index])
        end = start + seconds
        self.ready_at[index] = end
        self.intervals.append(Interval(f"cuda:{index}", start, end, name, kind))
        return end

    def charge_copy(self, src: int, dst: int, host_start: float, seconds: float) -> float:
        """A device-to-device copy: ordered after both devices' queued work, occupies both."""
        start = max(host_start, self.ready_at[src], self.ready_at[dst])
        end = start + seconds
        self.ready_at[src] = self.ready_at[dst] = end
        name = f"copy cuda:{src}->cuda:{dst}"
        self.intervals.append(Interval(f"cuda:{src}", start, end, name, "copy"))
        self.intervals.append(Interval(f"cuda:{dst}", start, end, name, "copy"))
        return end

    def record_transfer(self, src: str, dst: str, nbytes: int) -> None:
        via_host = src == "cpu" or dst == "cpu"
        self.transfers.append(Transfer(self.next_seq(), src, dst, nbytes, via_host))

    def wait(self, index: int, reason: str, until: float | None = None) -> None:
        """The host blocks until device ``index`` has finished all queued work (or reached ``until``)."""
        wait_until(self.ready_at[index] if until is None else until)
        self.syncs.append(Sync(self.next_seq(), f"cuda:{index}", reason, perf_counter()))


def wait_until(deadline: float) -> None:
    """Sleep until ``perf_counter()`` reaches ``deadline`` (never returns early)."""
    while (left := deadline - perf_counter()) > 0:
        time.sleep(left)
