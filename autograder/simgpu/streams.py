"""CUDA streams and events on the simulated GPUs: ``torch.cuda.Stream``, ``Event``, ``torch.cuda.stream(s)``.

    s1 = torch.cuda.Stream(device="cuda:1")
    with torch.cuda.stream(s1):          # cuda:1 becomes the current device, s1 its current stream
        s1.wait_event(ready)             # ... after what `ready` marks (recorded on any stream, any device)
        y = layer2(h.to("cuda:1"))       # the copy and layer2 queue on s1, beside cuda:1's default stream
    torch.cuda.current_stream("cuda:1").wait_stream(s1)

The queues themselves are the clock's (``clock.py``: one per (device, stream), a current stream per device). What
PyTorch does is followed line by line (``torch/cuda/streams.py``, ``torch/cuda/__init__.py``'s ``StreamContext`` and
``set_stream``, whose C++ side also makes the stream's device current): an event records the point its stream's queue
has reached; waiting on it holds back a stream (not the host); ``synchronize``/``query`` are the host's.
"""

from __future__ import annotations

from typing import Any

import torch

from .active import active_simulation as _active
from .clock import NS
from .placement import SimulationUnsupported

_CUDA = 1  # c10's DeviceType::CUDA
_HANDLE_BASE = 0x7F0000000000  # what `cuda_stream` reports for a stream the student made (0: the default stream)


def _device_index(device: Any) -> int:
    """``None`` -> the current device; ``1``/``"cuda:1"``/``torch.device`` -> its index (CUDA's error if absent)."""
    sim = _active()
    if device is None:
        return sim.current_device
    d = sim.canonical(device)
    if d.type != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {d}")
    return d.index


class SimStream(torch.Stream):
    """``torch.cuda.Stream``: one queue of a simulated device. ``Stream()`` makes a new one on the current device;
    ``current_stream``/``default_stream`` hand out the existing ones (equal, as PyTorch's are, when they are the
    same queue). A ``torch.Stream`` underneath (never used by a kernel): ATen's argument parser then accepts it
    where PyTorch takes a stream, e.g. ``Tensor.record_stream(s)``."""

    def __new__(cls, device: Any = None, priority: int = 0, **kwargs: Any) -> SimStream:
        if kwargs.get("stream_ptr") is not None or kwargs.get("stream_id") is not None:
            raise SimulationUnsupported("torch.cuda.Stream from a raw CUDA stream handle is not simulated; "
                                        "create streams with torch.cuda.Stream(device=...), or run on real GPUs.")
        index = _device_index(device)
        stream = cls._existing(index, _active().clocks.new_stream(index))
        stream.priority = priority
        return stream

    def __init__(self, device: Any = None, priority: int = 0, **kwargs: Any) -> None:
        pass  # made in __new__

    @classmethod
    def _existing(cls, index: int, stream_id: int) -> SimStream:
        stream = torch.Stream.__new__(cls, stream_id=stream_id, device_index=index, device_type=_CUDA)
        stream.priority = 0
        return stream

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.device_index)

    @property
    def cuda_stream(self) -> int:
        return 0 if self.stream_id == 0 else _HANDLE_BASE + self.stream_id * 0x100

    @staticmethod
    def priority_range() -> tuple[int, int]:
        return (0, -5)  # (lowest, highest) on CUDA 12 GPUs; priorities do not change the simulated order

    def _ready(self) -> int:
        return _active().clocks.stream_ready(self.device_index, self.stream_id)

    def wait_event(self, event: SimEvent) -> None:
        """Later work on this stream starts after the event's point (the host does not wait)."""
        event.wait(self)

    def wait_stream(self, stream: SimStream) -> None:
        """Later work on this stream starts after what is queued on ``stream`` now (any device)."""
        self.wait_event(stream.record_event())

    def record_event(self, event: SimEvent | None = None) -> SimEvent:
        event = event or SimEvent()
        event.record(self)
        return event

    def query(self) -> bool:
        clocks = _active().clocks
        ready = self._ready()
        done = clocks.done(ready)
        if done:  # the host learned the stream got there: a polling loop ends with one logged wait
            clocks.wait(self.device_index, "stream query", until_ns=ready)
        return done

    def synchronize(self) -> None:
        _active().clocks.wait(self.device_index, "stream", until_ns=self._ready())

    def is_capturing(self) -> bool:
        return False  # CUDA graphs are not simulated

    @property
    def native_handle(self) -> int:
        return self.cuda_stream

    def __enter__(self) -> SimStream:  # torch.Stream is a context manager too (`with s:` = torch.cuda.stream(s))
        self._contexts = [*getattr(self, "_contexts", []), StreamContext(self)]
        self._contexts[-1].__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._contexts.pop().__exit__(*exc)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SimStream) and other.device_index == self.device_index
                and other.stream_id == self.stream_id)

    def __hash__(self) -> int:
        return hash((self.device_index, self.stream_id))

    def __repr__(self) -> str:
        return f"<torch.cuda.Stream device=cuda:{self.device_index} cuda_stream={self.cuda_stream:#x}>"


