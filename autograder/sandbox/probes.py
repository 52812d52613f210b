"""Trusted probes: run inside the submission's process, call the student's code, return plain data.

Each probe takes JSON arguments and returns a JSON-able dict; tensors go through ``save_tensors`` (files
read back with ``numpy.load(allow_pickle=False)``). Probes observe; they never judge - the graders do,
in the trusted process. ``log`` is the transfer/sync log (simulated clocks, or ``CudaRecorder``).
What the student's code hands back (losses, seconds, printed text, the layers) is read through ``reading``,
so only plain ``float``/``int``/``str``/``list``/``dict`` values leave this process.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ..busy import overlap_seconds, record
from . import inputs
from .reading import MAX_ITEMS, describe_layers, layer_tensors, not_loadable, number, numbers, shape_of, stdout_of, text

PROBES: dict[str, Callable[..., dict]] = {}
_BUILT: dict[tuple, torch.nn.Module] = {}  # this submission's models as constructed, per (devices, seed)
_FILE_NUMBERS = itertools.count()
TIMING_BATCH = inputs.TIMING_BATCH
MAX_RECORDED_FORWARDS = 64  # forwards train() makes whose outputs are kept (one per step is the contract)


class Context:
    """What a probe gets: the student's module, the transfer/sync log, and where to put tensors."""

    def __init__(self, module: Any, log: Any, scratch: Path) -> None:
        self.module, self.log, self.scratch = module, log, scratch

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> str:
        """Tensors as plain float arrays in an .npz file (no pickle in it); returns the file's name."""
        plain = {k: v.detach().to("cpu", copy=True).float().numpy() for k, v in tensors.items()}
        path = self.scratch / f"{name}-{next(_FILE_NUMBERS)}.npz"  # cached replies keep pointing at their own files
        np.savez(path, **plain)
        return path.name

    def build(self, devices: list[str], seed: int) -> torch.nn.Module:
        """A fresh SimpleMPModel(*devices), as the student's constructor makes it after manual_seed(seed).

        The constructor runs once per (devices, seed) in this process; later probes get a deep copy of
        its result (a copy costs a memcpy, a construction the random init of 3M weights)."""
        key = (tuple(devices), seed)
        torch.manual_seed(seed)
        if key not in _BUILT:
            _BUILT[key] = self.module.SimpleMPModel(devices[0], devices[1])
        try:
            model = copy.deepcopy(_BUILT[key])
        except Exception:  # noqa: BLE001 - a model that cannot be copied is built again
            model = self.module.SimpleMPModel(devices[0], devices[1])
        torch.manual_seed(seed)  # the same random state whether it was built or copied
        return model


def probe(func: Callable[..., dict]) -> Callable[..., dict]:
    PROBES[func.__name__] = func
    return func


def _device(t: torch.Tensor) -> str:
    """The tensor's device, read through the base class's descriptor: a submission that patches
    ``nn.Parameter.device`` (or a subclass) cannot change what the graders see."""
    return str(_TENSOR_DEVICE(t))


_TENSOR_DEVICE = torch._C.TensorBase.device.__get__


def _output_device(out: Any) -> str:
    """Where a forward's output lives, or what it was instead of a tensor (for the message)."""
    if isinstance(out, torch.Tensor):
        return _device(out)
    try:
        return text(repr(out), 200)
    except Exception:  # noqa: BLE001 - the student's __repr__ raised
        return f"a {text(type(out).__name__, 100)}"


def _dtype(out: Any) -> str | None:
    """A forward output's dtype (read through the base class), for the graders' messages; None if not a tensor."""
    return str(torch._C.TensorBase.dtype.__get__(out)) if isinstance(out, torch.Tensor) else None


def make_batch(seed: int, *shape: int) -> torch.Tensor:
    """``inputs.make_batch`` as a CPU tensor (the graders regenerate the same array)."""
    return torch.from_numpy(inputs.make_batch(seed, *shape))


def make_batches(seed: int, steps: int, fixed: bool, rows: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in inputs.make_batches(seed, steps, fixed, rows)]


