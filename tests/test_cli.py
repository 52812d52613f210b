"""`python -m autograder grade`: exit codes, the table, Gradescope's results.json, the bundled samples."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from autograder.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def test_grading_a_failing_submission_still_exits_zero_and_writes_results(tmp_path):
    results = tmp_path / "results.json"
    done = _run("grade", "assignment/practical8", "--devices", "sim", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout and "0/100" in done.stdout
    data = json.loads(results.read_text())
    assert data["score"] == 0
    test = data["tests"][0]
    assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
    assert test["name"].startswith("placement: ") and test["status"] == "failed"
    assert {t["visibility"] for t in data["tests"]} == {"visible", "hidden"}
    assert sum(t["max_score"] for t in data["tests"]) == 100


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nowhere")]) == 2
    assert "no model_parallel.py here" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has two GPUs")
def test_devices_cuda_refuses_to_simulate(capsys):
    assert main(["grade", str(REPO / "solutions" / "practical8"), "--devices", "cuda"]) == 2
    assert "--devices cuda needs two CUDA GPUs" in capsys.readouterr().err


def test_malformed_rubric_is_a_clear_error(tmp_path, capsys):
    rubric = tmp_path / "grading.yml"
    rubric.write_text("checks:\n  placement:\n    title: x\n    points: -1\n")
    assert main(["grade", str(REPO / "solutions" / "practical8"), "--rubric", str(rubric)]) == 2
    assert "points must be a number >= 0" in capsys.readouterr().err


def test_no_path_grades_the_bundled_samples():
    done = _run("grade", "--devices", "sim")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("total") == 5
    assert "reference" in done.stdout and "100/100" in done.stdout
    assert "copy_via_host" in done.stdout and "90/100" in done.stdout
