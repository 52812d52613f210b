"""Replay CUDA's needs (``cuda_contract.replay``) inside ``limits.apply(..., real_gpus=True)``, and try what must stay
out of reach with those grants; print one JSON line: {"notes", "steps", "reached"}.

    python tests/cuda_contract_replay.py PRIVATE_PATH...

This machine has no GPU: the device files and the driver's /proc entries are STAND-INS (regular files in a folder
of this run's own, ``cuda_contract.DEV`` and ``PROC_DRIVER`` pointed at them). Everything else is the machine's own:
the sandbox's /proc, /sys, thread naming, memfd_create, the address space. Run as root or as a throwaway user
(``throwaway_user.py``); the environment variable ``SECRET_TOKEN`` must not be readable from inside.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

STAND_IN_DEVICES = ("nvidiactl", "nvidia0", "nvidia1", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset",
                    "nvidia-caps/nvidia-cap1")
STAND_IN_DRIVER = ("nvidia/version", "nvidia/params", "nvidia/gpus/0000:3b:00.0/information", "nvidia-uvm/stats")


def make_stand_ins(root: Path) -> None:
    for name in STAND_IN_DEVICES:
        (root / "dev" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "dev" / name).write_bytes(b"")
    for name in STAND_IN_DRIVER:
        (root / "proc-driver" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "proc-driver" / name).write_text("stand-in\n")
    for path in [root, *root.rglob("*")]:  # the dropped user (as root) must reach them, as it reaches /dev
        path.chmod(0o755 if path.is_dir() else 0o666)


def reach(private: list[str], secret: bytes) -> list[str]:
    """What of ``private`` (and of the grader's environment, and of processes outside) is readable or writable."""
    seen = []
    for path in private:
        try:
            os.listdir(path) if os.path.isdir(path) else open(path, "rb").read(1)
            seen.append(f"READ {path}")
        except OSError:
            pass
        try:
            open(path, "ab").close()
            seen.append(f"WROTE {path}")
        except OSError:
            pass
    tid = threading.get_native_id()
    for path in ("/proc/self/environ", f"/proc/self/task/{tid}/environ", "/proc/thread-self/environ",
                 f"/proc/{os.getpid()}/task/{tid}/environ"):
        try:
            if secret and secret in open(path, "rb").read():
                seen.append(f"SECRET in {path}")
        except OSError:
            pass
    try:
        outside = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
        if outside:
            seen.append(f"PROCESSES outside the sandbox in /proc: {outside[:5]}")
    except OSError:
        pass
    for path in ("/proc/self/task", "/proc/1/task"):
        try:
            open(os.path.join(path, str(tid), "planted"), "w").close()
            seen.append(f"CREATED a file in {path}")
        except OSError:
            pass
    return seen


def main(private: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from autograder.sandbox import cuda_contract
    from autograder.sandbox.limits import Limits, apply

    root = Path(tempfile.mkdtemp(prefix="cuda-stand-ins-"))
    make_stand_ins(root)
    scratch = Path(tempfile.mkdtemp(prefix="cuda-replay-")) / "run1"
    scratch.mkdir()
    secret = os.environ.get("SECRET_TOKEN", "").encode()  # read now: apply() clears the environment
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            cuda_contract.DEV, cuda_contract.PROC_DRIVER = str(root / "dev"), str(root / "proc-driver")
            notes = apply(Limits(), str(scratch), real_gpus=True)
            found = {"notes": notes, "steps": cuda_contract.replay(), "reached": reach(private, secret)}
        except BaseException as exc:  # noqa: BLE001 - the parent prints whatever happened
            found = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(found).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        data = answer.read()
    os.waitpid(child, 0)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(scratch.parent, ignore_errors=True)
    print(data.decode())


if __name__ == "__main__":
    main(sys.argv[1:])
