"""Class-scale grading: our batch mode vs one cold grading process per submission, on the same submissions.

    python benchmarks/bench_batch.py [--n 100] [--jobs 2] [--batch-only] [--save benchmarks/results/batch.txt]

Builds N submissions (the reference, correct variants and broken mutants that do not hang), then times
1. `python -m autograder grade ROOT --out OUT -j JOBS --force` (warm fork server, pool of graders),
2. `python -m autograder grade SUBMISSION` once per submission, one after another (a cold process - one
   pytest session - per submission, as a plain per-submission CI job would),
3. one cold `python -m autograder grade` of a single submission (three times; the median),
4. the floor under any cold grade: `python -c "import torch, torch._dynamo"` (the student's train() builds
   a torch.optim optimizer, whose first use imports torch._dynamo; no grading can skip either import).
The batch's summary.csv is checked against the verdicts each mutant must get, so speed cannot come from
skipped work. Goals on the 2-core box: batch <= 0.5 s per submission; single cold grade <= 2.0 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from autograder.contract import ASSIGNMENT, MODULE_FILE  # noqa: E402
from autograder.samples import MUTANTS, REFERENCE, VARIANTS  # noqa: E402


def build(root: Path, n: int, names: set[str] | None = None) -> dict[Path, frozenset[str]]:
    """N submission folders, each with the checks it must fail (``names``: only these samples, to compare runs
    of two versions on the same submissions)."""
    sources = [(REFERENCE.read_text(), frozenset())] + [
        (m.source(), m.fails) for m in VARIANTS + MUTANTS  # slow ones would only time their limits
        if not m.slow and (names is None or m.name in names)]
    folders = {}
    for i in range(n):
        folder = root / f"student{i:03d}" / ASSIGNMENT
        folder.mkdir(parents=True)
        source, fails = sources[i % len(sources)]
        (folder / MODULE_FILE).write_text(source)
        folders[folder] = fails
    return folders


def check_verdicts(summary: Path, folders: dict[Path, frozenset[str]]) -> None:
    """Every student in summary.csv failed exactly the checks their submission must fail."""
    expected = {folder.parent.name: fails for folder, fails in folders.items()}
    rows = list(csv.DictReader(summary.open()))
    assert len(rows) == len(expected), f"summary.csv has {len(rows)} students, expected {len(expected)}"
    for row in rows:
        failed = {check for check, score in row.items() if check not in ("student", "total") and float(score) == 0}
        assert failed == expected[row["student"]], (row["student"], failed, expected[row["student"]])


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (/proc/stat: all but idle and iowait): over a run on an
    otherwise idle box, what the run cost - the forked sandboxes included, which no rusage of ours counts."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--batch-only", action="store_true", help="time the batch only (1.), not 2.-4.")
    parser.add_argument("--names", help="comma-separated samples to cycle (default: every quick one)")
    args = parser.parse_args()
    py = [sys.executable, "-m", "autograder", "grade"]
    with tempfile.TemporaryDirectory() as tmp:
        folders = build(Path(tmp) / "submitted", args.n, set(args.names.split(",")) if args.names else None)
        cpu = cpu_seconds()
        batch = timed(py + [str(Path(tmp) / "submitted"), "--out", str(Path(tmp) / "out"), "-j", str(args.jobs),
                            "--force", "--devices", "sim"])
        cpu = cpu_seconds() - cpu
        check_verdicts(Path(tmp) / "out" / "summary.csv", folders)
        lines = [
            f"{args.n} submissions ({args.names or 'reference, every variant and quick mutant'}; cycled)",
            f"batch (-j {args.jobs})            : {batch:7.1f} s  = {batch / args.n:5.2f} s per submission",
            f"  machine CPU busy          : {cpu:7.1f} s  = {cpu / args.n:5.2f} s per submission "
            f"(of {batch * os.cpu_count():.1f} s on {os.cpu_count()} cores)",
            "batch verdicts              : every submission failed exactly its mutant's checks",
        ]
        if not args.batch_only:
            single = statistics.median(timed(py + [str(REFERENCE.parent), "--devices", "sim"]) for _ in range(3))
            floor = statistics.median(timed([sys.executable, "-c", "import torch, torch._dynamo"]) for _ in range(3))
            per_process = sum(timed(py + [str(f), "--devices", "sim"]) for f in folders)
            lines += [
                f"one process per submission : {per_process:7.1f} s  = {per_process / args.n:5.2f} s per submission",
                f"speed-up                   : {per_process / batch:7.1f}x",
                f"single cold grade          : {single:7.1f} s (goal <= 2.0; median of 3)",
                f"  floor: import torch, torch._dynamo : {floor:5.1f} s (before any student code can train)",
            ]
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(time.strftime("%Y-%m-%d") + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
