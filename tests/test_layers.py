"""The autograder's layers import only downward: no import cycle, no product code importing a test file.

Read from the source with ``ast`` (every import, also those inside functions), not from what happens to be
imported at run time, so a lazy import that closes a circle is caught too.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"

# Bottom to top: a module may import its own layer's modules (without a cycle) and the layers below, never above.
LAYERS = [
    ("contract, course directory, devices choice, rubric, samples",
     {"contract", "course", "devices", "rubric", "release", "samples"}),
    ("simulated GPUs", {"simgpu"}),
    ("busy-time recording", {"busy"}),
    ("the submission's process", {"sandbox"}),
    ("graders and their expectations", {"graders"}),
    ("grading", {"grading"}),
    ("reports and tools on top of grading", {"reports", "classreport", "timeline", "doctor", "notebook",
                                             "gradebook", "check", "kit", "gradescope", "gpu_setup"}),
    ("class grading", {"batch"}),
    ("entry points", {"cli", "__main__", "__init__", "pytest_plugin", "student_cli"}),
]
RANK = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The autograder modules ``name`` imports, resolved to modules (``from pkg import mod`` -> pkg.mod)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {f for f in found if f == "autograder" or f.startswith("autograder.")}


GRAPH = {name: _imports(name, path) - {name} for name, path in MODULES.items()}


def _part(module: str) -> str:
    """The layer-table entry a module belongs to: autograder.sandbox.client -> sandbox; autograder -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    assert {_part(m) for m in MODULES} <= set(RANK), sorted({_part(m) for m in MODULES} - set(RANK))


def test_imports_only_go_down():
    upward = [f"{m} imports {t} ({LAYERS[RANK[_part(t)]][0]} is above {LAYERS[RANK[_part(m)]][0]})"
              for m, targets in GRAPH.items() for t in targets if RANK[_part(t)] > RANK[_part(m)]]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_product_module_imports_a_test_file():
    tests = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
             if t.split(".")[-1].startswith("test_") or t.split(".")[-1] == "conftest"]
    assert not tests, "\n".join(tests)


def test_the_checks_fail_on_a_planted_cycle_and_an_upward_import(monkeypatch):
    """The checks above can fail: a circle through the old culprits (probes -> timeline -> grading -> sandbox)."""
    planted = {**GRAPH, "autograder.sandbox.probes": GRAPH["autograder.sandbox.probes"] | {"autograder.grading"}}
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", planted)
    with pytest.raises(AssertionError, match="autograder.sandbox.probes imports autograder.grading"):
        test_imports_only_go_down()
    with pytest.raises(AssertionError, match="autograder.grading -> .* -> autograder.sandbox.probes -> "
                                             "autograder.grading"):
        test_no_import_cycle()


def test_the_resolver_sees_lazy_and_relative_imports():
    """The graph is read right: a function-level relative import and ``from . import module`` both count."""
    assert "autograder.sandbox.worker" in GRAPH["autograder.sandbox.entry"]  # `from .worker import` in a function
    assert "autograder.simgpu.cuda_api" in GRAPH["autograder.simgpu.simulation"]  # `from . import cuda_api`
    assert "autograder.graders.expected" in GRAPH["autograder.graders.test_training"]
