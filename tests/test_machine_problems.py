"""A grading machine whose GPUs fail is never the student's fault (issue 14, item 3): the submission's process proves
its GPUs work before it says ready, and an error that only a failing machine gives counts as the machine's when a
self-test run right after fails too. Such a submission is "not graded" (graded again next run), never failed.

On this CPU machine, ``--devices cuda`` is exactly such a machine: torch sees no GPU in the sandboxed process."""

import json
import subprocess
import sys
import types

import pytest
import torch
from conftest import REPO

from autograder.busy import ProfilerMissedWork, device_intervals
from autograder.samples import REFERENCE
from autograder.sandbox import SubmissionProcess, gpucheck
from autograder.sandbox.client import GradingMachineProblem, ProbeFailed
from autograder.sandbox.limits import gpu_groups

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
no_two_gpus = pytest.mark.skipif(GPUS >= 2, reason="with two GPUs the self-test passes: nothing to refuse")


@no_two_gpus
def test_a_child_whose_gpus_fail_the_self_test_is_a_machine_problem():
    with SubmissionProcess(REFERENCE.parent, "cuda") as submission:
        with pytest.raises(GradingMachineProblem, match="sees 0 CUDA GPU"):
            submission.probe("build", 60, devices=["cuda:0", "cuda:1"], seed=0)
        assert "grading needs 2" in submission.machine_problem


@no_two_gpus
def test_such_a_submission_is_not_graded_and_gets_no_fingerprint(fast_rubric, tmp_path):
    """Through the whole class flow: every check says grading could not run, and no fingerprint is stamped, so the
    next run grades the student again."""
    from autograder.batch import grade_class

    root = tmp_path / "submitted" / "alice" / "practical8"
    root.mkdir(parents=True)
    (root / "model_parallel.py").write_text(REFERENCE.read_text())
    (report,) = grade_class(tmp_path / "submitted", tmp_path / "graded", fast_rubric, "cuda")
    assert report.not_graded and "sees 0 CUDA GPU" in report.not_graded
    assert all("Grading could not run" in r.message for r in report.results)
    assert not (tmp_path / "graded" / "alice" / "fingerprint").exists()
    saved = json.loads((tmp_path / "graded" / "alice" / "report.json").read_text())
    assert saved["not_graded"] == report.not_graded


def test_a_cuda_message_from_student_code_stays_the_students_when_the_gpus_still_work(tmp_path):
    """Anyone can raise "initialization error": on simulated GPUs the self-test passes, so it is the student's."""
    folder = tmp_path / "s"
    folder.mkdir()
    crash = "        super().__init__()\n        raise RuntimeError('CUDA error: initialization error')\n"
    (folder / "model_parallel.py").write_text(REFERENCE.read_text().replace("        super().__init__()\n", crash, 1))
    with SubmissionProcess(folder, "sim") as submission:
        with pytest.raises(ProbeFailed, match="initialization error"):
            submission.probe("build", 60, devices=["cuda:0", "cuda:1"], seed=0)
        assert submission.machine_problem is None


def test_a_failure_only_the_students_process_shows_is_the_students(tmp_path):
    """Autograd broken in the process (as after a bad fork) and the error CUDA gives for it: the student's process
    fails its own self-test too, but only the trusted side decides (issue 23, item 5): a fresh process, in which no
    student code ran, passes the self-test, so the error is the student's code's (it broke torch itself)."""
    folder = tmp_path / "s"
    folder.mkdir()
    source = REFERENCE.read_text().replace("from torch import nn\n", (
        "from torch import nn\n\n\ndef _broken(*args, **kwargs):\n"
        "    raise RuntimeError(\"Unable to handle autograd's threading in combination with fork-based "
        "multiprocessing\")\n\n\ntorch.Tensor.backward = _broken\n"), 1)
    (folder / "model_parallel.py").write_text(source)
    with SubmissionProcess(folder, "sim") as submission:
        with pytest.raises(ProbeFailed):
            submission.probe("train", 60, devices=["cuda:0", "cuda:1"], seed=0, steps=2, lr=0.1, fixed=True)
        assert submission.machine_problem is None
        assert any("torch" in flag["detail"] or "Tensor" in flag["detail"] for flag in submission.read_flags())


def test_machine_failure_needs_a_known_message_and_a_failing_self_test(monkeypatch):
    results = iter([None, "the GPUs are gone"])
    monkeypatch.setattr(gpucheck, "self_test", lambda gpus, when="": next(results))
    assert gpucheck.machine_failure(ValueError("shapes do not match")) is None  # not a machine's message
    assert gpucheck.machine_failure(RuntimeError("CUDA error: initialization error")) is None  # GPUs still work
    found = gpucheck.machine_failure(RuntimeError("CUDA error: initialization error"))
    assert "initialization error" in found and "the GPUs are gone" in found


