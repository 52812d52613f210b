"""What one ATen op costs a GPU: its floating-point operations and the bytes it moves.

Matrix products count 2·M·N·K FLOPs (plus the bias for ``addmm``); every op moves the bytes of its tensor
inputs and outputs; elementwise ops, reductions and the optimizers' ``_foreach_*`` ops count one FLOP per output
element, so their time is the bytes they move. A profile (``profiles.py``) turns (FLOPs, bytes) into seconds.
"""

from __future__ import annotations

from typing import Any

import torch

_MATMULS = {"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "matmul", "linear", "_addmm_activation"}


def _tensors(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in _tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _tensors(item)]
    return []


def op_name(func: Any) -> str:
    """``aten.addmm.default`` -> ``addmm``."""
    packet = getattr(func, "overloadpacket", None)
    return getattr(packet, "__name__", None) or getattr(func, "__name__", str(func))


def _matmul_flops(name: str, args: tuple, out: Any) -> float:
    tensors = [t for t in args if isinstance(t, torch.Tensor)]
    if name in ("addmm", "baddbmm", "addbmm", "addmv", "_addmm_activation"):
        tensors = tensors[1:]  # the first is the term added
    if len(tensors) < 2:
        return 0.0
    a = tensors[0]
    inner = a.shape[-1] if a.dim() else 1
    out_elements = sum(t.numel() for t in _tensors(out))
    summed = a.shape[0] if name == "addbmm" else 1  # addbmm adds up a batch of products into one output
    return 2.0 * out_elements * inner * summed + (out_elements if name.startswith("add") else 0)


def op_cost(func: Any, args: tuple, kwargs: dict, out: Any) -> tuple[float, float]:
    """(FLOPs, bytes moved) of one op on its device."""
    name = op_name(func)
    inputs, outputs = _tensors((args, kwargs)), _tensors(out)
    nbytes = float(sum(t.numel() * t.element_size() for t in inputs + outputs))
    if name in _MATMULS:
        return _matmul_flops(name, args, out), nbytes
    return float(sum(t.numel() for t in outputs) or sum(t.numel() for t in inputs)), nbytes
