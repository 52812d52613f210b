"""Command line for the Practical 8 autograder.

    python -m autograder grade [SUBMISSION_DIR] [--results FILE] [--devices auto|cuda|sim]
    python -m autograder grade submitted/ --out OUT_DIR          # a whole collected class
    python -m autograder report OUT_DIR                          # the class report of a graded folder, again
    python -m autograder gradebook OUT_DIR                       # scores -> nbgrader's gradebook
    python -m autograder release                                 # solutions/ -> assignment/ (nbgrader)
    python -m autograder timeline --out timeline.png             # the idle GPUs, and the pipelined cure
    python -m autograder doctor --out doctor/                    # check a (GPU) machine before grading on it
    python -m autograder check [FOLDER]                          # students: the public checks only
    python -m autograder student-kit --out kit/                  # the wheel students install (no hidden graders)
    python -m autograder gradescope --out autograder.zip         # Gradescope's autograder, on simulated GPUs

Parses arguments and calls one function per command. Exit status: 0 whenever grading completed (whatever
the score), 2 when grading itself could not run (bad folder, bad rubric, GPUs demanded but absent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .batch import find_submissions, grade_class, merge, select_shard
from .contract import MODULE_FILE
from .course import course_dir, use
from .devices import CHOICES, DevicesUnavailable, resolve, torch_gpu_count
from .grading import grade, grade_samples, require_submission
from .release import generate_assignment
from .reports import table, write_junit, write_results
from .rubric import RubricError, load_rubric
from .sandbox import gpu_count, landlock
from .sandbox.limits import Limits, SandboxUnavailable
from .simgpu.profiles import DEFAULT_GPU, PROFILES
from .student_cli import add_check_command

GRADE_EXAMPLES = """examples:
  python -m autograder grade                                    # the reference and typical mistakes
  python -m autograder grade path/to/student --results results.json
  python -m autograder grade submitted/ --out graded/ -j 2      # a class: graded/<student>/, graded/summary.csv,
                                                                # the class report (report.html, class.json)
