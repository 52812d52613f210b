"""A STAND-IN for CUDA's start-up (no GPU here): it fails exactly as a driver that a seccomp filter blocks would
(error 304, as NVIDIA/OpenShell#1696 saw when memfd_create was refused), and starts everywhere else. Used as
``cuda_layers``' probe: ``tests.cuda_stand_in:fails_under_seccomp`` (with tests/ on PYTHONPATH)."""

from pathlib import Path


def fails_under_seccomp(gpus: int) -> None:
    status = Path("/proc/self/status").read_text()
    if any(line.split() == ["Seccomp:", "2"] for line in status.splitlines()):
        raise RuntimeError("CUDA error: OS call failed or operation not supported on this OS "
                           "(stand-in for cudaErrorOperatingSystem, 304)")
