"""The README and docs/*.md are true: the top page fits one screenful of reading, its links lead somewhere, every
command on every page is run by a test as written (tests read the blocks through docs_commands.block; the blocks
here that no other test runs are run below, with stand-ins where a cluster or a GPU would be needed), every
`python -m autograder` line parses with today's command line, and every count they state is the code's."""

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from docs_commands import NOT_RUN, NOT_RUN_MARK, PAGES, block, commands, page_blocks
from test_ci_files import _dry_parse

from autograder import cli
from autograder.kit import wheel_name
from autograder.samples import MUTANTS, PIPELINE_MUTANTS, PIPELINE_VARIANTS, TAMPERING_MUTANTS, VARIANTS

README_MAX_LINES = 150  # issue 25: a newcomer finds the start of their own path on the first page
BLOCK_CALL = re.compile(r"""block\(\s*["']([^"']+)["']\s*,\s*["']([^"']+)["']\s*\)""")


def _run_blocks() -> set[str]:
    """Every command in a block some test reads with ``block(page, marker)``, plus .ci/run's lines."""
    covered = set(commands((REPO / ".ci" / "run").read_text()))
    for test_file in (REPO / "tests").rglob("*.py"):
        for page, marker in BLOCK_CALL.findall(test_file.read_text()):
            if page.endswith(".md"):
                covered |= set(commands(block(page, marker)))
    return covered


def _documented() -> dict[str, list[str]]:
    """command -> the pages that show it."""
    found: dict[str, list[str]] = {}
    for path in PAGES:
        for script in page_blocks(path):
            for line in commands(script):
                found.setdefault(line, []).append(str(path.relative_to(REPO)))
    return found


def test_the_readme_fits_one_page_and_links_to_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    for page in PAGES[1:]:
        assert f"]({page.relative_to(REPO)})" in readme, f"the README does not link to {page.relative_to(REPO)}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_leads_to_a_file(page):
    for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
        if not re.match(r"[a-z]+://", target):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to {target}: no such file"


def test_every_documented_command_is_run_by_a_test_as_written():
    covered = _run_blocks()
    missing = {line: pages for line, pages in _documented().items() if line not in covered and NOT_RUN not in line}
    assert not missing, f"documented commands that no test runs as written: {missing}"


def test_the_only_commands_not_run_are_the_cpu_wheel_index_and_each_says_so():
    not_run = [line for path in PAGES for script in page_blocks(path) for line in script.splitlines()
               if NOT_RUN in line]
    assert not_run, "the docs no longer say how a machine without a GPU keeps the CPU build of torch"
    for line in not_run:
        assert NOT_RUN_MARK in line, f"{line!r} is not run by a test: say so on its line ({NOT_RUN_MARK!r})"
    assert all(NOT_RUN not in line for line in _run_blocks())


def test_every_autograder_command_on_every_page_parses_with_todays_cli(monkeypatch):
    lines = [line for line in _documented() if "python -m autograder" in line]
    for path in PAGES:  # and those written inline in the prose
        lines += re.findall(r"`(python -m autograder [^`]+)`", path.read_text())
    assert len(lines) > 10
    for line in lines:
        for part in line.split("&&"):
            if "-m autograder" not in part:
                continue
            words = part.split()
            argv = [w.strip('"') for w in words[words.index("autograder") + 1:]]
            if argv and argv[0] == "check":
                continue  # the student kit's command: run as written in tests/test_kit.py
            assert _dry_parse(cli.main, argv, monkeypatch).command == argv[0], line


def _stated(pattern: str) -> list[int]:
    text = "".join(p.read_text() for p in PAGES)
    return [int(n) for n in re.findall(pattern, text)]


def test_the_counts_the_docs_state_are_the_codes():
    from hostile.cases import CASES

    counts = {r"(\d+) mutants": len(MUTANTS) + len(TAMPERING_MUTANTS) + len(PIPELINE_MUTANTS),
              r"(\d+) correct variants": len(VARIANTS) + len(PIPELINE_VARIANTS),
              r"(\d+) (?:attacks|hostile cases)": len(CASES)}
    stated_any = False
    for pattern, count in counts.items():
        for stated in _stated(pattern):
            stated_any = True
            assert stated == count, f"the docs say {stated} for {pattern!r}; the code has {count}"
    assert stated_any
    checks = _stated(r"(\d+) checks\b")
    from autograder.rubric import load_rubric

    assert all(n in (len(load_rubric().checks), len(load_rubric().enabled)) for n in checks), checks


