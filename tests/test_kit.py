"""The student kit and `check`: what students install runs the public checks - and holds no hidden check, no
reference, no mutant.

The kit's wheel is built, installed into a fresh virtual environment (the wheel alone: torch, NumPy and the other
dependencies it declares are taken from this environment's site-packages, which `pip check` then finds sufficient),
and used as a student would: `check` on the reference and on a broken submission, the released notebook's first cell
and its public-checks cell, the student-repository CI template's command as written. Then every installed file is
searched for the hidden checks' ids and for the reference's code.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from docs_commands import block

from autograder.check import visible_only
from autograder.cli import main
from autograder.kit import KIT_MODULES, hidden_ids, kit_files, public_graders, wheel_name
from autograder.rubric import load_rubric
from autograder.samples import MUTANTS

REFERENCE = REPO / "solutions" / "practical8" / "model_parallel.py"
NOTEBOOK = REPO / "assignment" / "practical8" / "practical8.ipynb"
STUB = REPO / "assignment" / "practical8" / "model_parallel.py"
TORCH_WHERE = "import torch; print(torch.__version__, torch.__file__)"
STUDENT_GITLAB = REPO / "ci" / "student-repo" / ".gitlab-ci.yml"
NEVER_IN_THE_KIT = ("samples.py", "cli.py", "batch.py", "doctor.py", "release.py", "gradebook.py", "kit.py",
                    "gradescope.py", "grading.yml")
BROKEN = ("self.layer2 = nn.Linear(2000, 1000).to(self.device1)",  # layer2 left on device0
          "self.layer2 = nn.Linear(2000, 1000).to(self.device0)")
FIX_IT = "`model.layer2.weight` is on cuda:0; expected cuda:1. Create layer2 and move it with `.to(self.device1)`."


def _solution_lines() -> set[str]:
    """The reference's own code: every line of its solution regions long enough to be its own (not `return x`)."""
    regions = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", REFERENCE.read_text(), re.S)
    lines = {line.split("  #")[0].strip() for region in regions for line in region.splitlines()}
    return {line for line in lines if len(line) >= 28}


@pytest.fixture(scope="module")
def rubric():
    return load_rubric()


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> dict:
    """The kit built by the CLI and installed into a fresh venv; ``run`` runs its Python in a student's folder."""
    out = tmp_path_factory.mktemp("kit")
    assert main(["student-kit", "--out", str(out)]) == 0
    wheel = out / wheel_name()
    venv = tmp_path_factory.mktemp("venv") / "student"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies (torch, numpy, pytest, ...) from this environment, after the kit's own site-packages.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    home = tmp_path_factory.mktemp("home")

    def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
        environment = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), **(env or {})}
        return subprocess.run(list(args), cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)

    return {"wheel": wheel, "python": str(python), "site": site, "run": run}


def _student_folder(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "practical8"
    folder.mkdir()
    (folder / "model_parallel.py").write_text(source)
    return folder


def _parts_1_to_4() -> str:
    """The reference with Part 5 (PipelinedMPModel) left as the released stub: what a student who skips it hands in."""
    import ast

    def span(source: str) -> tuple[int, int]:
        node = next(n for n in ast.parse(source).body if getattr(n, "name", "") == "PipelinedMPModel")
        return node.lineno - 1, node.end_lineno

    reference, stub = REFERENCE.read_text().splitlines(True), STUB.read_text().splitlines(True)
    (r0, r1), (s0, s1) = span("".join(reference)), span("".join(stub))
    return "".join(reference[:r0] + stub[s0:s1] + reference[r1:])


@pytest.fixture(scope="module")
def student_day(kit, tmp_path_factory) -> dict:
    """The README's three student commands as written, in a fresh environment that already has torch (and the kit's
    other dependencies: this environment's, through a .pth file, before anything is installed; pip may not download:
    PIP_NO_INDEX) - in a folder with the wheel, the released notebook and Parts 1-4 done, Part 5 left as the stub."""
    venv = tmp_path_factory.mktemp("student-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # torch as pip installs it comes with what it requires: the venv's own older setuptools would hide this one's.
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], capture_output=True, timeout=120)
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    torch_before = kit["run"](str(python), "-c", TORCH_WHERE, cwd=site).stdout
    folder = tmp_path_factory.mktemp("student") / "practical8"
    folder.mkdir()
    shutil.copy(kit["wheel"], folder)
    shutil.copy(NOTEBOOK, folder)
    (folder / "model_parallel.py").write_text(_parts_1_to_4())
    script = block("README.md", "## For students: three commands")
    done = kit["run"]("bash", "-euo", "pipefail", "-c", script, cwd=folder,
                      env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PIP_NO_INDEX": "1",
                           "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return {"done": done, "python": str(python), "site": site, "folder": folder, "torch_before": torch_before,
            "torch_after": kit["run"](str(python), "-c", TORCH_WHERE, cwd=site).stdout}


