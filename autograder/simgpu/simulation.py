"""``simulated_gpus(n)``: run code written for ``cuda:0 .. cuda:n-1`` on the CPU, faithfully.

    with simulated_gpus(2, gpu="a100") as sim:
        model = SimpleMPModel("cuda:0", "cuda:1")   # unchanged student code
        out = model(torch.randn(32, 1000))
    sim.clocks.transfers   # [Transfer(src='cpu', dst='cuda:0', ...), Transfer(src='cuda:0', dst='cuda:1', ...)]

Time is virtual (``clock.py``, ``virtual_time.py``): device time comes from the named GPU's cost model
(``profiles.py``), the host's clocks read the simulation's time, and nothing sleeps for real, so the same program
gives the same times on any machine under any load. Leaving the block restores ``torch``, ``time``, ``timeit``
and ``datetime`` exactly. The simulation is thread-local (like any TorchFunctionMode): other threads, e.g.
DataLoader workers, see plain CPU tensors and real clocks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

from . import cuda_api
from .active import active_simulation, set_active, simulation_active
from .clock import DeviceClocks
from .memory import MemoryLedger
from .mode import DeviceAccounting, SimulatedCudaMode
from .placement import SimulationUnsupported
from .profiles import DEFAULT_GPU, GpuProfile, gpu_profile
from .rng import DeviceGenerators
from .virtual_time import virtual_host_clock

_PATCH_LOCK = threading.Lock()
__all__ = ["Simulation", "active_simulation", "simulated_gpus", "simulation_active"]


class Simulation:
    """The simulated devices: how many, which one is current, their clocks and logs."""

    def __init__(self, n: int, gpu: str | GpuProfile = DEFAULT_GPU) -> None:
        if n < 1:
            raise ValueError(f"simulated_gpus(n) needs n >= 1, got {n}")
        self.n, self.profile = n, gpu_profile(gpu)
        self.current_device = 0
        self.clocks = DeviceClocks(n, self.profile)
        self.rng = DeviceGenerators(n)  # one generator per device, as torch.cuda.default_generators
        self.memory = MemoryLedger(n)  # the live tensors' bytes per device (memory_allocated ...)
        self.mode = SimulatedCudaMode(self)

    @property
    def transfers(self):
        return self.clocks.transfers

    @property
    def syncs(self):
        return self.clocks.syncs

    @property
    def intervals(self):
        return self.clocks.intervals

    def canonical(self, device: Any) -> torch.device:
        """``"cuda"`` -> ``cuda:<current>``, ``1`` -> ``cuda:1``; checks the index exists."""
        d = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        if d.type == "cuda":
            d = torch.device("cuda", self.current_device if d.index is None else d.index)
        self.check_device(d)
        return d

    def check_device(self, d: torch.device) -> None:
        if d.type == "cuda" and not 0 <= d.index < self.n:
            raise RuntimeError(f"CUDA error: invalid device ordinal ({d} requested; {self.n} simulated GPUs "
                               f"are cuda:0..cuda:{self.n - 1})")
        if d.type not in ("cpu", "cuda"):
            raise SimulationUnsupported(f"device {d}: only 'cpu' and 'cuda' devices are simulated")

    def set_device(self, index: int) -> None:
        self.check_device(torch.device("cuda", index))
        self.current_device = index

    def reset(self) -> None:
        """Fresh queues and logs, current device back to cuda:0 (between independent runs). The host's time goes
        on from where the devices finished what was queued: no clock or event runs backwards."""
        self.clocks = self.clocks.restarted()
        self.current_device = 0



def _refuse_compile(*args: Any, **kwargs: Any):
    raise SimulationUnsupported("torch.compile cannot run on the simulated GPUs (its compiler asks CUDA itself). "
                                "Run the model eagerly here, or compile on real GPUs.")


@contextlib.contextmanager
def simulated_gpus(n: int = 2, *, gpu: str | GpuProfile = DEFAULT_GPU) -> Iterator[Simulation]:
    """Simulate ``n`` CUDA devices on the CPU for the duration of the ``with`` block (see module docstring)."""
    if simulation_active():
        raise RuntimeError("simulated_gpus() is already active in this thread; nesting is not supported.")
    if not _PATCH_LOCK.acquire(blocking=False):
        raise RuntimeError("simulated_gpus() is active in another thread; torch.cuda can be simulated for one "
                           "thread at a time.")
    sim = Simulation(n, gpu)
    patches = [(torch.cuda, name, value) for name, value in cuda_api.stand_ins(sim).items()]
    patches += [(torch.accelerator, name, value) for name, value in cuda_api.accelerator_stand_ins(sim).items()]
    patches.append((torch, "compile", _refuse_compile))
    patches += cuda_api.module_stand_ins(sim)  # torch.cuda.nvtx ...
    saved = [(obj, name, obj.__dict__.get(name, _MISSING)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        set_active(sim)
        with virtual_host_clock(lambda: sim.clocks), sim.mode, DeviceAccounting(sim):
            yield sim
    finally:
        set_active(None)
        for obj, name, value in reversed(saved):
            if value is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        _PATCH_LOCK.release()


_MISSING = object()
