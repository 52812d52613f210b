"""Limits for the submission's process, applied in the child before any student code runs."""

from __future__ import annotations

import ctypes
import os
import resource
from dataclasses import dataclass

GiB = 1 << 30
CLONE_NEWNET = 0x40000000
GPU_VARIABLE_PREFIXES = ("CUDA_", "NVIDIA_", "ROCR_", "HIP_")


@dataclass(frozen=True)
class Limits:
    address_space: int = 8 * GiB  # torch's CPU build maps ~2 GiB; the model needs < 100 MiB
    processes: int = 128  # per user (each submission has its own); threads count too (OpenMP, autograd)
    file_size: int = 256 << 20  # no file the submission writes may grow past this
    # When the grader runs as root, student code runs as a user of its own: uid = uid_base + pid % 30000, so two
    # submissions graded at the same time cannot touch each other's files either.
    uid_base: int = 61000
    threads: int | None = None  # torch intra-op threads; 1 when several submissions are graded at once


def apply(limits: Limits, scratch: str, real_gpus: bool = False) -> list[str]:
    """Enter a new session, cap resources, cut the network, drop root. Returns what could not be applied."""
    skipped = []
    os.setsid()  # the whole process group can be killed at once, fork bombs included
    caps = [("RLIMIT_FSIZE", limits.file_size), ("RLIMIT_CORE", 0)]
    if real_gpus:  # a CUDA context reserves far more virtual address space than any cap that would still help
        skipped.append("address-space cap (real GPUs)")
    else:
        caps.append(("RLIMIT_AS", limits.address_space))
    for name, value in caps:
        resource.setrlimit(getattr(resource, name), (value, value))
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:  # a fresh network namespace has no interfaces: no network
            skipped.append(f"network namespace (errno {ctypes.get_errno()})")
        uid = limits.uid_base + os.getpid() % 30000
        os.chmod(os.path.dirname(scratch), 0o711)  # traversable, not listable, by the student's user
        for dirpath, dirnames, filenames in os.walk(scratch):
            for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                os.chown(name, uid, uid)
        os.chmod(scratch, 0o700)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    else:
        skipped.append("privilege drop (not running as root)")
        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        cap = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)  # counts all of this user's processes
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, hard))
    # Which GPUs this job may use (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER, MIG instances; CUDA reads them when the
    # student's code first touches a GPU, after this): dropping them would hand the student every GPU of the node.
    gpu_settings = {k: v for k, v in os.environ.items() if k.startswith(GPU_VARIABLE_PREFIXES)} if real_gpus else {}
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8",
                       **gpu_settings})
    os.chdir(scratch)
    return skipped
