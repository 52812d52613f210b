"""Which simulation, if any, is active in this thread (the stand-ins in ``cuda_api`` and ``busy`` ask here)."""

from __future__ import annotations

import threading
from typing import Any

_state = threading.local()


def active_simulation() -> Any:
    """The ``Simulation`` active in this thread, or a RuntimeError that says how to start one."""
    sim = getattr(_state, "sim", None)
    if sim is None:
        raise RuntimeError("No simulated GPUs are active: use `with autograder.simulated_gpus(2): ...`.")
    return sim


def simulation_active() -> bool:
    return getattr(_state, "sim", None) is not None


def set_active(sim: Any) -> None:
    """Make ``sim`` (or None) this thread's simulation; only ``simulated_gpus`` calls this."""
    _state.sim = sim
