"""A seccomp filter for the submission's process: the few system calls Landlock and the namespaces leave open.

Landlock cannot stop a process from replacing or closing its own file descriptors, so student code could put a pipe
of its own in place of the reply channel and rewrite every reply and audit line passing through; nor does it cover
named UNIX sockets (ssh-agent, D-Bus, docker.sock) or the kernel keyrings the grader's session may hold. A classic
BPF program (seccomp(2), SECCOMP_MODE_FILTER) refuses those, with an errno, never a kill: code that tries gets an
exception it can handle, and the probes' own calls (dup2 onto fd 1 to capture the trace) stay allowed.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
from collections.abc import Iterable

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_ALLOW = 0x7FFF0000


def _errno(code: int) -> int:
    return 0x00050000 | code  # SECCOMP_RET_ERRNO


# (audit arch, syscall numbers) per machine: x86_64 and aarch64 (unistd.h of each).
_MACHINES = {
    "x86_64": (0xC000003E, {"close": 3, "dup2": 33, "dup3": 292, "close_range": 436, "socket": 41, "keyctl": 250,
                            "add_key": 248, "request_key": 249, "ptrace": 101, "memfd_create": 319}),
    "aarch64": (0xC00000B7, {"close": 57, "dup3": 24, "close_range": 436, "socket": 198, "keyctl": 219,
                             "add_key": 217, "request_key": 218, "ptrace": 117, "memfd_create": 279}),
}
_DENIED = {"socket": errno.EACCES, "keyctl": errno.EPERM, "add_key": errno.EPERM, "request_key": errno.EPERM,
           "ptrace": errno.EPERM, "close_range": errno.ENOSYS}  # close_range: callers fall back to close()
_FD_ARGUMENT = {"close": 0, "dup2": 1, "dup3": 1}  # which argument names the descriptor that would be replaced/closed


def program(protected: Iterable[int], machine: str | None = None,
            refuse: Iterable[str] = ()) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; raises KeyError for a machine it does not know. ``refuse``: more
    calls to refuse (``memfd_create`` where no memory cgroup counts its pages: memory.py)."""
    denied = {**_DENIED, **{name: errno.ENOMEM for name in refuse}}
    arch, numbers = _MACHINES[machine or platform.machine()]
    protected = sorted(set(protected))
    code = [(_LD_W_ABS, 0, 0, 4), (_JEQ_K, 1, 0, arch), (_RET_K, 0, 0, _errno(errno.ENOSYS)),  # another ABI: no
            (_LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64" or (machine is None and platform.machine() == "x86_64"):
        code += [(_JGE_K, 0, 1, 0x40000000), (_RET_K, 0, 0, _errno(errno.ENOSYS))]  # x32 numbers alias x86_64's
    for name, number in numbers.items():
        if name in denied:
            code += [(_JEQ_K, 0, 1, number), (_RET_K, 0, 0, _errno(denied[name]))]
        elif name in _FD_ARGUMENT and protected:
            block = [(_LD_W_ABS, 0, 0, 16 + 8 * _FD_ARGUMENT[name])]  # the low 32 bits: fds are ints
            for fd in protected:
                block += [(_JEQ_K, 0, 1, fd), (_RET_K, 0, 0, _errno(errno.EPERM))]
            block.append((_LD_W_ABS, 0, 0, 0))  # the syscall number again, for the checks that follow
            code += [(_JEQ_K, 0, len(block), number), *block]
    return code + [(_RET_K, 0, 0, _ALLOW)]


def install(protected: Iterable[int], refuse: Iterable[str] = ()) -> None:
    """Apply the filter to this process and all it starts (irrevocable). OSError where the kernel refuses."""
    instructions = program(protected, refuse=refuse)
    raw = b"".join(struct.pack("HBBI", *instruction) for instruction in instructions)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class _Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = _Program(len(instructions), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    for args in ((_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)):
        if libc.prctl(*args) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"seccomp: {errno.errorcode.get(code, code)}")
