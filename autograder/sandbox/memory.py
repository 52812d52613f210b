"""A memory budget per submission that counts everything: a cgroup of its own, made by the trusted side.

    budget, note = Budget.create("alice-run1")   # None and why, where this machine lets the grader make none
    budget.admit(pid)                             # the sandboxed process, after its ready line, before student code
    budget.exceeded()                             # whether the kernel stopped it for going over the budget
    budget.close()                                # after its processes are gone

The address-space cap (``Limits.address_space``) counts only what a process maps: ``memfd_create`` +
``posix_fallocate`` held 10 GB of a 23 GB machine past it, unflagged. A memory cgroup counts every page the
submission's processes are charged for - anonymous memory, memfd and tmpfs pages, the page cache of what they write
- and the kernel stops them (the out-of-memory killer, inside the cgroup only) when they pass ``MEMORY_BUDGET``.
cgroup v2 (``memory.max``, ``pids.max``) where the grader's own cgroup may have children with those controllers (as
root, or a normal user whose systemd delegated the cgroup); cgroup v1 (``memory.limit_in_bytes``, and the pids
controller's ``pids.max``) where those hierarchies are mounted and writable. Where neither is possible the trusted
side says so in the sandbox's notes; on simulated GPUs the submission's process then refuses ``memfd_create``
(seccomp) and cannot write /dev/shm (Landlock), on real GPUs memory is not bounded (CUDA needs memfd_create).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

GiB = 1 << 30
# The reference needs ~0.6 GiB (torch's CPU build, the model, the graders' batches: measured on the 2-core box); 4 GiB
# leaves honest code ample room and keeps N parallel submissions from taking a 24 GiB machine down.
MEMORY_BUDGET = 4 * GiB
PIDS_BUDGET = 256  # processes and threads of one submission (torch's OpenMP threads, autograd's, a few forks)
_made = 0


def _own_cgroups() -> dict[str, str]:
    """{controller: path} of this process (``/proc/self/cgroup``); cgroup v2's line under the key ""."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found


def _mounts() -> dict[str, str]:
    """{controller: mount point} of the cgroup hierarchies (v1 per controller, v2 under "")."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _, point, kind, options, *_ = line.split()
            if kind == "cgroup2":
                found.setdefault("", point)
            elif kind == "cgroup":
                for option in options.split(","):
                    if option in ("memory", "pids"):
                        found[option] = point
    return found


class Budget:
    """One submission's cgroups (one folder in v2; a memory and a pids folder in v1)."""

    def __init__(self, memory: Path, pids: Path | None, version: int) -> None:
        self.memory, self.pids, self.version = memory, pids, version
        self._kills = self._oom_kills()

    @classmethod
    def create(cls, name: str, limit: int = MEMORY_BUDGET, pids: int = PIDS_BUDGET) -> tuple[Budget | None, str]:
        """A new budget, or None and the reason (for the sandbox's notes)."""
        global _made
        _made += 1
        folder = f"autograder-{os.getpid()}-{_made}-{name}"
        own, mounts = _own_cgroups(), _mounts()
        reasons = []
        if "" in mounts and "" in own:
            try:
                return cls._v2(Path(mounts[""] + own[""]) / folder, limit, pids), ""
            except OSError as exc:
                reasons.append(f"cgroup v2: {exc}")
        if "memory" in mounts and "memory" in own:
            try:
                return cls._v1(Path(mounts["memory"] + own["memory"]) / folder,
                               Path(mounts["pids"] + own.get("pids", "/")) / folder if "pids" in mounts else None,
                               limit, pids), ""
            except OSError as exc:
                reasons.append(f"cgroup v1: {exc}")
        return None, "; ".join(reasons) or "no memory cgroup controller is mounted"

    @classmethod
    def _v2(cls, folder: Path, limit: int, pids: int) -> Budget:
        if "memory" not in (folder.parent / "cgroup.controllers").read_text().split():
            raise OSError(f"the memory controller is not delegated to {folder.parent}")
        if "memory" not in (folder.parent / "cgroup.subtree_control").read_text().split():
            (folder.parent / "cgroup.subtree_control").write_text("+memory +pids")  # fails where it holds processes
        folder.mkdir()
        try:
            (folder / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
            with contextlib.suppress(OSError):
                (folder / "pids.max").write_text(str(pids))
        except OSError:
            folder.rmdir()
            raise
        return cls(folder, None, 2)

    @classmethod
    def _v1(cls, memory: Path, pid_folder: Path | None, limit: int, pids: int) -> Budget:
        memory.mkdir()
        try:
            (memory / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):  # no swap past the budget either (absent without swap accounting)
                (memory / "memory.memsw.limit_in_bytes").write_text(str(limit))
        except OSError:
            memory.rmdir()
            raise
        if pid_folder is not None:
            try:
                pid_folder.mkdir()
                (pid_folder / "pids.max").write_text(str(pids))
            except OSError:
                with contextlib.suppress(OSError):
                    pid_folder.rmdir()
                pid_folder = None
        return cls(memory, pid_folder, 1)

    def admit(self, pid: int) -> None:
        """Move ``pid`` (all its threads) into the budget; what it starts from then on is counted too."""
        for folder in (self.memory, self.pids):
            if folder is not None:
                (folder / "cgroup.procs").write_text(str(pid))

    def _oom_kills(self) -> int:
        name, key = ("memory.events", "oom_kill") if self.version == 2 else ("memory.oom_control", "oom_kill")
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / name).read_text().splitlines():
                if line.startswith(key + " "):
                    return int(line.split()[1])
        return 0

    def exceeded(self) -> bool:
        """Whether the kernel killed one of its processes for going over the budget since the last question."""
        kills = self._oom_kills()
        over, self._kills = kills > self._kills, kills
        return over

    def close(self) -> None:
        """Remove the cgroups (empty once their processes are gone; a killed process leaves them within moments)."""
        for folder in (self.memory, self.pids):
            if folder is None:
                continue
            for _ in range(40):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
