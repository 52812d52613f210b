"""Whose failure is it? The submission's process checks the grading machine before and after student code, so a GPU,
driver or fork problem of the machine is reported as "not graded" (grade again) and never as the student's error.

    problem = inherited(real_gpus)     # first thing in the forked child: did the warm server start CUDA?
    problem = self_test(gpus)          # in the sandbox, before the ready line: autograd, each GPU, a peer copy
    problem = machine_failure(exc)     # after student code raised: a machine failure only if the self-test fails too

Each returns None or one sentence for the instructor (``SubmissionProcess.machine_problem``, then
``Report.could_not_grade``). What the checks rely on, from PyTorch's and CUDA's own behaviour:
- CUDA cannot be used in a process forked after the parent initialised it: torch marks such a child
  (``torch.cuda._is_in_bad_fork()``) and refuses with "Cannot re-initialize CUDA in forked subprocess"; a driver
  initialised without torch (``cudaGetDeviceCount``) gives "initialization error" instead. Either way the warm server
  must never touch CUDA (``client.py``'s forkserver), and every child proves its GPUs work before it says ready.
- autograd refuses to run in a child forked after the parent ran a backward ("Unable to handle autograd's threading
  in combination with fork-based multiprocessing", pytorch/pytorch#69839): a tiny backward before the ready line.
"""

from __future__ import annotations

import os
from pathlib import Path

# Error messages that CUDA, its driver or PyTorch give for a failing machine (cudaGetErrorString, torch.cuda), never
# for a mistake in a student's PyTorch code. A match alone proves nothing (anyone can raise any message): a failure is
# the machine's only when the self-test fails afterwards too.
MACHINE_MARKERS = (
    "initialization error", "cuda driver initialization failed", "no cuda-capable device is detected",
    "cuda driver version is insufficient", "busy or unavailable", "uncorrectable ecc error", "found no nvidia driver",
    "nvidia driver on your system is too old", "cannot re-initialize cuda in forked subprocess",
    "unable to handle autograd's threading in combination with fork", "cuda call failed lazily at initialization",
    "system not yet initialized", "unsupported display driver / cuda driver combination",
    "forward compatibility was attempted on non supported hw", "gpu is lost", "unknown error",
    "torch not compiled with cuda enabled",
)
SELF_TEST_ELEMENTS = 1024
_AUTOGRADER_DIR = str(Path(__file__).resolve().parents[1])
_checked = {"gpus": 0, "driver_at_fork": False}  # what self_test touched (machine_failure tests it again); inherited


class MachineProblem(RuntimeError):
    """Raised by trusted code in the submission's process when the machine, not the submission, failed (e.g. the
    profiler returned nothing); ``machine_failure`` accepts it only when it was raised from the autograder's code."""


def driver_mapped(maps: str | None = None) -> bool:
    """Whether the CUDA driver library is loaded in this process (``/proc/self/maps``; inherited through fork)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return False
    return any(line.rsplit("/", 1)[-1].startswith("libcuda.so") for line in maps.splitlines())


def inherited(real_gpus: bool) -> str | None:
    """Called first in the forked child: why the warm server's state makes CUDA unusable here, or None."""
    import torch

    _checked["driver_at_fork"] = driver_mapped()  # explains a failing self-test; loaded alone is no proof of harm
    if real_gpus and torch.cuda._is_in_bad_fork():
        return ("the warm server had initialised CUDA before it forked this submission's process, so CUDA cannot "
                "be used here (torch.cuda._is_in_bad_fork()). Nothing in the warm server may touch a GPU: "
                "report this as a bug of the autograder.")
    return None


def self_test(gpus: int, when: str = "before any student code ran") -> str | None:
    """Autograd works in this fork, and each of the first ``gpus`` CUDA devices allocates, runs a backward and a
    ``_sleep`` kernel and takes a peer copy, all synchronised: why not, or None. Runs inside the sandbox, before any
    student code."""
    import torch

    _checked["gpus"] = gpus
    try:
        weight = torch.ones(4, requires_grad=True)
        (weight * 2).sum().backward()
        if not gpus:
            return None
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count < gpus:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "not set")
            return (f"the submission's sandboxed process sees {count} CUDA GPU(s) (torch {torch.__version__}, CUDA "
                    f"{torch.version.cuda or 'not built in'}, CUDA_VISIBLE_DEVICES={visible}); grading needs {gpus}"
                    + (". The CUDA driver was already loaded when this process was forked" if _checked["driver_at_fork"]
                       else ""))
        total = None
        for index in range(gpus):
            device = torch.device("cuda", index)
            ones = torch.ones(SELF_TEST_ELEMENTS, device=device, requires_grad=True)
            (ones * 2).sum().backward()
            with torch.cuda.device(device):  # loads the _sleep kernel (lazy loading): the probes' calibration of
                torch.cuda._sleep(1000)  # it (sleep_cycles) must never time a first launch
            total = ones.detach() if total is None else total.to(device) + ones.detach()  # a copy between GPUs
        for index in range(gpus):
            torch.cuda.synchronize(index)
        found, expected = float(total.sum()), SELF_TEST_ELEMENTS * gpus
        if found != expected:
            return f"the GPU self-test in the submission's process computed {found}; expected {expected}"
    except Exception as exc:  # noqa: BLE001 - whatever failed, no student code has run yet: it is the machine's
        where = f"{gpus} GPU(s)" if gpus else "autograd on the CPU"
        loaded = " (the CUDA driver was loaded when this process was forked)" if _checked["driver_at_fork"] else ""
        return (f"the grading machine failed a self-test of {where} in the submission's sandboxed process, "
                f"{when}{loaded}: {type(exc).__name__}: {str(exc).strip()[:500]}")
    return None


def is_cuda_failure(problem: str) -> bool:
    """Whether ``problem`` (a start-up's machine problem) is the GPU self-test failing: CUDA did not start, or not
    on every GPU (``cuda_layers.explain`` then finds which protection stops it)."""
    return problem.startswith(("the submission's sandboxed process sees ", "the grading machine failed a self-test of "
                               )) and "autograd on the CPU" not in problem


def machine_failure(exc: BaseException) -> str | None:
    """Whether ``exc``, raised while student code ran, is the grading machine's failure: a ``MachineProblem`` (or the
    profiler's ``ProfilerMissedWork``) raised by the autograder's own code, or a message CUDA gives for a failing
    machine *and* a self-test that now fails."""
    from ..busy import ProfilerMissedWork

    if isinstance(exc, (MachineProblem, ProfilerMissedWork)) and _raised_by_autograder(exc):
        return str(exc)
    message = str(exc).lower()
    if not any(marker in message for marker in MACHINE_MARKERS):
        return None
    again = self_test(_checked["gpus"], "right after")
    if again is None:
        return None  # the GPUs still work: the student's code caused it
    return f"{type(exc).__name__} while the submission ran ({str(exc).strip()[:300]}), and {again}"


def _raised_by_autograder(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_AUTOGRADER_DIR + os.sep)
