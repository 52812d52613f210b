"""What CUDA's start-up (``cuInit``) and a CUDA program need from the machine, each need with its public source, and
the sandbox's grants for it (``limits.apply(..., real_gpus=True)``).

    cuda_contract.NEEDS            # (kind, what, why, source) - the table docs/gpu-verification.md shows
    cuda_contract.ensure_device_files()   # trusted side, before the grants: /dev/nvidia-uvm* made to exist
    cuda_contract.replay()         # inside the sandbox: each need exercised, {step: None or the error}

None of this is verifiable without a GPU; ``replay`` exercises every step the kernel's side of it decides (paths,
Landlock, namespaces, seccomp, rlimits) and the tests run it inside the sandbox as root and as a normal user, with
stand-in files (``DEV``, ``PROC_DRIVER`` pointed elsewhere) where this machine has no /dev/nvidia* or
/proc/driver/nvidia*. Landlock grants only paths that exist when the rules are made, so device files that appear at
the first CUDA use on a machine (nvidia-uvm) are made to exist first, by the trusted side.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

DEV = "/dev"  # where the GPU device files are (tests point it at stand-ins)
PROC_DRIVER = "/proc/driver"  # where the driver's /proc entries are (the same)
GPU_SLOTS = 64  # /dev/nvidia0 ... /dev/nvidia63
RESERVE_BYTES = 64 << 30  # address space a CUDA context reserves is tens of GB (unified addressing)
DRIVER_LIBRARIES = ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so")
ENSURE_TIMEOUT_S = 120
LDCONFIG = next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), "ldconfig")


class Need(NamedTuple):
    kind: str  # read | write | device | syscall | limit | library
    what: str
    why: str
    source: str


NEEDS = (
    Need("write", "/proc/<pid>/task/<tid>/comm", "drivers 570+ name their threads during cuInit; EACCES makes cuInit "
         "return 304 (cudaErrorOperatingSystem)", "nolabs-ai/nono#673, #924, #1001; NVIDIA/OpenShell#710, #1486"),
    Need("write", "a /proc of the sandbox's own PID namespace", "glibc's pthread_setname_np opens "
         "/proc/self/task/<tid>/comm with the namespace-local tid: without it, ENOENT", "measured here (DESIGN.md)"),
    Need("read", "/proc/devices, /proc/modules", "libcuda finds nvidia-uvm's major number before it opens "
         "/dev/nvidia-uvm", "intel/libva#575 (strace); NVIDIA/nvidia-docker#464"),
    Need("read", "/proc/driver/nvidia, /proc/driver/nvidia-uvm, /proc/driver/nvidia-caps", "driver version, GPUs, "
         "parameters, MIG capabilities", "nolabs-ai/nono#673; NVIDIA container toolkit (mounts /proc/driver/nvidia)"),
    Need("read", "/proc/self/maps, /proc/self/status", "the runtime and torch read their own mappings and limits",
         "nolabs-ai/nono#1001 (/proc/self stays readable)"),
    Need("read", "/sys (bus/pci, devices/system/cpu and node)", "PCI topology and NUMA affinity of each GPU",
         "NVIDIA/OpenShell#1486"),
    Need("device", "/dev/nvidiactl, /dev/nvidia<N>, /dev/nvidia-uvm, /dev/nvidia-uvm-tools, /dev/nvidia-modeset, "
         "/dev/nvidia-caps/*", "opened O_RDWR, driven by ioctl", "NVIDIA/OpenShell#710; nolabs-ai/nono#651, #673"),
    Need("device", "/dev/nvidia-uvm exists before the grants", "created at the first CUDA use on a machine; Landlock "
         "grants only paths that exist", "nvidia-modprobe(1) -u -c=0; DESIGN.md"),
    Need("syscall", "memfd_create", "blocking it gave 304", "NVIDIA/OpenShell#1696"),
    Need("limit", "no RLIMIT_AS", "a CUDA context reserves tens of GB of virtual address space", "DESIGN.md"),
    Need("library", "libcuda.so.1 wherever ldconfig finds it", "dlopen'd by the CUDA runtime at first use",
         "NVIDIA container toolkit (driver libraries found through ldconfig)"),
)


def device_files() -> list[str]:
    """Every GPU device file the grants name (those absent are skipped by Landlock; ``ensure_device_files`` first)."""
    names = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps", "dri"]
    return [os.path.join(DEV, n) for n in names + [f"nvidia{i}" for i in range(GPU_SLOTS)]]


def driver_proc() -> list[str]:
    return [os.path.join(PROC_DRIVER, n) for n in ("nvidia", "nvidia-uvm", "nvidia-caps")]


def read_paths() -> list[str]:
    """Read-only grants for CUDA beyond the sandbox's usual ones (``limits.SYSTEM_READ``)."""
    return ["/proc/devices", "/proc/modules", *driver_proc(), "/sys", *library_dirs()]


def own_threads() -> str:
    """This process's task folder in its own /proc (read and write: thread names; environ there is erased first,
    ``isolation.erase_initial_environment``)."""
    return f"/proc/{os.readlink('/proc/self')}/task"


