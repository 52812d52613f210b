"""The test command's time: wall clock, and the machine's busy CPU time while it ran (every process, the sandboxed
students' too: they are not children the shell waits for, so `time` misses them).

    python benchmarks/suite_time.py                      # the README's test command, `python -m pytest -q`
    python benchmarks/suite_time.py -- -m slow tests/    # any other pytest arguments

Run it on an otherwise idle machine: the CPU figure counts everything the machine did meanwhile (load average before
and after are printed beside it). Prints one line, for benchmarks/results/.
"""

import os
import platform
import subprocess
import sys
import time


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent not idle since boot (/proc/stat: user, nice, system, irq, softirq)."""
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    command = [sys.executable, "-m", "pytest", "-q", *pytest_args]
    load_before = os.getloadavg()[0]
    cpu, wall = busy_cpu_seconds(), time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    cpu, wall = busy_cpu_seconds() - cpu, time.monotonic() - wall
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"{' '.join(command[1:])}: {wall / 60:.1f} min wall, {cpu / 60:.1f} min busy CPU on {os.cpu_count()} "
          f"cores ({platform.node()}, load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after); {summary}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
