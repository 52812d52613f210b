"""Limits for the submission's process, applied in the child before any student code runs.

``apply`` builds the sandbox: its own session, resource caps, PID and network namespaces (isolation.py), as
root a user of its own (and a view of the filesystem in which that user can read the interpreter), then Landlock
(landlock.py): read-only access to the system and the Python it runs on, writes only in its scratch folder, no
TCP, no signals outside. Everything a machine refuses comes back as a note; ``Limits.require_landlock`` says
whether a machine without Landlock may grade at all (``--unsafe-no-sandbox`` turns it off).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import cuda_contract, isolation, landlock, names, seccomp

GiB = 1 << 30
GPU_VARIABLE_PREFIXES = ("CUDA_", "NVIDIA_", "ROCR_", "HIP_")
PRIVATE = ("graders",)  # parts of the autograder package the submission's process never reads
# Read-only for the student: the system's programs and libraries. Not /home, /root, /tmp, /work, /srv, ...
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys/devices/system/cpu",
               "/sys/fs/cgroup", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat")
SYSTEM_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
GPU_DEVICES = tuple(cuda_contract.device_files())  # with real GPUs: what CUDA reads and opens (cuda_contract.py)


@dataclass(frozen=True)
class Limits:
    address_space: int = 8 * GiB  # torch's CPU build maps ~2 GiB; the model needs < 100 MiB
    processes: int = 128  # per user (each submission has its own); threads count too (OpenMP, autograd)
    file_size: int = 256 << 20  # no file the submission writes may grow past this
    # When the grader runs as root, student code runs as a user of its own: uid = uid_base + pid % 30000, so two
    # submissions graded at the same time cannot touch each other's files either.
    uid_base: int = 61000
    threads: int | None = None  # torch intra-op threads; 1 when several submissions are graded at once
    require_landlock: bool = True  # refuse to grade (not graded, machine problem) where the kernel has none
    gpus: int = 2  # real GPUs the process must reach (gpucheck.self_test) before it says ready (doctor: 1 on one GPU)
    refuse_memfd: bool = False  # simulated GPUs without a memory cgroup: memfd pages would escape every cap (memory.py)


class SandboxUnavailable(Exception):
    """A protection ``Limits`` requires cannot be applied on this machine: a problem of the grading machine."""


# The protections, each of which the diagnosis of a CUDA failure applies alone (``cuda_layers``): resource caps; PID,
# network, IPC and mount namespaces with a /proc of their own; a user of its own (as root); Landlock; seccomp; the
# cleared environment.
LAYERS = ("limits", "namespaces", "user", "landlock", "seccomp", "environment")


def apply(limits: Limits, scratch: str, real_gpus: bool = False, protected_fds: Iterable[int] = (),
          layers: Iterable[str] = LAYERS) -> list[str]:
    """Sandbox this process (see the module's docstring) with ``layers`` (all of them but to find which one keeps
    CUDA from starting). Returns what could not be applied; raises ``SandboxUnavailable`` when a required protection
    is missing. Only the sandboxed grandchild returns."""
    layers = set(layers)
    skipped = []
    as_root = os.geteuid() == 0
    os.setsid()  # the whole process group can be killed at once
    if real_gpus:  # the trusted side first: device files that appear at the first CUDA use, and where libcuda is
        skipped += cuda_contract.ensure_device_files()
        cuda_read = cuda_contract.read_paths()
    caps = [("RLIMIT_FSIZE", limits.file_size), ("RLIMIT_CORE", 0)]
    if real_gpus:  # a CUDA context reserves far more virtual address space than any cap that would still help
        skipped.append("address-space cap (real GPUs)")
    else:
        caps.append(("RLIMIT_AS", limits.address_space))
    for name, value in caps if "limits" in layers else ():
        resource.setrlimit(getattr(resource, name), (value, value))
    machine_mounts = isolation.mount_namespace()
    pid_namespace, own_mounts = False, False
    if "namespaces" in layers:
        pid_namespace, own_mounts, notes = isolation.unshare_namespaces(as_root)
        skipped += notes
        isolation.fork_init()  # from here on: the grandchild, PID 1 of its namespace when there is one
        skipped += isolation.mount_own_proc(machine_mounts)  # before any rule on /proc: rules bind to what they see
    if as_root and "user" in layers and "namespaces" not in layers:  # the user alone (cuda_layers): its view of Python
        own_mounts = isolation.unshare_mounts()
    readable = [*SYSTEM_READ, *isolation.python_paths(), _package_dir(),
                *(cuda_read if real_gpus else ()), *(_kernel_cache() if real_gpus else ())]
    if as_root and "user" in layers:
        try:
            if not own_mounts:
                raise OSError("no mount namespace of its own")
            isolation.expose(readable, _staging(scratch), machine_mounts)  # whole folders: Landlock narrows them
        except OSError as exc:
            skipped.append(f"a readable interpreter for the dropped user ({exc})")
        if own_mounts:  # getpass.getuser(), pwd.getpwuid(os.getuid()) work for the dropped user (names.py)
            skipped += names.give_uid_a_name(_student_uid(limits), scratch, _staging(scratch), machine_mounts)
        _drop_root(limits, scratch, gpu_groups(tuple(cuda_contract.device_files())) if real_gpus else [])
        if real_gpus:  # setuid made this process non-dumpable: its /proc files root's, its thread names unwritable
            isolation.set_dumpable()
    elif "user" in layers:
        skipped.append("privilege drop (not running as root)")
        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        cap = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)  # counts all of this user's processes
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, hard))
    if "landlock" in layers:
        try:
            private = [os.path.join(_package_dir(), name) for name in PRIVATE]
            gpu_devices = cuda_contract.device_files() if real_gpus else []
            skipped += landlock.restrict(read=isolation.around(readable, private) + isolation.own_proc_entries(),
                                         write=[scratch], devices=[*SYSTEM_DEVICES, *gpu_devices],
                                         read_write=[cuda_contract.own_threads()] if real_gpus else [])
        except OSError as exc:
            if limits.require_landlock:
                raise SandboxUnavailable(
                    f"the grading machine cannot sandbox submissions: {exc}. Grade on a machine whose kernel has "
                    "Landlock, or pass --unsafe-no-sandbox to grade without it (student code can then read and "
                    "write whatever the grader can).") from None
            skipped.append(f"Landlock ({exc}): student code can read and write whatever the grader can")
    try:  # the reply channel stays the grader's; no sockets, keyrings or ptrace (seccomp.py says why)
        if "seccomp" in layers:
            seccomp.install(protected_fds, refuse=("memfd_create",) if limits.refuse_memfd and not real_gpus else ())
    except (OSError, KeyError) as exc:
        skipped.append(f"seccomp filter ({exc!r})")
    if "environment" in layers:
        # Which GPUs this job may use (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER, MIG instances; CUDA reads them when
        # the student's code first touches a GPU, after this): dropping them would hand the student every GPU.
        gpu_settings = ({k: v for k, v in os.environ.items() if k.startswith(GPU_VARIABLE_PREFIXES)} if real_gpus
                        else {})
        grader_user = os.environ.get("USER")
        os.environ.clear()
        isolation.erase_initial_environment()  # what /proc/<pid>/environ would still show
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8",
                           **names.login_variables(grader_user), **gpu_settings})
    os.chdir(scratch)
    return skipped if pid_namespace else skipped + ["strays are killed by session (no PID namespace)"]


def in_pid_namespace() -> bool:
    """Whether this process is PID 1 of a namespace of its own (``apply`` made one)."""
    return os.getpid() == 1


def gpu_groups(paths: tuple[str, ...] = GPU_DEVICES) -> list[int]:
    """Groups through which GPU device files are reachable when other users cannot open them (``video`` where the
    driver runs with NVreg_DeviceFileMode=0660): the submission's user keeps them, or CUDA finds no GPU."""
    groups = set()
    for path in paths:
        try:
            mode = os.stat(path)
        except OSError:
            continue
        if mode.st_mode & 0o006 != 0o006 and mode.st_mode & 0o060 == 0o060:
            groups.add(mode.st_gid)
    return sorted(groups)


