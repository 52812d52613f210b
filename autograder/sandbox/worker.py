"""The submission's process: imports the student's module and answers probe requests.

It is forked from a warm server (``client.start_warm_server``) that has imported torch and the probes once, so each
submission starts in milliseconds. ``serve`` applies the limits, then answers one request per message:
JSON bytes in, JSON bytes out (never pickle). The student's stdout/stderr go to a capped output pipe,
never into the replies. Nothing here is trusted by the graders: replies are plain data they check.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch  # noqa: F401 - imported once in the warm server, before any fork

from ..contract import MODULE, MODULE_FILE
from ..simgpu import DEFAULT_GPU, simulated_gpus
from . import audit, gpucheck, inputs, intake, isolation, probes
from .limits import Limits, SandboxUnavailable, apply, in_pid_namespace
from .recorder import CudaRecorder

_real_sleep = time.sleep  # the simulation makes time.sleep virtual; reaping strays needs real pauses


class _State:
    log: Any = None
    module: Any = None
    import_error: dict | None = None
    reply_fd: int | None = None  # where the audit hook reports what the submission does (audit.py)


def _warm_up() -> None:
    """Pay one-off costs before forking: the optimizer's first step (it imports torch._dynamo) and the
    graders' initial weights (every child inherits them instead of generating 3M numbers again).

    No backward here: on a CUDA build with GPUs the first backward starts autograd's device threads, and every
    process forked after that refuses backward ("Unable to handle autograd's threading in combination with
    fork-based multiprocessing", pytorch/pytorch#69839) - every training check would fail. The step gets its
    gradients by hand."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    inputs.initial_weights(inputs.SEED)


def _student_error(exc: BaseException, submission: Path) -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).parent == submission]
    where = frames[-1] if frames else None
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "where": f"{Path(where.filename).name}, line {where.lineno}, in {where.name}" if where else None,
        "code": (where.line or "") if where else None,
        "function": where.name if where else None,
    }


def _load(submission: Path) -> None:
    if _State.module is not None or _State.import_error is not None:
        return
    sys.path.insert(0, str(submission))
    if _State.reply_fd is not None:
        audit.install(_State.reply_fd, submission)  # before the first line of student code runs
    before = audit.snapshot()
    try:
        _State.module = _import_student_module(submission)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the student's to see
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None  # the trusted side decides whose fault
        _State.import_error = {**_student_error(exc, submission), "during": "import", "missing_module": missing,
                               "machine": gpucheck.machine_failure(exc)}
    audit.report_patches(before, "while model_parallel.py was imported")


