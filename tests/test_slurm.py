"""The Slurm scripts, run as the README says, with stand-ins for `sbatch`, `nvidia-smi` and the Python environment:
they make logs/ before submitting, submit the right array and dependency, each task grades its own shard into a
folder of its own (no two tasks write one file), one submission at a time unless told otherwise (never two in an
exclusive compute mode), and the merge collects the shards."""

import os
import stat
import subprocess
from pathlib import Path

from conftest import REPO

FAKE_SBATCH = """#!/bin/bash
# Records the submission, then runs the script as Slurm would: from a copy in a spool folder (so "$0" is not the
# original), in the submit directory, once per array task, with SLURM_* set.
echo "sbatch $*" >> "$CALLS"
array="" dependency=""
while [[ "$1" == --* ]]; do
  case "$1" in --array=*) array="${1#--array=}" ;; --dependency=*) dependency="${1#--dependency=}" ;; esac
  shift
done
script="$1"; shift
[ -d logs ] || { echo "logs/ missing when submitting" >> "$CALLS"; exit 1; }
spool=$(mktemp -d)
cp "$script" "$spool/slurm_script"
export SLURM_SUBMIT_DIR="$PWD" SLURM_JOB_ID=4242
if [ -n "$array" ]; then
  last="${array#1-}"
  for task in $(seq 1 "$last"); do
    (cd "$spool" && SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=$last bash slurm_script "$@") || exit 1
  done
else
  (cd "$spool" && bash slurm_script "$@") || exit 1
fi
echo 4242
"""
FAKE_PYTHON = """#!/bin/bash
echo "python $*" >> "$CALLS"
"""
FAKE_NVIDIA_SMI = """#!/bin/bash
printf '%s\\n%s\\n' "$COMPUTE_MODE" "$COMPUTE_MODE"
"""


def _stand_ins(tmp_path: Path, compute_mode: str = "Default") -> dict[str, str]:
    bin_dir, venv = tmp_path / "bin", tmp_path / "course" / "myvenv"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    (tmp_path / "course" / "submitted").mkdir()
    for path, text in ((bin_dir / "sbatch", FAKE_SBATCH), (bin_dir / "nvidia-smi", FAKE_NVIDIA_SMI),
                       (venv / "bin" / "python", FAKE_PYTHON)):
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls.txt"),
            "PRACTICAL8_VENV": "myvenv", "COMPUTE_MODE": compute_mode}


def _run(script: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(REPO / "scripts" / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.txt").read_text().splitlines()


def test_grade_submits_an_array_and_each_task_grades_its_shard_into_its_own_folder(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_grade.sbatch", "submitted/", "graded/", "3", env=env, cwd=course)
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    assert calls[0].startswith("sbatch --parsable --array=1-3 ") and (course / "logs").is_dir()
    grades = [c for c in calls if c.startswith("python")]
    assert grades == [f"python -m autograder grade submitted/ --out graded//shards/{i} --devices cuda -j 1 "
                      f"--shard {i}/3 --junit graded//shards/{i}/junit.xml" for i in (1, 2, 3)]
    assert done.stdout.strip() == "4242"  # the job id, for the merge's dependency


def test_two_at_once_only_when_asked_and_never_in_an_exclusive_compute_mode(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_grade.sbatch", "submitted/", "graded/", "1", env={**env, "PRACTICAL8_JOBS": "2"}, cwd=course)
    assert done.returncode == 0, done.stderr
    assert " -j 2 " in _calls(tmp_path)[-1]
    env = _stand_ins(tmp_path / "exclusive", "Exclusive_Process")
    course = tmp_path / "exclusive" / "course"
    done = _run("slurm_grade.sbatch", "submitted/", "graded/", "1", env={**env, "PRACTICAL8_JOBS": "2"}, cwd=course)
    assert done.returncode == 0, done.stderr
    assert " -j 1 " in _calls(tmp_path / "exclusive")[-1] and "exclusive compute mode" in done.stderr


def test_merge_waits_for_the_array_and_merges_every_shard(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    for shard in ("1", "2"):
        (course / "graded" / "shards" / shard).mkdir(parents=True)
    done = _run("slurm_merge.sbatch", "graded", "4242", env=env, cwd=course)
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    assert calls[0].startswith("sbatch --parsable --dependency=afterok:4242 ")
    assert calls[1] == "python -m autograder merge graded/shards/1/ graded/shards/2/ --out graded"


def test_merge_without_shards_says_so(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_merge.sbatch", "graded", "4242", env=env, cwd=course)
    assert done.returncode != 0 and "no shard folders in graded/shards/" in done.stderr


def test_bad_arguments_and_a_missing_environment_are_one_clear_line(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    done = _run("slurm_grade.sbatch", "submitted/", "graded/", "x", env=env, cwd=course)
    assert done.returncode == 2 and "SHARDS must be a whole number" in done.stderr
    done = _run("slurm_grade.sbatch", "submitted/", env=env, cwd=course)
    assert done.returncode != 0 and "usage: bash scripts/slurm_grade.sbatch" in done.stderr
    done = _run("slurm_grade.sbatch", "nowhere/", "graded/", "2", env=env, cwd=course)
    assert done.returncode == 2 and "no folder of submissions at nowhere/" in done.stderr
    assert not (tmp_path / "calls.txt").exists()  # nothing was queued
    task = {**env, "PRACTICAL8_VENV": "nowhere", "SLURM_JOB_ID": "1", "SLURM_SUBMIT_DIR": str(course),
            "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}  # as one array task runs it
    done = subprocess.run(["bash", str(REPO / "scripts" / "slurm_grade.sbatch"), "submitted/", "graded/"], cwd=course,
                          env=task, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "no Python environment at nowhere: set PRACTICAL8_VENV\n"


def test_submitted_straight_to_sbatch_it_says_how_to_submit(tmp_path):
    env, course = _stand_ins(tmp_path), tmp_path / "course"
    job = {**env, "SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(course)}  # sbatch'ed by hand: no array
    done = subprocess.run(["bash", str(REPO / "scripts" / "slurm_grade.sbatch"), "submitted/", "graded/"], cwd=course,
                          env=job, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "submit this with: bash scripts/slurm_grade.sbatch" in done.stderr
