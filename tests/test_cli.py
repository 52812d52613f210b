"""`python -m autograder grade`: exit codes, the table, Gradescope's results.json, the bundled samples."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from autograder.cli import main
from autograder.rubric import load_rubric
from autograder.samples import SAMPLES


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def test_grading_a_failing_submission_still_exits_zero_and_writes_results(tmp_path):
    results = tmp_path / "results.json"
    done = _run("grade", "assignment/practical8", "--devices", "sim", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout and "0/100" in done.stdout
    data = json.loads(results.read_text())
    assert data["score"] == 0
    test = data["tests"][0]
    assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
    assert test["name"].startswith("placement: ") and test["status"] == "failed"
    assert {t["visibility"] for t in data["tests"]} == {"visible", "hidden"}
    assert sum(t["max_score"] for t in data["tests"]) == 100


def test_missing_folder_or_file_is_a_clear_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    assert main(["grade", str(tmp_path)]) == 2
    assert "no model_parallel.py here" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has two GPUs")
def test_devices_cuda_refuses_to_simulate(capsys):
    assert main(["grade", str(REPO / "solutions" / "practical8"), "--devices", "cuda"]) == 2
    assert "--devices cuda needs two CUDA GPUs" in capsys.readouterr().err


def test_malformed_rubric_is_a_clear_error(tmp_path, capsys):
    rubric = tmp_path / "grading.yml"
    rubric.write_text("checks:\n  placement:\n    title: x\n    points: -1\n")
    assert main(["grade", str(REPO / "solutions" / "practical8"), "--rubric", str(rubric)]) == 2
    assert "points must be a number >= 0" in capsys.readouterr().err


def _tables(stdout: str) -> dict[str, tuple[set[str], str]]:
    """submission -> (its FAIL rows' check ids, its total), from the tables `grade` prints."""
    tables: dict[str, tuple[set[str], str]] = {}
    lines = stdout.splitlines()
    name = None
    for line, following in zip(lines, lines[1:] + [""], strict=True):
        if following.startswith("check "):
            name = line.split()[0]
            tables[name] = (set(), "")
        elif name and re.match(r"\w+ +\d+/\d+ +FAIL", line):
            tables[name][0].add(line.split()[0])
        elif name and line.startswith("total "):
            tables[name] = (tables[name][0], line.split()[1])
    return tables


def test_no_path_grades_the_bundled_samples():
    done = _run("grade", "--devices", "sim")
    assert done.returncode == 0, done.stderr
    rubric = load_rubric()
    expected = {"reference": (set(), "100/100")}
    for mutant in SAMPLES:  # each sample loses exactly its checks' points, in its own table
        lost = sum(rubric.check(check).points for check in mutant.fails)
        expected[mutant.name] = (set(mutant.fails), f"{rubric.max_score - lost:g}/{rubric.max_score:g}")
    assert _tables(done.stdout) == expected


@pytest.mark.parametrize(("argv", "says"), [
    (["grade", "-j", "0"], "must be a whole number >= 1"),
    (["grade", "-j", "-3"], "must be a whole number >= 1"),
])
def test_impossible_values_are_refused_by_argparse(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (["grade", "solutions/practical8", "--force"], "--force: only for a class: add --out"),
    (["grade", "solutions/practical8", "-j", "2", "--shard", "1/2"], "-j, --shard: only for a class: add --out"),
    (["grade", "submitted", "--out", "graded", "--results", "r.json"], "--results is for one submission"),
    (["grade", "tests"], "it has sub-folders: to grade a class, add --out"),
    (["grade", "no/such/folder"], "no/such/folder: no such folder"),
])
def test_options_that_would_be_ignored_or_misread_are_one_clear_error(argv, says, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err


def test_a_misspelled_check_id_is_said_once(tmp_path, capsys):
    rubric = tmp_path / "grading.yml"
    rubric.write_text("checks:\n  placment:\n    title: x\n    points: 10\n")
    assert main(["grade", str(REPO / "solutions" / "practical8"), "--rubric", str(rubric), "--devices", "sim"]) == 2
    err = capsys.readouterr().err
    assert err.count("placment") == 1 and "ERROR" not in err, err


def test_the_tests_run_with_a_temporary_home():
    import tempfile

    assert os.environ["HOME"].startswith(tempfile.gettempdir())
    assert os.environ["JUPYTER_DATA_DIR"].startswith(os.environ["HOME"])


def test_class_outputs_are_ignored_by_git():
    paths = ["submitted/alice/practical8/model_parallel.py", "autograded/alice/x", "feedback/alice/x",
             "graded/summary.csv", "gradebook.db", "grades.csv", "release/practical8/x", "doctor/doctor.md"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(done.stdout.split()) == sorted(paths)


@pytest.mark.parametrize("command", ["grade", "timeline", "merge"])
def test_each_subcommand_help_says_what_it_does_with_an_example(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "example" in text and "--course-dir" in text
    if command == "timeline":
        assert "reference solution" in text
    if command == "merge":
        assert "the --out folders of the shards" in text and "the folder to merge them into" in text


def test_a_class_of_one_says_what_was_graded_and_what_was_kept(tmp_path, capsys):
    student = tmp_path / "submitted" / "ann" / "practical8"
    student.mkdir(parents=True)
    (student / "model_parallel.py").write_text((REPO / "assignment" / "practical8" / "model_parallel.py").read_text())
    argv = ["grade", str(tmp_path / "submitted"), "--out", str(tmp_path / "graded"), "--devices", "sim"]
    assert main(argv) == main(argv + ["--force"]) == main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("Class report: 1 student in") == 3  # a class of one is one submission, reported as a class
    lines = [line for line in out.splitlines() if line.startswith("graded ")]
    assert [line.split(";")[0] if "kept" not in line else line.split("; summary")[0] for line in lines] == [
        "graded 1 submission", "graded 1 submission (--force: every one again)",
        "graded 0 submissions; kept 1 graded earlier (unchanged since; --force grades them again)"]


def test_report_prints_the_class_report_of_a_graded_folder_or_says_what_is_missing(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "graded").mkdir()
    assert main(["report", str(tmp_path / "graded")]) == 2
    assert "no graded students here" in capsys.readouterr().err
