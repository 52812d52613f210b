"""CUDA's needs inside the sandbox (issue 22, item 1), without a GPU: every step of ``cuda_contract.replay`` succeeds
inside ``limits.apply(..., real_gpus=True)``, as root and as a throwaway normal user, and the grants it adds expose
nothing private. The GPU device files and the driver's /proc entries are STAND-INS (regular files: this machine has
no /dev/nvidia* and no /proc/driver/nvidia); thread naming, /proc, /sys, memfd_create and the address space are this
machine's own. What a real driver does beyond these steps is not checked here: the doctor does that on a GPU."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO

from autograder.samples import REFERENCE
from autograder.sandbox import cuda_contract, landlock

AS_ROOT = os.geteuid() == 0
THROWAWAY_UID = 4243
USERS = ["root", "normal user"] if AS_ROOT else ["normal user"]
# The steps that must really run here (not "absent"): everything but /proc/modules (no modules on this kernel) and
# what the stand-ins lack.
MUST_RUN = ("name another thread (pthread_setname_np)", "write /proc/thread-self/comm",
            "write /proc/<getpid>/task/<tid>/comm", "read /proc/devices", "read /proc/self/maps", "read /proc/1/status",
            "list /sys/bus/pci/devices", "memfd_create", "reserve 64 GiB of address space")


def _replay(user: str, private: list[str]) -> dict:
    command = [sys.executable, str(REPO / "tests" / "cuda_contract_replay.py"), *private]
    if user == "normal user":
        command = [sys.executable, str(REPO / "tests" / "throwaway_user.py"), str(THROWAWAY_UID), str(REPO),
                   *{str(Path(p).parent) for p in private}, "--", *command]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SECRET_TOKEN": "grader-token-4f1c"})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert "error" not in found, found
    return found


@pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock to test")
@pytest.mark.parametrize("user", USERS)
def test_every_step_cuda_needs_succeeds_in_the_sandbox_and_nothing_private_is_reached(user):
    home = Path(tempfile.mkdtemp(prefix="cuda-contract-home-"))
    home.chmod(0o755)
    (home / "secret.txt").write_text("token")
    (home / "secret.txt").chmod(0o644)
    private = [str(REPO / "autograder" / "graders" / "test_timing.py"), str(REFERENCE), str(REPO / "grading.yml"),
               str(home / "secret.txt"), "/root", "/home"]
    found = _replay(user, private)
    steps = found["steps"]
    assert cuda_contract.failures(steps) == {}, f"as {user}: {cuda_contract.failures(steps)}"
    for name in MUST_RUN:
        assert steps[name] is None, (name, steps[name])
    stand_ins = [k for k in steps if k.startswith("open ") and "nvidia" in k]
    assert len(stand_ins) >= 6 and all(steps[k] is None for k in stand_ins)  # each stand-in device opened rw
    assert found["reached"] == [], f"as {user}, with CUDA's grants student code could: {found['reached']}"


def test_the_erased_environment_is_what_keeps_the_graders_secrets(monkeypatch):
    """The replay's reach check can fail: without erasing, the grader's environment is readable through the thread
    folder that thread naming needs (checked as a normal user, whose /proc files are its own)."""
    if not AS_ROOT or landlock.abi_version() < 1:
        pytest.skip("needs root (to become a throwaway user) and Landlock")
    wrapper = Path(tempfile.mkdtemp(prefix="cuda-no-erase-")) / "no_erase.py"
    wrapper.write_text("import runpy, sys\nsys.path.insert(0, sys.argv[1])\n"
                       "from autograder.sandbox import isolation\nisolation.erase_initial_environment = lambda: None\n"
                       "sys.argv = sys.argv[1:]\n"
                       f"runpy.run_path({str(REPO / 'tests' / 'cuda_contract_replay.py')!r}, run_name='__main__')\n")
    wrapper.parent.chmod(0o755)
    wrapper.chmod(0o644)
    command = [sys.executable, str(REPO / "tests" / "throwaway_user.py"), str(THROWAWAY_UID), str(REPO),
               str(wrapper.parent), "--", sys.executable, str(wrapper), str(REPO)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SECRET_TOKEN": "grader-token-4f1c"})
    assert any("SECRET in" in line for line in json.loads(done.stdout)["reached"]), done.stdout[-2000:]


def test_every_need_names_its_public_source():
    assert len(cuda_contract.NEEDS) >= 10
    for need in cuda_contract.NEEDS:
        assert need.kind in ("read", "write", "device", "syscall", "limit", "library") and need.source, need


def test_device_files_that_appear_at_first_use_are_made_before_the_grants(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda_contract, "DEV", str(tmp_path))
    ran = []
    assert cuda_contract.ensure_device_files(lambda argv, **kw: ran.append(argv)) == [] and ran == []  # no driver
    (tmp_path / "nvidiactl").touch()
    monkeypatch.setattr(cuda_contract.shutil, "which", lambda name: None)

    def cuda_call(argv, **kw):  # what one CUDA call in a process of its own does on a real machine
        ran.append(argv)
        for name in ("nvidia-uvm", "nvidia-uvm-tools"):
            (tmp_path / name).touch()

    assert cuda_contract.ensure_device_files(cuda_call) == []
    assert ran[-1][1:] == ["-c", "import torch; torch.cuda.init()"]
    assert cuda_contract.ensure_device_files(lambda argv, **kw: ran.append(argv)) == [] and len(ran) == 1  # exist now
    for name in ("nvidia-uvm", "nvidia-uvm-tools"):
        (tmp_path / name).unlink()
    monkeypatch.setattr(cuda_contract.shutil, "which", lambda name: "/usr/bin/nvidia-modprobe")
    notes = cuda_contract.ensure_device_files(lambda argv, **kw: ran.append(argv))
    assert ran[-1] == ["/usr/bin/nvidia-modprobe", "-u", "-c=0"]
    assert len(notes) == 2 and "nvidia-uvm is missing" in notes[0] and "before grading" in notes[0]


def test_the_driver_libraries_are_found_where_ldconfig_finds_them(tmp_path, monkeypatch):
    (tmp_path / "drv").mkdir()
    (tmp_path / "drv" / "libcuda.so.1").touch()
    (tmp_path / "ld").mkdir()
    (tmp_path / "ld" / "libnvidia-ml.so.1").touch()
    listing = (f"\tlibcuda.so.1 (libc6,x86-64) => {tmp_path}/drv/libcuda.so.1\n"
               "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n")
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{tmp_path}/ld:{tmp_path}/nothing")
    found = cuda_contract.library_dirs(lambda argv, **kw: subprocess.CompletedProcess(argv, 0, listing, ""))
    assert found == sorted([str(tmp_path / "drv"), str(tmp_path / "ld")])
