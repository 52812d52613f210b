"""How the probes read what the student's code made, without trusting its Python objects.

The probes run inside the student's process, where a class can lie through any method it defines: a list
subclass whose ``__iter__`` rewrites the values, a float subclass whose ``__float__`` or ``__repr__`` does, a
``print`` that writes only into whatever replaced ``sys.stdout``. So values are read through the base types' own
methods (``list.copy``, ``float.__float__``, ``str.__str__``) after checking types with ``type()`` (``isinstance``
asks ``__class__``, which a class can fake); printed text is read from the process's standard-output file
descriptor; and the model's layers are found where the contract puts them, ``model.layer1`` and ``model.layer2``,
whatever names PyTorch gave their parameters.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..contract import LAYER_SHAPES, LINEAR_LAYERS

MAX_ITEMS = 10_000  # no list the contract asks for is this long (one loss per batch)
MAX_TEXT = 2000  # characters of a description or of printed text kept for the graders


def number(value: Any) -> float | str:
    """A number the student's code returned, as an exact ``float``; anything else as its quoted type name (for the
    grader's message). ``bool`` is not a number here, although Python counts it as an ``int``."""
    kind = type(value)
    try:
        if issubclass(kind, float):
            return float.__float__(value)  # the stored value, whatever the subclass's __float__ says
        if issubclass(kind, int) and not issubclass(kind, bool):
            return float(int.__int__(value))
    except (OverflowError, TypeError, ValueError):
        pass
    return repr(text(kind.__name__, 100))


def numbers(value: Any) -> list[float | str] | str:
    """A list (or tuple) of numbers, read item by item from the list's own storage (``list.copy``, a full
    ``tuple`` slice: no ``__iter__``, ``__len__`` or ``__getitem__`` of a subclass runs); anything else as its quoted
    type name."""
    kind = type(value)
    if issubclass(kind, list):
        items = list.copy(value)
    elif issubclass(kind, tuple):
        items = list(tuple.__getitem__(value, slice(None)))
    else:
        return repr(text(kind.__name__, 100))
    return [number(item) for item in items[:MAX_ITEMS]]


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """A ``str`` (of any subclass) as an exact ``str``, cut to ``limit`` characters; anything else as its type."""
    if issubclass(type(value), str):
        return str.__str__(value)[:limit]
    return f"<{type(value).__name__}>"


# ------------------------------------------------------------------ the contract's layers
_MISSING = object()


def _attribute(owner: Any, name: str, default: Any = None) -> Any:
    """``owner.name`` as the student's code sees it (properties, ``nn.Module.__getattr__``), or ``default``."""
    try:
        return getattr(owner, name, default)
    except Exception:  # noqa: BLE001 - a property of the student's that raises: the attribute is not usable
        return default


def shape_of(tensor: torch.Tensor) -> list[int]:
    """The tensor's shape, read through the base class (a subclass's `shape` property cannot change it)."""
    return [int(d) for d in torch._C.TensorBase.size(tensor)]


def layer_tensors(model: Any) -> dict[str, torch.Tensor]:
    """The weight and bias of ``model.layer1`` and ``model.layer2``, under the contract's names
    (``layer1.weight`` ...), whatever their shapes; a name is missing when there is no such tensor."""
    found = {}
    for layer in LINEAR_LAYERS:
        module = _attribute(model, layer)
        if not issubclass(type(module), torch.nn.Module):
            continue
        for kind in ("weight", "bias"):
            tensor = _attribute(module, kind)
            if issubclass(type(tensor), torch.Tensor):
                found[f"{layer}.{kind}"] = tensor
    return found


def not_loadable(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The contract's parameters that are missing or of another shape (the grader's weights cannot go in)."""
    return [name for name, shape in LAYER_SHAPES.items()
            if name not in tensors or tuple(shape_of(tensors[name])) != shape]


def describe_layers(model: Any) -> dict[str, str]:
    """What ``model.layer1`` and ``model.layer2`` are, in the student's terms, for the graders' messages:
    ``nn.Linear(1000, 2000)``, ``nn.Linear(1000, 2000, bias=False)``, ``a Sequential with no weight`` ..."""
    return {layer: _describe(layer, model) for layer in LINEAR_LAYERS}


def _describe(layer: str, model: Any) -> str:
    module = _attribute(model, layer, _MISSING)
    if module is _MISSING:
        return f"missing (the model has no attribute `{layer}`)"
    kind = type(module)
    name = "nn.Linear" if kind is torch.nn.Linear else text(kind.__name__, 100)
    if not issubclass(kind, torch.nn.Module):
        return f"a {name}, not an nn.Module"
    weight, bias = (_attribute(module, k) for k in ("weight", "bias"))
    if not issubclass(type(weight), torch.Tensor):
        return f"a {name} with no `weight` tensor"
    shape = shape_of(weight)
    has_bias = issubclass(type(bias), torch.Tensor)
    if issubclass(kind, torch.nn.Linear) and len(shape) == 2 and (not has_bias or shape_of(bias) == shape[:1]):
        return f"{name}({shape[1]}, {shape[0]}{'' if has_bias else ', bias=False'})"
    return f"a {name} with a weight of shape {shape} and " + (
        f"a bias of shape {shape_of(bias)}" if has_bias else "no bias")


# ------------------------------------------------------------------ printed text
@contextlib.contextmanager
def stdout_of(scratch: Path, limit: int = MAX_TEXT) -> Iterator[list[str]]:
    """What the block writes to the process's standard output, file descriptor 1 (the text comes in the yielded
    list on exit). Not ``sys.stdout``: a submission can replace that, or ``print``; what reaches fd 1 is what a
    student running the file would see. ``sys.stdout`` is flushed before (earlier output is not the block's) and
    after (an honest ``print`` sits in its buffer until then)."""
    captured: list[str] = []
    _flush()
    fd, path = tempfile.mkstemp(dir=scratch, prefix="stdout-")
    os.unlink(path)  # nothing else can open it; it goes when fd closes
    saved = os.dup(1)
    try:
        os.dup2(fd, 1)
        try:
            yield captured
        finally:
            _flush()
            os.dup2(saved, 1)
        os.lseek(fd, 0, os.SEEK_SET)
        captured.append(os.read(fd, 4 * limit).decode("utf-8", "replace")[:limit])
    finally:
        os.close(saved)
        os.close(fd)


def _flush() -> None:
    for stream in (sys.stdout, sys.__stdout__):
        with contextlib.suppress(Exception):  # a stream the student's code replaced may raise: its loss
            stream.flush()
