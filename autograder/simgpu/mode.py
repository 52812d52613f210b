"""The TorchFunctionMode that makes CPU tensors behave as if they lived on simulated CUDA devices.

Every torch call made while the simulation is active passes through ``SimulatedCudaMode``. Values are
always computed on the CPU; the mode only (1) answers device questions from the storage tag, (2) strips
``device=`` from factory calls and tags the result, (3) turns ``.to()``/``.cuda()``/``.cpu()`` into a
differentiable copy that is recorded as a transfer, (4) raises PyTorch's own device-mismatch error where
real PyTorch raises it. ``DeviceAccounting``, a dispatch mode active for the whole simulation, sees every ATen
op - forward, backward and optimizer alike - places its new outputs on its inputs' device and charges it to that
device's queue at the GPU profile's cost (``cost.py``, ``clock.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from . import autocast, tf32
from .clock import DeviceClocks
from .cost import op_cost, op_name
from .placement import CPU, SimulationUnsupported, device_of, place, storage_key

Tensor = torch.Tensor
MISMATCH = "Expected all tensors to be on the same device, but found at least two devices, {} and {}!"


def _tensors(tree: Any) -> list[Tensor]:
    """The tensors in nested tuples, lists and dicts (op arguments and results): every op passes here twice, so
    a plain walk rather than pytree's general one."""
    found: list[Tensor] = []
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, Tensor):
            found.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    return found


def _is_inplace(func: Callable) -> bool:
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.startswith("__")


