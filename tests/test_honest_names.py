"""Honest code is never punished for asking who and where it is (issue 23, item 6): ``getpass.getuser()`` and
``pwd.getpwuid(os.getuid())`` work in the sandbox, the process reads its own ``/proc/<os.getpid()>/status``, and
``inspect.signature(model.forward)`` sees the student's signature, not the probes' wrappers - 100 and unflagged, as
root and as a normal user. ``os.getlogin()`` is not asked: it reads the login session, which no grading job has."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from autograder.samples import REFERENCE
from autograder.sandbox.scan import scan_source

AS_ROOT = os.geteuid() == 0
AT_IMPORT = """
import getpass, inspect, os, pwd
USER = getpass.getuser()
assert USER and os.environ["LOGNAME"] == USER and os.path.isdir(os.path.expanduser("~")), USER
{passwd}
with open(f"/proc/{{os.getpid()}}/status") as _status:
    assert "Pid:" in _status.read()
with open("/proc/self/status") as _status:
    assert "VmRSS" in _status.read()
"""
# As root the sandbox's user is one the machine does not know: its passwd entry is the sandbox's own. The throwaway
# normal user of these tests has no passwd entry on the machine either, so there pwd fails outside the sandbox too.
STRICT_PASSWD = "assert pwd.getpwuid(os.getuid()).pw_name == USER\n"
LENIENT_PASSWD = "try:\n    pwd.getpwuid(os.getuid())\nexcept KeyError:\n    pass\n"
SIGNATURE = ("    assert list(inspect.signature(model.forward).parameters) == ['x', 'trace'], "
             "'the grader wrapper shows'\n")


def honest(passwd: str) -> str:
    source = REFERENCE.read_text().replace("from torch import nn\n", "from torch import nn\n" + AT_IMPORT.format(
        passwd=passwd), 1)
    for body in ("    optimizer = torch.optim.SGD(", "    def wait_for_gpus() -> None:"):
        source = source.replace(body, SIGNATURE + body, 1)
    return source


def test_the_scan_leaves_the_processs_own_proc_entries_alone():
    assert scan_source(honest(STRICT_PASSWD), "model_parallel.py") == []
    for other in ('open(f"/proc/{os.getppid()}/cmdline")', 'open(f"/proc/{os.getpid()}/environ")',
                  'open("/proc/1/cmdline")', 'open("/proc/" + str(pid) + "/status")'):
        assert [f["event"] for f in scan_source(f"import os\n{other}\n", "m.py")] == ["/proc"], other


@pytest.mark.skipif(not AS_ROOT, reason="the dropped user exists only when the grader runs as root")
def test_as_root_honest_names_score_full_marks_unflagged(grade_sim, tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "model_parallel.py").write_text(honest(STRICT_PASSWD))
    report = grade_sim(folder)
    assert report.score == 100, {r.check.id: r.message for r in report.results if not r.passed}
    assert not report.flags, report.flags


@pytest.mark.skipif(not AS_ROOT, reason="the throwaway user is made by root")
def test_as_a_normal_user_honest_names_score_full_marks_unflagged(fast_rubric):
    tmp_path = Path(tempfile.mkdtemp(prefix="honest-names-"))  # exposed writable to the throwaway user (as hostile's)
    submitted = tmp_path / "submitted" / "alice" / "practical8"
    submitted.mkdir(parents=True)
    (submitted / "model_parallel.py").write_text(honest(LENIENT_PASSWD))
    from tests.hostile.test_hostile import _grade_as

    try:
        (report,), _ = _grade_as("normal user", tmp_path / "submitted", tmp_path, fast_rubric, 1, 4345)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert report.score == 100, {r.check.id: r.message for r in report.results if not r.passed}
    assert not report.flags, report.flags
