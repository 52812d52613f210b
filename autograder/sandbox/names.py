"""Honest names: the submission's user has a name, as every user running Python on a machine has.

``getpass.getuser()`` reads LOGNAME, USER, LNAME or USERNAME, then the passwd entry of the uid; honest code calls it
(a log folder, a run name) and scored 0 when the sandbox's user had neither. As root the grader drops the student's
code to a uid of its own that the machine's /etc/passwd does not know, so, in the sandbox's own mount namespace, a
copy of /etc/passwd (and /etc/group) with one more line for that uid is bound over the original, read-only; the
machine's files never change. ``os.getlogin()`` reads the login session, which a grading job has none of; it fails
outside the sandbox too.

    notes = give_uid_a_name(uid, scratch, staging, machine_namespace)   # as root, before the drop
    os.environ.update(login_variables(scratch))                          # after the drop: USER, LOGNAME
"""

from __future__ import annotations

import ctypes
import os
import pwd

from . import isolation

NAME = "student"  # the dropped user's name, in the sandbox's view only
_libc = ctypes.CDLL(None, use_errno=True)


def give_uid_a_name(uid: int, home: str, staging: str, machine_namespace: int) -> list[str]:
    """Bind a passwd (and group) with an entry for ``uid`` over /etc's, in this process's own mount namespace; what
    could not be done, as notes."""
    if isolation.mount_namespace() == machine_namespace:
        return ["a passwd entry for the submission's user (no mount namespace of its own)"]
    try:
        _call(_libc.mount(None, b"/", None, isolation.MS_REC | isolation.MS_PRIVATE, None), "making mounts private")
        for name, line in (("passwd", f"{NAME}:x:{uid}:{uid}:{NAME}:{home}:/usr/sbin/nologin\n"),
                           ("group", f"{NAME}:x:{uid}:\n")):
            original = f"/etc/{name}"
            try:
                with open(original) as file:
                    text = file.read()
            except OSError:
                continue  # no such file here: nothing to bind over
            copy = os.path.join(staging, name)
            with open(copy, "w") as file:
                file.write(text + ("" if not text or text.endswith("\n") else "\n") + line)
            os.chmod(copy, 0o644)
            _call(_libc.mount(copy.encode(), original.encode(), None, isolation.MS_BIND, None), f"binding {original}")
            _call(_libc.mount(None, original.encode(), None,
                              isolation.MS_REMOUNT | isolation.MS_BIND | isolation.MS_RDONLY, None),
                  f"read-only {original}")
    except OSError as exc:
        return [f"a passwd entry for the submission's user ({exc})"]
    return []


def login_variables(fallback: str | None) -> dict[str, str]:
    """USER and LOGNAME for this process's uid: its passwd name (the view above, as root), else ``fallback`` (the
    grader's own $USER, when the grader's user has no passwd entry), else NAME."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = fallback or NAME
    return {"USER": name, "LOGNAME": name}


def _call(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