def load_weights(model: torch.nn.Module, seed: int) -> list[str]:
    """Put ``inputs.initial_weights(seed)`` into ``model.layer1``'s and ``model.layer2``'s weight and bias (found by
    attribute, as the contract names them), on their own devices; return the contract names that could not take
    them (missing, or another shape)."""
    tensors, weights = layer_tensors(model), inputs.initial_weights(seed)
    not_loaded = not_loadable(tensors)
    with torch.no_grad():
        for name, value in weights.items():
            if name not in not_loaded:
                tensors[name].copy_(torch.from_numpy(value.copy()))
    return not_loaded


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The contract's layer tensors under their contract names, then every other parameter of the model under the
    name PyTorch gives it (a tensor already reported as a layer's is not reported twice)."""
    found = layer_tensors(model)
    seen = {id(t) for t in found.values()}
    for name, p in model.named_parameters():
        if id(p) not in seen and name not in found:
            found[text(name, 200)] = p
            seen.add(id(p))
    return found


def _layers(model: torch.nn.Module) -> dict:
    """What the graders need to explain missing layers: what model.layer1/layer2 are, and which contract
    parameters could not take the grader's weights."""
    return {"layers": describe_layers(model), "not_loaded": not_loadable(layer_tensors(model))}


@probe
def build(ctx: Context, devices: list[str], seed: int, forward_batch: int | None = None) -> dict:
    """Construct the model; report every parameter's shape and device and the device attributes, and
    (``forward_batch``) where the output of one forward of that many rows lands."""
    model = ctx.build(devices, seed)
    observed = {
        "params": {name: {"device": _device(p), "shape": shape_of(p)}
                   for name, p in parameters(model).items()},
        **_layers(model),
        "device0": _repr(getattr(model, "device0", None)),
        "device1": _repr(getattr(model, "device1", None)),
    }
    if forward_batch is not None:
        with torch.no_grad(), stdout_of(ctx.scratch):  # what it prints is not this probe's concern
            out = model(make_batch(seed, forward_batch, 1000))
        observed["output_device"] = _output_device(out)
    return observed


def _repr(value: Any) -> str:
    try:
        return text(repr(value), 200)
    except Exception:  # noqa: BLE001 - the student's __repr__ raised
        return f"a {text(type(value).__name__, 100)}"


@probe
def forward(ctx: Context, devices: list[str], seed: int, batch_sizes: list[int], trace: bool = False) -> dict:
    """Forward CPU batches through the model holding ``initial_weights(seed)``; report outputs, their
    device, the transfers of each forward and the layer parameters that could not take those weights."""
    model = ctx.build(devices, seed)
    described, runs, outputs = describe_layers(model), [], {}
    not_loaded = load_weights(model, seed)
    for b in batch_sizes:
        x = make_batch(seed + b, b, 1000)
        first = len(ctx.log.transfers)
        # The trace is what reaches file descriptor 1, as a student running the file would see it.
        with torch.no_grad(), stdout_of(ctx.scratch) as printed:
            out = model(x, trace=trace) if trace else model(x)
        runs.append({"batch": b, "output_device": _output_device(out), "dtype": _dtype(out),
                     "transfers": [asdict(t) for t in ctx.log.transfers[first:]], "printed": printed[0]})
        if isinstance(out, torch.Tensor):
            outputs[f"batch{b}"] = out
    return {"runs": runs, "outputs": ctx.save_tensors("outputs", outputs), "not_loaded": not_loaded,
            "layers": described}


@probe
def train(ctx: Context, devices: list[str], seed: int, steps: int, lr: float | None, fixed: bool,
          rows: int = 32) -> dict:
    """Call the student's train() on CPU batches, from ``initial_weights(seed)``. Report what the graders recompute
    with NumPy: the losses it returned, the weights it left in model.layer1/layer2 (``final``) and the outputs of the
    forwards it made (``outputs``: ``forward<i>`` in call order); and the devices of the gradients the layers got."""
    model = ctx.build(devices, seed)
    described = describe_layers(model)
    not_loaded = load_weights(model, seed)
    batches = make_batches(seed, steps, fixed, rows)
    gradients = _Gradients(layer_tensors(model))
    optimizer_steps = _OptimizerSteps(layer_tensors(model))
    outputs = _record_outputs(model)
    try:
        losses = ctx.module.train(model, batches) if lr is None else ctx.module.train(model, batches, lr=lr)
    finally:
        optimizer_steps.handle.remove()
    losses, tensors = _loss_values(losses)  # read now, before anything else of the student's runs
    return {
        "layers": described,
        "not_loaded": not_loaded,
        "losses": losses,
        "tensor_losses": tensors,
        "final": ctx.save_tensors("final", layer_tensors(model)),
        "outputs": ctx.save_tensors("train_outputs", {f"forward{i}": out for i, out in enumerate(outputs)}),
        "forwards": len(outputs),
        "grad_devices": gradients.devices(),
        "steps": optimizer_steps.steps,
        "held": sorted(optimizer_steps.held),
        "grads_at_step": optimizer_steps.grads_at_step,
    }


def _loss_values(returned: Any) -> tuple[list[float | str] | str, int]:
    """The returned losses as ``numbers`` reads them, except that a one-element tensor in the list is read as its value
    (through the base class) - its meaning is unambiguous, and only train_runs' "one float per batch" judges the
    type - and how many such tensors there were."""
    kind = type(returned)
    if not (issubclass(kind, list) or issubclass(kind, tuple)):
        return numbers(returned), 0
    items = list.copy(returned) if issubclass(kind, list) else list(tuple.__getitem__(returned, slice(None)))
    values, tensors = [], 0
    for item in items[:MAX_ITEMS]:
        if issubclass(type(item), torch.Tensor) and torch._C.TensorBase.numel(item) == 1:
            values.append(float(torch._C.TensorBase.item(torch._C.TensorBase.detach(item))))
            tensors += 1
        else:
            values.append(number(item))
    return values, tensors


class _OptimizerSteps:
    """What the optimizers saw at each step() during train() (a global step pre-hook): how many steps ran, which of
    the layer tensors an optimizer held, and whether any held one had a nonzero gradient when a step began. They
    choose the message (a zero_grad() between backward() and step(), an optimizer missing a layer), never the
    verdict, which the weights train() leaves decide."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors, self.steps, self.held, self.grads_at_step = tensors, 0, set(), False
        self.handle = register_optimizer_step_pre_hook(self._seen)

    def _seen(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps += 1
        try:
            held = {id(p) for group in optimizer.param_groups for p in group["params"]}
            for name, tensor in self.tensors.items():
                if id(tensor) in held:
                    self.held.add(name)
                    grad = tensor.grad
                    self.grads_at_step |= grad is not None and bool(grad.detach().abs().sum() > 0)
        except Exception:  # noqa: BLE001 - an optimizer of the student's own making: nothing to say about it
            pass


class _Gradients:
    """Which layer tensors got a gradient during train(), and where the last one was - seen as autograd stores it
    (a hook), so a train() that zeroes or drops the gradients after its last step still shows them."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.last: dict[str, torch.Tensor] = {}
        for name, tensor in tensors.items():
            if tensor.is_leaf and tensor.requires_grad:
                tensor.register_post_accumulate_grad_hook(self._seen(name))

    def _seen(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(tensor: torch.Tensor) -> None:
            if tensor.grad is not None:
                self.last[name] = tensor.grad

        return hook

    def devices(self) -> dict[str, str]:
        # Read here, not in the hook: the simulated devices answer only on the probe's thread.
        return {name: _device(grad) for name, grad in self.last.items()}


def _record_outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    """Keep the output of every forward the model makes from now on (tensors only, the first
    MAX_RECORDED_FORWARDS), through the instance's ``forward``: ``model(x)`` and ``model.forward(x)`` both pass."""
    recorded: list[torch.Tensor] = []
    forward = model.forward

    @functools.wraps(forward)  # inspect.signature(model.forward) sees the student's signature, not this wrapper's
    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        out = forward(*args, **kwargs)
        if isinstance(out, torch.Tensor) and len(recorded) < MAX_RECORDED_FORWARDS:
            recorded.append(out.detach())  # the values the loss was computed from
        return out

    model.forward = recording_forward
    return recorded


def sleep_cycles(seconds: float, device: torch.device) -> int:
    """How many ``torch.cuda._sleep`` cycles last ``seconds`` on ``device`` (calibrated with CUDA events)."""
    probe_cycles = 2_000_000  # ~1.4 ms at a GPU's clock: long enough for CUDA events
    with torch.cuda.device(device):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(probe_cycles)
        end.record()
        end.synchronize()
        return int(probe_cycles * seconds * 1000 / start.elapsed_time(end))


class _Workloads:
    """Known device work added to the student's forwards, by position (0 = the first call): ``before[i]``
    seconds on device0 ahead of forward i, ``after[i]`` seconds on device1 behind it; the last value of each list
    holds for every later forward. Both lie on the forward's own path (device0's work precedes the copy, device1's
    follows layer2), so any wait that covers the forward's output covers them. CUDA events on device1 mark each
    forward's start and end."""

    def __init__(self, devices: list[str], before: list[float], after: list[float]) -> None:
        self.devices = [torch.device(d) for d in devices]
        rate = {d: sleep_cycles(1.0, d) for d in dict.fromkeys(self.devices)}
        self.before = [int(s * rate[self.devices[0]]) for s in before]
        self.after = [int(s * rate[self.devices[1]]) for s in after]
        self.marks: list[tuple[int, Any, Any]] = []  # (log seq after the forward, start event, end event)

    def wrap(self, forward: Callable[..., Any], log: Any) -> Callable[..., Any]:
        @functools.wraps(forward)  # the student's signature stays visible (inspect.signature)
        def timed_forward(*args: Any, **kwargs: Any):
            i = len(self.marks)
            with torch.cuda.device(self.devices[1]):
                started = torch.cuda.Event(enable_timing=True)
                started.record()
            ahead, behind = _at(self.before, i), _at(self.after, i)
            if ahead:
                with torch.cuda.device(self.devices[0]):
                    torch.cuda._sleep(ahead)
            out = forward(*args, **kwargs)
            with torch.cuda.device(self.devices[0]):
                device0_done = torch.cuda.Event()
                device0_done.record()
            with torch.cuda.device(self.devices[1]):
                # The forward ends on device1 after device0's part, as a correct model's does through its copy; a
                # model that never reaches device1 gets the same order, so the events below span all its work.
                torch.cuda.current_stream().wait_event(device0_done)
                if behind:
                    torch.cuda._sleep(behind)
                ended = torch.cuda.Event(enable_timing=True)
                ended.record()
            self.marks.append((log.next_seq(), started, ended))
            return out

        return timed_forward

    def seconds_per_forward(self, timed: list[tuple[int, Any, Any]]) -> float | None:
        """The device time of ``timed`` (consecutive forwards), per forward, from their CUDA events."""
        for _, _, ended in self.marks:
            ended.synchronize()
        return timed[0][1].elapsed_time(timed[-1][2]) / 1000 / len(timed) if timed else None


def _at(cycles: list[int], i: int) -> int:
    return cycles[min(i, len(cycles) - 1)] if cycles else 0


@probe
def time_forward(ctx: Context, devices: list[str], seed: int, warmup: int, repeats: int, before: list[float],
                 after: list[float]) -> dict:
    """Call the student's time_forward() with known device work added to its forwards (``_Workloads``).

    By the contract the first ``warmup`` forwards are untimed and the next ``repeats`` are timed (any later ones,
    after the clock stopped, are not); the true device time per timed forward is measured with CUDA events,
    which never lie. The host waits seen after the last timed forward are reported to choose the message.
    """
    model = ctx.build(devices, seed)
    workloads = _Workloads(devices, before, after)
    model.forward = workloads.wrap(model.forward, ctx.log)
    # Batch 4: the added work (milliseconds) is what the clock must see, and the CPU computes 8x less than at 32.
    # On device0 already: no host wait starts each forward.
    x = make_batch(seed, TIMING_BATCH, 1000).to(devices[0])
    torch.cuda.synchronize(devices[0])
    first_seq = ctx.log.next_seq()
    seconds = ctx.module.time_forward(model, x, warmup=warmup, repeats=repeats)
    last_seq = ctx.log.next_seq()
    calls = len(workloads.marks)
    timed = workloads.marks[warmup:warmup + repeats] if calls >= warmup + repeats else workloads.marks[-repeats:]
    after_timed = timed[-1][0] if timed else first_seq
    true_seconds = workloads.seconds_per_forward(timed)
    return {
        "seconds": number(seconds),
        "true_seconds": None if true_seconds is None else float(true_seconds),
        "forwards": calls,
        "waited_for": sorted({s.device for s in ctx.log.syncs if after_timed < s.seq < last_seq}),
    }


@probe
def pipeline(ctx: Context, devices: list[str], seed: int, batch: int, split_size: int, stage_s: float = 0.0,
             input_on_cpu: bool = False) -> dict:
    """Part 5: one forward of PipelinedMPModel holding ``initial_weights(seed)``; the output, placement and
    the devices' busy intervals. ``stage_s`` of known device work follows each call of layer1 (on device0) and
    layer2 (on device1), so each micro-batch's stages take long against the host's launches, as a large
    batch's would on real GPUs."""
    torch.manual_seed(seed)
    model = ctx.module.PipelinedMPModel(devices[0], devices[1], split_size=split_size)
    described = describe_layers(model)
    not_loaded = load_weights(model, seed)
    launched: list[str] = []  # one entry per stage kernel: the profiler must see at least as many (busy.record)
    if stage_s:
        for layer, device in (("layer1", devices[0]), ("layer2", devices[1])):
            module = getattr(model, layer, None)
            if isinstance(module, torch.nn.Module):
                module.register_forward_hook(_stage_work(sleep_cycles(stage_s, torch.device(device)), device,
                                                         launched))
    x = make_batch(seed, batch, 1000)
    if not input_on_cpu:
        x = x.to(devices[0])
    outputs = {}
    with torch.no_grad():
        outputs["warmup"] = model(x)
        busy = record(lambda: outputs.__setitem__("out", model(x)), (devices[0], devices[1]), lambda: len(launched))
    out = outputs["out"]
    return {
        "params": {name: _device(p) for name, p in parameters(model).items()},
        "output_device": _output_device(out),
        "output": ctx.save_tensors("pipeline_output", {"out": out}) if isinstance(out, torch.Tensor) else None,
        "not_loaded": not_loaded,
        "layers": described,
        "overlap_s": overlap_seconds(busy, devices[0], devices[1]),
        "span_s": max((b.end for b in busy), default=0.0),
    }


def _stage_work(cycles: int, device: str, launched: list[str]) -> Callable[..., None]:
    def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        with torch.cuda.device(device):
            torch.cuda._sleep(cycles)
        launched.append(device)

    return hook
