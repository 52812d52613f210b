"""Intake: the grader reads only a plain file that the submission itself holds.

    source = read_module(folder)          # model_parallel.py's bytes, or NotAPlainFile with one clear line
    copy_module(folder, target)           # the worker's private copy, made from the same kind of descriptor
    linked_folder(folder, student)        # a class run: the student's folders must not be links either

A collection that keeps links (a cloned student repository, ``rsync -a``) can deliver ``model_parallel.py`` as a
symbolic link to the course's ``solutions/`` file, or a student folder as a link to another student's: followed, the
scan, the fingerprint and the grader would all see someone else's work (0 -> 100 with one link). A hard link is the
same file under two names (one of them outside the submission); a FIFO would block the reader, a device would read
the machine. So the file is opened once with ``O_NOFOLLOW`` (a link is refused by the kernel, not by a check that can
race) and ``O_NONBLOCK`` (a FIFO cannot block), and only then judged by ``fstat`` on that descriptor: a regular file
with one name. Links elsewhere in the folder (a student's virtual environment) are never followed and never judged:
only ``model_parallel.py`` is copied into the sandbox, so only it is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..contract import MODULE_FILE

MAX_SOURCE_BYTES = 16 << 20  # a student's model_parallel.py is a few KB; more is not source code


class NotAPlainFile(Exception):
    """The submission's file (or folder) is not a plain file of its own; ``str(self)`` is one line for the student."""


def _refuse(what: str) -> NotAPlainFile:
    return NotAPlainFile(f"Your {what}, so it was not graded: the grader reads only a plain file that your submission "
                         f"holds itself. Submit {MODULE_FILE} as an ordinary file (a copy, not a link).")


def read_module(folder: Path) -> bytes:
    """The bytes of ``folder/model_parallel.py``, read through a descriptor that followed no link; NotAPlainFile
    when it is a symbolic link, a hard link, a FIFO, a device or a socket, or too large to be source code."""
    return read_plain(Path(folder) / MODULE_FILE)


def read_plain(path: Path) -> bytes:
    """``read_module`` for the file at ``path`` (the scan's, the fingerprint's)."""
    name = Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if os.path.islink(path):  # ELOOP: O_NOFOLLOW refused the last component
            raise _refuse(f"{name} is a symbolic link (to {os.readlink(path)})") from None
        raise _refuse(f"{name} could not be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode)
                    or stat.S_ISBLK(info.st_mode) else "a directory" if stat.S_ISDIR(info.st_mode) else "not a file")
            raise _refuse(f"{name} is {kind}")
        if info.st_nlink > 1:
            raise _refuse(f"{name} is a hard link (the same file has {info.st_nlink - 1} other name(s), "
                          "outside your submission)")
        if info.st_size > MAX_SOURCE_BYTES:
            raise _refuse(f"{name} is {info.st_size} bytes, more than any source file")
        chunks, left = [], MAX_SOURCE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise _refuse(f"{name} grew past {MAX_SOURCE_BYTES} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def copy_module(folder: Path, target: Path) -> None:
    """Write ``read_module(folder)`` to ``target`` (a new file): the copy the submission's process imports."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(read_module(folder))


def linked_folder(folder: Path, student: str) -> NotAPlainFile | None:
    """In a class run (``root/<student>[/<assignment>]``): NotAPlainFile when the student's folder, or the
    assignment folder in it, is a symbolic link (it would grade the folder it points to), else None."""
    folder = Path(folder)
    for component in (folder, folder.parent) if folder.name != student else (folder,):
        if component.is_symlink():
            return _refuse(f"submission folder {component.name}/ is a symbolic link (to {os.readlink(component)})")
        if component.name == student:
            break
    return None
