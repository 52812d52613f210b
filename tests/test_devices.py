"""--devices is resolved once, at the top, into a mode; everything below takes the mode as a plain value."""

import subprocess
import sys

import pytest
from conftest import REPO

from autograder.devices import DevicesUnavailable, require_mode, resolve
from autograder.grading import grade


def _count(n: int):
    calls = []

    def gpu_count() -> tuple[int, str]:
        calls.append(n)
        return n, "test build"

    return gpu_count, calls


@pytest.mark.parametrize(("choice", "gpus", "mode"), [("auto", 0, "sim"), ("auto", 1, "sim"), ("auto", 2, "cuda"),
                                                      ("cuda", 2, "cuda"), ("cuda", 8, "cuda")])
def test_resolve_picks_real_gpus_only_when_two_are_there(choice, gpus, mode):
    gpu_count, _ = _count(gpus)
    assert resolve(choice, gpu_count) == mode


def test_sim_never_counts_the_gpus():
    gpu_count, calls = _count(2)
    assert resolve("sim", gpu_count) == "sim" and calls == []


@pytest.mark.parametrize("gpus", [0, 1])
def test_cuda_refuses_to_simulate(gpus):
    says = f"needs two CUDA GPUs, but this machine has {gpus} \\(test build\\)"
    with pytest.raises(DevicesUnavailable, match=says) as e:
        resolve("cuda", _count(gpus)[0])
    assert "Nothing was graded" not in str(e.value)  # timeline and doctor refuse with it too


def test_an_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="auto, cuda, sim"):
        resolve("gpu", _count(2)[0])


def test_grading_refuses_an_unresolved_choice():
    with pytest.raises(ValueError, match="resolve --devices"):
        require_mode("auto")
    with pytest.raises(ValueError, match="resolve --devices"):
        grade(REPO / "solutions" / "practical8", None, "auto")


def test_the_default_choice_grades_without_importing_torch_here():
    """`grade FOLDER` with the default --devices auto counts the GPUs in a child of the warm server, so the
    grading process (this one) still never imports torch, as the README says."""
    code = ("import sys; from autograder.cli import main; code = main(['grade', sys.argv[1]]); "
            "assert code == 0, code; assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "solutions" / "practical8")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "100/100" in done.stdout and "2 simulated NVIDIA A100" in done.stdout
