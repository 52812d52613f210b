"""Class-scale grading: our batch mode vs one cold grading process per submission, on the same submissions.

    python benchmarks/bench_batch.py [--n 100] [--jobs 2] [--save benchmarks/results/batch.txt]

Builds N submissions (the reference, correct variants and broken mutants that do not hang), then times
1. `python -m autograder grade ROOT --out OUT -j JOBS --force` (warm fork server, pool of graders),
2. `python -m autograder grade SUBMISSION` once per submission, one after another (a cold process - one
   pytest session - per submission, as a plain per-submission CI job would),
3. one cold `python -m autograder grade` of a single submission.
Goals on the 2-core box: batch <= 0.5 s per submission; single cold grade <= 2.0 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from autograder.mutants import MUTANTS, REFERENCE, VARIANTS  # noqa: E402

SLOW = {"hang_in_train"}  # spends its timeouts by design; it would only measure the timeout


def build(root: Path, n: int) -> list[Path]:
    sources = [REFERENCE.read_text()] + [m.source() for m in VARIANTS + MUTANTS if m.name not in SLOW]
    folders = []
    for i in range(n):
        folder = root / f"student{i:03d}" / "practical8"
        folder.mkdir(parents=True)
        (folder / "model_parallel.py").write_text(sources[i % len(sources)])
        folders.append(folder)
    return folders


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    py = [sys.executable, "-m", "autograder", "grade"]
    with tempfile.TemporaryDirectory() as tmp:
        folders = build(Path(tmp) / "submitted", args.n)
        batch = timed(py + [str(Path(tmp) / "submitted"), "--out", str(Path(tmp) / "out"), "-j", str(args.jobs),
                            "--force", "--devices", "sim"])
        single = timed(py + [str(REFERENCE.parent), "--devices", "sim"])
        per_process = sum(timed(py + [str(f), "--devices", "sim"]) for f in folders)
    lines = [
        f"{args.n} submissions (reference, {len(VARIANTS)} variants, {len(MUTANTS) - len(SLOW)} mutants, cycled)",
        f"batch (-j {args.jobs})            : {batch:7.1f} s  = {batch / args.n:5.2f} s per submission (goal <= 0.5)",
        f"one process per submission : {per_process:7.1f} s  = {per_process / args.n:5.2f} s per submission",
        f"speed-up                   : {per_process / batch:7.1f}x",
        f"single cold grade          : {single:7.1f} s (goal <= 2.0)",
    ]
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(time.strftime("%Y-%m-%d") + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
