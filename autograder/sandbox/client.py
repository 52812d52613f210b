"""The trusted side of the sandbox: start the submission's process, send probes, read plain replies.

A probe that crashes the process or runs past its time limit costs that probe only: the process is
killed and a fresh one serves the next probe. Replies are JSON; tensors come back as .npz files read
with ``numpy.load(allow_pickle=False)``, which cannot run code. This side never imports torch: grading
starts while the warm server is still importing it.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import secrets
import select
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import ASSIGNMENT, MODULE_FILE
from ..devices import require_mode
from ..simgpu.profiles import DEFAULT_GPU, gpu_profile
from .cuda_layers import explain as explain_cuda_failure
from .inputs import MACHINE_CHECK
from .limits import Limits
from .memory import MEMORY_BUDGET, Budget, GiB

START_TIMEOUT_S = 120  # the first child waits for the warm server to import torch
OUTPUT_KEEP_BYTES = 4000  # the student's output kept for messages (head and tail); the rest is drained away
MAX_ARRAYS_BYTES = 64 << 20  # the largest .npz a probe saves is ~25 MB (two layers' weights and some outputs)
MAX_REPLY_BYTES = 64 << 20  # no probe reply is this large: more means the reply pipe was tampered with
MAX_FLAGS, MAX_FLAG_TEXT = 100, 300  # the audit hook's limits (audit.py), kept here too: its lines can be forged
FLAGS_OVERFLOWED = "flags overflowed"  # the one flag added past MAX_FLAGS: a flood of audit lines is itself evidence
_CONTEXT = multiprocessing.get_context("forkserver")
# The server imports torch and the probes (and warms the optimizer) once; each submission is forked from it.
# It never initialises CUDA, so forked children can still use the GPUs.
_CONTEXT.set_forkserver_preload(["autograder.sandbox.worker"])


def start_warm_server() -> None:
    """Start the warm server now: it needs seconds to import torch, and can do so while this process
    loads pytest and the graders. Idempotent; the first submission would start it anyway."""
    from multiprocessing import forkserver

    with _no_main_module():
        forkserver.ensure_running()


class ProbeFailed(Exception):
    """The student's code could not produce the observation; ``str(self)`` is written for the student."""


class GradingMachineProblem(RuntimeError):
    """The grading machine, not the submission, kept the submission from running: not graded, never a fail."""


def gpu_count() -> tuple[int, str]:
    """How many CUDA GPUs torch sees, asked in a child of the warm server (which has torch; this process
    never imports it): ``devices.resolve``'s ``gpu_count``. The child initialises CUDA, the server does not."""
    from .entry import count_gpus

    start_warm_server()
    answer, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=count_gpus, args=(send,), daemon=True)
    with _no_main_module():
        child.start()
    send.close()
    try:
        if not answer.poll(START_TIMEOUT_S):
            raise RuntimeError(f"counting the GPUs took longer than {START_TIMEOUT_S} s")
        count, build = json.loads(answer.recv_bytes())
    except EOFError:
        raise RuntimeError(f"counting the GPUs failed: the process exited with code {child.exitcode}") from None
    finally:
        child.join(5)
        answer.close()
    return int(count), str(build)