def test_machine_problems_count_only_when_the_autograder_raised_them():
    with pytest.raises(ProfilerMissedWork) as caught:
        _profile_that_misses()  # raised by busy.record: the autograder's own code
    assert gpucheck.machine_failure(caught.value) == str(caught.value)
    namespace: dict = {}
    exec(compile("def raise_it(e):\n    raise e\n", "/somewhere/model_parallel.py", "exec"), namespace)  # noqa: S102
    with pytest.raises(gpucheck.MachineProblem) as caught:
        namespace["raise_it"](gpucheck.MachineProblem("it was the machine, honest"))  # as a student's code would
    assert gpucheck.machine_failure(caught.value) is None


def _profile_that_misses():
    """busy.record's own check, on a stand-in profiler that saw nothing of 3 launched kernels."""
    import torch.profiler as profiler

    from autograder.busy import record

    class _Nothing:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def events(self):
            return []

    saved_profile, saved_sync = profiler.profile, torch.cuda.synchronize
    profiler.profile, torch.cuda.synchronize = _Nothing, lambda device=None: None
    try:
        count = iter([0, 3])
        record(lambda: None, ("cuda:0", "cuda:1"), lambda: next(count))
    finally:
        profiler.profile, torch.cuda.synchronize = saved_profile, saved_sync


def _event(device_type, start, end, name="k", index=0):
    return types.SimpleNamespace(device_type=device_type, device_index=index, name=name,
                                 time_range=types.SimpleNamespace(start=start, end=end))


def test_profiler_records_stamped_outside_the_session_are_dropped():
    """CUPTI can stamp kernel records ~1e14 ns off (pytorch/pytorch#192021): outside the host's window, dropped."""
    cpu, cuda = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
    events = [_event(cpu, 100.0, 900.0, "aten::addmm"), _event(cuda, 200.0, 400.0, "gemm", 0),
              _event(cuda, 300.0, 500.0, "Memcpy PtoP (Device -> Device)", 1), _event(cuda, -1e11, -1e11 + 5, "spin"),
              _event(cuda, 850.0, 1500.0, "spin_kernel", 1)]
    kept = device_intervals(events)
    assert [(d, k, n) for d, _, _, k, n in kept] == [("cuda:0", "compute", "gemm"), ("cuda:1", "copy",
                                                     "Memcpy PtoP (Device -> Device)"), ("cuda:1", "compute",
                                                                                         "spin_kernel")]


def test_inherited_bad_fork_is_refused_and_a_mapped_driver_is_seen(monkeypatch):
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    assert "initialised CUDA before it forked" in gpucheck.inherited(real_gpus=True)
    assert gpucheck.inherited(real_gpus=False) is None  # simulated GPUs never touch CUDA
    maps = ("7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05\n"
            "7f02-7f03 r-xp 00000000 08:01 2 /venv/lib/python3.11/site-packages/torch/lib/libtorch_cuda.so\n")
    assert gpucheck.driver_mapped(maps)
    assert not gpucheck.driver_mapped(maps.splitlines()[1])


def test_importing_the_warm_servers_modules_leaves_cuda_alone():
    """The warm server imports the worker (and warms the optimizer) before every fork: on a CUDA build that must
    neither initialise CUDA in torch nor load the driver, or no child could use a GPU. Meaningful on a GPU machine;
    here it guards against the import starting to touch CUDA."""
    code = ("import json, torch\nimport autograder.sandbox.worker\nfrom autograder.sandbox import gpucheck\n"
            "print(json.dumps([torch.cuda.is_initialized(), gpucheck.driver_mapped()]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, False]


def test_gpu_device_files_open_to_a_group_only_keep_that_group(tmp_path):
    """/dev/nvidia* of mode 0660 (NVreg_DeviceFileMode, group video): the submission's user keeps the group."""
    import os

    shared, group_only, private = tmp_path / "nvidia0", tmp_path / "nvidia1", tmp_path / "nvidiactl"
    for path, mode in ((shared, 0o666), (group_only, 0o660), (private, 0o600)):
        path.write_text("")
        path.chmod(mode)
    assert gpu_groups((str(shared), str(private), str(tmp_path / "missing"))) == []
    assert gpu_groups((str(shared), str(group_only))) == [os.stat(group_only).st_gid]


# ---------------------------------------------------------------- which protection keeps CUDA from starting (issue 22)
STAND_IN = "cuda_stand_in:fails_under_seccomp"  # tests/cuda_stand_in.py: a driver that a seccomp filter blocks


@pytest.fixture
def stand_in_cuda(monkeypatch):
    """CUDA replaced by the stand-in in the diagnosis (tests/ importable by its process), its once-per-run memory
    cleared."""
    from autograder.sandbox import cuda_layers

    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))
    monkeypatch.setattr(cuda_layers, "PROBE", STAND_IN)
    monkeypatch.setattr(cuda_layers, "_explained", {})
    return cuda_layers


