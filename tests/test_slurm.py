"""The Slurm scripts, run as the README says, with stand-ins for `sbatch` and the Python environment: they make
logs/, submit the right array and dependency, and each task grades its own shard."""

import os
import stat
import subprocess
from pathlib import Path

from conftest import REPO

FAKE_SBATCH = """#!/bin/bash
# Records the submission, then runs the script as Slurm would: once per array task, with SLURM_* set.
echo "sbatch $*" >> "$CALLS"
array="" dependency=""
while [[ "$1" == --* ]]; do
  case "$1" in --array=*) array="${1#--array=}" ;; --dependency=*) dependency="${1#--dependency=}" ;; esac
  shift
done
script="$1"; shift
[ -d logs ] || { echo "logs/ missing when submitting" >> "$CALLS"; exit 1; }
export SLURM_SUBMIT_DIR="$PWD" SLURM_JOB_ID=4242
if [ -n "$array" ]; then
  last="${array#1-}"
  for task in $(seq 1 "$last"); do
    SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=$last bash "$script" "$@"
  done
else
  bash "$script" "$@"
fi
echo 4242
"""
FAKE_PYTHON = """#!/bin/bash
echo "python $*" >> "$CALLS"
"""


def _stand_ins(tmp_path: Path) -> dict[str, str]:
    bin_dir, venv = tmp_path / "bin", tmp_path / "course" / "myvenv"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    for path, text in ((bin_dir / "sbatch", FAKE_SBATCH), (venv / "bin" / "python", FAKE_PYTHON)):
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls.txt"),
            "PRACTICAL8_VENV": "myvenv"}


def _run(script: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(REPO / "scripts" / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_grade_submits_an_array_and_each_task_grades_its_shard(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_grade.sbatch", "submitted/", "graded/", "3", env=env, cwd=course)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("sbatch --parsable --array=1-3 ") and (course / "logs").is_dir()
    grades = [c for c in calls if c.startswith("python")]
    assert grades == [f"python -m autograder grade submitted/ --out graded/ --devices cuda -j 4 --shard {i}/3 "
                      f"--junit graded//junit-{i}.xml" for i in (1, 2, 3)]
    assert done.stdout.strip() == "4242"  # the job id, for the merge's dependency


def test_merge_waits_for_the_array_and_merges(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_merge.sbatch", "graded/", "4242", env=env, cwd=course)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("sbatch --parsable --dependency=afterok:4242 ")
    assert calls[1] == "python -m autograder merge graded/ --out graded/"


def test_bad_arguments_and_a_missing_environment_are_one_clear_line(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_grade.sbatch", "submitted/", "graded/", "x", env=env, cwd=course)
    assert done.returncode == 2 and "SHARDS must be a whole number" in done.stderr
    done = _run("slurm_grade.sbatch", "submitted/", env=env, cwd=course)
    assert done.returncode != 0 and "usage: bash scripts/slurm_grade.sbatch" in done.stderr
    task = {**env, "PRACTICAL8_VENV": "nowhere", "SLURM_JOB_ID": "1", "SLURM_SUBMIT_DIR": str(course),
            "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}  # as one array task runs it
    done = subprocess.run(["bash", str(REPO / "scripts" / "slurm_grade.sbatch"), "submitted/", "graded/"], cwd=course,
                          env=task, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "no Python environment at nowhere: set PRACTICAL8_VENV\n"