# ---------------------------------------------------------------------- blocks no other test runs, run here
FAKE_PYTHON_SLURM = """#!/bin/bash
# Records the call; a grade makes its --out folder, as the real one would.
echo "python $*" >> "$CALLS"
while [ $# -gt 0 ]; do [ "$1" = "--out" ] && mkdir -p "$2"; shift; done
"""


def _course(tmp_path: Path, *parts: str) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    for name in ("grading.yml", "nbgrader_config.py", *parts):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, course / name)
    return course


def _student(root: Path, name: str, source: str) -> None:
    folder = root / name / "practical8"
    folder.mkdir(parents=True)
    (folder / "model_parallel.py").write_text(source)


@pytest.mark.slow
def test_the_whole_class_block_runs_as_written(tmp_path):
    """docs/instructors.md's class block: grading with -j 2, --force, and Slurm (sbatch and the job's Python are the
    stand-ins of tests/test_slurm.py: no cluster here)."""
    from test_slurm import _stand_ins

    env = _stand_ins(tmp_path)
    course = tmp_path / "course"
    for name in ("grading.yml", "nbgrader_config.py", "scripts"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, course / name)
    (course / "myvenv" / "bin" / "python").write_text(FAKE_PYTHON_SLURM)
    _student(course / "submitted", "ann", (REPO / "solutions" / "practical8" / "model_parallel.py").read_text())
    _student(course / "submitted", "bob", (REPO / "assignment" / "practical8" / "model_parallel.py").read_text())
    # The real grades run the autograder of this checkout; sbatch and the Slurm jobs' python are stand-ins.
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    script = block("docs/instructors.md", "## A whole class, safely and fast")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=course, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "graded 2 submissions; summary in graded/summary.csv" in done.stdout
    assert "graded 2 submissions (--force: every one again)" in done.stdout
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("sbatch --parsable --array=1-8 ")
    assert sum(c.startswith("python -m autograder grade submitted/ --out graded//shards/") for c in calls) == 8
    assert "sbatch --parsable --dependency=afterok:4242 " in "\n".join(calls)
    assert calls[-1].startswith("python -m autograder merge graded//shards/1/ ") and calls[-1].endswith("--out graded/")


@pytest.mark.slow
def test_the_starter_repository_block_runs_as_written(tmp_path):
    course = _course(tmp_path, "assignment", "ci")
    script = block("docs/instructors.md", "every push then runs `check`")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=course, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    starter = course / "starter"
    for name in ("model_parallel.py", "practical8.ipynb", ".gitlab-ci.yml", wheel_name(),
                 ".github/workflows/practical8-check.yml"):
        assert (starter / name).is_file(), f"starter/{name} is missing"


FAKE_PYTHON_GPU = """#!/bin/bash
echo "python $*" >> "$CALLS"
case "$1" in -c) if [[ "$2" == *platform* ]]; then echo "python | torch | CUDA"; else echo 0; fi ;; esac
exit 0
"""


def test_the_gpu_verification_block_runs_as_written(tmp_path):
    """docs/gpu-verification.md's commands (the full check and the quick proof), on a machine with no GPU (its Python
    a stand-in, as in tests/test_verify_on_gpus.py): each runs from the checkout, writes its dated folder and says
    NOT VERIFIED."""
    course = _course(tmp_path, "scripts")
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON_GPU)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PRACTICAL8_PYTHON": str(python), "CALLS": str(tmp_path / "calls.txt")}
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip() or "machine"
    for script, folder in ((block("docs/gpu-verification.md", "Once per machine"), f"-gpus-{host}"),
                           (block("docs/gpu-verification.md", "When a GPU is available only for minutes"),
                            f"-gpus-quick-{host}")):
        done = subprocess.run(["bash", "-c", script], cwd=course, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 1 and done.stdout.splitlines()[-1].startswith("NOT VERIFIED"), done.stdout
        assert any(p.name.endswith(folder) for p in (course / "benchmarks" / "results").iterdir()), folder


def test_the_commands_tests_read_are_parsed_from_real_blocks():
    """``block`` finds what a reader sees: the trial's first line, and an error naming a marker that is gone."""
    assert block("docs/instructors.md", "**Try the whole flow on one machine first**").startswith(
        'export NBGRADER_EXCHANGE="$PWD/exchange"')
    gone = "a heading nobody wrote"
    with pytest.raises(AssertionError, match="no longer has"):
        block("README.md", gone)