class SimulatedCudaMode(TorchFunctionMode):
    """See the module docstring. ``sim`` is the owning ``Simulation`` (devices, current device, clocks)."""

    def __init__(self, sim: Any) -> None:
        super().__init__()
        self.sim = sim
        self.printing = False  # the printer reads values after one sync; don't log each read as another
        self.handlers: dict[Any, Callable] = {
            Tensor.device.__get__: lambda f, a, k: device_of(a[0]),
            Tensor.is_cuda.__get__: lambda f, a, k: device_of(a[0]).type == "cuda",
            Tensor.is_cpu.__get__: lambda f, a, k: device_of(a[0]).type == "cpu",
            Tensor.get_device: lambda f, a, k: device_of(a[0]).index if device_of(a[0]).type == "cuda" else -1,
            Tensor.grad.__get__: self._grad,
            Tensor.to: self._to,
            Tensor.cuda: self._cuda,
            Tensor.cpu: lambda f, a, k: self._move(a[0], CPU),
            Tensor.copy_: self._copy_,
            Tensor.__repr__: self._repr,
            Tensor.numpy: self._refuse_numpy,
            Tensor.__array__: self._refuse_numpy,
            Tensor.backward: self._backward,
            torch.autograd.backward: self._backward,
            torch.autograd.grad: self._autograd_grad,
            Tensor.pin_memory: self._pin_memory,
            Tensor.is_pinned: lambda f, a, k: device_of(a[0]).type == "cpu" and _is_pinned(a[0]),
            Tensor.record_stream: lambda f, a, k: None,
            Tensor.type: self._type,
            Tensor.type_as: lambda f, a, k: self._to(Tensor.to, (a[0], a[1]), {}),  # ATen: self.to(other.options())
            # nn.Module.to parses its arguments with this: its device= keyword is a request, not a factory's
            # placement, so it must reach the parser unchanged (rewriting it left parameters on the CPU).
            torch._C._nn._parse_to: self._parse_to,
        }
        for host_read in (Tensor.item, Tensor.tolist, Tensor.__bool__, Tensor.__float__, Tensor.__int__,
                          Tensor.__index__, Tensor.__complex__):
            self.handlers[host_read] = self._host_read
        for sparse in (Tensor.to_sparse, Tensor.to_sparse_csr, Tensor.to_sparse_coo):
            self.handlers[sparse] = self._refuse_sparse
        # Ops that legitimately take tensors on different devices (CPU index tensors, cross-device copies).
        self.mixed_ok = {Tensor.__getitem__, Tensor.__setitem__, Tensor.index_put_, Tensor.index_put,
                         torch.index_put, Tensor.set_, torch._has_compatible_shallow_copy_type,
                         Tensor.is_set_to, torch.is_same_size}
        self.index_ops = {Tensor.__getitem__, Tensor.__setitem__, Tensor.index_put_, Tensor.index_put, torch.index_put}

    @property
    def clocks(self) -> DeviceClocks:
        return self.sim.clocks

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self.handlers.get(func)
        if handler is not None:
            return handler(func, args, kwargs)
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__", "__delete__"):
            return func(*args, **kwargs)  # attribute access: shape, dtype, data, requires_grad ...
        if name.startswith("_foreach_"):
            return self._foreach(func, args, kwargs)
        if autocast.enabled():  # torch.autocast("cuda"): CUDA's op lists and dtypes (autocast.py)
            return autocast.run(self, func, args, kwargs)
        return self._run(func, args, kwargs)

    def _run(self, func, args, kwargs):
        if kwargs.get("pin_memory"):  # a factory making page-locked host memory: made, then marked pinned
            out = self._run(func, args, {**kwargs, "pin_memory": False})
            _mark_pinned(out)
            return out
        tensors = _tensors((args, kwargs))
        requested = kwargs.get("device")
        if requested is not None:
            target = self.sim.canonical(requested)
            if target.type == "cuda":
                kwargs = {**kwargs, "device": CPU}
        else:
            target = self._common_device(func, tensors)
        if target.type != "cuda":
            return func(*args, **kwargs)
        _FACTORY_DEVICE.append(target.index if requested is not None else None)
        try:
            out = func(*args, **kwargs)  # DeviceAccounting places and charges its ATen ops, unless paused
        finally:
            _FACTORY_DEVICE.pop()
        if requested is not None:  # a factory: made on the host here (no device input to follow), on the GPU there
            if _place_new(target, tensors, out):
                self.clocks.kernel(target.index, 0, sum(t.nbytes for t in _tensors(out)), _name(func))
        else:  # also what ATen made without a GPU input to follow (e.g. a composite's fresh zeros): on the GPU
            _place_new(target, tensors, out, untagged_only=not _ACCOUNTING_PAUSED[0])
        return out

    def _common_device(self, func, tensors: list[Tensor]) -> torch.device:
        found: list[torch.device] = []
        for t in tensors:
            d = device_of(t)
            if d.type == "cpu" and t.dim() == 0:
                continue  # CPU scalars mix with CUDA tensors on real GPUs too
            if d not in found:
                found.append(d)
        if len(found) > 1 and func in self.mixed_ok:  # CPU index tensors mix; two different GPUs never do
            gpus = [d for d in found if d.type == "cuda"]
            if len(gpus) > 1 and func in self.index_ops:
                raise RuntimeError(MISMATCH.format(gpus[0], gpus[1]))
        elif len(found) > 1:
            raise RuntimeError(MISMATCH.format(found[0], found[1]))
        return found[0] if found else CPU

    def _foreach(self, func, args, kwargs):
        """``torch._foreach_*`` (optimizers): position i of every list must agree (DeviceAccounting charges)."""
        lists = [a for a in args if isinstance(a, (list, tuple)) and a and isinstance(a[0], Tensor)]
        devices = [self._common_device(func, [lst[i] for lst in lists]) for i in range(len(lists[0]))]
        out = func(*args, **kwargs)
        if isinstance(out, (list, tuple)):
            for t, d in zip(out, devices, strict=False):
                place(t, d)
        return out

    # ------------------------------------------------------------------ moves
    def _to(self, func, args, kwargs):
        t, rest = args[0], args[1:]
        kwargs = dict(kwargs)
        copy = kwargs.pop("copy", False)
        # copy= may come positionally too: to(dtype, non_blocking, copy), to(other, ...), to(device, dtype, ...)
        at = 3 if rest and not isinstance(rest[0], (torch.dtype, Tensor)) else 2
        if len(rest) > at and isinstance(rest[at], bool):
            copy, rest = rest[at], rest[:at] + rest[at + 1:]
        if rest and isinstance(rest[0], Tensor):
            dst, dtype = device_of(rest[0]), rest[0].dtype
            non_blocking = kwargs.get("non_blocking", rest[1] if len(rest) > 1 else False)
            memory_format = None
        else:
            if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool):  # .to(1) means cuda:1
                rest = (torch.device("cuda", rest[0]), *rest[1:])
            if isinstance(kwargs.get("device"), int):
                kwargs["device"] = torch.device("cuda", kwargs["device"])
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*rest, **kwargs)
            dst = device_of(t) if device is None else self.sim.canonical(device)
        src = device_of(t)
        if dst == src:
            out = t.to(dtype=dtype or t.dtype, memory_format=memory_format or torch.preserve_format, copy=copy)
            if out is not t:
                place(out, dst)
            return out
        return self._move(t, dst, dtype, non_blocking)

    def _parse_to(self, func, args, kwargs):
        """The parser nn.Module.to calls; a bare index means a CUDA device, as on a machine with GPUs."""
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            args = (torch.device("cuda", args[0]), *args[1:])
        if isinstance(kwargs.get("device"), int):
            kwargs = {**kwargs, "device": torch.device("cuda", kwargs["device"])}
        if args and isinstance(args[0], Tensor):  # .to(other): other's device and dtype
            _, _, non_blocking, memory_format = func(*args, **kwargs)
            return device_of(args[0]), args[0].dtype, non_blocking, memory_format
        return func(*args, **kwargs)

    def _cuda(self, func, args, kwargs):
        device = kwargs.get("device", args[1] if len(args) > 1 else None)
        if device is None:
            dst = torch.device("cuda", self.sim.current_device)
        elif isinstance(device, int):
            dst = torch.device("cuda", device)
        else:
            dst = self.sim.canonical(device)
        if dst == device_of(args[0]):
            return args[0]
        return self._move(args[0], dst)

    def _move(self, t: Tensor, dst: torch.device, dtype: torch.dtype | None = None,
              non_blocking: bool = False) -> Tensor:
        """A real, differentiable copy to ``dst``, recorded and charged like the CUDA copy it stands for."""
        src = device_of(t)
        if src == dst:
            return t
        self.sim.check_device(dst)
        out = _DeviceCopy.apply(t, src, dst, dtype or t.dtype, self.sim)
        self.clocks.copy(str(src), str(dst), out.nbytes)
        return out

    def _copy_(self, func, args, kwargs):
        dst_t, src_t = args[0], args[1]
        src, dst = device_of(src_t), device_of(dst_t)
        if src == dst:
            return self._run(func, args, kwargs)
        with _paused_accounting():
            out = func(*args, **kwargs)  # dst keeps its storage, hence its device
        self.clocks.copy(str(src), str(dst), dst_t.nbytes)
        return out

    # ------------------------------------------------------------------ host reads and printing
    def _host_read(self, func, args, kwargs):
        d = device_of(args[0])
        if d.type == "cuda" and not self.printing:
            self.clocks.wait(d.index, _name(func))
        return func(*args, **kwargs)

    def _repr(self, func, args, kwargs):
        t = args[0]
        d = device_of(t)
        if d.type == "cuda":
            self.clocks.wait(d.index, "print")
        # Format with this mode on again, so PyTorch's own printer sees the simulated device and writes
        # "device='cuda:1'" exactly where it would on real GPUs.
        self.printing = True
        try:
            with self, _paused_accounting():
                return torch._tensor_str._str(t, **kwargs)
        finally:
            self.printing = False

    def _grad(self, func, args, kwargs):
        grad = func(*args, **kwargs)
        if grad is not None and device_of(grad) != device_of(args[0]):
            place(grad, device_of(args[0]))  # autograd accumulates a parameter's grad on its device
        return grad

    def _backward(self, func, args, kwargs):
        return func(*args, **kwargs)  # autograd's ops pass through DeviceAccounting like any other

    def _autograd_grad(self, func, args, kwargs):
        """A gradient lives on its input's device, also where a backward formula made it with a fresh factory
        (which DeviceAccounting sees without a GPU input to follow)."""
        grads = func(*args, **kwargs)
        inputs = kwargs.get("inputs", args[1] if len(args) > 1 else ())
        inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        for t, g in zip(inputs, grads, strict=False):
            if g is not None and g.layout == torch.strided and device_of(g) != device_of(t):
                place(g, device_of(t))
        return grads

    def _pin_memory(self, func, args, kwargs):
        """A page-locked copy of a CPU tensor (itself if pinned already); a GPU tensor cannot be pinned."""
        t = args[0]
        if device_of(t).type != "cpu":
            raise RuntimeError(f"cannot pin '{t.type().replace('torch.', 'torch.cuda.')}' only dense CPU tensors "
                               "can be pinned")
        if _is_pinned(t):
            return t
        out = t.clone()
        _mark_pinned(out)
        return out

    # ------------------------------------------------------------------ refusals
    def _refuse_numpy(self, func, args, kwargs):
        d = device_of(args[0])
        if d.type == "cuda":
            raise TypeError(f"can't convert {d} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first.")
        return func(*args, **kwargs)

    def _refuse_sparse(self, func, args, kwargs):
        if device_of(args[0]).type == "cuda":
            raise SimulationUnsupported(f"{_name(func)}: sparse tensors on the simulated GPUs are not supported; "
                                        "run this on real GPUs or keep sparse tensors on the CPU.")
        return func(*args, **kwargs)

    def _type(self, func, args, kwargs):
        wanted = kwargs.get("dtype", args[1] if len(args) > 1 else None)
        if wanted is None and device_of(args[0]).type == "cuda":  # the name of the type: CUDA's on a GPU
            return func(*args, **kwargs).replace("torch.", "torch.cuda.", 1)
        if isinstance(wanted, str) and "cuda" in wanted:
            raise SimulationUnsupported(f"Tensor.type({wanted!r}): legacy CUDA tensor types are not simulated; "
                                        "use .to(device) instead.")
        return self._run(func, args, kwargs)


