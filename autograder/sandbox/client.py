"""The trusted side of the sandbox: start the submission's process, send probes, read plain replies.

A probe that crashes the process or runs past its time limit costs that probe only: the process is
killed and a fresh one serves the next probe. Replies are JSON; tensors come back as files read with
``torch.load(weights_only=True)``, which cannot run code.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

STDERR_TAIL_BYTES = 4000


class ProbeFailed(Exception):
    """The student's code could not produce the observation; ``str(self)`` is written for the student."""


class SubmissionProcess:
    """One submission, run in a separate process on ``devices`` ("sim" or "cuda")."""

    def __init__(self, submission_dir: Path, devices: str) -> None:
        self.submission_dir = Path(submission_dir).resolve()
        self.devices = devices
        self.scratch = Path(tempfile.mkdtemp(prefix="practical8-"))
        self.proc: subprocess.Popen | None = None
        self._replies_fd = self._requests_fd = -1
        self._buffer = b""
        self._cache: dict[str, Any] = {}
        self.import_failure: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> None:
        req_read, req_write = os.pipe()
        rep_read, rep_write = os.pipe()
        self.stderr_file = open(self.scratch / "stderr.txt", "w+b")  # noqa: SIM115 - lives with the process
        cmd = [sys.executable, "-m", "autograder.sandbox.worker", str(self.submission_dir), "--devices",
               self.devices, "--requests", str(req_read), "--replies", str(rep_write), "--scratch", str(self.scratch)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr_file, stderr=self.stderr_file,
                                     pass_fds=(req_read, rep_write), cwd=self.scratch, start_new_session=True,
                                     env=_worker_env())
        os.close(req_read)
        os.close(rep_write)
        self._requests_fd, self._replies_fd, self._buffer = req_write, rep_read, b""

    def _stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with _suppress():
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for fd in (self._requests_fd, self._replies_fd):
                with _suppress():
                    os.close(fd)
            self.stderr_file.close()
        self.proc = None

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

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
        if self.proc is None or self.proc.poll() is not None:
            self._stop()
            self._start()
        if name != "import" and not self._cache.get("imported"):
            self._cache["imported"] = True
            self._ask("import", {}, timeout)
        os.write(self._requests_fd, (json.dumps({"probe": name, "args": args}) + "\n").encode())
        line = self._read_line(timeout, name)
        reply = json.loads(line)
        if not reply.get("ok"):
            message = _explain(reply.get("error") or {}, name)
            if (reply.get("error") or {}).get("during") == "import":
                self.import_failure = message
            raise ProbeFailed(message)
        return reply["value"]

    def _read_line(self, timeout: float, name: str) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready = select.select([self._replies_fd], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self._stop()
                what = "importing model_parallel.py" if name == "import" else _ENTRY_POINTS.get(name, name)
                message = (f"Your code did not finish {what} within {timeout:g} s, so it was stopped. Look for an "
                           "infinite loop or a very slow step; on simulated GPUs every op runs on the CPU.")
                if name == "import":
                    self.import_failure = message
                raise ProbeFailed(message)
            chunk = os.read(self._replies_fd, 1 << 20)
            if not chunk:
                code = self.proc.wait()
                tail = self.stderr_tail()
                self._stop()
                raise ProbeFailed(
                    f"The grading process running your {_ENTRY_POINTS.get(name, name)} ended unexpectedly "
                    f"(exit code {code}). Did your code call sys.exit(), os._exit() or crash Python? "
                    + (f"Its last output:\n{tail}" if tail else ""))
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def stderr_tail(self) -> str:
        try:
            data = (self.scratch / "stderr.txt").read_bytes()[-STDERR_TAIL_BYTES:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def load_tensors(self, filename: str) -> dict[str, torch.Tensor]:
        """Tensors a probe saved; ``weights_only=True`` refuses anything but plain tensors and containers."""
        path = (self.scratch / Path(filename).name)
        data = torch.load(path, weights_only=True)
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise ProbeFailed(f"{filename}: expected a dict of tensors from the probe")
        return data


_ENTRY_POINTS = {
    "build": "SimpleMPModel(...) constructor",
    "forward": "SimpleMPModel.forward",
    "train": "train()",
    "time_forward": "time_forward()",
    "import": "import of model_parallel.py",
}

_STUDENT_FUNCTIONS = {"__init__": "SimpleMPModel.__init__", "forward": "SimpleMPModel.forward", "train": "train()",
                      "time_forward": "time_forward()"}


def _explain(error: dict, probe: str) -> str:
    """A student-facing sentence for an exception raised by the student's code."""
    kind, message, where = error.get("type", "Exception"), error.get("message", ""), error.get("where")
    place = f" ({where}: `{error.get('code')}`)" if where else ""
    if error.get("during") == "import":
        return f"Importing model_parallel.py failed with {kind}: {message}{place}. Fix it so the file imports."
    function = _STUDENT_FUNCTIONS.get(error.get("function"), _ENTRY_POINTS.get(probe, probe))
    if kind == "NotImplementedError":
        return (f"{function} is not implemented yet: it raised NotImplementedError{place}. "
                "Replace `# YOUR CODE HERE` and `raise NotImplementedError()` with your code.")
    hint = ""
    if "Expected all tensors to be on the same device" in message:
        hint = (" Two tensors in one operation are on different devices: move the input to device0 first, "
                "the activation to device1 before layer2, and the target to the output's device.")
    return f"{function} raised {kind}: {message}{place}.{hint}"


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES",
                                                          "LD_LIBRARY_PATH", "TMPDIR", "OMP_NUM_THREADS")}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = package_root
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError | ProcessLookupError)
