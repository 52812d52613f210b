"""Landlock (the Linux kernel's unprivileged sandbox) for the submission's process: files, TCP and signals.

Landlock restricts the calling process and everything it starts, as root and as a normal user alike, and
cannot be lifted once applied. It needs no exec, so the child forked from the warm server can sandbox itself
before the student's module is imported. This is a thin binding of the kernel's documented ABI
(Documentation/userspace-api/landlock.rst): the PyPI ``landlock`` package (alpha) covers files only, and
the network (ABI 4) and signal scoping (ABI 6) rules matter here as much.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (the ABI version that introduced each: 1 unless noted).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_CHANGES_V1 = sum(1 << i for i in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
# Network (ABI 4): handled and never allowed, so no TCP bind or connect at all.
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
# Scopes (ABI 6): no signals to, and no abstract UNIX sockets of, processes outside the sandbox.
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = EXECUTE | READ_FILE | READ_DIR
DEVICE = READ_FILE | WRITE_FILE | IOCTL_DEV | READ_DIR  # READ_DIR: /dev/nvidia-caps is a folder
READ_WRITE = READ_FILE | WRITE_FILE | TRUNCATE | READ_DIR  # fopen(path, "w") truncates


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # packed in the kernel's header
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where it has none (kernel < 5.13, Landlock not enabled, not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0  # syscall 444 is something else on other kernels
    version = _libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def _all_fs(abi: int) -> int:
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _CHANGES_V1
    return rights | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0) | (IOCTL_DEV if abi >= 5 else 0)


def restrict(read: Iterable[str], write: Iterable[str], devices: Iterable[str] = (),
             read_write: Iterable[str] = ()) -> list[str]:
    """Allow only: reading (and executing) beneath ``read``, everything beneath ``write``, reading, writing
    and ioctl on ``devices``, reading and writing existing files beneath ``read_write`` (nothing created or removed
    there: thread names in /proc); no TCP, no signals or abstract sockets beyond this process's own descendants.
    Paths that do not exist are skipped. Returns what this kernel's ABI could not enforce; raises OSError
    when Landlock is missing."""
    abi = abi_version()
    if abi < 1:
        raise OSError("this kernel has no Landlock (it needs Linux 5.13 or newer with landlock in CONFIG_LSM)")
    handled = _all_fs(abi)
    attr = _RulesetAttr(handled, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _check(_libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)))
    try:
        for paths, rights in ((read, READ), (write, handled), (devices, DEVICE), (read_write, READ_WRITE)):
            for path in paths:
                _allow(ruleset, path, rights & handled)
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))  # required to restrict oneself without privileges
        _check(_libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)))
    finally:
        os.close(ruleset)
    missing = ["TCP" if abi < 4 else "", "signal scoping" if abi < 6 else "", "device ioctl" if abi < 5 else ""]
    return [f"Landlock ABI {abi} cannot restrict {what}" for what in missing if what]


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this machine: nothing to allow
    try:
        if not os.path.isdir(path):
            rights &= _FILE_ONLY  # the kernel refuses directory rights on a file
        rule = _PathBeneathAttr(rights, fd)
        _check(_libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                             ctypes.c_uint32(0)))
    finally:
        os.close(fd)


def _check(result: int) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"Landlock: {os.strerror(errno)}")
    return result
