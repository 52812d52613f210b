"""Simulated CUDA devices on a CPU-only PyTorch (see ``simulation.py``)."""

from .clock import DeviceClocks, Interval, Sync, Transfer
from .placement import SimulationUnsupported, device_of
from .simulation import Simulation, active_simulation, simulated_gpus

__all__ = ["DeviceClocks", "Interval", "Simulation", "SimulationUnsupported", "Sync", "Transfer",
           "active_simulation", "device_of", "simulated_gpus"]
