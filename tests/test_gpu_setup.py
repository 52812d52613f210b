"""The GPU setup facts the doctor reports (issue 14, items 12 and 14), with stand-ins for nvidia-smi, /proc and torch:
compute modes, an MPS daemon, kernels the torch build lacks for a GPU, and what each means for grading."""

import subprocess
import types

import pytest

from autograder.gpu_setup import compute_modes, gpu_setup, has_binary_kernels, mps_active


def _smi(stdout: str, returncode: int = 0):
    return lambda argv, **kw: subprocess.CompletedProcess(argv, returncode, stdout, "")


def _missing(argv, **kw):
    raise FileNotFoundError("nvidia-smi")


def test_compute_modes_from_nvidia_smi():
    assert compute_modes(_smi("Default\nExclusive_Process\n")) == ["Default", "Exclusive_Process"]
    assert compute_modes(_missing) is None and compute_modes(_smi("", 9)) is None


@pytest.mark.parametrize(("capability", "arch_list", "binary"), [
    ((8, 0), ["sm_50", "sm_80", "sm_90"], True),
    ((8, 9), ["sm_80", "sm_86", "sm_90"], True),  # sm_86 cubins run on 8.9 (same major, newer minor)
    ((8, 6), ["sm_80", "sm_90"], True),
    ((7, 5), ["sm_80", "sm_90"], False),  # an older minor or major never runs a newer cubin
    ((10, 0), ["sm_80", "sm_90"], False),  # a newer GPU than the build knows: PTX compiled at run time
    ((12, 0), ["sm_90", "sm_100", "sm_120"], True),
    ((9, 0), ["sm_90a"], True), ((9, 1), ["sm_90a"], False),  # arch-specific targets: exactly their own
])
def test_binary_kernels_follow_cudas_compatibility(capability, arch_list, binary):
    assert has_binary_kernels(capability, arch_list) is binary


def test_an_mps_daemon_is_found_by_its_process_or_its_pipe(tmp_path):
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "comm").write_text("python\n")
    assert not mps_active({}, str(proc))
    (proc / "77").mkdir()
    (proc / "77" / "comm").write_text("nvidia-cuda-mps-control\n")
    assert mps_active({}, str(proc))
    pipe = tmp_path / "mps"
    pipe.mkdir()
    (pipe / "control").write_text("")
    assert mps_active({"CUDA_MPS_PIPE_DIRECTORY": str(pipe)}, str(tmp_path / "none"))


def _torch(capability=(10, 0), arch_list=("sm_80", "sm_90")):
    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 2,
                                 get_arch_list=lambda: list(arch_list), get_device_capability=lambda i: capability,
                                 get_device_name=lambda i: f"GPU{i}")
    return types.SimpleNamespace(__version__="2.8.0", cuda=cuda)


def test_what_the_setup_means_for_grading(monkeypatch):
    monkeypatch.setattr("autograder.gpu_setup.mps_active", lambda environ=None: False)
    found = gpu_setup(_torch(), _smi("Exclusive_Process\nExclusive_Process\n"), environ={})
    assert found["problems"] == [] and found["kernels_compiled_at_run_time"] == ["GPU0", "GPU1"]
    assert any("CUDA_CACHE_PATH" in line for line in found["advice"])
    assert any("-j 1" in line for line in found["advice"])
    cached = gpu_setup(_torch(), _smi("Default\n"), environ={"CUDA_CACHE_PATH": "/var/cache/cuda"})
    assert cached["advice"] == [] and cached["kernel_cache"] == "/var/cache/cuda"
    monkeypatch.setattr("autograder.gpu_setup.mps_active", lambda environ=None: True)
    found = gpu_setup(_torch((9, 0), ("sm_90",)), _smi("Prohibited\n"), environ={})
    assert len(found["problems"]) == 1 and "Prohibited" in found["problems"][0] and "MPS" in found["advice"][0]
    found = gpu_setup(_torch((9, 0), ("sm_90",)), _smi("Exclusive_Process\n"), environ={})
    assert len(found["problems"]) == 1 and "exclusive compute mode refuses" in found["problems"][0]
