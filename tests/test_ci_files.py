"""Every CI file here is checked, not only read: it parses, passes its platform's schema (check-jsonschema's vendored
SchemaStore schemas for GitHub workflows and GitLab CI), every `python -m autograder ...` line parses with today's
command line (no stale flag), every other command exists, and the GitLab files run exactly the commands of their
GitHub twins: the instructor's grading job (.github/workflows/grade-on-gpus.yml, the one source) and the students'
per-push check."""

import argparse
import fnmatch
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from autograder import cli, student_cli
from autograder.kit import wheel_name

GITHUB_GRADE = REPO / ".github" / "workflows" / "grade-on-gpus.yml"
GITLAB_GRADE = REPO / "ci" / "gitlab" / ".gitlab-ci.yml"
STUDENT_GITHUB = REPO / "ci" / "student-repo" / ".github" / "workflows" / "practical8-check.yml"
STUDENT_GITLAB = REPO / "ci" / "student-repo" / ".gitlab-ci.yml"
GITHUB_FILES, GITLAB_FILES = (GITHUB_GRADE, STUDENT_GITHUB), (GITLAB_GRADE, STUDENT_GITLAB)
# Where each file's `python -m autograder` runs: the instructor's package, or the student kit (`check` only).
PARSER = {GITHUB_GRADE: cli.main, GITLAB_GRADE: cli.main, STUDENT_GITHUB: student_cli.main,
          STUDENT_GITLAB: student_cli.main}
KNOWN_PROGRAMS = {"python", "python3", "bash"}  # what every runner has (setup-python / the image / the runner)


def _github_lines(path: Path, job: str | None = None) -> list[str]:
    jobs = yaml.safe_load(path.read_text())["jobs"]
    steps = [s for name, j in jobs.items() if job in (None, name) for s in j["steps"] if "run" in s]
    lines = [line.strip() for s in steps for line in s["run"].splitlines() if line.strip()]
    return lines