def _kernel_cache() -> list[str]:
    """The CUDA kernel cache the grader set (``CUDA_CACHE_PATH``, kept in the environment), read-only: a GPU the torch
    build has no binary kernels for compiles them in every fresh process otherwise (its HOME is new each time), and
    a cache students could write would let one submission plant kernels another one runs."""
    path = os.environ.get("CUDA_CACHE_PATH")
    return [path] if path and os.path.isabs(path) else []


def _drop_root(limits: Limits, scratch: str, groups: list[int]) -> None:
    uid = _student_uid(limits)
    os.chmod(os.path.dirname(scratch), 0o711)  # traversable, not listable, by the student's user
    for dirpath, dirnames, filenames in os.walk(scratch):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.chown(name, uid, uid)
    os.chmod(scratch, 0o700)
    os.setgroups(groups)
    os.setgid(uid)
    os.setuid(uid)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def _student_uid(limits: Limits) -> int:
    return limits.uid_base + isolation.outer_pid() % 30000  # the outer PID: unique among running ones


def _staging(scratch: str) -> str:
    staging = os.path.join(os.path.dirname(scratch), f".expose-{os.path.basename(scratch)}")
    os.makedirs(staging, exist_ok=True)
    return staging


def _package_dir() -> str:
    return str(Path(__file__).resolve().parents[1])
