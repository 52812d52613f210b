"""Gradescope: grade two-GPU code in Gradescope's GPU-less containers, on two simulated GPUs.

    python -m autograder gradescope --out autograder.zip     # upload as the assignment's autograder

The zip holds what Gradescope expects at its top: ``setup.sh`` (run once, as root, when Gradescope builds the image:
a virtual environment with the CPU build of torch and this autograder's wheel), ``run_autograder`` (run for each
submission: grades ``/autograder/submission`` into ``/autograder/results/results.json``, every check with the
rubric's visibility), the course's ``grading.yml`` and the wheel. No reference solution, no ``solutions/``.

For a trial outside Gradescope both scripts take ``AUTOGRADER_ROOT`` (default ``/autograder``) and ``run_autograder``
takes ``PRACTICAL8_PYTHON`` (default: the environment setup.sh made); ``tests/test_gradescope.py`` runs them so.

The sandbox: Gradescope gives each submission a fresh container of its own, so the grader's sandbox is defence in
depth there. Its kernel is unknown, so ``run_autograder`` grades where Landlock is missing too (as
``--unsafe-no-sandbox`` does), and still: graded code runs as a user of its own (the container runs as root),
``run_autograder`` makes the rubric and the results folder root's only, and setup.sh the installed graders.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import tempfile
import zipfile
from pathlib import Path

from .contract import MODULE_FILE
from .course import RUBRIC_FILE, course_file
from .grading import Report, grade
from .kit import DISTRIBUTION, build_wheel, requirements
from .reports import table, write_results
from .rubric import load_rubric
from .sandbox import landlock
from .sandbox.limits import Limits
from .simgpu.profiles import DEFAULT_GPU, gpu_profile

GRADESCOPE_ROOT = "/autograder"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SKIPPED_PARTS = ("__MACOSX",)  # folders a zip made on macOS carries; hidden folders (.git ...) are skipped too
MISSING = ("Your submission has no {module}{found}. Upload {module} itself (or a folder or zip that holds it), then "
           "submit again.")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image; the zip's files are then in
# /autograder/source. Made by `python -m autograder gradescope`. AUTOGRADER_ROOT moves /autograder (for a trial).
set -euo pipefail
root="${{AUTOGRADER_ROOT:-{root}}}"
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
# A virtual environment of its own (Ubuntu 24.04's system Python refuses pip installs); python3-venv if missing.
python3 -m venv "$root/venv" ||
  {{ apt-get update && apt-get install -y python3-venv && python3 -m venv --clear "$root/venv"; }}
"$root/venv/bin/python" -m pip install {torch} --index-url {index}
"$root/venv/bin/python" -m pip install "$here/{wheel}"
# The graders stay root's only: graded code runs as a user of its own.
chmod -R go-rwx "$("$root/venv/bin/python" -c 'import autograder.graders as g, os; print(os.path.dirname(g.__file__))')"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission, as root, in a fresh container: it grades /autograder/submission on two
# simulated {gpu} into /autograder/results/results.json. Made by `python -m autograder gradescope`.
# AUTOGRADER_ROOT moves /autograder and PRACTICAL8_PYTHON names the Python (for a trial outside Gradescope).
set -euo pipefail
root="${{AUTOGRADER_ROOT:-{root}}}"
python="${{PRACTICAL8_PYTHON:-$root/venv/bin/python}}"
mkdir -p "$root/results"
# The rubric and the results are root's only: graded code runs as a user of its own.
chmod 700 "$root/source" "$root/results"
cd "$root/source"
exec "$python" -m autograder gradescope --run --root "$root" --sim-gpu {sim_gpu}
"""


def bundle_files(sim_gpu: str = DEFAULT_GPU, wheel: str | None = None) -> dict[str, str]:
    """The two scripts, for the wheel named ``wheel``."""
    key = gpu_profile(sim_gpu).key
    torch = f"torch=={importlib.metadata.version('torch').split('+')[0]}"  # the build graded here, CPU flavour
    return {"setup.sh": SETUP_SH.format(root=GRADESCOPE_ROOT, torch=shlex.quote(torch), index=TORCH_CPU_INDEX,
                                        wheel=wheel),
            "run_autograder": RUN_AUTOGRADER.format(root=GRADESCOPE_ROOT, sim_gpu=key, gpu=gpu_profile(key).name)}


def build_bundle(out: Path, rubric_path: Path | None = None, sim_gpu: str = DEFAULT_GPU) -> Path:
    """Write ``out`` (autograder.zip): setup.sh, run_autograder, grading.yml and the autograder's wheel."""
    rubric_path = Path(rubric_path) if rubric_path else course_file(RUBRIC_FILE)
    load_rubric(rubric_path)  # a malformed rubric is refused here, not in every student's container
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="practical8-gradescope-") as tmp:
        wheel = build_wheel(DISTRIBUTION, "Practical 8 autograder", package_files(), requirements(), Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, text in bundle_files(sim_gpu, wheel.name).items():
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o100755 << 16  # executable, as Gradescope runs them
                bundle.writestr(info, text, zipfile.ZIP_DEFLATED)
            bundle.write(rubric_path, RUBRIC_FILE)
            bundle.write(wheel, wheel.name)
    return out


def package_files() -> dict[str, bytes]:
    """Every file of this package (the hidden graders included: the bundle is the instructor's)."""
    package = Path(__file__).resolve().parent
    return {str(p.relative_to(package)): p.read_bytes() for p in sorted(package.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def find_submission(folder: Path) -> Path | None:
    """The folder that holds the student's module: ``folder`` itself, or the shallowest one inside it (a zip of a
    folder, a repository), skipping hidden folders and macOS's ``__MACOSX``."""
    folder = Path(folder)
    if (folder / MODULE_FILE).is_file():
        return folder
    found = [p for p in folder.rglob(MODULE_FILE) if p.is_file() and not any(
        part.startswith(".") or part in SKIPPED_PARTS for part in p.relative_to(folder).parts[:-1])]
    return min(found, key=lambda p: (len(p.parts), str(p))).parent if found else None


def run(root: Path, sim_gpu: str = DEFAULT_GPU) -> Report:
    """Inside Gradescope's container: grade ``root/submission`` into ``root/results/results.json``."""
    root = Path(root)
    rubric = load_rubric(root / "source" / RUBRIC_FILE)
    folder = find_submission(root / "submission")
    if folder is None:
        uploaded = sorted(p.name for p in (root / "submission").rglob("*") if p.is_file())[:5]
        found = f" (it holds: {', '.join(uploaded)})" if uploaded else " (it is empty)"
        report = Report.all_failed("submission", rubric, "sim", MISSING.format(module=MODULE_FILE, found=found),
                                   sim_gpu)
    else:
        print(f"grading {folder / MODULE_FILE}; {sandbox_status()}")
        report = grade(folder, rubric, "sim", Limits(require_landlock=False), sim_gpu=sim_gpu)
    write_results(report, root / "results" / "results.json")
    print(table(report))
    return report


def sandbox_status() -> str:
    """One line for the run's log (which students do not see): what the container's kernel allows."""
    abi = landlock.abi_version()
    if abi >= 1:
        return f"sandbox: Landlock ABI {abi}"
    return ("sandbox: this container's kernel has no Landlock; graded code runs as a user of its own, with the rubric, "
            "graders and results readable by root only, in a container of its own")
