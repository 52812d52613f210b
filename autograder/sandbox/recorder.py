"""What the graders observe on real GPUs: the same transfer and sync log the simulation keeps.

    with CudaRecorder() as log:          # one per probe (worker.serve); the simulation's clocks play this part there
        ...student code...
    log.transfers, log.syncs             # simgpu.clock.Transfer / Sync, in one order (log.next_seq())

On real CUDA devices every way the host can wait for a device is watched (CUDA's and PyTorch's documented
behaviour, checked against their source): ``torch.cuda.synchronize``, ``torch.accelerator.synchronize``,
``Stream.synchronize`` (``current_stream().synchronize()``), ``Event.synchronize``, an ``Event.query()`` or
``Stream.query()`` that answers True (the end of a polling loop), reading a CUDA tensor's value on the host
(``.item()``, ``float()``, ``int()``, ``bool()``, ``.tolist()``, printing, ``nonzero``, ``torch.equal`` ...), and
blocking copies both ways (``memcpy_and_sync`` in ATen's Copy.cu: a copy with ``non_blocking=False`` waits for the
device's stream, host-to-device included; a copy between GPUs never makes the host wait). Values and timing are
untouched; the log only chooses the graders' messages, never their verdicts.

The wrappers over the CUDA API are installed once per process and stay (``watch``): a function the submission bound
at import (``from torch.cuda import synchronize``) is the wrapper, and it logs to whichever recorder is active - the
current probe's, not the first one's. ``CudaApi`` names what is watched, so tests give stand-ins for ``torch.cuda``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..simgpu.clock import Sync, Transfer

Tensor = torch.Tensor
_MOVES = (Tensor.to, Tensor.cuda, Tensor.cpu)
# Reading a device tensor's value on the host: each waits for the device's stream (a device-to-host copy inside).
_HOST_READS = (Tensor.item, Tensor.tolist, Tensor.__repr__, Tensor.__format__, Tensor.__float__, Tensor.__int__,
               Tensor.__bool__, Tensor.__index__, Tensor.__complex__, Tensor.nonzero, torch.nonzero, Tensor.equal,
               torch.equal, Tensor.allclose, torch.allclose)
_FROM_HOST = (torch.tensor, torch.as_tensor)  # Python data (or a CPU tensor) made into a device tensor: a blocking copy


@dataclass(frozen=True)
class CudaApi:
    """The CUDA API the recorder watches: ``cuda`` (``torch.cuda``: synchronize, current_device, Event, Stream) and
    ``accelerator`` (``torch.accelerator``, or None where torch has none). Tests pass stand-ins."""

    cuda: Any
    accelerator: Any = None


TORCH = CudaApi(torch.cuda, getattr(torch, "accelerator", None))


class _Watch:
    """The wrappers over one ``CudaApi``'s host waits; they log to ``active`` (the recorder of the running probe)."""

    def __init__(self, api: CudaApi) -> None:
        self.api, self.active = api, None
        self.saved: list[tuple[Any, str, Any]] = []
        cuda = api.cuda
        self._wrap(cuda, "synchronize", lambda sync: self._device_wait(sync, "synchronize", cuda.current_device))
        self._wrap(cuda.Event, "synchronize", lambda sync: self._object_wait(sync, "event"))
        self._wrap(cuda.Event, "query", lambda query: self._object_query(query, "event query"))
        self._wrap(cuda.Stream, "synchronize", lambda sync: self._object_wait(sync, "stream"))
        self._wrap(cuda.Stream, "query", lambda query: self._object_query(query, "stream query"))
        accelerator = api.accelerator
        if accelerator is not None and hasattr(accelerator, "synchronize"):
            current = getattr(accelerator, "current_device_index", cuda.current_device)
            self._wrap(accelerator, "synchronize", lambda sync: self._device_wait(sync, "synchronize", current))

    def _wrap(self, owner: Any, name: str, make: Any) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        setattr(owner, name, functools.wraps(original)(make(original)))
        self.saved.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        self.saved.clear()

    def log(self, index: int | None, reason: str) -> None:
        if self.active is not None and index is not None:
            self.active.syncs.append(Sync(self.active.next_seq(), f"cuda:{index}", reason, perf_counter()))

    def _device_wait(self, sync: Any, reason: str, current: Any) -> Any:
        def wait_for_device(device: Any = None) -> None:
            sync(device)
            self.log(_index(device, current), reason)

        return wait_for_device

    def _object_wait(self, sync: Any, reason: str) -> Any:
        def wait_for(obj: Any) -> None:
            sync(obj)
            self.log(_device_index(obj), reason)  # an event never recorded waits for nothing (its device is None)

        return wait_for

    def _object_query(self, query: Any, reason: str) -> Any:
        def query_and_log(obj: Any) -> bool:
            done = query(obj)
            if done:  # the host now knows the device got there: a polling loop ends with one wait
                self.log(_device_index(obj), reason)
            return done

        return query_and_log