def library_dirs(run: Callable[..., Any] = subprocess.run) -> list[str]:
    """Folders holding the driver's libraries, from ``ldconfig -p`` and LD_LIBRARY_PATH (read before it is cleared;
    the dynamic loader keeps the start-up value): containers often put them outside /usr."""
    found = set()
    try:
        listing = run([LDCONFIG, "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    for line in listing.splitlines():
        path = line.rpartition("=>")[2].strip()
        if os.path.basename(path).startswith(DRIVER_LIBRARIES):
            found.add(os.path.dirname(os.path.realpath(path)))
    for folder in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if os.path.isabs(folder) and any(n.startswith(DRIVER_LIBRARIES) for n in _listing(folder)):
            found.add(os.path.realpath(folder))
    return sorted(found)


def _listing(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def ensure_device_files(run: Callable[..., Any] = subprocess.run) -> list[str]:
    """On a machine with the NVIDIA driver (``nvidiactl``), make ``/dev/nvidia-uvm`` and ``-uvm-tools`` exist before
    the grants: ``nvidia-modprobe -u -c=0`` where installed, else one CUDA call in a process of its own (never in this
    one: a forked submission must not inherit a CUDA context). Returns a note per file still missing."""
    if not os.path.exists(os.path.join(DEV, "nvidiactl")):
        return []  # no NVIDIA driver here: nothing to make
    wanted = [os.path.join(DEV, n) for n in ("nvidia-uvm", "nvidia-uvm-tools")]
    if all(os.path.exists(p) for p in wanted):
        return []
    modprobe = shutil.which("nvidia-modprobe")
    command = [modprobe, "-u", "-c=0"] if modprobe else [sys.executable, "-c", "import torch; torch.cuda.init()"]
    try:
        run(command, capture_output=True, timeout=ENSURE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        pass
    return [f"{path} is missing (after {os.path.basename(command[0])} {' '.join(command[1:])}): CUDA may fail in the "
            "sandbox; run one CUDA program on this machine (or nvidia-modprobe -u -c=0) before grading"
            for path in wanted if not os.path.exists(path)]


# ---------------------------------------------------------------------------------------------- the replay
def replay() -> dict[str, str | None]:
    """Each need exercised in this process, as CUDA's start-up would: {step: None, or the error}. Steps whose files
    this machine lacks say "absent" (a note, not a failure) - the tests give them stand-ins."""
    libc = ctypes.CDLL(None, use_errno=True)
    steps: dict[str, str | None] = {}

    def step(name: str, action: Callable[[], Any]) -> None:
        try:
            action()
            steps[name] = None
        except Exception as exc:  # noqa: BLE001 - every failure is the finding
            steps[name] = f"{type(exc).__name__}: {exc}"

    step("name another thread (pthread_setname_np)", lambda: _name_another_thread(libc))
    step("write /proc/thread-self/comm", lambda: _write("/proc/thread-self/comm", b"cuda-main"))
    step("write /proc/<getpid>/task/<tid>/comm",
         lambda: _write(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/comm", b"cuda-main"))
    for path in ("/proc/devices", "/proc/modules", "/proc/self/maps", "/proc/self/status",
                 f"/proc/{os.getpid()}/status", "/sys/devices/system/cpu/online"):
        step(f"read {path}", lambda p=path: _read(p))
    step("list /sys/bus/pci/devices", lambda: os.listdir("/sys/bus/pci/devices"))
    for folder in driver_proc():
        step(f"read {folder}", lambda f=folder: _read_tree(f))
    for path in [p for p in device_files() if os.path.lexists(p)] or [os.path.join(DEV, "nvidiactl")]:
        step(f"open {path} read-write", lambda p=path: _open_device(p))
    step("memfd_create", lambda: _memfd(libc))
    step(f"reserve {RESERVE_BYTES >> 30} GiB of address space", _reserve)
    for folder in library_dirs():
        step(f"read the driver library in {folder}", lambda f=folder: _read_libraries(f))
    return steps


class Absent(Exception):
    """The file a step needs is not on this machine: nothing to show (not a failure)."""


def failures(steps: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in steps.items() if v is not None and not v.startswith("Absent")}


def _name_another_thread(libc) -> None:
    ready, done = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (ready.set(), done.wait(10)), daemon=True)
    worker.start()
    ready.wait(10)
    try:
        libc.pthread_setname_np.argtypes = [ctypes.c_ulong, ctypes.c_char_p]
        code = libc.pthread_setname_np(worker.ident, b"cuda-EvtHandlr")
        if code:
            raise OSError(code, os.strerror(code))
        with open(f"/proc/self/task/{worker.native_id}/comm", "rb") as comm:
            if comm.read().strip() != b"cuda-EvtHandlr":
                raise OSError("the thread's name did not change")
    finally:
        done.set()
        worker.join(10)


def _exists(path: str) -> None:
    if not os.path.lexists(path):
        raise Absent(f"{path} is not on this machine")


def _write(path: str, data: bytes) -> None:
    with open(path, "wb", buffering=0) as f:
        f.write(data)


def _read(path: str) -> None:
    _exists(path)
    with open(path, "rb") as f:
        f.read(1 << 16)


def _read_tree(folder: str) -> None:
    _exists(folder)
    for root, _, files in os.walk(folder, onerror=_raise):
        for name in files:
            _read(os.path.join(root, name))


def _raise(error: OSError) -> None:
    raise error


def _open_device(path: str) -> None:
    _exists(path)
    targets = [os.path.join(path, n) for n in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    for target in targets:
        if not os.path.isdir(target):
            os.close(os.open(target, os.O_RDWR | os.O_CLOEXEC))


def _memfd(libc) -> None:
    fd = libc.memfd_create(b"cuda", 1)  # MFD_CLOEXEC
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"memfd_create: {os.strerror(ctypes.get_errno())}")
    try:
        os.ftruncate(fd, 1 << 20)
        mmap.mmap(fd, 1 << 20).close()
    finally:
        os.close(fd)


def _reserve() -> None:
    mmap.mmap(-1, RESERVE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0),
              prot=0)  # PROT_NONE: reserved, never touched.close()


def _read_libraries(folder: str) -> None:
    names = [n for n in _listing(folder) if n.startswith(DRIVER_LIBRARIES)]
    if not names:
        raise Absent(f"no driver library in {folder}")
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            f.read(4096)