def _gitlab_lines(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    jobs = [j for name, j in data.items() if isinstance(j, dict) and "script" in j]
    return [line.strip() for j in jobs for key in ("before_script", "script") for entry in j.get(key, [])
            for line in entry.splitlines() if line.strip()]


def _lines(path: Path) -> list[str]:
    return _github_lines(path) if path in GITHUB_FILES else _gitlab_lines(path)


def _variables(path: Path) -> dict[str, str]:
    """The file's variables with their default values (GitLab's `variables:`), for expanding command lines."""
    data = yaml.safe_load(path.read_text())
    found = data.get("variables", {}) if path in GITLAB_FILES else {}
    return {k: str(v["value"] if isinstance(v, dict) else v) for k, v in found.items()}


def _words(line: str, variables: dict[str, str]) -> list[str]:
    for name, value in variables.items():
        line = line.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return shlex.split(line)


class _Parsed(Exception):
    pass


def _dry_parse(main, argv: list[str], monkeypatch) -> argparse.Namespace:
    """``main(argv)``'s arguments parsed by its real parser, and nothing run: a stale flag is argparse's error."""
    real = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise _Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    try:
        main(argv)
    except _Parsed as parsed:
        return parsed.args[0]
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", real)
    raise AssertionError(f"{argv} was never parsed")


ALL_FILES = [*GITHUB_FILES, *GITLAB_FILES]
IDS = [str(p.relative_to(REPO)) for p in ALL_FILES]


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_it_parses_and_has_commands(path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and _lines(path), f"{path}: no commands found"


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_it_passes_its_platforms_schema(path):
    linter = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which(
        "check-jsonschema")
    if linter is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    schema = "vendor.github-workflows" if path in GITHUB_FILES else "vendor.gitlab-ci"
    done = subprocess.run([linter, "--builtin-schema", schema, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_can_fail(tmp_path):
    linter = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which(
        "check-jsonschema")
    if linter is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(GITLAB_GRADE.read_text().replace("    when: always\n", "    when: whenever\n"))
    done = subprocess.run([linter, "--builtin-schema", "vendor.gitlab-ci", str(broken)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_every_autograder_command_parses_with_todays_cli(path, monkeypatch):
    commands = [_words(line, _variables(path)) for line in _lines(path) if "-m autograder" in line]
    assert commands, f"{path}: no `python -m autograder` command"
    for words in commands:
        argv = words[words.index("autograder") + 1:]
        args = _dry_parse(PARSER[path], argv, monkeypatch)
        assert args.command == argv[0]


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_every_project_script_command_parses_with_todays_script(path, monkeypatch):
    """`python scripts/x.py --flag ...`: the project's own scripts, dry-parsed by their own main(argv)."""
    for line in _lines(path):
        words = _words(line, _variables(path))
        scripts = [i for i, w in enumerate(words) if w.startswith("scripts/") and w.endswith(".py")]
        for i in scripts:
            spec = importlib.util.spec_from_file_location("ci_script", REPO / words[i])
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _dry_parse(module.main, words[i + 1:], monkeypatch)


@pytest.mark.parametrize("path", ALL_FILES, ids=IDS)
def test_every_other_command_exists(path):
    made: set[str] = set()  # what earlier lines create (the virtual environment)
    for line in _lines(path):
        words = _words(line, _variables(path))
        program = words[0]
        if words[1:3] == ["-m", "venv"]:
            made.add(words[3])
        if "/" in program:
            assert any(program.startswith(f"{d}/") for d in made), f"{path}: {program} is made by no earlier line"
        else:
            assert program in KNOWN_PROGRAMS, f"{path}: runs {program}, which a runner may not have"
        for word in words:
            if word in (".", "-e") or word.startswith(("http", "-", "$", "graded", "doctor", "torch==")):
                continue
            if word.endswith(".whl"):
                assert fnmatch.fnmatch(wheel_name(), word), f"{path}: {word} is not the kit's {wheel_name()}"
            elif re.fullmatch(r"[\w./-]+/[\w.-]+", word) and not word.startswith((".venv/", "doctor/", "graded/")):
                assert (REPO / word).exists(), f"{path}: {word} does not exist in the project"


def test_the_gitlab_grading_job_runs_the_github_workflows_commands():
    assert _gitlab_lines(GITLAB_GRADE) == _github_lines(GITHUB_GRADE)


def test_the_gitlab_grading_job_keeps_what_the_github_workflow_keeps():
    github = yaml.safe_load(GITHUB_GRADE.read_text())["jobs"]["grade"]
    gitlab = yaml.safe_load(GITLAB_GRADE.read_text())
    uploaded = next(s for s in github["steps"] if "upload-artifact" in s.get("uses", ""))["with"]["path"].split()
    assert gitlab["grade"]["artifacts"]["paths"] == uploaded and gitlab["grade"]["artifacts"]["when"] == "always"
    junit = next(s for s in github["steps"] if "junit" in s.get("uses", ""))["with"]["report_paths"]
    assert gitlab["grade"]["artifacts"]["reports"]["junit"] == junit
    assert gitlab["grade"]["tags"] == ["$GPU_RUNNER_TAG"] and "GPU_RUNNER_TAG" in gitlab["variables"]
    assert int(gitlab["grade"]["timeout"].rstrip("h")) * 60 == github["timeout-minutes"]
    retention = next(s for s in github["steps"] if "upload-artifact" in s.get("uses", ""))["with"].get("retention-days")
    assert gitlab["grade"]["artifacts"].get("expire_in") == (f"{retention} days" if retention else None)


def test_the_student_templates_run_the_same_commands_on_every_push():
    assert _gitlab_lines(STUDENT_GITLAB) == _github_lines(STUDENT_GITHUB)
    on = yaml.safe_load(STUDENT_GITHUB.read_text())[True]  # YAML 1.1 reads the key `on` as True
    assert "push" in on
    assert "rules" not in yaml.safe_load(STUDENT_GITLAB.read_text())["check"]  # GitLab: every push by default


def test_the_student_templates_torch_is_one_the_kit_accepts():
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.version import Version

    pinned = re.search(r"torch==([\w.]+)", STUDENT_GITLAB.read_text()).group(1)
    torch = next(Requirement(r) for r in requires("practical8-autograder") if r.startswith("torch"))
    assert Version(pinned) in torch.specifier


def test_a_stale_flag_is_caught(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _dry_parse(cli.main, ["grade", "submitted", "--out", "graded", "--gpus", "2"], monkeypatch)
    assert "unrecognized arguments: --gpus 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _dry_parse(student_cli.main, ["check", ".", "--devices", "gpu"], monkeypatch)


def test_no_github_expression_is_pasted_into_a_shell_line():
    """Inputs reach the commands through the environment (as GitLab's variables do): an expression pasted into
    `run:` is expanded before the shell parses the line - a path with `"; rm -rf ~` in it would run."""
    for path in GITHUB_FILES:
        assert not [line for line in _github_lines(path) if "${{" in line], path