class SimEvent:
    """``torch.cuda.Event``: marks the moment a stream's queue reaches the point where it was recorded."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False,
                 external: bool = False) -> None:
        if interprocess:
            raise SimulationUnsupported("torch.cuda.Event(interprocess=True) is not simulated; run on real GPUs.")
        self.enable_timing = enable_timing
        self.device: int | None = None
        self.time: int | None = None  # virtual ns at which the stream's queue reaches the event

    def record(self, stream: SimStream | None = None) -> None:
        stream = stream or current_stream()
        clocks = _active().clocks
        self.device = stream.device_index
        self.time = max(clocks.now_ns, clocks.stream_ready(stream.device_index, stream.stream_id))

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

    def wait(self, stream: SimStream | None = None) -> None:
        """``stream`` (default: the current one) runs its later work only after this event's point."""
        stream = stream or current_stream()
        if self.time is not None:  # an event never recorded: CUDA's wait returns at once
            _active().clocks.wait_until(stream.device_index, stream.stream_id, self.time)

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

    def ipc_handle(self) -> Any:
        raise SimulationUnsupported("torch.cuda.Event.ipc_handle is not simulated; run on real GPUs.")


def current_stream(device: Any = None) -> SimStream:
    """``torch.cuda.current_stream(device)``: the current stream of ``device`` (default: the current device)."""
    index = _device_index(device)
    return SimStream._existing(index, _active().clocks.current[index])


def default_stream(device: Any = None) -> SimStream:
    return SimStream._existing(_device_index(device), 0)


def set_stream(stream: SimStream | None) -> None:
    """``torch.cuda.set_stream``: the stream's device becomes current, the stream its current stream."""
    if stream is None:
        return
    sim = _active()
    sim.set_device(stream.device_index)
    sim.clocks.current[stream.device_index] = stream.stream_id


class StreamContext:
    """``torch.cuda.stream(s)`` / ``torch.cuda.StreamContext(s)``: ``s`` is its device's current stream, and its
    device the current device, inside the block; both come back on exit (PyTorch's ``StreamContext``)."""

    def __init__(self, stream: SimStream | None) -> None:
        self.stream = stream
        self.src_prev: SimStream | None = None
        self.dst_prev: SimStream | None = None

    def __enter__(self) -> None:
        if self.stream is None:
            return
        self.src_prev = current_stream()
        if self.src_prev.device_index != self.stream.device_index:
            self.dst_prev = current_stream(self.stream.device_index)
        set_stream(self.stream)

    def __exit__(self, *exc: Any) -> None:
        if self.stream is None:
            return
        if self.dst_prev is not None:
            set_stream(self.dst_prev)
        set_stream(self.src_prev)
