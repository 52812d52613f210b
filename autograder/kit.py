"""The student kit: what students install to run the public checks - and nothing that gives the hidden ones away.

    python -m autograder student-kit --out kit/     # kit/practical8_student_kit-<version>-py3-none-any.whl

It is a wheel built from a staging copy of this package that holds only what ``python -m autograder check`` and
the notebook need: the simulated GPUs (``simgpu/``), the submission's sandbox and probes (``sandbox/``), the grading
session, the reports, ``check`` and ``autograder.notebook`` (``KIT_MODULES``), and the graders made public:

- each grader file keeps only the tests of visible checks, and only the helpers, constants and imports those tests
  use; ``graders/expected.py`` keeps only what the kept tests import. Docstrings and comments are dropped (they
  describe hidden checks too) and every file is regenerated from its syntax tree, so no hidden grader's source,
  message or threshold is copied by accident;
- ``public_rubric.yml`` replaces grading.yml: the visible checks only (ids, titles, points, timeouts);
- ``__main__.py`` runs the students' command line (``student_cli.py``: ``check`` only).

Never in the kit: the hidden graders, grading.yml, ``samples.py`` (the reference's mutants), ``solutions/``, class
grading, the doctor, the release and Gradescope tools, and the instructor's command line. ``KIT_MODULES`` is an
allowlist: a module added to the package later stays out until it is named here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from .check import SHOWN
from .rubric import Rubric, load_rubric

PACKAGE_DIR = Path(__file__).resolve().parent
GRADERS = PACKAGE_DIR / "graders"
DISTRIBUTION = "practical8-autograder"  # the instructor's package (pyproject.toml)
KIT_NAME = "practical8-student-kit"
# Files of this package copied as they are (relative to it); whole subpackages are named by their folder.
KIT_MODULES = ("__init__.py", "contract.py", "course.py", "devices.py", "rubric.py", "busy.py", "grading.py",
               "reports.py", "check.py", "notebook.py", "timeline.py", "student_cli.py", "pytest_plugin.py",
               "graders/__init__.py", "graders/conftest.py", "graders/replies.py", "graders/timing_truth.py",
               "graders/pytest.ini")
KIT_PACKAGES = ("simgpu", "sandbox")
EXPECTED = "expected.py"  # the graders' expectations: pruned to what the public graders import
# The instructor's dependencies the kit needs (their version ranges come from the instructor's package metadata).
KIT_DEPENDENCIES = ("torch", "numpy", "pytest", "pytest-timeout", "PyYAML", "matplotlib")
KIT_MAIN = '''"""python -m autograder: the students' command line (the student kit has `check` only)."""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the instructor's package: the graders' NumPy is small

from .student_cli import main  # noqa: E402 - after the environment is set

if __name__ == "__main__":
    sys.exit(main())