class _DeviceCopy(torch.autograd.Function):
    """Copy to another (simulated) device; the gradient travels back the other way, as on real GPUs."""

    @staticmethod
    def forward(ctx, t, src, dst, dtype, sim):
        ctx.src, ctx.dst, ctx.dtype, ctx.sim = src, dst, t.dtype, sim
        with _paused_accounting():  # the caller charges the copy
            out = t.to(dtype=dtype, copy=True)
        place(out, dst)
        return out

    @staticmethod
    def backward(ctx, grad):
        with _paused_accounting():
            out = grad.to(dtype=ctx.dtype, copy=True)
        place(out, ctx.src)
        ctx.sim.clocks.copy(str(ctx.dst), str(ctx.src), out.nbytes)
        return out, None, None, None, None


_ACCOUNTING_PAUSED = [0]
_FACTORY_DEVICE: list[int | None] = [None]  # the device a factory running now makes its tensor on (its RNG's)


class _paused_accounting:
    """Our own ops (the data of a copy, printing) are not kernels of the student's: not charged."""

    def __enter__(self):
        _ACCOUNTING_PAUSED[0] += 1

    def __exit__(self, *exc):
        _ACCOUNTING_PAUSED[0] -= 1


class DeviceAccounting(TorchDispatchMode):
    """Every ATen op whose inputs live on a simulated GPU: new outputs are placed there, and the op - a kernel
    if it made new data or wrote in place (views launch none) - is charged at the profile's cost."""

    def __init__(self, sim: Any) -> None:
        super().__init__()
        self.sim = sim

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _ACCOUNTING_PAUSED[0]:
            return func(*args, **kwargs)
        tensors = _tensors((args, kwargs))
        args = tf32.rounded(op_name(func), args, self.sim.profile.capability)  # where a GPU would use TF32 (tf32.py)
        if torch.Tag.nondeterministic_seeded in func.tags:
            out = self._draw(func, args, kwargs, tensors)
        else:
            out = func(*args, **kwargs)
        name = op_name(func)
        if name.startswith("_foreach_"):
            self._charge_foreach(func, args, kwargs, out)
            return out
        target = next((d for d in map(device_of, tensors) if d.type == "cuda"), None)
        if target is not None and (_place_new(target, tensors, out) or func._schema.is_mutable):
            flops, nbytes = op_cost(func, args, kwargs, out)
            self.sim.clocks.kernel(target.index, flops, nbytes, name)
        return out

    def _draw(self, func, args, kwargs, tensors):
        """A random op on a simulated GPU draws from that device's generator (``rng.py``), not the CPU's."""
        device = next((d for d in map(device_of, tensors) if d.type == "cuda"), None)
        index = device.index if device is not None else _FACTORY_DEVICE[-1]
        if index is None:
            return func(*args, **kwargs)
        with self.sim.rng.drawing_on(index):
            return func(*args, **kwargs)

    def _charge_foreach(self, func, args, kwargs, out) -> None:
        """One fused kernel per device, for the bytes of that device's tensors."""
        per_device: dict[int, float] = {}
        lists = [a for a in (*args, out) if isinstance(a, (list, tuple)) and a and isinstance(a[0], Tensor)]
        for lst in lists:
            for t in lst:
                d = device_of(t)
                if d.type == "cuda":
                    per_device[d.index] = per_device.get(d.index, 0.0) + t.numel() * t.element_size()
        for index, nbytes in per_device.items():
            self.sim.clocks.kernel(index, nbytes / 4, nbytes, op_name(func))


def _place_new(target: torch.device, inputs: list[Tensor], out: Any, untagged_only: bool = False) -> bool:
    """Outputs in new storage live on ``target`` (``untagged_only``: those no op placed yet); True if there were
    any (a kernel made them)."""
    known = {storage_key(t) for t in inputs}
    fresh = False
    for t in _tensors(out):
        if untagged_only and (t.layout != torch.strided or device_of(t).type != "cpu"):
            continue
        if storage_key(t) not in known:
            place(t, target)
            fresh = True
    return fresh


_PINNED = "_simulated_pinned"  # on the storage, like the device tag: views of pinned memory are pinned


def _mark_pinned(t: Tensor) -> None:
    setattr(t.untyped_storage(), _PINNED, True)


def _is_pinned(t: Tensor) -> bool:
    return getattr(t.untyped_storage(), _PINNED, False)


def _name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)
