"""What the submission's process keeps of the grading machine: the GPU selection of the job, and no autograd state.

Two defects that only real GPUs would show (issue 14's review), checked here where they can be: the environment is
cleared before CUDA starts, so the job's GPU selection must survive it; and the warm server must never run a
backward before forking (on a CUDA build that poisons every forked child's autograd)."""

import subprocess
import sys

from conftest import REPO, answer_of_forked_child


def _environment_after_limits(real_gpus: bool, scratch: str, answer) -> None:
    import os

    from autograder.sandbox.limits import Limits, apply

    os.environ.update({"CUDA_VISIBLE_DEVICES": "2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "SECRET_TOKEN": "x"})
    apply(Limits(), scratch, real_gpus=real_gpus)
    answer.send(dict(os.environ))


def test_the_jobs_gpu_selection_survives_the_cleared_environment():
    environment = answer_of_forked_child(_environment_after_limits, True)
    assert environment["CUDA_VISIBLE_DEVICES"] == "2,3" and environment["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "SECRET_TOKEN" not in environment


def test_on_simulated_gpus_nothing_of_the_grading_machine_is_kept():
    environment = answer_of_forked_child(_environment_after_limits, False)
    assert "CUDA_VISIBLE_DEVICES" not in environment and "SECRET_TOKEN" not in environment


def test_the_warm_server_never_runs_a_backward_before_forking():
    code = ("import torch\n"
            "def refuse(*a, **k): raise AssertionError('backward ran in the warm server')\n"
            "torch.Tensor.backward = refuse\ntorch.autograd.backward = refuse\n"
            "import autograder.sandbox.worker\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
