"""The GitHub workflow that grades on a two-GPU runner (issue 14, item 11), checked without one: it reuses the
runner's CUDA torch instead of downloading the default wheel, refuses a missing folder of submissions (checkout cleans
untracked files), grades one submission at a time, asks for no permission it does not use, and publishes student
results only when told to. ``scripts/check_gpu_runner.py`` is run with stand-ins for torch."""

import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_gpu_runner  # noqa: E402 - a script, imported from its folder

WORKFLOW = REPO / ".github" / "workflows" / "grade-on-gpus.yml"


def _torch(cuda: str | None = "12.4", gpus: int = 2, where: str = "/usr/lib/python3/dist-packages/torch/__init__.py"):
    return types.SimpleNamespace(__version__="2.8.0", __file__=where, version=types.SimpleNamespace(cuda=cuda),
                                 cuda=types.SimpleNamespace(is_available=lambda: gpus > 0, device_count=lambda: gpus))


def _class(tmp_path: Path) -> str:
    (tmp_path / "submitted" / "alice" / "practical8").mkdir(parents=True)
    (tmp_path / "submitted" / "alice" / "practical8" / "model_parallel.py").write_text("")
    return str(tmp_path / "submitted")


def test_a_runner_with_its_own_cuda_torch_two_gpus_and_submissions_passes(tmp_path):
    venv = tmp_path / "venv"
    assert check_gpu_runner.problems(_torch(), 2, _class(tmp_path), str(venv), "/usr") == []


@pytest.mark.parametrize(("torch", "where", "said"), [
    (_torch(cuda=None, gpus=0), "class", "CPU-only build"),
    (_torch(gpus=1), "class", "needs 2 CUDA GPU(s) to grade Practical 8; torch sees 1"),
    (_torch(), "missing", "outside the checkout"),
    (_torch(), "empty", "holds no <student>/practical8/model_parallel.py"),
    (_torch(), "", "no folder of submissions given"),
])
def test_each_problem_is_one_line(torch, where, said, tmp_path):
    folder = {"class": _class(tmp_path), "missing": str(tmp_path / "gone"), "empty": str(tmp_path), "": ""}[where]
    found = check_gpu_runner.problems(torch, 2, folder, str(tmp_path / "venv"), "/usr")
    assert len(found) == 1 and said in found[0], found


def test_a_torch_pip_downloaded_into_the_environment_is_refused(tmp_path):
    venv = tmp_path / "venv"
    downloaded = _torch(where=str(venv / "lib" / "python3.11" / "site-packages" / "torch" / "__init__.py"))
    (found,) = check_gpu_runner.problems(downloaded, 2, _class(tmp_path), str(venv), "/usr")
    assert "pip downloaded torch 2.8.0 into this environment" in found


def test_the_check_refuses_this_cpu_machine_in_one_line_each(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "check_gpu_runner.py"), "--gpus", "2",
                           "--submitted", _class(tmp_path)], capture_output=True, text=True, timeout=120)
    import torch

    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has two GPUs")
    assert done.returncode == 1 and done.stderr.startswith("error: ")
    assert all(line.startswith("error: ") for line in done.stderr.splitlines())


def test_the_workflow_reuses_the_runners_torch_and_guards_the_class():
    data = yaml.safe_load(WORKFLOW.read_text())
    steps = data["jobs"]["grade"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "python3 -m venv .venv --system-site-packages" in runs  # the runner's CUDA build, never PyPI's default
    assert "scripts/check_gpu_runner.py --gpus 2 --submitted" in runs
    assert runs.index("check_gpu_runner") < runs.index("autograder doctor") < runs.index("autograder grade")
    assert "--devices cuda -j 1 " in runs
    inputs = data[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads the key `on` as True
    assert inputs["submitted"]["required"] and "default" not in inputs["submitted"]
    assert data["permissions"] == {"contents": "read", "checks": "write"}
    publish = next(step for step in steps if "junit" in step.get("uses", ""))
    assert "inputs.publish_junit" in publish["if"] and inputs["publish_junit"]["default"] is False
    upload = next(step for step in steps if "upload-artifact" in step.get("uses", ""))
    assert upload["with"]["retention-days"] <= 30
