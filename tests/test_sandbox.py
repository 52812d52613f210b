"""The sandbox, as root and as a normal user: honest imports always work, nothing a submission starts outlives its
grading, and student code reads nothing private, writes nothing outside its scratch folder and has no network.

CI runs as root; the normal-user runs go through ``throwaway_user.py`` (a fresh uid, as on a GPU runner or a Slurm
cluster). Each submission reports what it could do by failing its import with that text: the report carries it.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, answer_of_forked_child

from autograder.samples import REFERENCE
from autograder.sandbox import landlock
from autograder.sandbox.isolation import blocked_ancestor

AS_ROOT = os.geteuid() == 0
THROWAWAY_UID = 4242
SHM_KEY = 0x5EC0DE  # a System V shared memory key the submission creates: it must die with it
pytestmark = pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock to test")
USERS = ["root", "normal user"] if AS_ROOT else ["normal user"]
HONEST_IMPORTS = "import matplotlib.pyplot, torch.utils.benchmark, logging.config, sqlite3, zoneinfo, doctest\n"


def _shared_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    folder.chmod(0o777)  # the throwaway user writes its results here
    return folder


def _submission(folder: Path, source: str) -> Path:
    sub = folder / f"sub-{uuid.uuid4().hex[:8]}"
    sub.mkdir()
    (sub / "model_parallel.py").write_text(source)
    sub.chmod(0o755)
    return sub


def _with_reference(prelude: str) -> str:
    """The reference solution with ``prelude`` run at import, after its ``from __future__`` line."""
    head, future, rest = REFERENCE.read_text().partition("from __future__ import annotations\n")
    return head + future + prelude + rest


def _grade(sub: Path, user: str, cwd: Path = REPO) -> dict:
    """``python -m autograder grade SUB --results R`` as ``user``, from ``cwd``: results.json as the student gets it."""
    results = sub.parent / f"{sub.name}.json"
    command = [sys.executable, "-m", "autograder", "grade", str(sub), "--devices", "sim", "--results", str(results),
               "--course-dir", str(REPO)]
    if user == "normal user":
        command = [sys.executable, str(REPO / "tests" / "throwaway_user.py"), str(THROWAWAY_UID), str(REPO),
                   str(sub.parent), "--", *command]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(results.read_text())


def _import_message(results: dict) -> str:
    return results["tests"][0]["output"]


@pytest.mark.parametrize("user", USERS)
def test_honest_imports_score_full_marks(user):
    if user == "root" and blocked_ancestor(sys.base_prefix) is None:
        pytest.skip(f"Python ({sys.base_prefix}) is not under a directory others cannot traverse: the case this "
                    "test exists for (pyenv or conda in root's 0700 home) cannot be shown on this machine")
    folder = _shared_folder()
    results = _grade(_submission(folder, _with_reference(HONEST_IMPORTS)), user)
    assert results["score"] == 100, [t["output"] for t in results["tests"] if t["score"] < t["max_score"]]


@pytest.mark.parametrize("user", USERS)
def test_nothing_the_submission_starts_outlives_its_grading(user):
    marker = f"{time.time():.6f}"  # the survivor's command line: `sleep <marker>`, unique to this run
    escape = ("import os as _os\n"
              "if _os.fork() == 0:\n"
              "    _os.setsid()\n"
              "    if _os.fork() == 0:\n"
              f"        _os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
              "    _os._exit(0)\n"
              "_os.wait()\n")
    folder = _shared_folder()
    results = _grade(_submission(folder, _with_reference(escape)), user)
    assert results["score"] == 100
    survivors = [pid for pid in os.listdir("/proc") if pid.isdigit() and marker in _cmdline(pid)]
    for pid in survivors:
        os.kill(int(pid), 9)
    assert not survivors, "a double-forked, setsid'd process outlived its grading"


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.parametrize("user", USERS)
def test_student_code_reaches_nothing_private_and_no_network(user):
    folder = _shared_folder()
    other = _submission(folder, "SECRET = 'another student'\n")
    results_file = folder / "earlier-results.json"
    results_file.write_text('{"score": 10}')
    results_file.chmod(0o666)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    unix_socket = folder / "agent.sock"  # an ssh-agent, D-Bus or docker.sock of the grader's
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(str(unix_socket))
    unix_socket.chmod(0o777)
    agent.listen()
    home = folder / "home"  # where the instructor runs the grader from: on sys.path as the working directory
    home.mkdir(mode=0o755)
    (home / "secret.txt").write_text("token")
    (home / "secret.txt").chmod(0o644)
    reads = [REPO / "autograder" / "graders" / "test_timing.py", REFERENCE, REPO / "grading.yml",
             other / "model_parallel.py", results_file, home / "secret.txt", Path("/root"), Path("/home")]
    writes = [results_file, folder / "planted.txt", Path(tempfile.gettempdir()) / f"planted-{uuid.uuid4().hex}",
              REPO / "planted.txt"]
    probe = ("import os as _os, socket as _socket\n"
             "_seen = []\n"
             f"for _p in {[str(p) for p in reads]!r}:\n"
             "    try:\n"
             "        _os.listdir(_p) if _os.path.isdir(_p) else open(_p).read()\n"
             "        _seen.append('READ ' + _p)\n"
             "    except OSError:\n"
             "        pass\n"
             f"for _p in {[str(p) for p in writes]!r}:\n"
             "    try:\n"
             "        open(_p, 'a').write('x')\n"
             "        _seen.append('WROTE ' + _p)\n"
             "    except OSError:\n"
             "        pass\n"
             "try:\n"
             f"    _socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=2)\n"
             "    _seen.append('TCP connected')\n"
             "except OSError:\n"
             "    pass\n"
             "try:\n"
             "    _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 53))\n"
             "    _seen.append('UDP sent')\n"
             "except OSError:\n"
             "    pass\n"
             "import ctypes as _ctypes, stat as _stat\n"
             "for _fd in map(int, _os.listdir('/proc/self/fd')):\n"
             "    try:\n"
             "        if _fd > 2 and _stat.S_ISFIFO(_os.fstat(_fd).st_mode):\n"
             "            _os.dup2(_os.open('/dev/null', _os.O_WRONLY), _fd)\n"
             "            _seen.append(f'REPLACED pipe {_fd}')\n"
             "    except OSError:\n"
             "        pass\n"
             "try:\n"
             "    _u = _socket.socket(_socket.AF_UNIX)\n"
             f"    _u.connect({str(unix_socket)!r})\n"
             "    _seen.append('UNIX socket connected')\n"
             "except OSError:\n"
             "    pass\n"
             "try:\n"
             "    open('/proc/self/environ', 'rb').read()\n"
             "    _seen.append('READ environ')\n"
             "except OSError:\n"
             "    pass\n"
             "_libc = _ctypes.CDLL(None, use_errno=True)\n"
             "if _libc.syscall(250 if _os.uname().machine == 'x86_64' else 219, 0, -3, 0) >= 0:\n"
             "    _seen.append('KEYRING reached')\n"
             f"_libc.shmget({SHM_KEY}, 1 << 20, 0o1666)\n"
             "raise RuntimeError('SEEN[' + '; '.join(_seen) + ']')\n")
    try:
        results = _grade(_submission(folder, probe), user, cwd=home)
    finally:
        listener.close()
        agent.close()
    message = _import_message(results)
    assert "SEEN[" in message, message
    seen = message.split("SEEN[", 1)[1].split("]", 1)[0]
    assert seen == "", f"as {user}, student code could: {seen}"
    assert results_file.read_text() == '{"score": 10}'
    assert f"{SHM_KEY:10d}" not in Path("/proc/sysvipc/shm").read_text(), "System V memory outlived the submission"
    assert not (REPO / "planted.txt").exists() and not (folder / "planted.txt").exists()


def _apply_without_landlock(require: bool, scratch: str, answer) -> None:
    from autograder.sandbox import landlock as kernel
    from autograder.sandbox.limits import Limits, SandboxUnavailable, apply

    kernel.abi_version = lambda: 0  # a kernel without Landlock
    try:
        answer.send(("applied", apply(Limits(require_landlock=require), scratch)))
    except SandboxUnavailable as exc:
        answer.send(("refused", str(exc)))


@pytest.mark.parametrize("require", [True, False])
def test_without_landlock_the_sandbox_refuses_unless_told_not_to(require):
    outcome, detail = answer_of_forked_child(_apply_without_landlock, require)
    if require:
        assert outcome == "refused" and "--unsafe-no-sandbox" in detail
    else:
        assert outcome == "applied" and any("Landlock" in note for note in detail)


def test_grade_refuses_in_one_line_where_the_kernel_has_no_landlock(monkeypatch, capsys):
    from autograder import cli

    monkeypatch.setattr(cli.landlock, "abi_version", lambda: 0)
    assert cli.main(["grade", str(REFERENCE.parent), "--devices", "sim"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: this kernel has no Landlock") and "--unsafe-no-sandbox" in error
    assert len(error.splitlines()) == 1


def test_an_import_error_a_fresh_sandboxed_process_confirms_is_not_graded(grade_sim):
    """A grading machine that hides an installed package from the sandbox: the grading interpreter has it (stood in
    for: ``_installed_here`` says so), and a fresh sandboxed process, in which no student code ran, cannot import it
    either - the machine's problem, graded again next run."""
    from unittest import mock

    folder = _shared_folder()
    sub = _submission(folder, _with_reference("import package_only_the_grader_has\n"))
    with mock.patch("autograder.sandbox.client._installed_here", return_value=True):
        report = grade_sim(sub)
    assert report.not_graded and "grading machine problem" in report.not_graded
    assert "package_only_the_grader_has" in report.not_graded and "neither could a fresh" in report.not_graded


