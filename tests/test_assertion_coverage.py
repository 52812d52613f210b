"""Every assertion of the graders can fail: for each one, some bundled mutant's failing check comes from it.

The graders' assertions (``assert``, ``raise AssertionError``, ``pytest.fail``) are found in their source with ``ast``;
which one failed for a mutant is the grader line its report carries (``CheckResult.where``, the innermost frame in
the graders' folder; never shown to students). An assertion no mutant trips is either dead code or a check whose
mistake has no mutant yet: add one to autograder/samples.py. The reports are the session's (graded once, shared
with tests/test_grading.py).
"""

import ast
from pathlib import Path

import pytest

from autograder.grading import GRADERS_DIR
from autograder.samples import MUTANTS, PIPELINE_MUTANTS, TAMPERING_MUTANTS


def _is_assertion(node: ast.AST) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Raise) and node.exc is not None:
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(raised, ast.Name) and raised.id == "AssertionError"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "fail" and isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest"
    return False


def grader_assertions(folder: Path = GRADERS_DIR) -> dict[str, str]:
    """``file.py:line`` -> that line's source, for every assertion in the graders' files."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if _is_assertion(node):
                found[f"{path.name}:{node.lineno}"] = lines[node.lineno - 1].strip()
    return found


def test_the_enumeration_finds_each_kind_of_assertion(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_a():\n    assert 1, 'x'\n"
        "def test_b():\n    raise AssertionError('y')\n"
        "def test_c():\n    pytest.fail('z')\n"
        "def test_d():\n    raise ValueError('not an assertion')\n")
    assert set(grader_assertions(tmp_path)) == {"test_x.py:3", "test_x.py:5", "test_x.py:7"}


@pytest.fixture(scope="module")
def tripped(graded_samples, graded_part5) -> dict[str, set[str]]:
    """grader line -> the mutants whose failing check failed there (hangs left out: they only time out)."""
    quick = [m for m in MUTANTS + TAMPERING_MUTANTS if not m.slow]
    reports = graded_samples.reports(quick) | graded_part5.reports(PIPELINE_MUTANTS)
    lines: dict[str, set[str]] = {}
    for name, report in reports.items():
        assert not report.not_graded, f"{name}: {report.not_graded}"
        for result in report.results:
            if not result.passed:
                lines.setdefault(result.where, set()).add(f"{name} ({result.check.id})")
    return lines


def test_every_grader_assertion_is_tripped_by_some_mutant(tripped):
    assertions = grader_assertions()
    untripped = {where: source for where, source in assertions.items() if where not in tripped}
    assert not untripped, "no mutant trips these grader assertions:\n" + "\n".join(
        f"  {where}: {source}" for where, source in sorted(untripped.items()))


def test_mutants_fail_only_through_assertions(tripped):
    """A mutant's failing check fails at an assertion (its message written for the student), never at a grader that
    crashed on the observations (a KeyError, a TypeError: "The grader could not evaluate your submission")."""
    assertions = grader_assertions()
    elsewhere = {where: names for where, names in tripped.items() if where not in assertions}
    assert not elsewhere, elsewhere