class SubmissionProcess:
    """One submission, run in a separate, limited process, on real (``mode`` "cuda") or simulated ("sim") GPUs."""

    def __init__(self, submission_dir: Path, mode: str, limits: Limits | None = None,
                 budget_s: float | None = None, sim_gpu: str = DEFAULT_GPU) -> None:
        self.submission_dir = Path(submission_dir).resolve()
        self.mode = require_mode(mode)
        self.sim_gpu = gpu_profile(sim_gpu).key
        self.limits = limits or Limits()
        self.scratch_root = Path(tempfile.mkdtemp(prefix=f"{ASSIGNMENT}-"))
        self.budget_s, self.deadline = budget_s, None
        self.proc = None
        self._cache: dict[str, Any] = {}
        self.import_failure: str | None = None
        self._starts = 0
        self._output = bytearray()
        self._sandboxed_pid: int | None = None
        self.sandbox_notes: list[str] = []  # protections this machine could not apply (start-up's report)
        self.machine_problem: str | None = None  # set when a failure is the grading machine's, not the student's
        self.flags: list[dict[str, str]] = []  # what the audit hook saw the submission do (audit.py)
        self.budget: Budget | None = None  # this submission's memory cgroup, made at the first start (memory.py)
        self._budget_note: str | None = None  # why there is none

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> None:
        from .entry import serve

        self._starts += 1
        scratch = self.scratch_root / f"run{self._starts}"
        scratch.mkdir()
        if self.budget is None and self._budget_note is None:  # once per submission, before its first process
            self.budget, self._budget_note = Budget.create(self.scratch_root.name)
        limits = self.limits
        if self.budget is None and self.mode == "sim":  # nothing would count memfd pages: refuse memfd_create
            limits = dataclasses.replace(limits, refuse_memfd=True)
        req_read, self._requests = _CONTEXT.Pipe(duplex=False)
        self._replies, rep_write = _CONTEXT.Pipe(duplex=False)
        out_read, out_write = _CONTEXT.Pipe(duplex=False)
        self.proc = _CONTEXT.Process(target=serve, daemon=True, args=(
            str(self.submission_dir), self.mode, req_read, rep_write, out_write, str(scratch), limits,
            self.sim_gpu))
        with _no_main_module():
            self.proc.start()
        self.scratch = scratch
        for end in (req_read, rep_write, out_write):
            end.close()
        threading.Thread(target=self._drain, args=(out_read,), daemon=True).start()
        self._buffer = b""
        try:  # the first child waits for the warm server to import torch: seconds, not the student's
            ready = json.loads(self._next_line(time.monotonic() + START_TIMEOUT_S))
        except (EOFError, TimeoutError, ValueError, RecursionError):
            ready = {}
        if not isinstance(ready, dict) or not ready.get("ready"):
            self._stop()
            if isinstance(ready, dict) and ready.get("refused"):  # not a plain file (intake.py): the student's
                self.import_failure = str(ready["refused"])
                raise ProbeFailed(self.import_failure)
            if isinstance(ready, dict) and ready.get("machine"):
                # One CUDA failure at start-up: which protection stops CUDA, found once per run (cuda_layers.py)
                self.machine_problem = explain_cuda_failure(str(ready["machine"]), self.mode, self.limits)
            else:  # no student code has run yet: whatever stopped it is the machine's
                self.machine_problem = (f"the sandbox process did not start within {START_TIMEOUT_S} s: "
                                        f"{self.output_tail()}")
            raise GradingMachineProblem(self.machine_problem)
        self._sandboxed_pid = int(ready["pid"])
        self.sandbox_notes = [str(note) for note in ready.get("notes", [])]
        self._admit_to_budget()  # before the first request: no student code has run yet
        if self.deadline is None and self.budget_s is not None:
            self.deadline = time.monotonic() + self.budget_s

    def _admit_to_budget(self) -> None:
        """Put the new process (and whatever it starts) into this submission's memory budget (memory.py); where the
        machine allows none, the sandbox's notes say so."""
        if self.budget is not None:
            try:
                for pid in (self.proc.pid, self._sandboxed_pid):
                    self.budget.admit(pid)
                return
            except OSError as exc:
                self.sandbox_notes.append(f"memory budget per submission (cannot move the process into "
                                          f"{self.budget.memory}: {exc}): memory is not bounded")
                return
        self.sandbox_notes.append(f"memory budget per submission ({self._budget_note}): " + (
            "memory is not bounded (real GPUs need memfd_create)" if self.mode == "cuda" else
            "memfd_create refused and /dev/shm not writable instead; the address-space cap bounds the rest"))

    def _drain(self, out_read) -> None:
        """Read the student's output as it comes; keep only the head and tail, so 100 MB cannot hurt."""
        fd = out_read.fileno()
        while chunk := _read_or_empty(fd):
            self._output += chunk
            if len(self._output) > 2 * OUTPUT_KEEP_BYTES:
                del self._output[OUTPUT_KEEP_BYTES:-OUTPUT_KEEP_BYTES]
        out_read.close()

    def _stop(self) -> None:
        if self.proc is not None:
            if self.proc.pid is not None and self.proc.exitcode is None:
                if self._sandboxed_pid is not None:  # PID 1 of its namespace: everything it started dies with it
                    with _suppress():  # (alive: the child waits for it, so the PID cannot have been reused)
                        os.kill(self._sandboxed_pid, signal.SIGKILL)
                with _suppress():
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the child leads its own session
                with _suppress():
                    self.proc.kill()
            if self.proc.pid is not None:
                self.proc.join(5)
            for conn in (self._requests, self._replies):
                conn.close()
        self.proc = self._sandboxed_pid = None

    def close(self) -> None:
        self._stop()
        if self.budget is not None:
            self.budget.close()
        shutil.rmtree(self.scratch_root, onerror=_writable_then_retry)  # a folder made read-only is still removed

    def __enter__(self) -> SubmissionProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ probes
    def probe(self, name: str, timeout: float, **args: Any) -> dict:
        """Run probe ``name`` with JSON ``args``; return its observations or raise ``ProbeFailed``."""
        key = json.dumps([name, args], sort_keys=True)
        if key not in self._cache:
            try:
                self._cache[key] = ("ok", self._ask(name, args, timeout))
            except ProbeFailed as exc:
                self._cache[key] = ("failed", str(exc))
        status, value = self._cache[key]
        if status == "failed":
            raise ProbeFailed(value)
        return value

    def _ask(self, name: str, args: dict, timeout: float) -> dict:
        if self.import_failure is not None:
            raise ProbeFailed(self.import_failure)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ProbeFailed("Grading this submission used up its whole time budget, so this check was not "
                                  "run. Look for infinite loops or very slow steps in your code.")
            timeout = min(timeout, left)
        if self.proc is None or self.proc.exitcode is not None:
            self._stop()
            self._start()
        if name != "import" and not self._cache.get("imported"):
            self._cache["imported"] = True
            self._ask("import", {}, timeout)
        nonce = secrets.token_hex(16)
        os.write(self._requests.fileno(), json.dumps({"probe": name, "args": args, "nonce": nonce}).encode() + b"\n")
        reply = self._read_reply(timeout, name, nonce)
        if not reply.get("ok"):
            error = _plain_error(reply.get("error"))
            message = _explain(error, name)
            during_import = error.get("during") == "import"
            if during_import:
                self.import_failure = message
            missing = error.get("missing_module") if during_import else None
            if error.get("machine") or _installed_here(missing):
                # Only a claim: the student's code can raise any exception, with any traceback, and write any reply
                # it holds the nonce of. The machine's failure is decided here, by a fresh process (no student code).
                problem = self._machine_failed(missing if _installed_here(missing) else None)
                if problem is None:
                    message += (" (The grading machine passed its self-test right after this error, so the error "
                                "is your code's.)")
                    if during_import:
                        self.import_failure = message
                elif missing:
                    self.machine_problem = self.import_failure = (
                        f"the submission's process could not import {missing!r}, which the grading interpreter "
                        f"has, and neither could a fresh sandboxed process: a grading machine problem, not the "
                        f"student's ({message})")
                else:
                    self.machine_problem = f"the grading machine failed while the submission ran: {problem}"
            raise ProbeFailed(message)
        return reply.get("value")

    def _machine_failed(self, module: str | None) -> str | None:
        """Why the grading machine fails, decided by the trusted side: a fresh process, in which no student code has
        run, runs the GPU self-test (before its ready line, ``worker.serve``) and, for ``module``, tries to import it;
        None when it passes. That process is discarded: the next probe starts another."""
        self._stop()
        try:
            self._start()
        except GradingMachineProblem as exc:
            return str(exc)
        try:
            if module is None:
                return None
            nonce = secrets.token_hex(16)
            os.write(self._requests.fileno(), json.dumps({"probe": MACHINE_CHECK, "args": {"module": module},
                                                          "nonce": nonce}).encode() + b"\n")
            try:
                reply = self._read_reply(START_TIMEOUT_S, MACHINE_CHECK, nonce)
            except ProbeFailed as exc:
                return f"the fresh process checking the import of {module!r} failed: {exc}"
            value = reply.get("value")
            failed = value.get("failed") if isinstance(value, dict) else "no answer"
            return None if failed is None else f"a fresh sandboxed process cannot import {module!r} either ({failed})"
        finally:
            self._stop()

    def _next_line(self, deadline: float) -> bytes:
        """One line from the replies pipe (raw bytes, never unpickled), or EOFError / TimeoutError. The audit hook's
        lines are taken out on the way, whenever they come (start-up included), into ``flags``."""
        fd = self._replies.fileno()
        while True:
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise TimeoutError
                chunk = _read_or_empty(fd)
                if not chunk:
                    raise EOFError
                self._buffer += chunk
                if len(self._buffer) > MAX_REPLY_BYTES:
                    raise EOFError  # nothing a probe sends is this large: the pipe was tampered with
            line, _, self._buffer = self._buffer.partition(b"\n")
            if not self._collect_flag(line):
                return line

    def _collect_flag(self, line: bytes) -> bool:
        """Whether ``line`` is the audit hook's (``{"audit": {...}}``); if so, its flag joins ``flags`` once."""
        if not line.startswith(b'{"audit"'):
            return False
        try:
            found = json.loads(line)["audit"]
        except Exception:  # noqa: BLE001 - garbled or nested past the parser (RecursionError): the hook writes
            return True  # whole, shallow lines, so the submission wrote this one
        if isinstance(found, dict):
            flag = {key: str(found.get(key, ""))[:MAX_FLAG_TEXT] for key in ("event", "where", "detail")}
            if flag not in self.flags:
                self._keep_flag(flag)
        return True

    def _keep_flag(self, flag: dict[str, str]) -> None:
        """Add ``flag`` within MAX_FLAGS, so that forged lines cannot crowd the real evidence out: when full, the first
        flag of an event not seen yet takes the place of the latest repeat of another event, and one
        ``flags overflowed`` flag (after the MAX_FLAGS kept) says that some were dropped."""
        kept = self.flags[:MAX_FLAGS]
        if len(kept) < MAX_FLAGS:
            self.flags.append(flag)
            return
        seen: set[str] = set()
        repeats = [i for i, old in enumerate(kept) if old["event"] in seen or seen.add(old["event"])]
        if flag["event"] not in seen and repeats:
            del self.flags[repeats[-1]]
            self.flags.insert(MAX_FLAGS - 1, flag)
        if len(self.flags) == MAX_FLAGS:
            self.flags.append({"event": FLAGS_OVERFLOWED, "where": MODULE_FILE,
                               "detail": f"more than {MAX_FLAGS} audit lines: the rest were dropped"})

    def read_flags(self) -> list[dict[str, str]]:
        """``flags``, with the audit lines already waiting in the pipe (a thread's, after the last reply)."""
        if self.proc is not None:
            fd = self._replies.fileno()
            for _ in range(64):
                if not select.select([fd], [], [], 0)[0] or not (chunk := _read_or_empty(fd)):
                    break
                self._buffer += chunk
            *lines, rest = self._buffer.split(b"\n")
            self._buffer = b"".join(line + b"\n" for line in lines if not self._collect_flag(line)) + rest
        return self.flags

    def _read_reply(self, timeout: float, name: str, nonce: str) -> dict:
        """The reply to *this* request: lines that are not JSON or carry another nonce are ignored."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    reply = json.loads(self._next_line(deadline))
                except (ValueError, RecursionError, MemoryError):  # not JSON, or nested deep enough to exhaust the
                    continue  # parser
                if isinstance(reply, dict) and reply.get("nonce") == nonce:
                    return reply
        except TimeoutError:
            self._stop()
            what = "importing model_parallel.py" if name == "import" else _ENTRY_POINTS.get(name, name)
            message = (f"Your code did not finish {what} within {timeout:.0f} s, so it was stopped. Look for an "
                       "infinite loop or a very slow step; on simulated GPUs every op runs on the CPU.")
            if name == "import":
                self.import_failure = message
            raise ProbeFailed(message) from None
        except EOFError:
            pass
        self.proc.join(5)
        code = self.proc.exitcode
        tail = self.output_tail()
        self._stop()
        if self.budget is not None and self.budget.exceeded():
            message = (f"Your code used more than the {MEMORY_BUDGET / GiB:.0f} GiB of memory a submission may use "
                       f"(everything counts: tensors, buffers, memfd and shared memory), so its process was stopped "
                       f"while it ran your {_ENTRY_POINTS.get(name, name)}, and this check is lost. Keep only what "
                       "you need: the practical's model needs well under 1 GiB.")
            if name == "import":
                self.import_failure = message
            raise ProbeFailed(message)
        how = (f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}")
        raise ProbeFailed(
            f"The process running your {_ENTRY_POINTS.get(name, name)} {how}. Did your code call sys.exit() or "
            f"os._exit(), run out of memory, or crash Python?" + (f" Its last output:\n{tail}" if tail else ""))

    def output_tail(self) -> str:
        """What the student's code printed (head and tail only, when it printed a lot)."""
        time.sleep(0.05)  # let the drain thread catch the last bytes
        text = bytes(self._output).decode("utf-8", "replace").strip()
        return text[-OUTPUT_KEEP_BYTES:]

    def load_arrays(self, filename: str) -> dict[str, np.ndarray]:
        """Arrays a probe saved (.npz); ``allow_pickle=False`` refuses anything but plain numeric arrays."""
        path = self.scratch / Path(filename).name
        try:  # the student's process could swap the file: a regular file, no link or FIFO, no zip bomb
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as file:
                if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_size > MAX_ARRAYS_BYTES:
                    raise ValueError("not a plain file of a probe's size")
                with zipfile.ZipFile(file) as archive:
                    if sum(info.file_size for info in archive.infolist()) > MAX_ARRAYS_BYTES:
                        raise ValueError("it unpacks to more than any probe saves")
                file.seek(0)
                with np.load(file, allow_pickle=False) as data:
                    arrays = {name: data[name] for name in data.files}
        except Exception as exc:  # noqa: BLE001 - the file sat in the student's scratch folder: anything goes
            raise ProbeFailed(f"The observations of your code could not be read back ({exc}).") from None
        if not all(a.dtype.kind == "f" for a in arrays.values()):
            raise ProbeFailed(f"{filename}: expected float arrays from the probe")
        return arrays


