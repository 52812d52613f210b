"""When CUDA does not start inside the sandbox: which protection keeps it from starting, said in one line.

    found = diagnose(gpus)                    # {"none": None, "limits": None, ..., "seccomp": "RuntimeError: ..."}
    line = conclude(found)                    # "CUDA cannot start under seccomp: <error>; <what to do>" or None
    problem = explain(problem, mode, limits)  # the trusted side, when a submission's process fails its GPU self-test

Each layer of ``limits.apply`` (``limits.LAYERS``) is applied alone in a fresh child, then CUDA is started there
(``cuda_starts``); "none" (no protection) first - CUDA failing there is the machine's, not the sandbox's - and "all"
last. The children are forked from a process of their own (``python -m autograder.sandbox.cuda_layers``) that has
imported torch but never touched CUDA, so each one starts CUDA as a submission would. It costs one interpreter start
and a CUDA start per layer (seconds), once per grading run: ``explain`` keeps what it found, and prints the line once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from .limits import LAYERS, Limits

PROBE = "autograder.sandbox.cuda_layers:cuda_starts"  # module:function(gpus) -> None, or raises
DIAGNOSE_TIMEOUT_S = 300
CHILD_TIMEOUT_S = 60
ADVICE = {
    "none": "check the driver (nvidia-smi), the GPUs this job may use (CUDA_VISIBLE_DEVICES) and the torch build, "
            "then grade again",
    "limits": "a resource cap of the sandbox (limits.py) stops it: report this line as a bug of the autograder",
    "namespaces": "the sandbox's PID, network, IPC or mount namespace, or its /proc, stops it: report this line as a "
                  "bug of the autograder",
    "user": "the submissions' user cannot use the GPU device files: let other users (or a group, "
            "NVreg_DeviceFileMode=0660 with group video) read and write /dev/nvidia*, then grade again",
    "landlock": "a file CUDA needs is not granted (sandbox/cuda_contract.py): report this line as a bug of the "
                "autograder; --unsafe-no-sandbox grades meanwhile without the sandbox",
    "seccomp": "the seccomp filter refuses a system call CUDA needs (sandbox/seccomp.py): report this line as a bug "
               "of the autograder",
    "environment": "the cleared environment lacks a variable CUDA needs here (only CUDA_*, NVIDIA_*, ROCR_*, HIP_* "
                   "are kept): report this line with the variable",
    "all": "each protection alone lets CUDA start, all of them together do not: report this line as a bug of the "
           "autograder; --unsafe-no-sandbox grades meanwhile without the sandbox",
}
_explained: dict[int, str | None] = {}  # gpus -> the line (once per grading run)
# A folder shared by the grading processes of one class run (`grade -j N`, batch.py sets it): the first process to
# create its marker prints the line, the others keep quiet - one line per run, not one per process.
SAID_DIR = "PRACTICAL8_SAID_DIR"


def cuda_starts(gpus: int) -> None:
    """What a submission's process needs of CUDA before any student code: ``gpus`` devices, each allocating and
    computing, synchronised. Raises what CUDA raised."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < max(gpus, 1):
        raise RuntimeError(f"torch sees {count} CUDA GPU(s) (torch {torch.__version__}, CUDA "
                           f"{torch.version.cuda or 'not built in'}); needs {max(gpus, 1)}")
    for index in range(max(gpus, 1)):
        (torch.ones(16, device=f"cuda:{index}") * 2).sum().item()


def diagnose(gpus: int, probe: str = PROBE, timeout: float = DIAGNOSE_TIMEOUT_S) -> dict[str, str | None]:
    """{layer: None if CUDA started under that layer alone, else the error}: "none", each of ``limits.LAYERS``,
    "all". Runs in a process of its own (see the module's docstring)."""
    done = subprocess.run([sys.executable, "-m", "autograder.sandbox.cuda_layers", "--gpus", str(gpus),
                           "--probe", probe], capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"none": f"the diagnosis itself failed (exit {done.returncode}): {_one_line(done.stderr[-500:])}"}


