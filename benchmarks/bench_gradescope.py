"""One Gradescope grade: its peak memory (all processes) and wall time, as Gradescope's container would run it.

    python benchmarks/bench_gradescope.py [--save benchmarks/results/gradescope.txt]

Builds autograder.zip, lays it out like Gradescope (ROOT/source, submission, results), installs the bundle's wheel,
and runs ROOT/run_autograder on the reference (every check runs; a broken submission stops earlier) in each of
Gradescope's container sizes, emulated with cgroups (v1, as root) where this machine allows: the CPU quota (cpu.cfs_*)
and a hard memory limit (memory.limit_in_bytes; page cache is reclaimed under it, as in a Docker container), plus
the machine unlimited. Per run:
- wall: run_autograder's start to exit;
- PSS peak: the largest sum over the run's processes of their proportional set size (shared pages counted once,
  split between their sharers; forked children share the warm server's torch), sampled every 50 ms with psutil;
- RSS sum peak: the same with RSS (counts shared pages in every process: an upper bound);
- cgroup peak: memory.max_usage_in_bytes (resident and page cache: an upper bound, cache is reclaimable);
- score: results.json's score (100 means every check ran and passed: nothing was killed or timed out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from autograder.gradescope import build_bundle  # noqa: E402

MiB = 1 << 20
# (name, CPUs, memory): Gradescope's default container (1/2 vCPU, 768 MB: its troubleshooting docs) and larger ones.
CONTAINERS = [("default 0.5 CPU / 768 MB", 0.5, 768 * MiB), ("1.0 CPU / 1.5 GB", 1.0, 1536 * MiB),
              ("2.0 CPU / 3 GB", 2.0, 3072 * MiB), ("this machine, unlimited", None, None)]
CGROUP = Path("/sys/fs/cgroup")


def layout(tmp: Path, submission: Path) -> tuple[Path, Path]:
    """ROOT laid out as Gradescope does, with ``submission`` (a model_parallel.py), and the installed wheel."""
    bundle = build_bundle(tmp / "autograder.zip")
    root, site = tmp / "autograder", tmp / "site"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
        for info in z.infolist():
            (root / "source" / info.filename).chmod(info.external_attr >> 16 or 0o644)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    shutil.copy(submission, root / "submission" / "model_parallel.py")
    wheel = next((root / "source").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir", "--target",
                    str(site), str(wheel)], check=True)
    return root, site


def make_cgroups(name: str, cpus: float | None, memory: int | None) -> list[Path]:
    """cgroup v1 folders with the CPU quota and memory limit (memory's first, for max_usage), or [] if not allowed."""
    groups = []
    try:
        mem = CGROUP / "memory" / name
        mem.mkdir()
        groups.append(mem)
        if memory:
            (mem / "memory.limit_in_bytes").write_text(str(memory))
            if (mem / "memory.memsw.limit_in_bytes").exists():  # no swap beyond the limit either
                (mem / "memory.memsw.limit_in_bytes").write_text(str(memory))
        if cpus:
            cpu = CGROUP / "cpu" / name
            cpu.mkdir()
            groups.append(cpu)
            (cpu / "cpu.cfs_period_us").write_text("100000")
            (cpu / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
    except OSError as exc:
        print(f"  (no cgroups here: {exc}; measuring without limits)")
        remove_cgroups(groups)
        return []
    return groups


def remove_cgroups(groups: list[Path]) -> None:
    for group in reversed(groups):
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) over ``proc`` and its descendants, now."""
    pss = rss = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in members:
        try:
            info = p.memory_full_info()
            pss, rss = pss + info.pss, rss + info.rss
        except psutil.Error:
            pass
    return pss, rss


def measure(root: Path, site: Path, groups: list[Path]) -> dict:
    shutil.rmtree(root / "results", ignore_errors=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "AUTOGRADER_ROOT": str(root),
           "PRACTICAL8_PYTHON": sys.executable, "PYTHONPATH": str(site)}
    enter = "".join(f'echo $$ > "{g}/cgroup.procs"; ' for g in groups)
    start = time.monotonic()
    proc = subprocess.Popen(["sh", "-c", f'{enter}exec "$0"', str(root / "run_autograder")], env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(proc.pid)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pss, rss = tree_memory(watched)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.05)
    wall = time.monotonic() - start
    output = proc.stdout.read()
    results = root / "results" / "results.json"
    score = json.loads(results.read_text())["score"] if results.is_file() else None
    cgroup_peak = failcnt = None
    if groups:
        cgroup_peak = int((groups[0] / "memory.max_usage_in_bytes").read_text())
        failcnt = int((groups[0] / "memory.failcnt").read_text())
    return {"wall_s": wall, "pss_peak": peak_pss, "rss_peak": peak_rss, "cgroup_peak": cgroup_peak,
            "failcnt": failcnt, "score": score, "exit": proc.returncode, "tail": output[-600:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save", type=Path, help="also write the table here")
    parser.add_argument("--repeats", type=int, default=2, help="runs per container size (default: %(default)s)")
    parser.add_argument("--submission", type=Path, default=REPO / "solutions" / "practical8" / "model_parallel.py",
                        help="the model_parallel.py to grade (default: the reference)")
    args = parser.parse_args()
    lines = [f"{time.strftime('%Y-%m-%d')}  one Gradescope grade of {args.submission} (run_autograder, the "
             "bundle's wheel), "
             f"{os.cpu_count()} cores, {psutil.virtual_memory().total / (1 << 30):.0f} GiB, {platform.platform()}",
             f"{'container (emulated)':<26} {'wall s':>7} {'PSS peak':>9} {'RSS-sum':>8} {'cgroup':>8} "
             f"{'score':>6}  memory.failcnt"]
    with tempfile.TemporaryDirectory(prefix="bench-gradescope-") as tmp:
        root, site = layout(Path(tmp), args.submission)
        for n, (name, cpus, memory) in enumerate(CONTAINERS):
            for r in range(args.repeats):
                groups = make_cgroups(f"practical8-bench-{os.getpid()}-{n}-{r}", cpus, memory)
                try:
                    m = measure(root, site, groups)
                finally:
                    remove_cgroups(groups)
                limited = "" if groups or cpus is None else " (NOT limited)"
                cg = f"{m['cgroup_peak'] / MiB:.0f}M" if m["cgroup_peak"] else "-"
                lines.append(f"{name + limited:<26} {m['wall_s']:>7.1f} {m['pss_peak'] / MiB:>8.0f}M "
                             f"{m['rss_peak'] / MiB:>7.0f}M {cg:>8} {m['score']!s:>6}  {m['failcnt']}")
                print(lines[-1], flush=True)
                if m["score"] is None:
                    print(m["tail"])
    text = "\n".join(lines) + "\n"
    print(text)
    if args.save:
        args.save.write_text(text)


if __name__ == "__main__":
    main()
