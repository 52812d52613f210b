"""Run a command as a throwaway normal user, as a grader on a GPU runner or a Slurm cluster runs (no root).

CI runs as root with Python inside root's home (mode 0700), where no other user could even start the interpreter.
So, as root, in a mount namespace of the command's own, the interpreter and the given folders are made reachable
with the sandbox's own ``isolation.expose`` (nothing on the machine changes), then the command runs as ``uid``.

    python tests/throwaway_user.py UID FOLDER... -- COMMAND...
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile

from autograder.sandbox.isolation import CLONE_NEWNS, expose, mount_namespace, python_paths


def main(argv: list[str]) -> None:
    uid, rest = int(argv[0]), argv[1:]
    split = rest.index("--")
    folders, command = rest[:split], rest[split + 1:]
    machine = mount_namespace()
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS) != 0:
        sys.exit(f"unshare(CLONE_NEWNS) failed (errno {ctypes.get_errno()}): run as root")
    expose([*python_paths(), *folders], tempfile.mkdtemp(prefix="throwaway-user-"), machine)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.environ.update(HOME=tempfile.mkdtemp(prefix="home-"), USER=f"u{uid}")  # made by the user: its own
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
