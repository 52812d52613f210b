"""Where a tensor "lives" on the simulated GPUs: a tag on its storage.

Real placement belongs to the storage, so the tag goes there too: views, ``.detach()``, ``.data``,
``nn.Parameter(t)`` and ``state_dict()`` share the storage and therefore the device, as on real GPUs.
"""

from __future__ import annotations

import torch

from .active import _state

_TAG = "_simulated_device"
CPU = torch.device("cpu")


class SimulationUnsupported(NotImplementedError):
    """Raised for what the simulated GPUs cannot do faithfully (instead of a silent wrong answer)."""


def device_of(t: torch.Tensor) -> torch.device:
    """The device ``t`` would be on with real GPUs (``cpu`` when untagged)."""
    try:
        return getattr(t.untyped_storage(), _TAG, CPU)
    except (RuntimeError, NotImplementedError):  # no storage (sparse, meta, ...): real placement
        return t.device


def place(t: torch.Tensor, device: torch.device) -> None:
    """Tag ``t``'s storage with ``device`` (a ``cuda`` device; ``cpu`` removes the tag)."""
    storage = t.untyped_storage()
    old = getattr(storage, _TAG, None)
    if device.type == "cpu":
        if old is not None:
            delattr(storage, _TAG)
    else:
        setattr(storage, _TAG, device)
    memory = getattr(getattr(_state, "sim", None), "memory", None)  # memory.py: the live bytes per device
    if memory is not None and old != device and (old is not None or device.type == "cuda"):
        memory.moved(storage, storage._cdata, None if old is None else old.index,
                     device.index if device.type == "cuda" else None)


def storage_key(t: torch.Tensor) -> int:
    """Which storage ``t`` views: the storage object's own address (``data_ptr`` is 0 for every empty one)."""
    return t.untyped_storage()._cdata
