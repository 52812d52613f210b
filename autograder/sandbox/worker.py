"""The submission's process: imports the student's module and answers probe requests.

    python -m autograder.sandbox.worker SUBMISSION_DIR --devices sim|cuda --requests FD --replies FD --scratch DIR

One JSON request per line on the requests pipe, one JSON reply per line on the replies pipe. The student's
own stdout/stderr go to this process's stderr, never into the replies. Everything here is untrusted as far
as the graders are concerned: replies are plain data and the graders check them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
import timeit
import traceback
from pathlib import Path
from typing import Any

MODULE = "model_parallel"
CLOCKS = ("perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns")


class _State:
    log: Any = None
    clock_reads: list[int] = []
    module: Any = None
    import_error: dict | None = None


def _log_clock_reads() -> None:
    """Wrap the host clocks so that each read is logged in order with transfers and syncs (values unchanged)."""
    for name in CLOCKS:
        real = getattr(time, name)

        def read(real=real):
            if _State.log is not None:
                _State.clock_reads.append(_State.log.next_seq())
            return real()

        setattr(time, name, read)
    timeit.default_timer = time.perf_counter


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
    try:
        _State.module = importlib.import_module(MODULE)
    except BaseException as exc:  # noqa: BLE001 - any failure to import is the student's to see
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        _State.import_error = {**_student_error(exc, submission), "during": "import"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("submission", type=Path)
    parser.add_argument("--devices", choices=("sim", "cuda"), required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--replies", type=int, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    args = parser.parse_args()
    submission = args.submission.resolve()
    requests = os.fdopen(args.requests, "r")
    replies = os.fdopen(args.replies, "w")
    os.dup2(2, 1)  # the student's prints (even os.write(1, ...)) land in stderr, not in the replies
    sys.stdout = sys.stderr

    from ..simgpu import simulated_gpus
    from . import probes
    from .recorder import CudaRecorder

    _log_clock_reads()
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(simulated_gpus(2)) if args.devices == "sim" else None
        for line in requests:
            request = json.loads(line)
            if sim is not None:
                sim.reset()
                log_context = contextlib.nullcontext(sim.clocks)
            else:
                log_context = CudaRecorder()
            with log_context as log:
                _State.log = log
                reply = _answer(request, submission, args.scratch, probes)
                _State.log = None
            replies.write(json.dumps(reply) + "\n")
            replies.flush()


def _answer(request: dict, submission: Path, scratch: Path, probes: Any) -> dict:
    _load(submission)
    if _State.import_error is not None:
        return {"ok": False, "error": _State.import_error}
    if request["probe"] == "import":
        return {"ok": True, "value": {}}
    ctx = probes.Context(_State.module, _State.log, scratch, _State.clock_reads)
    try:
        return {"ok": True, "value": probes.PROBES[request["probe"]](ctx, **request["args"])}
    except Exception as exc:  # noqa: BLE001 - the student's exception, reported to the graders
        return {"ok": False, "error": _student_error(exc, submission)}


if __name__ == "__main__":
    main()