def test_a_forged_missing_module_is_the_students_error(grade_sim):
    """Raising ModuleNotFoundError for numpy (which the sandbox imports fine) no longer makes a submission "not
    graded" (issue 23, item 5): the fresh process imports numpy, so the failure is the student's, scored."""
    folder = _shared_folder()
    sub = _submission(folder, _with_reference("raise ModuleNotFoundError(\"No module named 'numpy'\", name='numpy')\n"))
    report = grade_sim(sub)
    assert not report.not_graded and report.score == 0
    assert "self-test right after" in report.results[0].message


def test_a_missing_package_is_the_students_to_fix(grade_sim):
    folder = _shared_folder()
    report = grade_sim(_submission(folder, _with_reference("import package_nobody_installed\n")))
    assert not report.not_graded and report.score == 0
    assert "No module named 'package_nobody_installed'" in report.results[0].message


def test_the_interpreter_view_is_never_mounted_in_the_machines_own_namespace(tmp_path):
    from autograder.sandbox.isolation import expose, mount_namespace, python_paths

    before = Path("/proc/self/mountinfo").read_text()
    with pytest.raises(OSError, match="mount namespace of its own"):
        expose(python_paths(), str(tmp_path), mount_namespace())
    assert Path("/proc/self/mountinfo").read_text() == before


