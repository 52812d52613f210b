"""`python -m autograder doctor`: its logic on the CPU; the GPU modes run only where GPUs are."""

import json

import pytest
import torch

from autograder.cli import main
from autograder.doctor import asynchrony, differences, training_numerics
from autograder.simgpu import simulated_gpus

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_differences_name_each_disagreeing_verdict():
    real = {"reference": {"placement": True, "trace_prints": True}, "no_sync": {"timing_synchronizes": False}}
    sim = {"reference": {"placement": True, "trace_prints": False}, "no_sync": {"timing_synchronizes": False}}
    assert differences(real, sim) == ["reference: trace_prints is passed on real GPUs but failed on simulated GPUs"]
    assert differences(real, real) == []


def test_asynchrony_claims_hold_on_simulated_gpus():
    with simulated_gpus(2):
        result = asynchrony("cuda:0")
    assert result["ok"], result
    assert result["no_sync_s"] < result["synchronized_s"]


def test_training_numerics_check_compares_device_and_cpu():
    with simulated_gpus(2):
        result = training_numerics("cuda:0")
    assert result["ok"] and result["max_relative_difference"] <= result["tolerance"]


@pytest.mark.skipif(GPUS > 0, reason="this machine has a GPU: the no-GPU mode does not apply")
def test_doctor_without_gpu_runs_the_simulated_half(tmp_path, capsys):
    assert main(["doctor", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["mode"].startswith("no GPU") and report["ok"]
    assert report["simulated_verdicts_unexpected"] == [] and report["graded"] >= 20
    assert "no GPU" in (tmp_path / "doctor.md").read_text()


@pytest.mark.skipif(GPUS != 1, reason="needs exactly one real GPU")
def test_doctor_one_gpu_mode(tmp_path):
    main(["doctor", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["mode"] == "one GPU" and report["refuses_devices_cuda"]
    assert report["asynchrony"]["ok"] and report["training_numerics"]["ok"], report


@pytest.mark.skipif(GPUS < 2, reason="needs two real GPUs")
def test_doctor_two_gpus_finds_no_verdict_differences(tmp_path):
    main(["doctor", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["verdict_differences"] == []


def test_model_vs_gpus_with_a_stand_in_for_real_gpus():
    """The doctor's prediction check, run where no GPU is: a simulated H100 stands in for the real GPUs. Measured
    with the H100's own profile the ratios are exactly 1; against the A100's they show how much faster it is."""
    from autograder.doctor import model_vs_gpus, reference_speeds
    from autograder.simgpu.profiles import nearest_profile

    with simulated_gpus(2, gpu="h100"):
        stand_in = reference_speeds()
    same = model_vs_gpus(nearest_profile("NVIDIA H100 80GB HBM3").key, stand_in)
    assert same["measured_over_predicted"] == pytest.approx({k: 1.0 for k in stand_in}, rel=1e-9)
    other = model_vs_gpus("a100", stand_in)["measured_over_predicted"]
    assert other["simple_forward_s"] < 0.5 and other["copy_256KB_GBps"] > 1.0  # the H100 computes and copies faster


def test_doctor_md_is_a_table_of_claims(tmp_path):
    from autograder.doctor import write

    report = {"date": "today", "mode": "no GPU: simulated half only", "ok": False, "machine": {"gpu_count": 0},
              "asynchrony_simulated": {"sleep_s": 0.05, "no_sync_s": 0.00001, "synchronized_s": 0.05, "event_s": 0.05,
                                       "checks": {"no_sync_under_measures": True, "sync_measures": True,
                                                  "event_agrees": True}, "ok": True},
              "simulated_verdicts_unexpected": ["no_sync: failed [], expected ['timing_synchronizes']"], "graded": 30}
    write(report, tmp_path)
    text = (tmp_path / "doctor.md").read_text()
    assert "| claim | expected | measured | verdict | if it fails |" in text
    assert text.count("| holds |") == 3 and text.count("**FAILS**") == 1
    assert "no_sync: failed [], expected ['timing_synchronizes']" in text and "run its tests" in text
    assert "{" not in text  # no raw JSON
