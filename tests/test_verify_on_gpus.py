"""scripts/verify_on_gpus.sh, run with a stand-in Python (no GPU here): the steps it runs for zero, one and two GPUs,
that a failing step does not stop the others, and the one verdict line it ends with. And
scripts/compare_sample_verdicts.py on results.json files as `grade --results` writes them."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

FAKE_PYTHON = """#!/bin/bash
echo "python $*" >> "$CALLS"
case "$1" in
  -c) if [[ "$2" == *platform* ]]; then echo "python 3.11 | torch 2.8.0 | CUDA 12.4"; else echo "$FAKE_GPUS"; fi ;;
  -m) case "$2 $3" in
        "autograder doctor") exit "${FAKE_DOCTOR_RC:-0}" ;;
        "pytest "*) exit "${FAKE_TESTS_RC:-0}" ;;
      esac ;;
  scripts/compare_sample_verdicts.py) exit "${FAKE_COMPARE_RC:-0}" ;;
esac
exit 0
"""


def _verify(tmp_path: Path, gpus: int, *options: str, **rcs: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PRACTICAL8_PYTHON": str(python), "CALLS": str(tmp_path / "calls.txt"),
           "FAKE_GPUS": str(gpus), **rcs}
    script = str(REPO / "scripts" / "verify_on_gpus.sh")
    done = subprocess.run(["bash", script, *options, str(tmp_path / "out")], env=env, capture_output=True, text=True,
                          timeout=60)
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    return done, [c.replace(str(tmp_path / "out"), "OUT") for c in calls]


def test_two_gpus_run_every_step_and_end_with_one_verdict_line(tmp_path):
    done, calls = _verify(tmp_path, 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("VERIFIED on 2 GPU(s), two GPUs: environment doctor samples "
                                                   "gpu-tests timeline all passed")
    assert "python -m autograder doctor --out OUT/doctor" in calls
    assert "python -m autograder grade --devices cuda --results OUT/samples/results.json" in calls
    assert "python scripts/compare_sample_verdicts.py OUT/samples" in calls
    assert "python -m pytest -q -m cuda2 -k not doctor -p no:cacheprovider tests/" in calls
    assert "python -m autograder timeline --devices cuda --out OUT/timeline.png" in calls
    assert "python -m autograder timeline --devices cuda --sweep --out OUT/sweep.png" in calls
    assert (tmp_path / "out" / "environment.log").read_text().startswith("python 3.11")


def test_a_failing_step_does_not_stop_the_others_and_fails_the_verdict(tmp_path):
    done, calls = _verify(tmp_path, 2, FAKE_DOCTOR_RC="1", FAKE_COMPARE_RC="1")
    assert done.returncode == 1
    last = done.stdout.splitlines()[-1]
    assert last.startswith("NOT VERIFIED on 2 GPU(s): doctor samples failed")
    assert any("timeline" in c for c in calls) and any("pytest" in c for c in calls)


def test_one_gpu_runs_what_one_gpu_can_prove(tmp_path):
    done, calls = _verify(tmp_path, 1)
    assert done.returncode == 0
    assert "one GPU: what one GPU can prove (grading needs two)" in done.stdout.splitlines()[-1]
    assert not any("autograder grade" in c or "timeline" in c or "pytest" in c for c in calls)


def test_no_gpu_is_not_verified(tmp_path):
    done, calls = _verify(tmp_path, 0)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("NOT VERIFIED: torch sees no CUDA GPU here")
    assert not any("doctor" in c for c in calls)


@pytest.mark.parametrize("gpus", [1, 2])
def test_the_quick_proof_runs_the_environment_and_the_quick_doctor_only(tmp_path, gpus):
    done, calls = _verify(tmp_path, gpus, "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith(f"VERIFIED on {gpus} GPU(s), quick proof: environment doctor all passed"), last
    assert "python -m autograder doctor --quick --out OUT/doctor" in calls
    assert not any("autograder grade" in c or "timeline" in c or "pytest" in c for c in calls)
    assert (tmp_path / "out" / "verdict.txt").read_text().strip() == last


def test_the_quick_proof_fails_with_its_doctor(tmp_path):
    done, _ = _verify(tmp_path, 1, "--quick", FAKE_DOCTOR_RC="1")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("NOT VERIFIED on 1 GPU(s): doctor failed, of environment doctor")


def _results(folder: Path, name: str, failed: set[str]) -> None:
    from autograder.samples import ALL_CHECKS

    tests = [{"name": f"{check}: title", "status": "failed" if check in failed else "passed"}
             for check in sorted(ALL_CHECKS)]
    (folder / name).mkdir(parents=True)
    (folder / name / "results.json").write_text(json.dumps({"tests": tests}))


def test_compare_sample_verdicts(tmp_path):
    from autograder.samples import by_name

    script = str(REPO / "scripts" / "compare_sample_verdicts.py")
    run = lambda: subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True,  # noqa: E731
                                 timeout=120, cwd=REPO)
    assert run().returncode == 1  # nothing graded
    _results(tmp_path, "reference", set())
    _results(tmp_path, "bare_sync", set(by_name("bare_sync").fails))
    done = run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["bare_sync: as expected", "reference: as expected"]
    _results(tmp_path, "milliseconds", set())  # should fail timing_measures_device_time, passed everything
    done = run()
    assert done.returncode == 1 and "milliseconds: UNEXPECTED" in done.stdout
    assert "milliseconds: failed [], expected ['timing_measures_device_time']" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes on the shared 2-core box (408 s seen under load)
def test_the_quick_proof_end_to_end_on_a_stand_in_gpu_layer(tmp_path):
    """The real script, doctor and sandbox, with a STAND-IN GPU layer: every Python process it starts has one
    simulated H200 active (tests/stand_in_gpu/sitecustomize.py), so torch.cuda says one GPU. It runs through and
    writes everything; every claim holds but one the stand-in cannot serve: --devices cuda's refusal asks torch's C
    extension, which no stand-in replaces (on a CPU build it has no CUDA functions), so the verdict is NOT VERIFIED."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "stand_in_gpu"), "PRACTICAL8_STAND_IN_GPUS": "1",
           "PRACTICAL8_STAND_IN_PROFILE": "h200"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "verify_on_gpus.sh"), "--quick", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=1500, cwd=REPO)
    last = done.stdout.splitlines()[-1]
    assert last.startswith("NOT VERIFIED on 1 GPU(s): doctor failed"), done.stdout + done.stderr
    assert (tmp_path / "out" / "verdict.txt").read_text().strip() == last
    report = json.loads((tmp_path / "out" / "doctor" / "doctor.json").read_text())
    assert report["mode"] == "one GPU (quick)" and report["machine"]["nearest_simulated_gpu"] == "h200"
    assert list(report["errors"]) == ["refuses_devices_cuda"], report["errors"]
    assert "_cuda_getDeviceCount" in report["errors"]["refuses_devices_cuda"]["error"]
    assert report["cuda_under_each_layer"]["ok"] and report["timing_grader_on_gpu"]["ok"]
    assert report["asynchrony"]["ok"] and report["training_numerics"]["ok"]
    ratios = report["cost_model_op_by_op"]["measured_over_predicted"]  # the stand-in chip is the h200 profile itself
    assert len(ratios) >= 6 and all(abs(r - 1) < 1e-9 for r in ratios.values()), ratios
    assert "SOME CLAIMS FAIL" in (tmp_path / "out" / "doctor" / "doctor.md").read_text()