def conclude(found: dict[str, str | None]) -> str | None:
    """The one line that says which protection keeps CUDA from starting and what to do; None when CUDA starts
    under each layer and under all of them."""
    if found.get("none"):
        return f"CUDA cannot start on this machine, even outside the sandbox: {found['none']}; {ADVICE['none']}"
    for layer in LAYERS:
        if found.get(layer):
            return f"CUDA cannot start under {layer}: {found[layer]}; {ADVICE[layer]}"
    if found.get("all"):
        return f"CUDA cannot start under the whole sandbox: {found['all']}; {ADVICE['all']}"
    return None


def explain(problem: str, mode: str, limits: Limits | None = None) -> str:
    """``problem`` (a submission's process failed its start-up) with the layer that keeps CUDA from starting put
    first, when it is a CUDA failure on real GPUs; the diagnosis runs once per grading run and its line is printed
    once, on stderr."""
    from .gpucheck import is_cuda_failure

    if mode != "cuda" or not is_cuda_failure(problem):
        return problem
    gpus = (limits or Limits()).gpus
    if gpus not in _explained:
        try:
            _explained[gpus] = conclude(diagnose(gpus, PROBE))
        except (OSError, subprocess.SubprocessError) as exc:
            _explained[gpus] = f"CUDA cannot start in the sandbox, and finding out why failed: {exc!r}"
        if _explained[gpus] and _first_to_say(f"cuda-{gpus}"):
            os.write(2, _explained[gpus].encode() + b"\n")  # the terminal's, whatever holds sys.stderr
    line = _explained[gpus]
    return f"{line} (the self-test in the sandbox said: {problem})" if line else problem


def _first_to_say(marker: str) -> bool:
    """Whether this process is the first of its class run to say ``marker`` (always, outside a ``-j N`` run)."""
    folder = os.environ.get(SAID_DIR)
    if not folder:
        return True
    try:
        os.close(os.open(os.path.join(folder, marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:  # the folder is gone: saying it twice beats not saying it
        return True
    return True


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _probe(path: str):
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


def _child(layer: str, gpus: int, probe: str, write: int, base: str) -> None:
    """In a forked child: ``layer`` alone (or none, or all), then CUDA; the answer on ``write``; never returns."""
    signal.alarm(CHILD_TIMEOUT_S)  # a CUDA start that hangs ends the child (SIGALRM's default): "died" is the answer
    scratch = os.path.join(base, layer, "run1")
    os.makedirs(scratch)
    try:
        from .limits import apply

        start_cuda = _probe(probe)  # imported before the layer: it is the grader's code, not the student's
        layers = () if layer == "none" else LAYERS if layer == "all" else (layer,)
        apply(Limits(gpus=gpus, require_landlock=False), scratch, real_gpus=True, layers=layers)
        start_cuda(gpus)
        answer = None
    except BaseException as exc:  # noqa: BLE001 - whatever stopped CUDA is the finding
        answer = _one_line(f"{type(exc).__name__}: {exc}")
    os.write(write, json.dumps(answer).encode())
    os._exit(0)


def _run(gpus: int, probe: str) -> dict[str, str | None]:
    import torch  # noqa: F401 - imported once here, never initialised: each child starts CUDA itself

    found: dict[str, str | None] = {}
    base = tempfile.mkdtemp(prefix="cuda-layers-")
    os.chmod(base, 0o755)  # the dropped user (layer "user", as root) reaches its scratch folder
    for layer in ("none", *LAYERS, "all"):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(layer, gpus, probe, write, base)
        os.close(write)
        with os.fdopen(read, "rb") as answer:
            data = answer.read()
        os.waitpid(pid, 0)
        try:
            found[layer] = json.loads(data) if data else f"the child died (layer {layer}) before it answered"
        except ValueError:
            found[layer] = f"the child answered {data[:200]!r}"
    shutil.rmtree(base, ignore_errors=True)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--probe", default=PROBE)
    args = parser.parse_args(argv)
    print(json.dumps(_run(args.gpus, args.probe)))


if __name__ == "__main__":
    main()

