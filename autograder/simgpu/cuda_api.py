"""Stand-ins for ``torch.cuda.*`` (and ``torch.accelerator.*``) while the simulation is active.

Only what the simulation can answer truthfully is provided; everything is restored on exit.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from .active import active_simulation as _active
from .clock import NS
from .placement import SimulationUnsupported


class SimEvent:
    """``torch.cuda.Event``: marks the moment a device's queue reaches the point where it was recorded."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False,
                 external: bool = False) -> None:
        self.enable_timing = enable_timing
        self.device: int | None = None
        self.time: int | None = None  # virtual ns at which the device's queue reaches the event

    def record(self, stream: Any = None) -> None:
        sim = _active()
        self.device = sim.current_device if stream is None else stream.device.index
        self.time = max(sim.clocks.now_ns, sim.clocks.ready_ns[self.device])

    def query(self) -> bool:
        if self.time is None:
            return True
        clocks = _active().clocks
        done = clocks.done(self.time)
        if done:  # the host learned the device got there: a polling loop ends with one logged wait
            clocks.wait(self.device, "event query", until_ns=self.time)
        return done

    def synchronize(self) -> None:
        if self.time is not None:
            _active().clocks.wait(self.device, "event", until_ns=self.time)

    def wait(self, stream: Any = None) -> None:
        sim = _active()
        index = sim.current_device if stream is None else stream.device.index
        if self.time is not None:
            sim.clocks.ready_ns[index] = max(sim.clocks.ready_ns[index], self.time)

    def elapsed_time(self, end_event: SimEvent) -> float:
        if not self.enable_timing or not end_event.enable_timing:
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self.time is None or end_event.time is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        if self.device != end_event.device:
            raise RuntimeError("Both events must be recorded on the same device to compute elapsed time "
                               f"(found cuda:{self.device} and cuda:{end_event.device}).")
        if _active().clocks.now_ns < max(self.time, end_event.time):
            raise RuntimeError("CUDA error: device not ready (an event has not completed; call "
                               "end.synchronize() or torch.cuda.synchronize() first)")
        return (end_event.time - self.time) / (NS / 1000)


class SimStream:
    """The default stream of one simulated device (the simulation has one queue per device)."""

    def __init__(self, index: int) -> None:
        self.device = torch.device("cuda", index)
        self.device_index = index
        self.cuda_stream = 0

    def synchronize(self) -> None:
        _active().clocks.wait(self.device_index, "stream")

    def record_event(self, event: SimEvent | None = None) -> SimEvent:
        event = event or SimEvent()
        event.record(self)
        return event

    def wait_event(self, event: SimEvent) -> None:
        event.wait(self)

    def wait_stream(self, stream: SimStream) -> None:
        clocks = _active().clocks
        clocks.ready_ns[self.device_index] = max(clocks.ready_ns[self.device_index],
                                                 clocks.ready_ns[stream.device_index])

    def query(self) -> bool:
        clocks = _active().clocks
        done = clocks.done(clocks.ready_ns[self.device_index])
        if done:
            clocks.wait(self.device_index, "stream query")
        return done

    def is_capturing(self) -> bool:
        return False  # CUDA graphs are not simulated

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimStream) and other.device_index == self.device_index

    def __hash__(self) -> int:
        return hash(self.device_index)


class SimDeviceContext:
    """``torch.cuda.device(i)``: makes ``i`` the current device inside the ``with`` block."""

    def __init__(self, device: Any) -> None:
        self.index = _index(device)
        self.previous: int | None = None

    def __enter__(self) -> SimDeviceContext:
        sim = _active()
        self.previous = sim.current_device
        if self.index >= 0:
            sim.set_device(self.index)
        return self

    def __exit__(self, *exc: Any) -> None:
        _active().set_device(self.previous)


class _StreamContext:
    def __init__(self, stream: SimStream | None) -> None:
        self.ctx = SimDeviceContext(stream.device_index if stream is not None else -1)

    def __enter__(self):
        return self.ctx.__enter__()

    def __exit__(self, *exc):
        self.ctx.__exit__(*exc)


def _index(device: Any) -> int:
    """The device index ``device`` means (-1: none); an index the simulation lacks is CUDA's own error."""
    if device is None:
        return -1
    sim = _active()
    if isinstance(device, int):
        index = device
    else:
        d = torch.device(device)
        if d.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {d}")
        index = sim.current_device if d.index is None else d.index
    if index >= 0:
        sim.check_device(torch.device("cuda", index))
    return index


def _unsupported(what: str, advice: str):
    def refuse(*args: Any, **kwargs: Any):
        raise SimulationUnsupported(f"{what} is not supported on the simulated GPUs. {advice}")
    return refuse


def _properties(sim, index: int) -> SimpleNamespace:
    p = sim.profile
    return SimpleNamespace(name=f"Simulated {p.name}", total_memory=p.memory_gib * 2**30, major=p.capability[0],
                           minor=p.capability[1], multi_processor_count=p.sms, is_integrated=False)


def stand_ins(sim) -> dict[str, Any]:
    """The attributes of ``torch.cuda`` replaced while ``sim`` is active."""

    def which(device: Any = None) -> int:
        return sim.current_device if device is None else _index(device)

    def synchronize(device: Any = None) -> None:
        sim.clocks.wait(which(device), "synchronize")

    def sleep(cycles: int) -> None:
        sim.clocks.launch(sim.current_device, cycles / sim.profile.clock_hz, "_sleep", "sleep")

    return {
        "is_available": lambda: True,
        "is_initialized": lambda: True,
        "is_current_stream_capturing": lambda: False,
        "init": lambda: None,
        "device_count": lambda: sim.n,
        "current_device": lambda: sim.current_device,
        "set_device": lambda device: sim.set_device(_index(device)),
        "device": SimDeviceContext,
        "device_of": lambda obj: SimDeviceContext(obj.get_device() if obj.is_cuda else -1),
        "synchronize": synchronize,
        "Event": SimEvent,
        "current_stream": lambda device=None: SimStream(which(device)),
        "default_stream": lambda device=None: SimStream(which(device)),
        "stream": _StreamContext,
        "Stream": _unsupported("torch.cuda.Stream (extra streams)", "The simulation has one queue per device; "
                               "use the default stream, or run on real GPUs."),
        "_sleep": sleep,
        "get_device_name": lambda device=None: _properties(sim, which(device)).name,
        "get_device_properties": lambda device=None: _properties(sim, which(device)),
        "get_device_capability": lambda device=None: sim.profile.capability,
        "manual_seed": lambda seed: None,
        "manual_seed_all": lambda seed: None,
        "memory_allocated": lambda device=None: 0,
        "max_memory_allocated": lambda device=None: 0,
        "reset_peak_memory_stats": lambda device=None: None,
        "empty_cache": lambda: None,
        "FloatTensor": _unsupported("torch.cuda.FloatTensor", "Use torch.randn(..., device='cuda:0') or .to(device)."),
    }


def accelerator_stand_ins(sim) -> dict[str, Any]:
    cuda = stand_ins(sim)
    return {
        "is_available": cuda["is_available"],
        "device_count": cuda["device_count"],
        "current_accelerator": lambda check_available=False: torch.device("cuda"),
        "current_device_index": cuda["current_device"],
        "set_device_index": cuda["set_device"],
        "synchronize": cuda["synchronize"],
        "current_stream": cuda["current_stream"],
    }
