"""Machine problems are decided only by the trusted side, every line from the child is parsed safely, and every way
out of a check tears it down (issue 23, item 5).

A failing submission must not make itself "not graded" (no zero, graded again every run): not with a forged
autograder exception carrying a traceback from the simulator, not with a forged "module missing" import error, not
with a line on the reply channel that makes a parser raise. And one submission's early exit never costs the next
submission a check."""

import json
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.graders.replies import SCHEMAS, MalformedReply, validated
from autograder.grading import grade_all
from autograder.samples import REFERENCE
from autograder.sandbox import SubmissionProcess
from autograder.sandbox.client import ProbeFailed, _explain, _plain_error
from autograder.sandbox.scan import scan_source

DEVICES = ["cuda:0", "cuda:1"]
# A forged machine problem: the autograder's own exception class, raised from code compiled under the simulator's
# file name, so the innermost frame of its traceback is the autograder's (what the old test looked at).
FORGED_MACHINE = """
import autograder
from autograder.sandbox import gpucheck as _g
_SIM = autograder.__path__[0] + "/simgpu/mode.py"


def _forge():
    exec(compile("raise _g.MachineProblem('GPU is lost')", _SIM, "exec"), {"_g": _g})
"""


def _submission(tmp_path, source):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "model_parallel.py").write_text(source)
    return folder


def _reference_with(code_at_import="", code_in_init=""):
    source = REFERENCE.read_text().replace("from torch import nn\n", "from torch import nn\n" + code_at_import, 1)
    return source.replace("        super().__init__()\n", "        super().__init__()\n" + code_in_init, 1)


def test_a_forged_machine_problem_is_the_students_error(tmp_path):
    folder = _submission(tmp_path, _reference_with(FORGED_MACHINE, "        _forge()\n"))
    with SubmissionProcess(folder, "sim") as submission:
        with pytest.raises(ProbeFailed, match="passed its self-test right after") as failed:
            submission.probe("build", 60, devices=DEVICES, seed=0)
        assert "MachineProblem: GPU is lost" in str(failed.value)
        assert submission.machine_problem is None


def test_a_forged_missing_module_at_import_is_the_students_error(tmp_path):
    forged = "raise ModuleNotFoundError(\"No module named 'json'\", name='json')\n"
    folder = _submission(tmp_path, _reference_with(forged))
    with SubmissionProcess(folder, "sim") as submission:
        with pytest.raises(ProbeFailed, match="Importing model_parallel.py failed"):
            submission.probe("build", 60, devices=DEVICES, seed=0)
        assert submission.machine_problem is None


def test_every_exit_from_a_check_tears_it_down(fast_rubric, tmp_path):
    """A real machine failure in the middle of the first submission (stood in for here: the trusted side sets it),
    in a graders' module other than the first, stops that submission's checks; the next submission in the same
    session still gets every check, at 100 (it used to fail: "previous item was not torn down properly")."""
    folder = _submission(tmp_path, REFERENCE.read_text())
    real_probe, calls = SubmissionProcess.probe, []

    def failing_once(self, name, timeout, **args):
        calls.append(name)
        if calls.count("time_forward") == 1 and name == "time_forward":
            self.machine_problem = "the GPUs fell off the bus"
            raise ProbeFailed("not the student's")
        return real_probe(self, name, timeout, **args)

    reports = []
    with mock.patch.object(SubmissionProcess, "probe", failing_once):
        grade_all([("first", folder), ("second", REFERENCE.parent)], fast_rubric, "sim", on_report=reports.append)
    first, second = reports
    assert "the GPUs fell off the bus" in first.not_graded
    assert second.score == 100, {r.check.id: r.message for r in second.results if not r.passed}


# ------------------------------------------------------------------ the trusted parsers, fuzzed
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=4), max_leaves=30)


def _parser():
    submission = SubmissionProcess.__new__(SubmissionProcess)
    submission.flags = []
    return submission


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | JSON.map(lambda value: json.dumps({"audit": value}).encode()))
def test_any_audit_line_is_kept_or_dropped_never_raises(line):
    submission = _parser()
    assert submission._collect_flag(line) == line.startswith(b'{"audit"')
    assert all(set(flag) == {"event", "where", "detail"} and all(type(v) is str for v in flag.values())
               for flag in submission.flags)


@pytest.mark.parametrize("depth", [10, 1000, 100_000])
def test_a_line_nested_past_the_parser_is_dropped(depth):
    submission = _parser()
    for line in (b'{"audit": ' + b"[" * depth + b"]" * depth + b"}", b'{"audit": ' + b'{"a": ' * depth):
        assert submission._collect_flag(line) is True
    submission._buffer = b'{"audit": ' + b"[" * depth + b"\n"
    submission.proc = None
    assert submission.read_flags() == []


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(sorted(SCHEMAS)))
def test_any_error_or_value_in_a_reply_is_explained_or_refused_never_raises(value, probe):
    assert isinstance(_explain(_plain_error(value), probe), str)
    assert isinstance(_explain(_plain_error({"type": value, "function": value, "where": value}), probe), str)
    try:
        validated(probe, value)
    except MalformedReply:
        pass


def test_deep_replies_are_refused_as_malformed():
    deep: list = []
    for _ in range(50_000):
        deep = [deep]
    with pytest.raises(MalformedReply):
        validated("forward", {"output_device": deep})


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_the_scan_never_raises(source):
    assert isinstance(scan_source(source, "model_parallel.py"), list)


def test_the_scan_flags_source_nested_past_the_parser():
    for deep in ("x = " + "-" * 200_000 + "1\n", "x = " + "not " * 100_000 + "1\n"):
        assert [f["event"] for f in scan_source(deep, "model_parallel.py")] == ["unreadable source"]
