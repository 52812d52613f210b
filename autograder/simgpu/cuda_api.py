"""Stand-ins for ``torch.cuda.*`` (and ``torch.accelerator.*``) while the simulation is active.

Only what the simulation can answer truthfully is provided; everything is restored on exit.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from .active import active_simulation as _active
from .placement import SimulationUnsupported
from .streams import SimEvent, SimStream, StreamContext, current_stream, default_stream, set_stream


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


_StreamContext = StreamContext  # torch.cuda.stream(s) (streams.py)


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
        "current_stream": current_stream,
        "default_stream": default_stream,
        "stream": _StreamContext,
        "StreamContext": StreamContext,
        "set_stream": set_stream,
        "Stream": SimStream,
        "ExternalStream": _unsupported("torch.cuda.ExternalStream", "Streams made outside PyTorch are not "
                                       "simulated; use torch.cuda.Stream(device=...), or run on real GPUs."),
        "_sleep": sleep,
        "get_device_name": lambda device=None: _properties(sim, which(device)).name,
        "get_device_properties": lambda device=None: _properties(sim, which(device)),
        "get_device_capability": lambda device=None: sim.profile.capability,
        "can_device_access_peer": lambda device, peer: _index(device) != _index(peer),  # NVLink or PCIe P2P
        "get_arch_list": lambda: ["sm_75", "sm_80", "sm_86", "sm_90"],  # what CUDA 12 wheels are built for
        "is_bf16_supported": lambda including_emulation=True: sim.profile.capability >= (8, 0) or including_emulation,
        "is_tf32_supported": lambda: sim.profile.capability >= (8, 0),
        **sim.rng.stand_ins(which, sim.n),
        **sim.memory.stand_ins(which, sim.profile.memory_gib * 2**30),
        "FloatTensor": _unsupported("torch.cuda.FloatTensor", "Use torch.randn(..., device='cuda:0') or .to(device)."),
    }


class SimNvtx:
    """``torch.cuda.nvtx``'s library: profiling ranges are no-ops on the simulated GPUs (as on real ones without a
    profiler attached), with NVTX's return values: push/pop give the zero-based depth, start a handle."""

    def __init__(self) -> None:
        self.depth, self.handles = 0, 0

    def rangePushA(self, msg: str) -> int:  # noqa: N802 - NVTX's own names
        self.depth += 1
        return self.depth - 1

    def rangePop(self) -> int:  # noqa: N802
        if self.depth == 0:
            return -1  # NVTX: no range to end
        self.depth -= 1
        return self.depth

    def rangeStartA(self, msg: str) -> int:  # noqa: N802
        self.handles += 1
        return self.handles

    def rangeEnd(self, range_id: int) -> None:  # noqa: N802
        return None

    def markA(self, msg: str) -> None:  # noqa: N802
        return None

    def deviceRangeStart(self, msg: str, stream: int = 0) -> object:  # noqa: N802
        return object()

    def deviceRangeEnd(self, range_handle: object, stream: int = 0) -> None:  # noqa: N802
        return None


def module_stand_ins(sim) -> list[tuple[Any, str, Any]]:
    """Stand-ins beyond torch.cuda's own attributes, as (module, attribute, value): NVTX, the same stand-ins under
    torch.cuda's submodules' names (torch.cuda.memory.memory_allocated ...), torch.backends, and a refusal with
    its reason for every callable the census (``census.py``) calls unsupported."""
    import importlib

    import torch.cuda.nvtx

    from . import census

    cuda = stand_ins(sim)
    patches: list[tuple[Any, str, Any]] = [(torch.cuda.nvtx, "_nvtx", SimNvtx()),
                                           (torch.backends.cuda, "is_built", lambda: True)]
    for entry in census.ENTRIES:
        module_name, _, attribute = entry.name.rpartition(".")
        if entry.status == census.S and module_name.startswith("torch.cuda.") and attribute in cuda:
            patches.append((importlib.import_module(module_name), attribute, cuda[attribute]))
    for module_name, attribute, reason in census.unsupported_attributes():
        module = torch.backends.cudnn if module_name == "torch.backends.cudnn" else importlib.import_module(module_name)
        patches.append((module, attribute, _unsupported(f"{module_name}.{attribute}", reason[0].upper() + reason[1:])))
    return patches


def accelerator_stand_ins(sim) -> dict[str, Any]:
    cuda = stand_ins(sim)
    return {
        "current_device_idx": cuda["current_device"],
        "set_device_idx": cuda["set_device"],
        "device_index": SimDeviceContext,
        "set_stream": cuda["set_stream"],
        **{name: cuda[name] for name in ("memory_allocated", "max_memory_allocated", "memory_reserved",
                                         "max_memory_reserved", "memory_stats", "reset_accumulated_memory_stats",
                                         "reset_peak_memory_stats", "empty_cache")},
        "get_memory_info": cuda["mem_get_info"],
        "is_available": cuda["is_available"],
        "device_count": cuda["device_count"],
        "current_accelerator": lambda check_available=False: torch.device("cuda"),
        "current_device_index": cuda["current_device"],
        "set_device_index": cuda["set_device"],
        "synchronize": cuda["synchronize"],
        "current_stream": cuda["current_stream"],
    }
