"""Gradescope's autograder.zip: laid out as Gradescope expects, and run_autograder, run in a temporary tree laid out
like Gradescope's (/autograder/source, submission, results), grades with the bundle's own wheel into results.json
with the rubric's visibility. setup.sh runs with stand-ins for apt-get and Python."""

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from autograder.gradescope import build_bundle, find_submission
from autograder.rubric import load_rubric

REFERENCE = REPO / "solutions" / "practical8" / "model_parallel.py"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle") / "autograder.zip")


@pytest.fixture(scope="module")
def wheel_site(bundle, tmp_path_factory) -> Path:
    """The bundle's wheel installed as setup.sh installs it (without its dependencies, which are here already)."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(bundle) as z:
        wheel = next(n for n in z.namelist() if n.endswith(".whl"))
        z.extract(wheel, site.parent)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir", "--target",
                           str(site), str(site.parent / wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return site


def _gradescope_tree(tmp_path: Path, bundle: Path) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
        for info in z.infolist():  # zipfile does not restore modes; Gradescope does
            (root / "source" / info.filename).chmod(info.external_attr >> 16 or 0o644)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")  # where Gradescope puts it
    return root


def _run_autograder(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "AUTOGRADER_ROOT": str(root),
           "PRACTICAL8_PYTHON": sys.executable, "PYTHONPATH": str(site)}
    return subprocess.run([str(root / "run_autograder")], cwd="/", env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_zip_has_gradescopes_layout(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    wheels = [n for n in names if n.endswith(".whl")]
    assert {"setup.sh", "run_autograder", "grading.yml"} <= names and len(wheels) == 1, names
    assert all("/" not in n for n in names), "Gradescope wants setup.sh and run_autograder at the top of the zip"
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert not any("solutions" in n or "model_parallel" in n for n in names), "the reference stays out"


def test_the_bundled_wheel_is_the_whole_autograder(bundle):
    with zipfile.ZipFile(bundle) as z:
        wheel = next(n for n in z.namelist() if n.endswith(".whl"))
        with z.open(wheel) as f, zipfile.ZipFile(f) as w:
            files = set(w.namelist())
    packaged = {f"autograder/{p.relative_to(REPO / 'autograder')}" for p in (REPO / "autograder").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert packaged <= files, sorted(packaged - files)


def test_run_autograder_grades_the_submission_with_the_rubrics_visibility(bundle, wheel_site, tmp_path):
    root = _gradescope_tree(tmp_path, bundle)
    nested = root / "submission" / "my-repo" / "practical8"  # a repository or a zip of a folder
    nested.mkdir(parents=True)
    shutil.copy(REFERENCE, nested / "model_parallel.py")
    done = _run_autograder(root, wheel_site)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    rubric = load_rubric(root / "source" / "grading.yml")
    assert results["score"] == rubric.max_score == 100
    assert {t["name"].split(":")[0]: t["visibility"] for t in results["tests"]} == {
        c.id: c.visibility for c in rubric.enabled}
    assert "hidden" in {t["visibility"] for t in results["tests"]}
    assert results["stdout_visibility"] == "hidden" and "simulated" in results["output"]
    assert "grading" in done.stdout and "sandbox:" in done.stdout
    assert stat.S_IMODE((root / "source").stat().st_mode) == 0o700  # graded code cannot read the rubric
    assert stat.S_IMODE((root / "results").stat().st_mode) == 0o700  # nor write the results
    used = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                          env={"PYTHONPATH": str(wheel_site)}, capture_output=True, text=True, cwd="/")
    assert used.stdout.startswith(str(wheel_site)), "run_autograder must grade with the bundle's wheel"


def test_a_submission_without_the_file_gets_a_result_that_says_so(bundle, wheel_site, tmp_path):
    root = _gradescope_tree(tmp_path, bundle)
    (root / "submission" / "practical8.ipynb").write_text("{}")
    done = _run_autograder(root, wheel_site)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0
    assert all("has no model_parallel.py (it holds: practical8.ipynb)" in t["output"] for t in results["tests"])


def test_the_submission_is_found_where_students_put_it(tmp_path):
    for folder in ("top", "deep/a/b", ".git/x", "__MACOSX/p8"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "deep" / "a" / "b" / "model_parallel.py").write_text("")
    (tmp_path / ".git" / "x" / "model_parallel.py").write_text("")
    (tmp_path / "__MACOSX" / "p8" / "model_parallel.py").write_text("")
    assert find_submission(tmp_path) == tmp_path / "deep" / "a" / "b"
    (tmp_path / "top" / "model_parallel.py").write_text("")
    assert find_submission(tmp_path) == tmp_path / "top"
    (tmp_path / "model_parallel.py").write_text("")
    assert find_submission(tmp_path) == tmp_path
    assert find_submission(tmp_path / "top" / "empty-missing") is None


FAKE = """#!/bin/bash
echo "$(basename "$0") $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
if [ "$1" = "-c" ]; then echo "$GRADERS"; fi
"""


def test_setup_sh_makes_a_venv_installs_the_cpu_torch_and_the_wheel_and_locks_the_graders(bundle, tmp_path):
    root = _gradescope_tree(tmp_path, bundle)
    bin_dir, graders = tmp_path / "bin", tmp_path / "site" / "autograder" / "graders"
    bin_dir.mkdir()
    graders.mkdir(parents=True)
    for name in ("python3", "apt-get"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls.txt"), "GRADERS": str(graders),
           "AUTOGRADER_ROOT": str(root)}
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    wheel = next(p.name for p in (root / "source").iterdir() if p.suffix == ".whl")
    assert calls[0] == f"python3 -m venv {root}/venv"
    assert calls[1].startswith("python -m pip install torch==") and "download.pytorch.org/whl/cpu" in calls[1]
    assert calls[2] == f"python -m pip install {root}/source/{wheel}"
    assert stat.S_IMODE(graders.stat().st_mode) == 0o700
