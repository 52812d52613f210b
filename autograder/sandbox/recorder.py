"""What the graders observe on real GPUs: the same transfer and sync log the simulation keeps.

On simulated GPUs ``Simulation.clocks`` is the log. On real CUDA devices ``CudaRecorder`` fills a log of
the same shape by watching ``.to()/.cuda()/.cpu()/copy_`` and every way the host can wait for a device.
"""

from __future__ import annotations

import itertools
from time import perf_counter
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..simgpu.clock import Sync, Transfer

Tensor = torch.Tensor


class CudaRecorder(TorchFunctionMode):
    """Logs transfers and host waits on real GPUs (values and timing are untouched)."""

    def __init__(self) -> None:
        super().__init__()
        self.transfers: list[Transfer] = []
        self.syncs: list[Sync] = []
        self._seq = itertools.count()
        self._saved: list[tuple[Any, str, Any]] = []

    def next_seq(self) -> int:
        return next(self._seq)

    def log_sync(self, device: Any, reason: str) -> None:
        index = torch.cuda._utils._get_device_index(device, optional=True)  # None -> the current device
        self.syncs.append(Sync(self.next_seq(), f"cuda:{index}", reason, perf_counter()))

    def __enter__(self):
        recorder = self
        synchronize, event_sync = torch.cuda.synchronize, torch.cuda.Event.synchronize

        def logged_synchronize(device: Any = None) -> None:
            synchronize(device)
            recorder.log_sync(device, "synchronize")

        def logged_event_sync(event) -> None:
            event_sync(event)
            recorder.syncs.append(Sync(recorder.next_seq(), f"cuda:{event.device.index}", "event", perf_counter()))

        self._saved = [(torch.cuda, "synchronize", synchronize), (torch.cuda.Event, "synchronize", event_sync)]
        torch.cuda.synchronize = logged_synchronize
        torch.cuda.Event.synchronize = logged_event_sync
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for obj, name, value in self._saved:
            setattr(obj, name, value)
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in (Tensor.to, Tensor.cuda, Tensor.cpu) and isinstance(out, Tensor) and out is not args[0]:
            self._moved(args[0].device, out.device, out.nbytes)
        elif func is Tensor.copy_ and args[0].device != args[1].device:
            self._moved(args[1].device, args[0].device, args[0].nbytes)
        elif func in (Tensor.item, Tensor.tolist, Tensor.__repr__) and args[0].is_cuda:
            self.syncs.append(Sync(self.next_seq(), str(args[0].device), "item", perf_counter()))
        return out

    def _moved(self, src: torch.device, dst: torch.device, nbytes: int) -> None:
        if src != dst:
            self.transfers.append(Transfer(self.next_seq(), str(src), str(dst), nbytes,
                                           src.type == "cpu" or dst.type == "cpu"))
            if dst.type == "cpu":
                self.syncs.append(Sync(self.next_seq(), str(src), "copy to host", perf_counter()))