'''
PYTEST_PLUGIN = {"pytest11": {"autograder_simgpu": "autograder.pytest_plugin"}}


class KitError(ValueError):
    """The kit could not be made (the graders do not parse, the wheel did not build); the message says why."""


# ---------------------------------------------------------------------------------------------- public graders
def hidden_ids(rubric: Rubric) -> set[str]:
    """The checks a student must not see: every visibility but visible."""
    return {c.id for c in rubric.checks if c.visibility not in SHOWN}


def public_graders(rubric: Rubric, graders: Path = GRADERS) -> dict[str, str]:
    """``{file name: source}`` of the graders with only the visible checks' tests, and the expectations they use."""
    hidden = hidden_ids(rubric)
    files, wanted, strings = {}, set(), set()
    for path in sorted(graders.glob("test_*.py")):
        tree = _parse(path)
        tree.body = [node for node in tree.body if _check_id(node) not in hidden]
        tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        if not tests:
            continue
        _prune(tree, {n.name for n in tests})
        wanted |= {alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                   and (node.module or "").endswith("graders.expected") for alias in node.names}
        ids = ", ".join(_check_id(n) for n in tests)
        files[path.name] = _render(tree, f"Public checks: {ids}.")
        strings |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    expected = _parse(graders / EXPECTED)
    _prune(expected, wanted)
    _keep_scenarios(expected, strings)
    files[EXPECTED] = _render(expected, "What the public checks expect.")
    return files


SCENARIOS = "TIMING_SCENARIOS"  # expected.py's names of the timing scenarios; each has its workload rule


def _keep_scenarios(expected: ast.Module, used: set[str]) -> None:
    """Remove from ``expected`` every timing scenario the public tests never name: from ``TIMING_SCENARIOS`` and its
    rule (``if scenario == "heavy_on_device1": ...``) in every function. The public scenarios' workloads stay the
    same draws (the random numbers are drawn before the rules), and no hidden scenario's name or rule ships."""
    names: set[str] = set()
    for node in ast.walk(expected):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == SCENARIOS for t in node.targets) \
                and isinstance(node.value, ast.Tuple):
            names = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
            node.value.elts = [e for e in node.value.elts if isinstance(e, ast.Constant) and e.value in used]
    hidden = names - used
    for node in ast.walk(expected):
        if isinstance(node, (ast.FunctionDef, ast.If, ast.For, ast.With)):
            node.body = [stmt for stmt in node.body if _scenario_rule(stmt) not in hidden] or [ast.Pass()]


def _scenario_rule(stmt: ast.stmt) -> str | None:
    """The scenario of ``if scenario == "<name>": ...`` (no else), or None."""
    test = stmt.test if isinstance(stmt, ast.If) and not stmt.orelse else None
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq) \
            and isinstance(test.left, ast.Name) and test.left.id == "scenario" \
            and isinstance(test.comparators[0], ast.Constant):
        return test.comparators[0].value
    return None


def public_rubric_yaml(rubric: Rubric) -> str:
    """The kit's rubric: the visible checks only, with their titles, points, timeouts and whether they are on."""
    checks = {c.id: {"title": c.title, "points": c.points, "visibility": c.visibility, "timeout": c.timeout,
                     "enabled": c.enabled} for c in rubric.checks if c.visibility in SHOWN}
    data = {"assignment": rubric.assignment, "submission_timeout": rubric.submission_timeout,
            "tamper": rubric.tamper, "checks": checks}
    return ("# The public checks of the student kit (made by `python -m autograder student-kit`).\n"
            + yaml.safe_dump(data, sort_keys=False))


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(), str(path))
    except SyntaxError as exc:
        raise KitError(f"{path}: does not parse ({exc})") from None


def _check_id(node: ast.stmt) -> str | None:
    """The rubric id in a test's ``@pytest.mark.check("id")``, or None."""
    for decorator in getattr(node, "decorator_list", ()):
        if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "check" and decorator.args
                and isinstance(decorator.args[0], ast.Constant)):
            return str(decorator.args[0].value)
    return None


def _defined(node: ast.stmt) -> set[str]:
    """The module-level names a statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _split(node: ast.stmt) -> list[ast.stmt]:
    """``A, B = 1, 2`` as ``A = 1`` and ``B = 2``, so that a constant only a hidden check uses can go alone."""
    if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Tuple)
            and isinstance(node.value, ast.Tuple) and len(node.targets[0].elts) == len(node.value.elts)
            and all(isinstance(t, ast.Name) for t in node.targets[0].elts)):
        return [ast.fix_missing_locations(ast.copy_location(ast.Assign(targets=[ast.Name(t.id, ast.Store())], value=v),
                                                            node))
                for t, v in zip(node.targets[0].elts, node.value.elts, strict=True)]
    return [node]


def _fixtures(nodes: Iterable[ast.stmt]) -> set[str]:
    """The parameters of module-level functions: a test's fixtures defined in its own file are kept with it."""
    return {a.arg for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs}


def _is_future(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _used(nodes: Iterable[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def _prune(tree: ast.Module, roots: set[str]) -> None:
    """Keep the statements that bind ``roots`` and, transitively, what they use; drop ``__all__``, docstrings."""
    body = [part for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            and "__all__" not in _defined(n) for part in _split(n)]
    needed, kept = set(roots) | {"pytestmark"}, []
    while True:
        # A statement that binds nothing (``from __future__``, a bare call) stays; one that binds is kept if needed.
        kept = [n for n in body if _is_future(n) or not _defined(n) or _defined(n) & needed]
        more = needed | _used(kept) | _fixtures(kept)
        if more == needed:
            break
        needed = more
    for node in kept:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not _is_future(node):
            node.names = [a for a in node.names if (a.asname or a.name).split(".")[0] in needed]
    tree.body = [n for n in kept if not isinstance(n, (ast.Import, ast.ImportFrom)) or n.names]
    for node in ast.walk(tree):  # function and class docstrings may describe hidden checks
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) \
                    and isinstance(node.body[0].value.value, str):
                node.body = node.body[1:] or [ast.Pass()]


def _render(tree: ast.Module, title: str) -> str:
    source = ast.unparse(ast.fix_missing_locations(tree))
    return f'"""{title} Generated by `python -m autograder student-kit` from the course\'s graders."""\n{source}\n'


# ---------------------------------------------------------------------------------------------- the wheel
def kit_files(rubric: Rubric) -> dict[str, str | bytes]:
    """Every file of the kit's ``autograder`` package, by path relative to it."""
    files: dict[str, str | bytes] = {name: (PACKAGE_DIR / name).read_bytes() for name in KIT_MODULES}
    for package in KIT_PACKAGES:
        for path in sorted((PACKAGE_DIR / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[str(path.relative_to(PACKAGE_DIR))] = path.read_bytes()
    files |= {f"graders/{name}": text for name, text in public_graders(rubric).items()}
    files["public_rubric.yml"] = public_rubric_yaml(rubric)
    files["__main__.py"] = KIT_MAIN
    return files


def wheel_name(distribution: str = KIT_NAME, version: str | None = None) -> str:
    """The file name pip gives the wheel: ``practical8_student_kit-0.1.0-py3-none-any.whl``."""
    version = version or package_version()
    return f"{re.sub(r'[-_.]+', '_', distribution).lower()}-{version}-py3-none-any.whl"


def package_version() -> str:
    return importlib.metadata.version(DISTRIBUTION)


def requirements(names: Iterable[str] | None = None) -> list[str]:
    """The instructor's package's run-time requirements (no extras), or only those of ``names``."""
    found = [r for r in importlib.metadata.requires(DISTRIBUTION) or [] if "extra ==" not in r]
    if names is None:
        return found
    wanted = {n.lower() for n in names}
    kept = [r for r in found if re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() in wanted]
    missing = wanted - {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in kept}
    if missing:
        raise KitError(f"{DISTRIBUTION} does not declare {', '.join(sorted(missing))} (pyproject.toml)")
    return kept


def build_wheel(distribution: str, description: str, files: dict[str, str | bytes], dependencies: list[str],
                out_dir: Path) -> Path:
    """Stage ``files`` as the package ``autograder`` of ``distribution`` and build its wheel into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = package_version()
    with tempfile.TemporaryDirectory(prefix="practical8-stage-") as tmp:
        stage = Path(tmp)
        for name, content in files.items():
            path = stage / "autograder" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        data = sorted(name for name in files if not name.endswith(".py"))
        (stage / "pyproject.toml").write_text(_pyproject(distribution, version, description, dependencies, data))
        isolation = ["--no-build-isolation"] if _has_setuptools() else []  # else pip fetches setuptools to build
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir", *isolation,
                               "-w", str(stage / "dist"), str(stage)], capture_output=True, text=True)
        built = stage / "dist" / wheel_name(distribution, version)
        if done.returncode != 0 or not built.is_file():
            raise KitError(f"building the {distribution} wheel failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        target = out_dir / built.name
        shutil.copy(built, target)
    return target


def _pyproject(distribution: str, version: str, description: str, dependencies: list[str], data: list[str]) -> str:
    lines = ['[build-system]', 'requires = ["setuptools>=68"]', 'build-backend = "setuptools.build_meta"', '',
             '[project]', f'name = {json.dumps(distribution)}', f'version = {json.dumps(version)}',
             f'description = {json.dumps(description)}', 'requires-python = ">=3.10"',
             f'dependencies = {json.dumps(dependencies)}', '']
    for group, entries in PYTEST_PLUGIN.items():
        lines += [f'[project.entry-points.{group}]', *(f'{k} = {json.dumps(v)}' for k, v in entries.items()), '']
    lines += ['[tool.setuptools.packages.find]', 'include = ["autograder*"]', '',
              '[tool.setuptools.package-data]', f'autograder = {json.dumps(data)}', '']
    return "\n".join(lines)


def _has_setuptools() -> bool:
    import importlib.util

    return importlib.util.find_spec("setuptools") is not None


def build_kit(out_dir: Path, rubric: Rubric | None = None) -> Path:
    """Build the student kit's wheel into ``out_dir`` (from the course's grading.yml unless ``rubric``)."""
    rubric = rubric or load_rubric()
    return build_wheel(KIT_NAME, "Practical 8 student kit: simulated GPUs and the public checks "
                                 "(python -m autograder check)", kit_files(rubric), requirements(KIT_DEPENDENCIES),
                       out_dir)