_WATCHES: dict[int, _Watch] = {}


def watch(api: CudaApi = TORCH) -> _Watch:
    """The wrappers over ``api``'s host waits, installed on first use and kept for the life of the process."""
    if id(api) not in _WATCHES:
        _WATCHES[id(api)] = _Watch(api)
    return _WATCHES[id(api)]


def unwatch(api: CudaApi) -> None:
    """Put ``api`` back as it was (tests; the submission's process never does this)."""
    found = _WATCHES.pop(id(api), None)
    if found is not None:
        found.restore()


def _index(device: Any, current: Any) -> int:
    """The device index ``device`` means; None, ``"cuda"`` -> the current device."""
    if device is None:
        return int(current())
    if isinstance(device, int):
        return device
    index = torch.device(device).index
    return int(current()) if index is None else index


def _device_index(obj: Any) -> int | None:
    device = getattr(obj, "device", None)
    return None if device is None else getattr(device, "index", device)


class CudaRecorder(TorchFunctionMode):
    """Logs transfers and host waits on real GPUs (values and timing are untouched)."""

    def __init__(self, api: CudaApi = TORCH) -> None:
        super().__init__()
        self.api = api
        self.transfers: list[Transfer] = []
        self.syncs: list[Sync] = []
        self._seq = itertools.count()
        self._previous: CudaRecorder | None = None

    def next_seq(self) -> int:
        return next(self._seq)

    def __enter__(self):
        hooks = watch(self.api)
        self._previous, hooks.active = hooks.active, self
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        watch(self.api).active = self._previous
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _MOVES and isinstance(out, Tensor) and out is not args[0]:
            self._moved(args[0].device, out.device, out.nbytes, _non_blocking(func, args, kwargs))
        elif func is Tensor.copy_ and isinstance(args[1], Tensor) and args[0].device != args[1].device:
            self._moved(args[1].device, args[0].device, args[0].nbytes, _non_blocking(func, args, kwargs))
        elif func in _HOST_READS:
            device = next((a.device for a in args[:2] if isinstance(a, Tensor) and a.device.type == "cuda"), None)
            if device is not None:
                self.syncs.append(Sync(self.next_seq(), str(device), "item", perf_counter()))
        elif func in _FROM_HOST and isinstance(out, Tensor) and out.device.type == "cuda":
            source = args[0] if args and isinstance(args[0], Tensor) else None
            if source is None or source.device != out.device:
                self._moved(torch.device("cpu") if source is None else source.device, out.device, out.nbytes, False)
        return out

    def _moved(self, src: torch.device, dst: torch.device, nbytes: int, non_blocking: bool) -> None:
        if src == dst:
            return
        via_host = src.type == "cpu" or dst.type == "cpu"
        self.transfers.append(Transfer(self.next_seq(), str(src), str(dst), nbytes, via_host))
        if via_host and not non_blocking:  # ATen's memcpy_and_sync: the host waits for the device's stream
            device, reason = (src, "copy to host") if dst.type == "cpu" else (dst, "copy from host")
            self.syncs.append(Sync(self.next_seq(), str(device), reason, perf_counter()))


def _non_blocking(func: Any, args: tuple, kwargs: dict) -> bool:
    """The ``non_blocking`` a move was called with: a keyword, or positional (``cuda(device, non_blocking)``,
    ``copy_(src, non_blocking)``, and ``to(..., non_blocking, copy)``'s first bool)."""
    if "non_blocking" in kwargs:
        return bool(kwargs["non_blocking"])
    if func in (Tensor.cuda, Tensor.copy_):
        return len(args) > 2 and bool(args[2])
    flags = [a for a in args[1:] if isinstance(a, bool)]
    return bool(flags and flags[0])
