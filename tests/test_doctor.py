"""`python -m autograder doctor`: its logic on the CPU; the GPU modes run only where GPUs are."""

import json

import pytest
import torch
from conftest import REPO

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


@pytest.mark.slow  # the README's doctor command, end to end: it grades every sample (minutes)
@pytest.mark.skipif(GPUS > 0, reason="this machine has a GPU: the no-GPU mode does not apply")
def test_doctor_without_gpu_runs_the_simulated_half(tmp_path, capsys):
    assert main(["doctor", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["mode"].startswith("no GPU") and report["ok"]
    assert report["simulated_verdicts_unexpected"] == [] and report["graded"] >= 20
    assert "no GPU" in (tmp_path / "doctor.md").read_text()
    progress = capsys.readouterr().err  # nothing long stays silent: a bar for the gradings and the timing draws
    assert "doctor: grading samples (sim)" in progress and "doctor: timing margins (sim)" in progress


@pytest.mark.cuda1
@pytest.mark.skipif(GPUS != 1, reason="needs exactly one real GPU")
def test_doctor_one_gpu_mode(tmp_path):
    main(["doctor", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["mode"] == "one GPU" and report["refuses_devices_cuda"]
    assert report["asynchrony"]["ok"] and report["training_numerics"]["ok"], report


@pytest.mark.cuda2
@pytest.mark.skipif(GPUS < 2, reason="needs two real GPUs")
def test_doctor_two_gpus_finds_no_verdict_differences(tmp_path):
    main(["doctor", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["verdict_differences"] == [] and report["real_verdicts_unexpected"] == []
    assert report["timing_margins"]["ok"] and report["ok"], report


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


def _stand_in_two_gpu_machine(monkeypatch, real, sim):
    """The two-GPU doctor with every GPU measurement replaced: only its judgement runs."""
    from autograder import doctor

    monkeypatch.setattr(doctor, "machine", lambda: {"gpu_count": 2, "gpus": ["NVIDIA H100 80GB HBM3"] * 2})
    monkeypatch.setattr(doctor, "verdicts", lambda mode, sim_gpu="a100", names=None: real if mode == "cuda" else sim)
    monkeypatch.setattr(doctor, "timing_margins", lambda mode, draws=None: {"ok": True, "margins": {"bare_sync": 0.1},
                                                                            "required": 0.05, "draws": 3})
    monkeypatch.setattr(doctor, "cuda_under_each_layer", lambda gpus: {"layers": {"none": None, "all": None},
                                                                       "line": None, "ok": True})
    monkeypatch.setattr(doctor, "op_by_op", lambda key, gpus=2: {"profile": None, "note": "stand-in"})
    monkeypatch.setattr(doctor, "forward_timing", lambda: {})
    monkeypatch.setattr(doctor, "copy_bandwidth", lambda: {})
    monkeypatch.setattr(doctor, "model_vs_gpus", lambda key: {"profile": key, "measured": {}, "predicted": {},
                                                              "measured_over_predicted": {}})
    monkeypatch.setattr(doctor, "asynchrony", lambda device: {"ok": True, "sleep_s": 0.05, "no_sync_s": 0.0,
                                                              "synchronized_s": 0.05, "event_s": 0.05,
                                                              "checks": {"no_sync_under_measures": True,
                                                                         "sync_measures": True, "event_agrees": True}})
    monkeypatch.setattr(torch.cuda, "can_device_access_peer", lambda a, b: True)
    monkeypatch.setattr("autograder.gpu_setup.gpu_setup", lambda torch_module=None: {"problems": [], "advice": []})
    return doctor


def test_two_gpu_doctor_fails_a_fault_that_hits_real_and_simulated_gpus_alike(monkeypatch, tmp_path):
    """Issue 14, item 7: real and simulated GPUs agreeing is not enough - the reference failing a check on both
    (as a warm server poisoning every child would make it) must fail the doctor."""
    from autograder.samples import ALL_CHECKS

    broken = {"reference": {check: check != "train_runs" for check in ALL_CHECKS}}
    doctor = _stand_in_two_gpu_machine(monkeypatch, broken, broken)
    report = doctor.run(tmp_path)
    assert report["verdict_differences"] == [] and not report["ok"]
    assert report["real_verdicts_unexpected"] == ["reference: failed ['train_runs'], expected []"]
    text = (tmp_path / "doctor.md").read_text()
    assert "exactly its expected verdicts on real GPUs" in text and "**FAILS**" in text


def test_two_gpu_doctor_passes_when_every_verdict_is_the_expected_one(monkeypatch, tmp_path):
    from autograder.samples import ALL_CHECKS, by_name

    expected = {"reference": {check: True for check in ALL_CHECKS},
                "bare_sync": {check: check not in by_name("bare_sync").fails for check in ALL_CHECKS}}
    doctor = _stand_in_two_gpu_machine(monkeypatch, expected, expected)
    report = doctor.run(tmp_path)
    assert report["ok"] and report["real_verdicts_unexpected"] == [] and report["graded"] == 2


def test_the_asynchrony_claims_judge_by_the_kernels_own_events(monkeypatch):
    """Issue 14, item 8: a `_sleep` kernel 1.6x longer than asked for (boost clocks stretch cycles-based sleeps, or
    the first launch's calibration was off) still passes: the claims compare with the kernel's CUDA events."""
    from autograder import doctor

    calibrated = doctor._cycles_for
    with simulated_gpus(2):
        monkeypatch.setattr(doctor, "_cycles_for", lambda s, d: int(calibrated(s, d) * 1.6))
        result = asynchrony("cuda:0")
    assert result["event_s"] == pytest.approx(1.6 * doctor.SLEEP_S, rel=0.01)
    assert result["ok"], result


def test_the_timing_margins_on_simulated_gpus():
    """Issue 14, item 9: the reference far above TIMING_LOW, a bare synchronize() far below it when device1's work is
    heavy and above it when work is even - the numbers the two-GPU doctor measures on real GPUs."""
    from autograder.doctor import TIMING_MARGIN, timing_margins

    found = timing_margins("sim")
    assert found["ok"], found
    assert found["margins"]["bare_sync_heavy_below_low"] >= 2 * TIMING_MARGIN
    assert found["ratios"]["reference"]["even"][0] == pytest.approx(1.0, abs=0.05)


def test_the_kernel_cache_is_filled_in_a_process_of_its_own(monkeypatch):
    """Item 14: with CUDA_CACHE_PATH set, the reference's GPU work runs once in a separate process (which may write the
    cache; submissions only read it) before grading, and exits so no GPU context stays open."""
    from autograder import doctor

    ran = []
    monkeypatch.setattr(doctor.subprocess, "run", lambda argv, **kw: ran.append((argv, kw)))
    monkeypatch.delenv("CUDA_CACHE_PATH", raising=False)
    assert doctor.fill_kernel_cache(2) is None and ran == []
    monkeypatch.setenv("CUDA_CACHE_PATH", "/var/cache/practical8-cuda")
    assert doctor.fill_kernel_cache(2) >= 0
    (argv, kw), = ran
    assert argv[-1] == "from autograder.doctor import kernel_workout; kernel_workout(2)" and kw["check"]


# ------------------------------------------------------------- the doctor never dies (issue 22, item 3)
def _stand_in_one_gpu(monkeypatch):
    """The one-GPU doctor on a simulated H200 (the stand-in GPU layer: the test runs it inside simulated_gpus(1));
    the diagnosis of CUDA's start-up uses the stand-in CUDA that a seccomp filter blocks (tests/cuda_stand_in.py)."""
    from autograder import doctor
    from autograder.sandbox import cuda_layers

    monkeypatch.setattr(doctor, "machine", lambda: {"gpu_count": 1, "gpus": ["NVIDIA H200"]})
    # --devices cuda's refusal asks torch's C extension, which no simulation replaces: its answer stands in too.
    monkeypatch.setattr(doctor, "torch_gpu_count", lambda: (1, "stand-in: one GPU"))
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))
    monkeypatch.setattr(cuda_layers, "PROBE", "cuda_stand_in:fails_under_seccomp")
    return doctor


def test_on_one_gpu_a_claim_that_raises_is_reported_and_the_others_still_run(monkeypatch, tmp_path):
    """The one-GPU timing verdicts grade in sandboxed processes that need a real GPU: here they raise (the issue's
    first-contact crash). The doctor records the error with its traceback, runs the asynchrony and numerics claims
    anyway, names the layer that stops (stand-in) CUDA, writes both files, and fails."""
    doctor = _stand_in_one_gpu(monkeypatch)
    with simulated_gpus(1, gpu="h200"):
        report = doctor.run(tmp_path)
    assert report["mode"] == "one GPU" and not report["ok"]
    assert "timing_grader_on_gpu" in report["errors"] and "Traceback" in report["errors"]["timing_grader_on_gpu"][
        "traceback"]
    assert report["asynchrony"]["ok"] and report["training_numerics"]["ok"] and report["refuses_devices_cuda"]
    assert report["cuda_under_each_layer"]["line"].startswith("CUDA cannot start under seccomp: ")
    saved = json.loads((tmp_path / "doctor.json").read_text())
    assert saved["errors"].keys() == report["errors"].keys()
    text = (tmp_path / "doctor.md").read_text()
    assert "## The claim 'timing_grader_on_gpu' could not run" in text and "Traceback (most recent call last)" in text
    assert "CUDA cannot start under seccomp" in text and "SOME CLAIMS FAIL" in text


def test_where_landlock_is_missing_the_doctor_reports_instead_of_crashing(monkeypatch, tmp_path, capsys):
    """No Landlock (some container runtimes): every sandboxed process refuses to start, as the real one does
    (GradingMachineProblem from its start-up). The doctor writes its report and exits 1."""
    from autograder.sandbox.client import GradingMachineProblem, SubmissionProcess

    def refuse(self):
        raise GradingMachineProblem("the grading machine cannot sandbox submissions: this kernel has no Landlock "
                                    "(stand-in). Grade on a machine whose kernel has Landlock, or pass "
                                    "--unsafe-no-sandbox")

    monkeypatch.setattr(SubmissionProcess, "_start", refuse)
    assert main(["doctor", "--quick", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["mode"].startswith("no GPU") and not report["ok"]
    assert "no Landlock" in report["errors"]["timing_margins"]["error"]
    assert all("not graded" in line or "failed" in line for line in report["simulated_verdicts_unexpected"])
    assert report["asynchrony_simulated"]["ok"]  # the claims that need no sandbox still ran
    assert "could not run" in (tmp_path / "doctor.md").read_text()


def test_a_report_too_broken_to_tabulate_is_still_written(tmp_path):
    from autograder.doctor import write

    report = {"date": "today", "mode": "one GPU", "ok": True, "errors": {}, "machine": {"gpu_count": 1},
              "asynchrony": {"ok": True}}  # no timings: the table cannot be built
    write(report, tmp_path)
    assert json.loads((tmp_path / "doctor.json").read_text())["mode"] == "one GPU"
    text = (tmp_path / "doctor.md").read_text()
    assert "could not be tabulated" in text and "KeyError" in text and not report["ok"]


def test_the_op_by_op_cost_model_with_a_stand_in_chip():
    """The doctor's op-by-op comparison where no GPU is: a simulated H200 stands in for the chip. Against the H200's
    own profile every op's ratio is exactly 1; against the A100's, the H200's matmuls and copies are faster."""
    from autograder.doctor import op_by_op, op_times

    with simulated_gpus(2, gpu="h200"):
        chip = op_times(2)
    assert set(chip) >= {"linear_32x1000_to_2000_s", "copy_256KB_device_to_device_s", "host_per_op_s"}
    same = op_by_op("h200", 2, chip)["measured_over_predicted"]
    assert same == pytest.approx({k: 1.0 for k in same}, rel=1e-9)
    other = op_by_op("a100", 2, chip)["measured_over_predicted"]
    assert other["linear_4096x1000_to_2000_s"] < 0.5 and other["copy_256KB_device_to_device_s"] < 1.0
    assert op_by_op(None)["profile"] is None  # an unknown GPU: compared with nothing, and said so