_ENTRY_POINTS = {
    "build": "SimpleMPModel(...) constructor",
    "forward": "SimpleMPModel.forward",
    "train": "train()",
    "time_forward": "time_forward()",
    "pipeline": "PipelinedMPModel",
    "import": "import of model_parallel.py",
}

_STUDENT_FUNCTIONS = {"__init__": "SimpleMPModel.__init__", "forward": "SimpleMPModel.forward", "train": "train()",
                      "time_forward": "time_forward()"}


def _plain_error(error: Any) -> dict[str, str]:
    """The error of a reply as plain strings (the reply was made in the student's process: anything may be in it)."""
    if type(error) is not dict:
        return {}
    return {key: str(value)[:4000] for key, value in error.items()
            if type(key) is str and type(value) in (str, int, float, bool) and value is not False}


def _explain(error: dict, probe: str) -> str:
    """A student-facing sentence for an exception raised by the student's code."""
    kind, message, where = error.get("type", "Exception"), error.get("message", ""), error.get("where")
    place = f" ({where}: `{error.get('code')}`)" if where else ""
    if error.get("during") == "import":
        return f"Importing model_parallel.py failed with {kind}: {message}{place}. Fix it so the file imports."
    function = _STUDENT_FUNCTIONS.get(error.get("function"), _ENTRY_POINTS.get(probe, probe))
    if probe == "pipeline" and error.get("function") in ("__init__", "forward"):
        function = function.replace("SimpleMPModel", "PipelinedMPModel")
    if kind == "NotImplementedError":
        return (f"{function} is not implemented yet: it raised NotImplementedError{place}. "
                "Replace `# YOUR CODE HERE` and `raise NotImplementedError()` with your code.")
    hint = ""
    if "Expected all tensors to be on the same device" in message:
        hint = (" Two tensors in one operation are on different devices: move the input to device0 first, "
                "the activation to device1 before layer2, and the target to the output's device.")
    return f"{function} raised {kind}: {message}{place}.{hint}"


class _no_main_module:
    """multiprocessing re-imports the parent's ``__main__`` in each child (the CLI, pytest...): hide it."""

    def __enter__(self) -> None:
        self.main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")

    def __exit__(self, *exc: Any) -> None:
        sys.modules["__main__"] = self.main


def _writable_then_retry(function: Any, path: str, _exc: Any) -> None:
    """``rmtree``'s error handler: as a normal user, a folder the student made read-only (0500) cannot be emptied
    until it is made writable again; anything still left then is left (never the grader's failure)."""
    with _suppress():
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        function(path)


def _installed_here(module: Any) -> bool:
    """Whether the grading interpreter can import ``module`` (its top-level package is looked up, never imported:
    this process stays free of torch)."""
    import importlib.util

    if not isinstance(module, str) or not module:
        return False
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _read_or_empty(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], (OSError, ProcessLookupError, ValueError))
