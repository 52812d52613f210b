"""Memory statistics of the simulated GPUs: ``torch.cuda.memory_allocated`` and friends follow the live tensors.

Every storage placed on a simulated device is counted there until it dies (or moves), rounded up to the CUDA
caching allocator's 512-byte blocks, which is what ``memory_allocated`` reports on real GPUs. Reserved memory
models the caching allocator's segments: it grows in 2 MiB steps with what is allocated and shrinks only at
``empty_cache()``. Exact on allocated bytes for the tensors a program holds; the allocator's finer rules (large
segments of 20 MiB, block splitting, workspace of cuBLAS) are not modelled.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

BLOCK = 512  # the caching allocator rounds every allocation up to this
SEGMENT = 2 * 2**20  # and reserves memory from the driver in steps of (at least) this


def _round(nbytes: int, step: int) -> int:
    return -(-nbytes // step) * step


class MemoryLedger:
    """Live bytes per simulated device (``placement.place`` reports every tag it sets or removes)."""

    def __init__(self, n: int) -> None:
        self.allocated = [0] * n
        self.peak = [0] * n
        self.reserved = [0] * n
        self.peak_reserved = [0] * n
        self.count = [0] * n
        self.allocs = [0] * n
        self.frees = [0] * n
        self.live: dict[int, tuple[int, int]] = {}  # storage key -> (device index, bytes)

    def moved(self, storage: Any, key: int, old: int | None, new: int | None) -> None:
        """The storage ``key`` left device ``old`` (None: the CPU) for ``new``."""
        if old is not None:
            self.release(key)
        if new is not None:
            size = _round(storage.nbytes(), BLOCK) if storage.nbytes() else 0
            self.live[key] = (new, size)
            self.allocated[new] += size
            self.count[new] += 1
            self.allocs[new] += 1
            self.peak[new] = max(self.peak[new], self.allocated[new])
            self.reserved[new] = max(self.reserved[new], _round(self.allocated[new], SEGMENT))
            self.peak_reserved[new] = max(self.peak_reserved[new], self.reserved[new])
            weakref.finalize(storage, self.release, key)

    def release(self, key: int) -> None:
        entry = self.live.pop(key, None)
        if entry is not None:
            index, size = entry
            self.allocated[index] -= size
            self.count[index] -= 1
            self.frees[index] += 1

    def reset_peak(self, index: int) -> None:
        self.peak[index] = self.allocated[index]
        self.peak_reserved[index] = self.reserved[index]

    def empty_cache(self) -> None:
        for i, allocated in enumerate(self.allocated):
            self.reserved[i] = _round(allocated, SEGMENT)

    def stats(self, index: int) -> OrderedDict:
        """``torch.cuda.memory_stats``: the keys programs read most, under their real names."""
        s = OrderedDict()
        for kind in ("all", "large_pool", "small_pool"):
            if kind != "all":
                continue
            for metric, current, peak in (("allocated_bytes", self.allocated[index], self.peak[index]),
                                          ("active_bytes", self.allocated[index], self.peak[index]),
                                          ("reserved_bytes", self.reserved[index], self.peak_reserved[index]),
                                          ("allocation", self.count[index], self.count[index]),
                                          ("active", self.count[index], self.count[index])):
                s[f"{metric}.{kind}.current"] = current
                s[f"{metric}.{kind}.peak"] = peak
            s[f"allocation.{kind}.allocated"] = self.allocs[index]
            s[f"allocation.{kind}.freed"] = self.frees[index]
        s["num_alloc_retries"] = 0
        s["num_ooms"] = 0
        return OrderedDict(sorted(s.items()))

    def stand_ins(self, which: Any, total_bytes: int) -> dict[str, Any]:
        """The ``torch.cuda`` memory functions; ``which(device)`` turns a device argument into an index."""

        def reset_peak(device: Any = None) -> None:
            self.reset_peak(which(device))

        return {
            "memory_allocated": lambda device=None: self.allocated[which(device)],
            "max_memory_allocated": lambda device=None: self.peak[which(device)],
            "memory_reserved": lambda device=None: self.reserved[which(device)],
            "max_memory_reserved": lambda device=None: self.peak_reserved[which(device)],
            "memory_cached": lambda device=None: self.reserved[which(device)],
            "max_memory_cached": lambda device=None: self.peak_reserved[which(device)],
            "reset_peak_memory_stats": reset_peak,
            "reset_max_memory_allocated": reset_peak,
            "reset_max_memory_cached": reset_peak,
            "reset_accumulated_memory_stats": lambda device=None: None,
            "memory_stats": lambda device=None: self.stats(which(device)),
            "memory_stats_as_nested_dict": lambda device=None: self.stats(which(device)),
            "mem_get_info": lambda device=None: (total_bytes - self.reserved[which(device)], total_bytes),
            "empty_cache": self.empty_cache,
            "memory_summary": lambda device=None, abbreviated=False: (
                f"simulated cuda:{which(device)}: {self.allocated[which(device)]} bytes allocated "
                f"(peak {self.peak[which(device)]}), {self.reserved[which(device)]} bytes reserved"),
        }