def _process_reading(scratch: Path):
    from autograder.sandbox import SubmissionProcess

    process = SubmissionProcess(REFERENCE.parent, "sim")
    process.scratch = scratch
    return process


def test_observations_swapped_for_a_zip_bomb_a_fifo_or_a_link_are_refused_at_once(tmp_path):
    import zipfile

    from autograder.sandbox import ProbeFailed

    # 96 MiB of zeros, deflated: more than any probe saves
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as bomb:
        header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (25165824,), }"
        with bomb.open("out.npy", "w", force_zip64=True) as member:
            member.write(header.ljust(127) + b"\n")
            for _ in range(96):
                member.write(bytes(1 << 20))
    os.mkfifo(tmp_path / "fifo.npz")
    np_file = tmp_path / "real.npz"
    import numpy as np

    np.savez(np_file, out=np.zeros(3, dtype=np.float32))
    (tmp_path / "link.npz").symlink_to(np_file)
    process = _process_reading(tmp_path)
    try:
        assert process.load_arrays("real.npz")["out"].shape == (3,)
        for name in ("bomb.npz", "fifo.npz", "link.npz"):
            started = time.monotonic()
            with pytest.raises(ProbeFailed, match="could not be read back"):
                process.load_arrays(name)
            assert time.monotonic() - started < 5
    finally:
        process.close()