def _import_student_module(submission: Path) -> Any:
    """``import model_parallel``, as importlib does it, with the audit's ``getattr`` in the module's namespace before
    its first line runs (audit.checked_getattr): names computed at run time that reach frames or closures are seen."""
    spec = importlib.util.spec_from_file_location(MODULE, submission / MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    module.getattr = audit.checked_getattr(submission)
    sys.modules[MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(MODULE, None)
        raise
    return sys.modules[MODULE]


def serve(source: str, mode: str, requests, replies, output, scratch: str, limits: Limits,
          sim_gpu: str = DEFAULT_GPU) -> None:
    """Child entry point: limits, private copy of the submission, then answer probes until told to stop."""
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    submission = Path(scratch) / "submission"
    submission.mkdir()
    try:  # the original stays untouched; the copy is made from a descriptor that followed no link (intake.py)
        intake.copy_module(Path(source), submission / MODULE_FILE)
    except intake.NotAPlainFile as exc:  # the trusted side refused it at intake already; never import through one
        os.write(replies.fileno(), json.dumps({"ready": False, "refused": str(exc)}).encode() + b"\n")
        os._exit(0)
    reply_fd = _State.reply_fd = replies.fileno()
    problem = gpucheck.inherited(real_gpus=mode == "cuda")  # first: what the warm server left in this fork
    isolation.close_inherited(keep={0, 1, 2, requests.fileno(), reply_fd})
    _forget_resource_tracker()
    try:  # only the sandboxed grandchild returns
        notes = apply(limits, scratch, real_gpus=mode == "cuda", protected_fds=(requests.fileno(), reply_fd))
        problem = problem or _unreadable_stdlib()
    except SandboxUnavailable as exc:
        os.write(reply_fd, json.dumps({"ready": False, "machine": str(exc)}).encode() + b"\n")
        os._exit(0)
    if limits.threads:
        torch.set_num_threads(limits.threads)
    # In the sandbox, before the ready line, autograd and each GPU prove they work: the machine's failure is never
    # the student's (gpucheck.py).
    problem = problem or gpucheck.self_test(limits.gpus if mode == "cuda" else 0)
    if problem:
        os.write(reply_fd, json.dumps({"ready": False, "machine": problem}).encode() + b"\n")
        os._exit(0)
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(simulated_gpus(2, gpu=sim_gpu)) if mode == "sim" else None
        owner = os.getpid()
        # Before any student code, so start-up never counts against a check. ``pid``: this process as the grader
        # sees it, to kill it (and with it its PID namespace) whatever the student's code did to its process group.
        os.write(reply_fd, json.dumps({"ready": True, "pid": isolation.outer_pid(),
                                       "notes": notes}).encode() + b"\n")
        for line in os.fdopen(requests.fileno(), "rb", buffering=0, closefd=False):
            request = json.loads(line)
            if sim is not None:
                sim.reset()
            if request["probe"] == inputs.MACHINE_CHECK:  # the trusted side's question to a fresh process (client.py)
                reply = _machine_check(request["args"])
            else:
                with contextlib.nullcontext(sim.clocks) if sim is not None else CudaRecorder() as log:
                    _State.log = log
                    reply = _answer(request, submission, Path(scratch))
                    _State.log = None
            if os.getpid() != owner:  # a process the student's code forked: it never answers or reads requests
                os._exit(0)
            sys.stdout.flush()
            _reap_strays()
            os.write(reply_fd, json.dumps({**reply, "nonce": request["nonce"]}).encode() + b"\n")


def _forget_resource_tracker() -> None:
    """Its pipe is closed (``close_inherited``): should student code use shared memory, multiprocessing starts a
    tracker of its own, inside the sandbox, instead of writing to the grader's unsandboxed one."""
    from multiprocessing import resource_tracker

    resource_tracker._resource_tracker._fd = None
    resource_tracker._resource_tracker._pid = None


def _unreadable_stdlib() -> str | None:
    """Why the sandboxed user cannot import the standard library (a grading machine's problem), or None.
    Checked before any student code, so a submission is never blamed for what the machine denies it."""
    import importlib.util
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    try:
        os.listdir(stdlib)
        missing = [name for name in ("sqlite3", "zoneinfo", "logging.config", "importlib.readers")
                   if importlib.util.find_spec(name) is None]
    except (OSError, ImportError) as exc:
        missing = [str(exc)]
    if not missing:
        return None
    return (f"the submission's sandboxed user cannot read the grading interpreter's standard library in {stdlib} "
            f"({', '.join(missing)}). Install Python where other users can read it (not in a home folder of mode "
            "0700), or run the grader as root on a kernel that allows mount namespaces.")


def _reap_strays() -> None:
    """Kill every other process the submission started (a forking submission's children), before replying."""
    if in_pid_namespace():
        isolation.kill_namespace()
        return
    if not isolation.LINUX:  # no /proc to search: the process group (a student's own machine, running `check`)
        with contextlib.suppress(OSError):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.killpg(0, signal.SIGTERM)
        return
    me, session = os.getpid(), os.getsid(0)
    for _ in range(20):
        strays = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != me:
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[4]) == session:  # field 6: session id
                    strays.append(int(entry))
        if not strays:
            return
        for pid in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        _real_sleep(0.01)


def _machine_check(args: dict) -> dict:
    """Whether a module the submission could not import imports here: asked only of a fresh process, before any
    student code (answered from a process that ran student code, it would prove nothing; the client never asks one)."""
    if _State.module is not None or _State.import_error is not None:
        return {"ok": False, "error": {"type": "RuntimeError", "message": "student code already ran here"}}
    try:
        importlib.import_module(str(args.get("module")))
    except Exception as exc:  # noqa: BLE001 - whatever stops the import, no student code caused it
        return {"ok": True, "value": {"failed": f"{type(exc).__name__}: {str(exc)[:300]}"}}
    return {"ok": True, "value": {"failed": None}}


def _answer(request: dict, submission: Path, scratch: Path) -> dict:
    _load(submission)
    if _State.import_error is not None:
        return {"ok": False, "error": _State.import_error}
    if request["probe"] == "import":
        return {"ok": True, "value": {}}
    ctx = probes.Context(_State.module, _State.log, scratch)
    before = audit.snapshot()
    try:
        return {"ok": True, "value": probes.PROBES[request["probe"]](ctx, **request["args"])}
    except Exception as exc:  # noqa: BLE001 - the student's exception (or the machine's), reported to the graders
        return {"ok": False, "error": {**_student_error(exc, submission), "machine": gpucheck.machine_failure(exc)}}
    finally:  # before the reply is written: a patched serializer is reported before it is used
        audit.report_patches(before, f"while the {request['probe']} probe ran")


_warm_up()
