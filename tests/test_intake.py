"""Intake reads only a plain file of the submission's own (issue 23, item 3): a symbolic link (to the course's
solutions, or a student folder linked to another's), a hard link, a FIFO or a device is refused with one clear line
and scores nothing; links elsewhere in the folder (a student's virtual environment) are left alone."""

import os
import stat
import subprocess
import sys
import threading

import pytest
from conftest import REPO

from autograder.batch import fingerprint, grade_class
from autograder.samples import REFERENCE
from autograder.sandbox.intake import NotAPlainFile, copy_module, linked_folder, read_module

AS_ROOT = os.geteuid() == 0
SOLUTION = REPO / "solutions" / "practical8" / "model_parallel.py"


def _folder(tmp_path, name="s"):
    folder = tmp_path / name
    folder.mkdir(parents=True)
    return folder


def test_a_plain_file_is_read_and_copied(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model_parallel.py").write_text("x = 1\n")
    assert read_module(folder) == b"x = 1\n"
    copy_module(folder, tmp_path / "copy.py")
    assert (tmp_path / "copy.py").read_bytes() == b"x = 1\n" and not (tmp_path / "copy.py").is_symlink()


def test_a_relative_symbolic_link_to_the_solutions_is_refused(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model_parallel.py").symlink_to(os.path.relpath(SOLUTION, folder))
    with pytest.raises(NotAPlainFile, match=r"model_parallel.py is a symbolic link .* not graded") as refused:
        read_module(folder)
    assert "\n" not in str(refused.value)  # one line
    with pytest.raises(NotAPlainFile):  # the worker's copy follows no link either
        copy_module(folder, tmp_path / "copy.py")
    assert not (tmp_path / "copy.py").exists() or (tmp_path / "copy.py").stat().st_size == 0


def test_a_hard_link_is_refused(tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(REFERENCE.read_text())
    folder = _folder(tmp_path)
    os.link(outside, folder / "model_parallel.py")
    with pytest.raises(NotAPlainFile, match="hard link"):
        read_module(folder)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    folder = _folder(tmp_path)
    os.mkfifo(folder / "model_parallel.py")
    done = []
    reader = threading.Thread(target=lambda: done.append(pytest.raises(NotAPlainFile, read_module, folder)))
    reader.start()
    reader.join(10)
    assert done and "is a FIFO" in str(done[0].value)


@pytest.mark.skipif(not AS_ROOT, reason="only root can make a device node")
def test_a_device_is_refused(tmp_path):
    folder = _folder(tmp_path)
    os.mknod(folder / "model_parallel.py", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    with pytest.raises(NotAPlainFile, match="is a device"):
        read_module(folder)


def test_a_linked_student_or_assignment_folder_is_found(tmp_path):
    real = _folder(tmp_path, "real")
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "practical8").symlink_to(real)
    (tmp_path / "bob").symlink_to(tmp_path / "alice")
    assert "practical8/ is a symbolic link" in str(linked_folder(tmp_path / "alice" / "practical8", "alice"))
    assert "bob/ is a symbolic link" in str(linked_folder(tmp_path / "bob", "bob"))
    assert linked_folder(real, "real") is None


def test_the_fingerprint_never_reads_through_a_link(fast_rubric, tmp_path):
    linked, plain = _folder(tmp_path, "a"), _folder(tmp_path, "b")
    (linked / "model_parallel.py").symlink_to(SOLUTION)
    (plain / "model_parallel.py").write_text(SOLUTION.read_text())
    assert fingerprint(linked, fast_rubric, "sim", "a100") != fingerprint(plain, fast_rubric, "sim", "a100")


def test_a_class_run_scores_links_zero_and_leaves_other_links_alone(fast_rubric, tmp_path):
    """The attack that scored 100 (a relative link to solutions/) scores 0 with the one line; a student folder linked
    to another's too; an honest submission with a linked virtual environment beside its file gets 100."""
    root = tmp_path / "submitted"
    cheat = _folder(root, "cheat/practical8")
    (cheat / "model_parallel.py").symlink_to(os.path.relpath(SOLUTION, cheat))
    honest = _folder(root, "honest/practical8")
    (honest / "model_parallel.py").write_text(REFERENCE.read_text())
    (honest / ".venv").symlink_to(sys.prefix)  # links elsewhere in the folder: never judged
    (root / "copycat").mkdir()
    (root / "copycat" / "practical8").symlink_to(honest)
    reports = {r.submission: r for r in grade_class(root, tmp_path / "graded", fast_rubric, "sim")}
    for name in ("cheat", "copycat"):
        assert reports[name].score == 0 and not reports[name].not_graded
        assert all("symbolic link" in r.message and "not graded" in r.message for r in reports[name].results)
    assert reports["honest"].score == 100 and not reports["honest"].flags


@pytest.mark.skipif(not AS_ROOT, reason="the throwaway user is made by root")
def test_as_a_normal_user_a_link_is_refused_too(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model_parallel.py").symlink_to(SOLUTION)
    for path in (tmp_path, folder):
        path.chmod(0o755)
    code = ("import sys; from autograder.sandbox.intake import read_module, NotAPlainFile\n"
            "try:\n    read_module(sys.argv[1])\nexcept NotAPlainFile as e:\n    print('refused:', e)\n")
    done = subprocess.run([sys.executable, str(REPO / "tests" / "throwaway_user.py"), "4346", str(REPO),
                           str(tmp_path), "--", sys.executable, "-c", code, str(folder)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("refused: Your model_parallel.py is a symbolic link"), done.stderr[-2000:]