def _outputs(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


@pytest.mark.slow
@pytest.mark.timeout(900)  # the notebook runs Parts 1-4 (and 5, with its sweep) on simulated GPUs
def test_the_students_three_commands_run_as_written_with_part_5_left_out(student_day):
    done = student_day["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "All 7 public checks pass" in done.stdout  # `check`: Part 5's checks are off by default
    text = _outputs(student_day["folder"] / "practical8.ipynb")
    assert "output (32, 1000) on cuda:1" in text and "Before move: cuda:0\nAfter move: cuda:1" in text
    assert "Part 5 (optional) is not implemented yet: skipped" in text and "no sweep" in text
    assert "NotImplementedError" not in text and "Traceback" not in text
    assert "All 7 public checks pass" in text, "Run All did not reach the public checks"


@pytest.mark.slow
@pytest.mark.timeout(900)  # the notebook runs Parts 1-4 (and 5, with its sweep) on simulated GPUs
def test_the_kit_installs_next_to_an_installed_torch_without_replacing_it(student_day):
    assert student_day["done"].returncode == 0, student_day["done"].stderr[-3000:]
    assert student_day["torch_before"] and student_day["torch_before"] == student_day["torch_after"]
    assert (student_day["site"] / "autograder").is_dir()  # the kit itself went in
    assert not list(student_day["site"].glob("torch*")), "pip put a torch of its own into the environment"


@pytest.mark.slow
@pytest.mark.timeout(900)  # the notebook runs Parts 1-4 (and 5, with its sweep) on simulated GPUs
def test_the_released_notebook_runs_through_with_every_part_done(student_day, kit):
    """Part 4's sentence states the simulated A100 numbers the notebook prints; Part 5 draws its pictures."""
    folder = student_day["folder"]
    (folder / "model_parallel.py").write_text(REFERENCE.read_text())
    shutil.copy(NOTEBOOK, folder)
    command = [line for line in block("README.md", "## For students: three commands").splitlines()
               if "nbconvert" in line][0]
    done = kit["run"]("bash", "-c", command, cwd=folder, env={"PATH": f"{Path(student_day['python']).parent}:/usr/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = _outputs(folder / "practical8.ipynb")
    assert "same output as the unsplit model: True" in text and "bubble measured" in text
    assert (folder / "sweep.png").is_file() and "not implemented yet" not in text
    said = re.search(r"lasts ([\d.]+) ms \(the picture\), but `time_forward` gives ([\d.]+) ms", _part4_sentence())
    assert said, "Part 4 no longer says why time_forward is shorter than the picture"
    assert f"one isolated forward (the picture): {said[1]} ms;  time_forward, back to back: {said[2]} ms" in text


def _part4_sentence() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return " ".join(word for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == "part4_picture"
                    for word in "".join(c["source"]).split())


# ------------------------------------------------------------------------------------------ the installed kit
def test_the_kit_is_its_own_package_and_its_requirements_are_met(kit, tmp_path):
    done = kit["run"](kit["python"], "-c", "import autograder; print(autograder.__file__)", cwd=tmp_path)
    assert done.stdout.startswith(str(kit["site"] / "autograder")), done.stdout + done.stderr
    problems = kit["run"](kit["python"], "-m", "pip", "check", cwd=tmp_path).stdout.splitlines()
    assert not [p for p in problems if p.startswith("practical8-student-kit")], problems  # (the venv's own setuptools
    # is older than the one torch asks for: not the kit's business)


def test_check_passes_the_reference_in_the_kit(kit, tmp_path, rubric):
    folder = _student_folder(tmp_path, REFERENCE.read_text())
    done = kit["run"](kit["python"], "-m", "autograder", "check", cwd=folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    visible = visible_only(rubric).enabled
    assert f"total                          {sum(c.points for c in visible):g}/" in done.stdout
    assert f"All {len(visible)} public checks pass. The hidden checks are graded after you submit." in done.stdout
    assert not hidden_ids(rubric) & set(re.findall(r"\w+", done.stdout + done.stderr))


def test_check_fails_a_broken_submission_with_the_fix_it_message(kit, tmp_path, rubric):
    folder = _student_folder(tmp_path, REFERENCE.read_text().replace(*BROKEN))
    done = kit["run"](kit["python"], "-m", "autograder", "check", str(folder), cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert FIX_IT in " ".join(done.stdout.split())  # the table wraps messages
    assert "public checks pass: fix the FAIL rows" in done.stdout
    assert not hidden_ids(rubric) & set(re.findall(r"\w+", done.stdout + done.stderr))


def test_the_released_notebooks_first_cell_and_public_checks_run_with_the_kit(kit, tmp_path):
    folder = _student_folder(tmp_path, REFERENCE.read_text())
    cells = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
             for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"}
    done = kit["run"](kit["python"], "-c", cells["setup"] + "\n" + cells["public_checks"], cwd=folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Running on two simulated NVIDIA A100-SXM4-80GB" in done.stdout
    assert "public checks pass" in done.stdout and "FAIL" not in done.stdout


def test_the_student_repository_ci_command_runs_as_written(kit, tmp_path):
    """The GitLab template's last line (the GitHub one is the same: tests/test_ci_files.py) in a student repository."""
    script = yaml.safe_load(STUDENT_GITLAB.read_text())["check"]["script"]
    folder = _student_folder(tmp_path, REFERENCE.read_text())
    done = kit["run"]("bash", "-c", script[-1], cwd=folder)
    assert done.returncode == 0 and "All 7 public checks pass" in done.stdout, done.stdout[-2000:] + done.stderr


def test_no_installed_file_holds_a_hidden_check_or_the_reference(kit, rubric):
    installed = [p for p in (kit["site"] / "autograder").rglob("*") if p.is_file() and p.suffix != ".pyc"]
    installed += [p for d in kit["site"].glob("practical8_student_kit-*.dist-info") for p in d.iterdir()]
    names = {p.name for p in installed}
    assert not names & set(NEVER_IN_THE_KIT), names & set(NEVER_IN_THE_KIT)
    assert "graders" in {p.parent.name for p in installed}  # the public graders are there
    texts = {p: p.read_text(errors="replace") for p in installed}
    solution = _solution_lines()
    assert len(solution) > 15, "the reference's solution regions should be found"
    found = [f"{p.relative_to(kit['site'])}: {needle}" for p, text in texts.items()
             for needle in hidden_ids(rubric) | solution | {"BEGIN SOLUTION"} if needle in text]
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------------------ how the kit is made
def test_public_graders_keep_every_visible_check_and_no_hidden_one(rubric):
    files = public_graders(rubric)
    tests = {m for text in files.values() for m in re.findall(r"@pytest\.mark\.check\('(\w+)'\)", text)}
    assert tests == {c.id for c in rubric.checks if c.visibility == "visible"}
    for name, text in files.items():
        compile(text, name, "exec")
        assert not [i for i in hidden_ids(rubric) if i in text], name
    assert "reference_sgd" not in files["expected.py"] and "TIMING_HIGH" not in files["expected.py"]


def test_a_check_made_hidden_leaves_the_kit(rubric):
    """The visibility in grading.yml decides: hide placement, and its test, helpers and messages go."""
    hidden = rubric.__class__(rubric.assignment, tuple(
        c.__class__(c.id, c.title, c.points, "hidden" if c.id == "placement" else c.visibility, c.timeout, c.enabled)
        for c in rubric.checks))
    files = kit_files(hidden)
    assert "graders/test_placement.py" not in files
    assert "placement" not in yaml.safe_load(files["public_rubric.yml"])["checks"]
    assert all("self.device{" not in str(text) for name, text in files.items() if name.startswith("graders/"))


def test_the_kit_rubric_is_the_visible_checks_and_the_kit_runs_check(rubric):
    files = kit_files(rubric)
    public = yaml.safe_load(files["public_rubric.yml"])["checks"]
    assert set(public) == {c.id for c in rubric.checks if c.visibility == "visible"}
    assert set(KIT_MODULES) <= set(files) and "__main__.py" in files and "student_cli" in files["__main__.py"]


# ------------------------------------------------------------------------------------------ check, instructor side
def test_check_in_the_instructors_package_shows_only_public_checks(tmp_path, capsys, rubric):
    """A mistake only a hidden check catches: `check` says every public check passes, and names no hidden one."""
    mutant = next(m for m in MUTANTS if m.name == "copy_via_host")
    assert mutant.fails <= hidden_ids(rubric)
    assert main(["check", str(mutant.write(tmp_path / "student")), "--devices", "sim"]) == 0
    out = capsys.readouterr().out
    assert "All 7 public checks pass" in out
    assert not hidden_ids(rubric) & set(re.findall(r"\w+", out))


def test_check_on_the_stub_exits_1_with_the_starting_point_message(tmp_path, capsys):
    folder = _student_folder(tmp_path, (REPO / "assignment" / "practical8" / "model_parallel.py").read_text())
    assert main(["check", str(folder), "--devices", "sim"]) == 1
    assert "is not implemented yet: it raised NotImplementedError" in " ".join(capsys.readouterr().out.split())


def test_check_never_refuses_for_want_of_landlock(monkeypatch):
    from autograder import check

    assert check.student_limits().require_landlock is False
    assert os.path.basename(check.PUBLIC_RUBRIC) == "public_rubric.yml" and not check.PUBLIC_RUBRIC.exists()


def test_the_stub_and_the_notebook_say_how_to_install_the_kit():
    line = f"pip install {wheel_name()}"
    assert line in (REPO / "assignment" / "practical8" / "model_parallel.py").read_text()
    assert line in NOTEBOOK.read_text()
    assert "python -m autograder check" in (REPO / "assignment" / "practical8" / "model_parallel.py").read_text()


def test_pruning_keeps_what_a_kept_test_needs_and_drops_the_rest():
    import ast

    from autograder.kit import _prune

    tree = ast.parse('import pytest\nimport numpy as np\nLIMIT, SECRET = 1, 2\npytestmark = pytest.mark.x\n'
                     '@pytest.fixture\ndef made(base):\n    """About the hidden check."""\n    return base + LIMIT\n'
                     '@pytest.fixture\ndef base():\n    return 0\n'
                     '@pytest.mark.check("visible_one")\ndef test_kept(made):\n    assert made\n')
    _prune(tree, {"test_kept"})
    text = ast.unparse(tree)
    assert "def made" in text and "def base" in text and "LIMIT = 1" in text and "pytestmark" in text
    assert "SECRET" not in text and "numpy" not in text and "About the hidden check" not in text
