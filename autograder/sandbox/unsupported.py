"""What the simulated GPUs cannot run, found in the submission's source at intake (trusted side, nothing runs).

    not_simulated(source, "model_parallel.py")
    # "Not graded on simulated GPUs: model_parallel.py uses torch.compile (line 31: ...). ..."

A submission that uses ``torch.compile``, CUDA graphs or custom kernels is correct or not on real GPUs; the
simulation (a CPU PyTorch under a TorchFunctionMode) cannot follow any of them, so such a submission is not graded
there - never failed - and the report says to grade it on real GPUs (``--devices cuda``). The decision is the trusted
side's, from the source alone: a ``SimulationUnsupported`` that the student's process raises at run time proves
nothing (a student can raise it too), so without such a construct in the source it fails the affected checks as any
error does. Code under ``if __name__ == "__main__":`` never runs when the graders import the module: not read.
"""

from __future__ import annotations

import ast

# Dotted names (and everything below them) that only real GPUs can run, with what they are, for the message.
UNSUPPORTED = {
    "torch.compile": "torch.compile",
    "torch._dynamo": "torch.compile (torch._dynamo)",
    "torch._inductor": "torch.compile (torch._inductor)",
    "torch.cuda.graph": "CUDA graphs (torch.cuda.graph)",
    "torch.cuda.graphs": "CUDA graphs (torch.cuda.graphs)",
    "torch.cuda.CUDAGraph": "CUDA graphs (torch.cuda.CUDAGraph)",
    "torch.cuda.make_graphed_callables": "CUDA graphs (torch.cuda.make_graphed_callables)",
    "torch.cuda.jiterator": "a custom CUDA kernel (torch.cuda.jiterator)",
    "torch.utils.cpp_extension": "a custom C++/CUDA extension (torch.utils.cpp_extension)",
    "triton": "a custom Triton kernel",
    "cupy": "custom CUDA code (CuPy)",
    "pycuda": "custom CUDA code (PyCUDA)",
    "numba.cuda": "a custom CUDA kernel (numba.cuda)",
}
MAX_SHOWN = 3  # constructs named in the message; the rest are counted


def unsupported_constructs(source: str) -> list[tuple[str, int]]:
    """(what, line) for each construct of ``UNSUPPORTED`` the source refers to, in source order, one per line."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # it will not import either (or the tamper scan says why): the checks tell the student
    aliases: dict[str, str] = {}
    found: dict[tuple[str, int], None] = {}
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                    alias.name.split(".")[0]
                _match(alias.name, node.lineno, found)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                _match(f"{node.module}.{alias.name}", node.lineno, found)
        elif isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node, aliases)
            if dotted:
                _match(dotted, node.lineno, found)
    return sorted(found, key=lambda key: key[1])


def not_simulated(source: str, filename: str) -> str | None:
    """Why the submission whose file ``filename`` holds ``source`` is not graded on simulated GPUs (one paragraph for
    the student and the instructor), or None when the simulation can grade it."""
    found = unsupported_constructs(source)
    if not found:
        return None
    lines = source.splitlines()
    shown = "; ".join(f"{what} (line {line}: `{lines[line - 1].strip()[:80]}`)" for what, line in found[:MAX_SHOWN])
    more = f" and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
    return (f"Not graded on simulated GPUs: {filename} uses {shown}{more}, which only real GPUs can run. This "
            "is not a failure: it must be graded on real GPUs (`python -m autograder grade <folder> --devices cuda` on "
            "a machine with two GPUs). Your instructor sees it listed as not graded.")


def _match(dotted: str, line: int, found: dict[tuple[str, int], None]) -> None:
    for name, what in UNSUPPORTED.items():
        if dotted == name or dotted.startswith(name + "."):
            found.setdefault((what, line), None)
            return


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``tc.compile`` with ``import torch as tc`` -> ``torch.compile``; None for what no import names."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _walk(tree: ast.Module):
    """Every node but those under ``if __name__ == "__main__":``, parents before children, in source order."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            children = [node.test, *node.orelse]
        stack.extend(reversed(children))


def _is_main_guard(test: ast.AST) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")
