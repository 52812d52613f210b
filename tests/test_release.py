"""assignment/ is generated from solutions/ and never drifts; broken markers are loud errors."""

import shutil

import pytest
from conftest import REPO

from autograder.release import SolutionMarkerError, clear_solutions, generate_assignment


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


def test_assignment_is_exactly_what_nbgrader_generates(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions", course / "solutions")
    shutil.copy(REPO / "nbgrader_config.py", course)
    generate_assignment(course)
    committed, fresh = _files(REPO / "assignment"), _files(course / "assignment")
    assert committed.keys() == fresh.keys(), "run `python -m autograder release` and commit assignment/"
    drifted = [str(k) for k in fresh if fresh[k] != committed[k]]
    assert not drifted, f"assignment/ drifted from solutions/ in {drifted}: run `python -m autograder release`"


def test_stub_has_no_solution_code_and_still_imports(tmp_path):
    stub = (REPO / "assignment" / "practical8" / "model_parallel.py").read_text()
    assert "BEGIN SOLUTION" not in stub and ".to(self.device1)" not in stub and "torch.optim.SGD" not in stub
    assert stub.count("raise NotImplementedError()") == 5
    compile(stub, "model_parallel.py", "exec")


def test_regions_become_indented_stubs():
    source = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert clear_solutions(source) == "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "1 '### BEGIN SOLUTION' but 0"),
    ("x = 1\n### END SOLUTION\n", "0 '### BEGIN SOLUTION' but 1"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION\n", "nested"),
])
def test_broken_markers_are_refused(source, message):
    with pytest.raises(SolutionMarkerError, match=message):
        clear_solutions(source, "bad.py")
