"""Simulated CUDA devices on a CPU-only PyTorch (see ``simulation.py``).

The names below load lazily: ``profiles`` (the GPU table) is read by the grading process, which never imports
torch, while everything else here needs torch.
"""

from .profiles import DEFAULT_GPU, PROFILES, GpuProfile, gpu_profile

_LAZY = {"DeviceClocks": "clock", "Interval": "clock", "Sync": "clock", "Transfer": "clock",
         "SimulationUnsupported": "placement", "device_of": "placement", "Simulation": "simulation",
         "active_simulation": "simulation", "simulated_gpus": "simulation"}
__all__ = ["DEFAULT_GPU", "PROFILES", "GpuProfile", "gpu_profile", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