"""
DEVICES = {"choices": CHOICES, "default": "auto",
           "help": "auto: real GPUs when two are present, else simulated; cuda: real GPUs or refuse"}
RUBRIC = {"type": Path, "help": "grading.yml (default: the course directory's)"}
SIM_GPU = {"choices": list(PROFILES), "default": DEFAULT_GPU,
           "help": "the GPU the simulation models (when it simulates; default: %(default)s)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Practical 8 autograder")
    commands = parser.add_subparsers(dest="command", required=True)
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course-dir", type=Path, help="the nbgrader course directory with grading.yml and "
                        "solutions/ (default: the current directory, or this source checkout)")
    g = commands.add_parser("grade", parents=[course],
                            help="grade a submission folder (no folder: the bundled samples)",
                            description="Grade one submission, a collected class (--out), or with no folder the "
                                        "bundled samples.", epilog=GRADE_EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("submission", nargs="?", type=Path,
                   help="folder holding model_parallel.py, or with --out a folder of student folders")
    g.add_argument("--out", type=Path, help="grade every <student>/ under SUBMISSION_DIR, write reports here")
    g.add_argument("--results", type=Path, help="write Gradescope results.json here")
    g.add_argument("--devices", **DEVICES)
    g.add_argument("--rubric", **RUBRIC)
    g.add_argument("-j", "--jobs", type=_positive, default=1, help="with --out: grade this many submissions at once")
    g.add_argument("--force", action="store_true", help="with --out: re-grade even unchanged submissions")
    g.add_argument("--shard", help="with --out: grade only shard I/N of the class (e.g. a Slurm array task)")
    g.add_argument("--release-hidden", action="store_true",
                   help="with --out: show hidden checks in each student's feedback.md (after the due date)")
    g.add_argument("--junit", type=Path, help="also write JUnit XML here")
    g.add_argument("--sim-gpu", **SIM_GPU)
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade even where the kernel has no Landlock: student code can then read and write "
                        "whatever the grader can (see docs/security.md)")
    g.set_defaults(func=_grade)
    t = commands.add_parser("timeline", parents=[course],
                            help="draw the GPUs' busy time: SimpleMPModel vs PipelinedMPModel",
                            description="Draw one forward of the reference solution's SimpleMPModel and "
                                        "PipelinedMPModel, per GPU (or, with --sweep, the pipelined speed-up "
                                        "against split_size); the numbers go to a .json beside the picture.",
                            epilog="example: python -m autograder timeline --out docs/timeline.png --devices sim")
    t.add_argument("--out", type=Path, default=Path("timeline.png"), help="PNG to write (default: %(default)s)")
    t.add_argument("--devices", **DEVICES)
    t.add_argument("--sim-gpu", **SIM_GPU)
    t.add_argument("--sweep", action="store_true", help="draw the pipelined speed-up against split_size instead")
    t.set_defaults(func=_timeline)
    d = commands.add_parser("doctor", parents=[course],
                            help="check this machine before grading a class on it (GPUs, verdicts)")
    d.add_argument("--out", type=Path, default=Path("doctor"), help="folder for doctor.json/doctor.md")
    d.add_argument("--sim-gpu", **SIM_GPU)
    d.add_argument("--quick", action="store_true",
                   help="the proof that fits minutes on one GPU (scripts/verify_on_gpus.sh --quick)")
    d.set_defaults(func=_doctor)
    m = commands.add_parser("merge", parents=[course],
                            help="merge shard output folders into one, with the class summary.csv",
                            epilog="example: python -m autograder merge graded-1 graded-2 --out graded")
    m.add_argument("sources", nargs="+", type=Path, help="the --out folders of the shards (grade --shard I/N)")
    m.add_argument("--out", type=Path, required=True, help="the folder to merge them into (may be one of them)")
    m.add_argument("--rubric", **RUBRIC)
    m.set_defaults(func=_merge)
    r = commands.add_parser("release", parents=[course],
                            help="regenerate assignment/ from solutions/ (nbgrader generate_assignment)")
    r.set_defaults(func=lambda a: _release())
    c = commands.add_parser("report", parents=[course],
                            help="the class report of a graded folder: per-check table, histogram, flagged",
                            description="Print the class report of a folder graded with `grade submitted/ --out "
                                        "OUT_DIR` (per check: pass rate, the most common first message and how many "
                                        "students got it; the score histogram; flagged and not-graded submissions) "
                                        "and write OUT_DIR/report.html and OUT_DIR/class.json.",
                            epilog="example: python -m autograder report graded/")
    c.add_argument("out", type=Path, help="the --out folder of a class grading run")
    c.add_argument("--rubric", **RUBRIC)
    c.set_defaults(func=_report)
    b = commands.add_parser("gradebook", parents=[course],
                            help="write OUT_DIR/summary.csv scores into nbgrader's gradebook")
    b.add_argument("out", type=Path, help="the --out folder of a class grading run")
    b.set_defaults(func=_gradebook)
    add_check_command(commands, [course])
    k = commands.add_parser("student-kit", parents=[course],
                            help="build the wheel students install: simulated GPUs, public checks, `check`",
                            description="Build the student kit: a wheel with the simulated GPUs, the sandbox, the "
                                        "visible graders and `python -m autograder check` - no hidden grader, no "
                                        "reference, no mutants. Hand it out with the assignment.",
                            epilog="example: python -m autograder student-kit --out assignment/practical8/")
    k.add_argument("--out", type=Path, default=Path("kit"), help="folder for the wheel (default: %(default)s)")
    k.add_argument("--rubric", **RUBRIC)
    k.set_defaults(func=_student_kit)
    s = commands.add_parser("gradescope", parents=[course],
                            help="build Gradescope's autograder.zip (grades on simulated GPUs)",
                            description="Build autograder.zip for Gradescope (setup.sh, run_autograder, grading.yml "
                                        "and this autograder's wheel); with --run, grade inside Gradescope's "
                                        "container (what run_autograder does).",
                            epilog="example: python -m autograder gradescope --out autograder.zip")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="the zip to write (default: autograder.zip)")
    where.add_argument("--run", action="store_true",
                       help="grade ROOT/submission into ROOT/results/results.json (run_autograder calls this)")
    s.add_argument("--root", type=Path, default=Path("/autograder"), help="with --run: Gradescope's folder "
                   "(default: %(default)s)")
    s.add_argument("--rubric", type=Path, help="grading.yml to bundle (default: the course directory's)")
    s.add_argument("--sim-gpu", **SIM_GPU)
    s.set_defaults(func=_gradescope)
    args = parser.parse_args(argv)
    try:
        if args.course_dir is not None:
            use(args.course_dir)
        return args.func(args)
    except (DevicesUnavailable, RubricError, SandboxUnavailable, FileNotFoundError, LookupError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _grade(args: argparse.Namespace) -> int:
    rubric = load_rubric(args.rubric)
    if args.out is not None and args.submission is None:
        raise ValueError("--out needs the folder of submissions to grade, e.g. `grade submitted/ --out graded/`")
    class_only = [name for name, given in (("-j", args.jobs != 1), ("--force", args.force),
                                           ("--shard", args.shard is not None),
                                           ("--release-hidden", args.release_hidden)) if given]
    if args.out is None and class_only:
        raise ValueError(f"{', '.join(class_only)}: only for a class: add --out OUT_DIR "
                         "(e.g. `grade submitted/ --out graded/ -j 2`)")
    if args.out is not None and args.results is not None:
        raise ValueError("--results is for one submission; with --out each student gets "
                         "OUT_DIR/<student>/results.json")
    if args.out is None and args.submission is not None:
        _require_one_submission(args.submission)  # before the GPUs are counted: a wrong path is said at once
    limits = _sandbox_limits(args.unsafe_no_sandbox)
    mode = resolve(args.devices, gpu_count)  # once: a missing GPU stops the run before anything is graded
    if args.out is not None:
        reports = grade_class(args.submission, args.out, rubric, mode, jobs=args.jobs, force=args.force,
                              shard=args.shard, sim_gpu=args.sim_gpu, release_hidden=args.release_hidden,
                              limits=limits)
        selected = len(select_shard(sorted(find_submissions(args.submission, rubric.assignment)), args.shard))
        print(f"{_graded_line(len(reports), selected - len(reports), args.force)}; "
              f"summary in {args.out / 'summary.csv'}")
        print(_class_report(args.out, rubric))
    elif args.submission is not None:
        reports = [grade(args.submission, rubric, mode, limits, sim_gpu=args.sim_gpu)]
        print(table(reports[0]))
        if args.results:
            write_results(reports[0], args.results)
    else:
        print("No submission given: grading the bundled samples (the reference and typical mistakes).\n")
        named = grade_samples(rubric, mode, args.sim_gpu, limits)
        for name, report in named:
            print(table(report) + "\n")
            if args.results:
                write_results(report, args.results.parent / name / args.results.name)
        reports = [report for _, report in named]
    if args.junit:
        write_junit(reports, args.junit)
    return 0


def _graded_line(graded: int, kept: int, force: bool) -> str:
    """What a class run did: how many it graded now, and how many it kept from an earlier run (and why)."""
    def n(count: int) -> str:
        return f"{count} submission{'' if count == 1 else 's'}"

    line = f"graded {n(graded)}"
    if force:
        return line + " (--force: every one again)"
    if kept:
        line += f"; kept {kept} graded earlier (unchanged since; --force grades them again)"
    return line


def _class_report(out: Path, rubric) -> str:
    from .classreport import write_class_report

    return write_class_report(out, rubric)


def _report(args: argparse.Namespace) -> int:
    print(_class_report(args.out, load_rubric(args.rubric)))
    return 0


def _sandbox_limits(unsafe: bool) -> Limits:
    """The sandbox's limits; refuses (one line, exit 2) where the kernel cannot sandbox, unless told not to."""
    if landlock.abi_version() < 1:
        if not unsafe:
            raise SandboxUnavailable(
                "this kernel has no Landlock (Linux 5.13 or newer with landlock in CONFIG_LSM), so student code "
                "could read and write whatever the grader can. Grade on another machine, or pass "
                "--unsafe-no-sandbox to grade here anyway.")
        print("WARNING: grading WITHOUT a sandbox (--unsafe-no-sandbox): student code can read and write "
              "whatever this user can.", file=sys.stderr)
    return Limits(require_landlock=not unsafe)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _require_one_submission(folder: Path) -> None:
    """A folder of one student's work, or an error that says what the folder is instead."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not (folder / MODULE_FILE).is_file() and any(p.is_dir() for p in folder.iterdir()):
        raise FileNotFoundError(f"{folder}: no {MODULE_FILE} here, but it has sub-folders: to grade a class, add "
                                f"--out, e.g. `python -m autograder grade {folder} --out graded/`")
    require_submission(folder)


def _timeline(args: argparse.Namespace) -> int:
    from .timeline import draw_reference

    path, where = draw_reference(args.out, resolve(args.devices, torch_gpu_count), args.sim_gpu, args.sweep)
    print(f"wrote {path} and {path.with_suffix('.json').name} (the reference on {where})")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import run

    report = run(args.out, args.sim_gpu, quick=args.quick)
    print((args.out / "doctor.md").read_text())
    return 0 if report["ok"] else 1


def _merge(args: argparse.Namespace) -> int:
    rubric = load_rubric(args.rubric)
    summary = merge(args.sources, args.out, rubric)
    print(f"merged {len(args.sources)} folder(s); summary in {summary}")
    try:
        print(_class_report(args.out, rubric))
    except FileNotFoundError as exc:  # shards that graded nobody: the merge itself did its job
        print(f"no class report: {exc}")
    return 0


def _gradebook(args: argparse.Namespace) -> int:
    from .gradebook import write_scores

    for student, score in write_scores(args.out, course_dir()).items():
        print(f"{student}: code_score = {score:g}")
    return 0


def _release() -> int:
    for path in generate_assignment():
        print(f"wrote {path}")
    return 0


def _student_kit(args: argparse.Namespace) -> int:
    from .kit import build_kit

    wheel = build_kit(args.out, load_rubric(args.rubric))
    print(f"wrote {wheel}\nstudents install it with: python -m pip install {wheel.name}")
    return 0


def _gradescope(args: argparse.Namespace) -> int:
    from .gradescope import build_bundle, run

    if args.run:
        run(args.root, args.sim_gpu)
        return 0
    out = build_bundle(args.out or Path("autograder.zip"), args.rubric, args.sim_gpu)
    print(f"wrote {out}: upload it as the assignment's autograder on Gradescope (see docs/instructors.md)")
    return 0