def test_the_diagnosis_names_the_one_layer_that_stops_a_stand_in_cuda(stand_in_cuda):
    found = stand_in_cuda.diagnose(1, STAND_IN)
    assert found["none"] is None and found["seccomp"] and found["all"], found
    assert [layer for layer, error in found.items() if error] == ["seccomp", "all"]
    line = stand_in_cuda.conclude(found)
    assert line.startswith("CUDA cannot start under seccomp: RuntimeError: CUDA error: OS call failed")
    assert "\n" not in line and line.endswith(stand_in_cuda.ADVICE["seccomp"])


def test_the_conclusion_blames_the_machine_first_and_the_whole_sandbox_last():
    from autograder.sandbox.cuda_layers import conclude

    layers = ["limits", "namespaces", "user", "landlock", "seccomp", "environment"]
    fine = {layer: None for layer in ["none", *layers, "all"]}
    assert conclude(fine) is None
    assert conclude({**fine, "none": "no GPU", "landlock": "x"}).startswith(
        "CUDA cannot start on this machine, even outside the sandbox: no GPU; check the driver")
    user = conclude({**fine, "user": "EACCES /dev/nvidia0", "all": "E"})
    assert user.startswith("CUDA cannot start under user: EACCES /dev/nvidia0; the submissions' user")
    assert conclude({**fine, "all": "304"}).startswith("CUDA cannot start under the whole sandbox: 304; each")


@no_two_gpus
def test_a_class_whose_cuda_a_layer_stops_is_not_graded_with_one_line_said_once(stand_in_cuda, fast_rubric,
                                                                                 tmp_path, capfd):
    """Through the class flow on --devices cuda (here: no GPU, so every submission's self-test fails): the
    diagnosis runs once, its line is printed once, and every submission is not graded with that line first."""
    from autograder.batch import grade_class

    for student in ("alice", "bob"):
        root = tmp_path / "submitted" / student / "practical8"
        root.mkdir(parents=True)
        (root / "model_parallel.py").write_text(REFERENCE.read_text())
    reports = grade_class(tmp_path / "submitted", tmp_path / "graded", fast_rubric, "cuda")
    assert len(reports) == 2
    for report in reports:
        assert "(grading machine problem: CUDA cannot start under seccomp: RuntimeError" in report.not_graded, \
            report.not_graded
        assert "sees 0 CUDA GPU" in report.not_graded  # what the self-test itself said, kept
    printed = capfd.readouterr().err  # the progress bar shares the terminal: its \r are no line breaks
    assert printed.count("CUDA cannot start") == 1 and "CUDA cannot start under seccomp: " in printed


@no_two_gpus
def test_on_this_machine_the_diagnosis_says_cuda_fails_outside_the_sandbox_too(monkeypatch):
    """The real probe, no stand-in: torch's CPU build has no CUDA anywhere - the machine's problem, not a layer's."""
    from autograder.sandbox import cuda_layers

    monkeypatch.setattr(cuda_layers, "_explained", {})
    problem = "the submission's sandboxed process sees 0 CUDA GPU(s) (torch x); grading needs 2"
    explained = cuda_layers.explain(problem, "cuda")
    assert explained.startswith("CUDA cannot start on this machine, even outside the sandbox: RuntimeError: torch "
                                "sees 0 CUDA GPU(s)") and explained.endswith(f"said: {problem})")
    assert cuda_layers.explain(problem, "sim") == problem  # simulated GPUs: nothing to diagnose
    assert cuda_layers.explain("the self-test of autograd on the CPU failed", "cuda").startswith("the self-test")


@no_two_gpus
def test_with_two_grading_processes_the_machine_problem_is_said_once(fast_rubric, tmp_path, capfd):
    """`grade -j 2` on --devices cuda where CUDA cannot start: each grading process diagnoses it, one prints it."""
    from autograder.batch import grade_class

    for student in ("alice", "bob", "carol"):
        root = tmp_path / "submitted" / student / "practical8"
        root.mkdir(parents=True)
        (root / "model_parallel.py").write_text(REFERENCE.read_text())
    reports = grade_class(tmp_path / "submitted", tmp_path / "graded", fast_rubric, "cuda", jobs=2)
    assert len(reports) == 3 and all("CUDA cannot start on this machine" in r.not_graded for r in reports)
    assert capfd.readouterr().err.count("CUDA cannot start on this machine") == 1
