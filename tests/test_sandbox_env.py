"""What the submission's process keeps of the grading machine: the GPU selection of the job, and no autograd state.

Two defects that only real GPUs would show (issue 14's review), checked here where they can be: the environment is
cleared before CUDA starts, so the job's GPU selection must survive it; and the warm server must never run a
backward before forking (on a CUDA build that poisons every forked child's autograd)."""

import multiprocessing
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import REPO


def _environment_after_limits(real_gpus: bool, scratch: str, answer) -> None:
    import os

    from autograder.sandbox.limits import Limits, apply

    os.environ.update({"CUDA_VISIBLE_DEVICES": "2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "SECRET_TOKEN": "x"})
    apply(Limits(), scratch, real_gpus=real_gpus)
    answer.send(dict(os.environ))


def _run(real_gpus: bool, tmp_path) -> dict:
    # Laid out as the sandbox lays it out (a fresh folder in /tmp): as root, the dropped user must reach it.
    scratch = Path(tempfile.mkdtemp(prefix="practical8-test-")) / "run1"
    scratch.mkdir()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_environment_after_limits, args=(real_gpus, str(scratch), send))
    child.start()
    send.close()
    assert receive.poll(60), f"the child sent nothing (exit code {child.join(5) or child.exitcode})"
    environment = receive.recv()
    child.join(30)
    shutil.rmtree(scratch.parent, ignore_errors=True)
    return environment


def test_the_jobs_gpu_selection_survives_the_cleared_environment(tmp_path):
    environment = _run(True, tmp_path)
    assert environment["CUDA_VISIBLE_DEVICES"] == "2,3" and environment["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "SECRET_TOKEN" not in environment


def test_on_simulated_gpus_nothing_of_the_grading_machine_is_kept(tmp_path):
    environment = _run(False, tmp_path)
    assert "CUDA_VISIBLE_DEVICES" not in environment and "SECRET_TOKEN" not in environment


def test_the_warm_server_never_runs_a_backward_before_forking():
    code = ("import torch\n"
            "def refuse(*a, **k): raise AssertionError('backward ran in the warm server')\n"
            "torch.Tensor.backward = refuse\ntorch.autograd.backward = refuse\n"
            "import autograder.sandbox.worker\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
