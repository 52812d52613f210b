"""The submission's process in namespaces of its own: a PID namespace (nothing it starts outlives it), no network,
and, as root, a view of the filesystem in which the dropped user can read the Python it runs on.

``limits.apply`` calls these in the child the warm server forked, before any student code: ``unshare_namespaces``,
then ``fork_init``, which forks once more; only the grandchild returns (it is PID 1 of the new namespace: when it
dies, the kernel kills everything it started, double-forked and setsid'd processes included). The child in
between waits and exits as the grandchild did. Every step that this machine refuses is returned as a note; nothing
here is required, the caller decides what a missing protection means.
"""

from __future__ import annotations

import ctypes
import os
import signal
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC = (0x00020000, 0x10000000, 0x20000000,
                                                                     0x40000000, 0x08000000)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 8192, 16384, 1 << 18)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
LINUX = sys.platform.startswith("linux")  # elsewhere (a student's Mac running `check`) only the portable steps run

_libc = ctypes.CDLL(None, use_errno=True)


def _call(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare_namespaces(as_root: bool) -> tuple[bool, bool, list[str]]:
    """New PID and network namespaces (and, as root, a mount namespace; as a normal user, a user namespace that
    maps the user to itself, which is what lets it create the others). Returns (PID namespace made, mount
    namespace of this process's own made, notes)."""
    if not LINUX:
        return False, False, ["namespaces (not Linux): strays are killed by process group"]
    uid, gid = os.getuid(), os.getgid()
    mounts_before = mount_namespace()
    # IPC too: System V shared memory and queues would otherwise outlive the submission and join submissions.
    # A mount namespace for the normal user too: the PID namespace gets a /proc of its own (``mount_own_proc``).
    flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS | (0 if as_root else CLONE_NEWUSER)
    notes = []
    pid_namespace = _libc.unshare(flags) == 0
    if pid_namespace and not as_root:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    elif not pid_namespace:
        notes.append(f"PID and network namespaces (errno {ctypes.get_errno()}): strays are killed by session "
                     "instead, and only TCP is cut (by Landlock)")
        if as_root and _libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
            notes.append(f"network and mount namespaces (errno {ctypes.get_errno()})")
    # Checked, not assumed: mounting in the machine's own namespace would change the machine for everyone.
    return pid_namespace, mount_namespace() != mounts_before, notes


def unshare_mounts() -> bool:
    """A mount namespace of this process's own (as root), checked; for a layer applied without the namespaces
    (``limits.apply(layers=...)``: the dropped user still needs its view of the interpreter)."""
    before = mount_namespace()
    return LINUX and _libc.unshare(CLONE_NEWNS) == 0 and mount_namespace() != before


def mount_namespace() -> int:
    """This process's mount namespace (its inode number; 0 off Linux)."""
    return os.stat("/proc/self/ns/mnt").st_ino if LINUX else 0


def own_proc_entries() -> list[str]:
    """This process's /proc folder, entry by entry, but for ``environ``: the grader's environment at the warm
    server's start (tokens, say) is still readable there after ``os.environ`` is cleared."""
    if not LINUX:
        return []
    own = f"/proc/{os.readlink('/proc/self')}"  # as the mounted /proc knows it (1 in a /proc of its own)
    # Not the magic links either (root, cwd, exe): a rule on one would be a rule on what it points to - "/".
    return [path for name in os.listdir(own) if name != "environ"
            and not os.path.islink(path := f"{own}/{name}")]


def around(paths: Iterable[str], private: Iterable[str]) -> list[str]:
    """``paths`` with every ``private`` folder carved out: a path that contains one is replaced by its entries (and
    so on down), so a rule on the interpreter's prefix never covers a pip-installed autograder's hidden graders.
    A path that is "/" is dropped (nothing may be readable wholesale)."""
    private = {os.path.realpath(p) for p in private}
    carved = []
    for path in paths:
        real = os.path.realpath(path)
        if real == "/" or real in private:
            continue
        if any(p.startswith(real + os.sep) for p in private):
            try:
                entries = [os.path.join(path, name) for name in sorted(os.listdir(path))]
            except OSError:
                continue
            carved += around(entries, private)
        else:
            carved.append(path)
    return carved


def close_inherited(keep: Iterable[int]) -> None:
    """Close the pipes and sockets this process inherited but for ``keep``: the warm server's own (its liveness
    pipe, multiprocessing's resource tracker, which runs unsandboxed as the grader) are none of the student's."""
    for name in os.listdir("/proc/self/fd") if LINUX else []:
        fd = int(name)
        if fd in keep:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            os.close(fd)


_outer = {"pid": None}  # this process's PID outside its namespace, kept before a /proc of its own hides it


def outer_pid() -> int:
    """This process's PID as the grader sees it (``os.getpid()`` says 1 inside a PID namespace; the machine's /proc
    still knows the outer number, and ``mount_own_proc`` keeps it before mounting the namespace's own)."""
    if _outer["pid"] is not None:
        return _outer["pid"]
    return int(os.readlink("/proc/self")) if LINUX else os.getpid()


def mount_own_proc(machine_namespace: int) -> list[str]:
    """As PID 1 of a PID namespace, in a mount namespace of this process's own: a /proc of the namespace's own, so
    that /proc/self/task/<tid> names this process's threads by the ids its threads know (glibc's
    pthread_setname_np, which CUDA's start-up uses, opens that path) and /proc shows no process outside. Returns
    what this machine refused, as notes."""
    if not LINUX:
        return []
    _outer["pid"] = outer_pid()
    if os.getpid() != 1:
        return ["a /proc of its own (no PID namespace): threads named by other threads fail (CUDA may not start)"]
    if mount_namespace() == machine_namespace:
        return ["a /proc of its own (no mount namespace of its own): CUDA may not start"]
    try:
        _call(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
        _call(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mounting /proc")
    except OSError as exc:
        return [f"a /proc of its own ({exc}): threads named by other threads fail (CUDA may not start)"]
    return []


def set_dumpable() -> None:
    """After a change of user the kernel makes a process non-dumpable: its /proc files become root's, and its threads
    cannot be named (CUDA's start-up writes /proc/self/task/<tid>/comm). Its environment strings are erased first
    (``erase_initial_environment``); core dumps stay off (RLIMIT_CORE 0) and ptrace refused (seccomp)."""
    if LINUX:
        _call(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "PR_SET_DUMPABLE")


def erase_initial_environment() -> None:
    """Zero the environment strings this process was started with (the grader's, at the warm server's start): after
    ``os.environ`` is cleared nothing refers to them, yet /proc/<pid>/environ and /proc/<pid>/task/<tid>/environ
    would still show them (the task folder is readable: thread names, ``cuda_contract``)."""
    if not LINUX:
        return
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50 and 51 of proc(5)
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)


def fork_init() -> None:
    """Fork; the parent waits for the child and exits as it did, the child returns (PID 1 of a new PID
    namespace, when ``unshare_namespaces`` made one) and dies with its parent."""
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        if LINUX:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() not in (parent, 0):  # the parent was killed before the line above took effect (0: the
            os._exit(1)  # parent lies outside this PID namespace; the grader then kills this process by its PID)
        return
    os.closerange(3, 1 << 16)  # the child owns the pipes; this process only waits
    _, status = os.waitpid(child, 0)  # retried on EINTR by Python itself (PEP 475)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def blocked_ancestor(path: str) -> str | None:
    """The outermost directory on the way to ``path`` that other users cannot traverse (``/root`` of mode 0700
    when Python lives in root's home), or None."""
    parts = Path(path).parts
    for i in range(2, len(parts) + (1 if os.path.isdir(path) else 0)):  # directories only: files need no x
        ancestor = os.path.join(*parts[:i])
        try:
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                return ancestor
        except OSError:
            return None
    return None


def expose(paths: Iterable[str], staging: str, machine_namespace: int) -> list[str]:
    """As root, in a mount namespace of this process's own: make ``paths`` reachable by any user without changing
    the machine. Each directory that other users cannot traverse is covered with an empty, read-only tmpfs into
    which only ``paths`` are bind-mounted back, read-only - so the rest of that directory (root's home, say)
    vanishes from this process's view. ``staging`` is an empty directory outside them; ``machine_namespace`` is
    the mount namespace this must not touch (refused if this process is still in it). Returns what was exposed."""
    if mount_namespace() == machine_namespace:
        raise OSError("not in a mount namespace of its own: the machine's mounts are left alone")
    by_ancestor: dict[str, list[str]] = {}
    for path in sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}):
        ancestor = blocked_ancestor(path)
        if ancestor and not any(path.startswith(kept + os.sep) for kept in by_ancestor.get(ancestor, [])):
            by_ancestor.setdefault(ancestor, []).append(path)
    if not by_ancestor:
        return []
    _call(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    exposed = []
    for n, (ancestor, inside) in enumerate(by_ancestor.items()):
        staged = []
        for i, path in enumerate(inside):
            stage = os.path.join(staging, f"{n}-{i}")
            os.mkdir(stage) if os.path.isdir(path) else open(stage, "x").close()  # a bind needs a target of its kind
            _call(_libc.mount(path.encode(), stage.encode(), None, MS_BIND | MS_REC, None), f"binding {path}")
            staged.append((stage, path))
        _call(_libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755"),
              f"covering {ancestor}")
        for stage, path in staged:
            if os.path.isdir(stage):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                open(path, "x").close()
            _call(_libc.mount(stage.encode(), path.encode(), None, MS_MOVE, None), f"moving {path} back")
            _call(_libc.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None), f"read-only {path}")
            exposed.append(path)
        _call(_libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None),
              f"read-only {ancestor}")
    return exposed


def python_paths() -> list[str]:
    """What the interpreter reads at run time: its prefixes, the library folders on sys.path and the PYTHONPATH
    folders the grader was given (so the student can import what the grader can) - never the working directory
    or a script's folder (sys.path[0]: the instructor's home, say), nor a folder that holds private files."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    library = [p for p in sys.path if os.path.isabs(p) and (
        any(p == q or p.startswith(q + os.sep) for q in prefixes)
        or os.path.basename(p) in ("site-packages", "dist-packages") or p.endswith(".zip"))]
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(p)]
    return sorted(prefixes | {p for p in library + given if not _holds_private(p)})


def _holds_private(folder: str) -> bool:
    return any(os.path.exists(os.path.join(folder, *private)) for private in (
        ("autograder", "graders"), ("solutions",), ("grading.yml",), ("graders",)))


def kill_namespace() -> None:
    """As PID 1 of a PID namespace: kill every other process in it (``kill(-1)`` reaches exactly those) and
    reap them, so the next reply is sent with nothing of the student's left running."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:  # killed children not yet reaped: they go in a moment
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
