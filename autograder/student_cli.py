"""The students' command line: ``python -m autograder check [FOLDER]``.

The student kit's ``python -m autograder`` is this (it has no other command); the instructor's ``cli.py`` adds the
same ``check`` subcommand with ``add_check_command``, so both parse it alike. Parses arguments and calls ``check.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .devices import CHOICES, DevicesUnavailable
from .rubric import RubricError
from .simgpu.profiles import DEFAULT_GPU, PROFILES

CHECK_EXAMPLES = """examples:
  python -m autograder check                       # ./model_parallel.py
  python -m autograder check path/to/practical8    # the folder that holds model_parallel.py

Exit status: 0 when every public check passes, 1 when one fails, 2 when the checks could not run.
"""


def add_check_command(commands, parents: list[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Add ``check`` to ``commands`` (an ``add_subparsers`` object)."""
    c = commands.add_parser("check", parents=list(parents),
                            help="run the public checks on your model_parallel.py (students)",
                            description="Run the public (visible) checks on a folder's model_parallel.py and print "
                                        "what passes, with what to fix; the hidden checks are graded after you "
                                        "submit. Runs on two real GPUs when present, else on two simulated ones.",
                            epilog=CHECK_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("folder", nargs="?", type=Path, default=Path("."),
                   help="the folder that holds model_parallel.py (default: the current folder)")
    c.add_argument("--devices", choices=CHOICES, default="auto",
                   help="auto: real GPUs when two are present, else simulated (default); sim: always simulated")
    c.add_argument("--sim-gpu", choices=list(PROFILES), default=DEFAULT_GPU,
                   help="the GPU the simulation models (default: %(default)s)")
    c.set_defaults(func=run)
    return c


def run(args: argparse.Namespace) -> int:
    from .check import exit_status, run_check, summary

    report = run_check(args.folder, args.devices, args.sim_gpu)
    print(summary(report))
    return exit_status(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Practical 8: the public checks")
    add_check_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DevicesUnavailable, RubricError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
