"""The simulation's time: a virtual host clock and per-device queues, in integer nanoseconds.

Nothing here reads the machine's clock or sleeps. The host's time advances by ``launch_s`` of the GPU profile
per kernel it launches, by ``time.sleep`` and by a small step per clock read or event query; it jumps to a
device's finish time whenever the host waits for that device. Each device keeps a "ready at" time: a kernel
starts when both the host has launched it and the device has finished what came before, and lasts what the
profile's cost model says. So a timer without a sync stops early with any clock the student uses, and the same
program gives the same times on any machine under any load: the CPU time the simulation really spends never
shows on a clock.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from .profiles import DEFAULT_GPU, GpuProfile, gpu_profile

NS = 1_000_000_000
CLOCK_READ_NS = 1_000  # a clock read or an Event/Stream query costs the host 1 us: polling loops end
# Where the virtual clocks start: a fixed perf_counter/monotonic origin (so differences round the same way on
# every machine), and the epoch second the simulation started for time.time().
PERF_ORIGIN_NS = 1_000 * NS


def to_ns(seconds: float) -> int:
    return round(seconds * NS)


@dataclass(frozen=True)
class Interval:
    """A stretch of time during which one device was busy (seconds on the virtual clock)."""

    device: str
    start: float
    end: float
    name: str
    kind: str  # "compute", "copy" or "sleep"
    stream: int = 0  # the device's queue it ran on: 0 is the default stream


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
    """The host's virtual clock, the devices' queues (streams), and everything they recorded."""

    n: int
    profile: GpuProfile = field(default_factory=lambda: gpu_profile(DEFAULT_GPU))
    now_ns: int = 0  # the host's time since the simulation started
    queues: dict[tuple[int, int], int] = field(default_factory=dict)  # (device, stream) -> when its work is done
    current: list[int] = field(default_factory=list)  # per device: the id of its current stream
    # per device: the (start, end) of compute kernels not yet over when last pruned, in time order - its SMs' plan
    engine: list[list[tuple[int, int]]] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    syncs: list[Sync] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count, repr=False)
    _streams: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    def __post_init__(self) -> None:
        for index in range(self.n):
            self.queues.setdefault((index, 0), self.now_ns)
        self.current = [0] * self.n
        self.engine = [[] for _ in range(self.n)]

    def restarted(self) -> DeviceClocks:
        """Fresh queues and logs, from when all queued work is done (no clock or event runs backwards). The streams
        made so far stay valid (a model's streams outlive one run), empty; each device's current stream is its
        default stream again."""
        now = max(self.now_ns, *self.ready_ns)
        fresh = DeviceClocks(self.n, self.profile, now_ns=now, queues=dict.fromkeys(self.queues, now))
        fresh._streams = self._streams
        return fresh

    def next_seq(self) -> int:
        """A global order number shared by transfers, syncs and whatever callers log."""
        return next(self._seq)

    # ------------------------------------------------------------------ streams
    def new_stream(self, index: int) -> int:
        """A new queue on device ``index`` (``torch.cuda.Stream``): empty, so it is ready now."""
        stream = next(self._streams)
        self.queues[(index, stream)] = self.now_ns
        return stream

    def stream_of(self, index: int, stream: int | None) -> int:
        return self.current[index] if stream is None else stream

    def stream_ready(self, index: int, stream: int | None = None) -> int:
        """When the work queued so far on a stream (default: the device's current one) is done."""
        return self.queues[(index, self.stream_of(index, stream))]

    def device_ready(self, index: int) -> int:
        """When everything queued on device ``index``, on all its streams, is done."""
        return max(ready for (device, _), ready in self.queues.items() if device == index)

    @property
    def ready_ns(self) -> list[int]:
        """Per device: when all its streams are done (read-only)."""
        return [self.device_ready(index) for index in range(self.n)]

    def wait_until(self, index: int, stream: int | None, ns: int) -> None:
        """The stream's later work starts no earlier than ``ns`` (``wait_event``/``wait_stream``; the host goes on)."""
        key = (index, self.stream_of(index, stream))
        self.queues[key] = max(self.queues[key], ns)

    # ------------------------------------------------------------------ the host
    def advance(self, seconds: float) -> None:
        """The host spends ``seconds`` (``time.sleep``, host-side work)."""
        self.now_ns += max(0, to_ns(seconds))

    def read(self) -> int:
        """The host reads a clock: a small step, then the time."""
        self.now_ns += CLOCK_READ_NS
        return self.now_ns

    def wait(self, index: int, reason: str, until_ns: int | None = None) -> None:
        """The host blocks until device ``index`` has finished all queued work, on every stream (or reached
        ``until_ns``: an event's or one stream's point)."""
        self.now_ns = max(self.now_ns, self.device_ready(index) if until_ns is None else until_ns)
        self.syncs.append(Sync(self.next_seq(), f"cuda:{index}", reason, self.now_ns / NS))

    def done(self, ns: int) -> bool:
        """Whether the host's now is past ``ns`` (an event query, which also costs a clock step)."""
        return self.read() >= ns

    # ------------------------------------------------------------------ the devices
    def launch(self, index: int, seconds: float, name: str, kind: str = "compute", stream: int | None = None) -> int:
        """The host launches ``seconds`` of work on a stream of device ``index`` (default: its current one);
        returns when it will finish."""
        self.now_ns += to_ns(self.profile.launch_s)
        return self._run(index, seconds, name, kind, self.now_ns, self.stream_of(index, stream))

    def _run(self, index: int, seconds: float, name: str, kind: str, after_ns: int, stream: int) -> int:
        start = max(after_ns, self.queues[(index, stream)])
        length = max(1, to_ns(seconds))
        if kind == "compute":
            start = self._free_sms(index, start, length, after_ns)
        end = start + length
        self.queues[(index, stream)] = end
        self.intervals.append(Interval(f"cuda:{index}", start / NS, end / NS, name, kind, stream))
        return end

    def _free_sms(self, index: int, start: int, length: int, now: int) -> int:
        """The first time from ``start`` at which the device's SMs are free for ``length`` ns, booked. A kernel of a
        stream that waits (an event, a busy queue) leaves the SMs to kernels of other streams meanwhile, as the GPU's
        scheduler does; plans that ended before ``now`` (the host's launch time, never decreasing) are dropped."""
        plan = self.engine[index]  # booked spans never overlap: sorted by start, they are sorted by end too
        over = 0
        while over < len(plan) and plan[over][1] <= now:
            over += 1
        del plan[:over]
        if plan and start < plan[-1][1]:  # one stream alone always books after the last span: nothing to search
            for s, e in plan:
                if e <= start:
                    continue
                if s >= start + length:
                    break
                start = e
        bisect.insort(plan, (start, start + length))
        return start

    def kernel(self, index: int, flops: float, nbytes: float, name: str) -> int:
        return self.launch(index, self.profile.kernel_seconds(flops, nbytes), name)

    def copy(self, src: str, dst: str, nbytes: int) -> None:
        """A copy of ``nbytes`` from ``src`` to ``dst`` (``cpu`` or ``cuda:i``), ordered as CUDA orders it."""
        via_host = src == "cpu" or dst == "cpu"
        self.transfers.append(Transfer(self.next_seq(), src, dst, nbytes, via_host))
        seconds = self.profile.copy_seconds(nbytes, peer=not via_host)
        name = f"copy {src}->{dst}"
        if not via_host:
            # PyTorch's peer copy (aten/src/ATen/native/cuda/Copy.cu, copy_device_to_device): on the source's
            # current stream, after a two-way barrier with the destination's current stream, which then waits for
            # the copy - so it occupies (or blocks) both of those streams, and no other.
            s, d = int(src.split(":")[1]), int(dst.split(":")[1])
            s_key, d_key = (s, self.current[s]), (d, self.current[d])
            self.now_ns += to_ns(self.profile.launch_s)
            start = max(self.now_ns, self.queues[s_key], self.queues[d_key])
            end = start + to_ns(seconds)
            self.queues[s_key] = self.queues[d_key] = end
            for index, (_, stream) in ((s, s_key), (d, d_key)):
                self.intervals.append(Interval(f"cuda:{index}", start / NS, end / NS, name, "copy", stream))
        elif dst != "cpu":  # host -> device from pageable memory: the host waits until it is done
            index = int(dst.split(":")[1])
            self.launch(index, seconds, name, "copy")
            self.wait(index, "copy from host", until_ns=self.stream_ready(index))
        else:  # device -> host: the host needs the data, so it waits
            index = int(src.split(":")[1])
            self.launch(index, seconds, name, "copy")
            self.wait(index, "copy to host", until_ns=self.stream_ready(index))
