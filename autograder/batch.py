"""Grade a whole collected tree: ``submitted/<student>/<assignment>/model_parallel.py`` -> OUT_DIR.

Writes ``OUT_DIR/<student>/`` (``reports.write_student``) and ``OUT_DIR/summary.csv`` (student, total, one
column per check, flags to review). A submission that cannot be graded gets a result that says why; it never takes
the batch down. ``mode`` ("cuda" or "sim") is resolved once by the caller (``devices.resolve``) and passed down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import queue
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from unittest import mock

from .contract import MODULE_FILE
from .devices import require_mode
from .grading import Report, grade_all
from .reports import read_student, write_student, write_summary
from .rubric import Rubric
from .sandbox import start_warm_server
from .sandbox.cuda_layers import SAID_DIR
from .sandbox.intake import NotAPlainFile, linked_folder, read_module
from .sandbox.limits import Limits
from .simgpu.profiles import DEFAULT_GPU

LOST = "the grading process stopped"  # why a student held by a grading process that died was not graded


def find_submissions(root: Path, assignment: str) -> dict[str, Path]:
    """student -> folder, for nbgrader's ``root/<student>/<assignment>/`` or plain ``root/<student>/``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of submissions")
    found = {}
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        nested = student_dir / assignment
        found[student_dir.name] = nested if nested.is_dir() else student_dir
    if not found:
        raise FileNotFoundError(f"{root}: no student folders here (expected {root}/<student>/{assignment}/"
                                f"{MODULE_FILE})")
    return found


def grade_stream(todo: Iterable[tuple[str, Path]], rubric: Rubric, mode: str, limits: Limits | None,
                 on_report: Callable[[Report], None], sim_gpu: str = DEFAULT_GPU) -> None:
    """Grade each ``(student, folder)`` in one graders' session; never raises: whatever goes wrong becomes
    the affected students' failed checks, with the reason, and ``on_report`` gets every student's report."""
    pending, in_flight = iter(todo), []

    def gradable() -> Iterable[tuple[str, Path]]:
        for student, folder in pending:
            if (refused := linked_folder(folder, student)) is not None:  # it would grade where the link points
                on_report(Report.all_failed(student, rubric, mode, str(refused), sim_gpu))
                continue
            if not os.path.lexists(folder / MODULE_FILE):  # a link or a FIFO is refused with its own line (intake)
                on_report(Report.all_failed(student, rubric, mode, f"No {MODULE_FILE} was found in your submission "
                                            f"({folder.name}/); submit the file with this exact name.", sim_gpu))
                continue
            in_flight[:] = [student]
            yield student, folder

    def reported(report: Report) -> None:
        in_flight.clear()
        on_report(report)

    try:
        grade_all(gradable(), rubric, mode, limits, reported, sim_gpu)
    except Exception as exc:  # noqa: BLE001 - the graders could not run at all: say so to everyone left
        for student in [*in_flight, *(student for student, _ in pending)]:
            on_report(Report.could_not_grade(student, rubric, mode, f"{type(exc).__name__}: {exc}", sim_gpu))


def fingerprint(folder: Path, rubric: Rubric, mode: str, sim_gpu: str) -> str:
    """What a result depends on: the submission, the rubric, the devices, the graders and probes. Same -> skip on
    re-run."""
    digest = hashlib.sha256(f"{mode} {sim_gpu if mode == 'sim' else ''}".encode())
    try:
        digest.update(read_module(folder))  # never through a link (intake.py)
    except NotAPlainFile as exc:
        digest.update(str(exc).encode())
    digest.update(repr(rubric.checks).encode())
    digest.update(rubric.tamper.encode())  # a flagged submission's score follows the policy
    package = Path(__file__).resolve().parent
    judged_by = [*package.glob("graders/*.py"), *package.glob("sandbox/*.py"), *package.glob("simgpu/*.py"),
                 *(package / name for name in ("contract.py", "busy.py"))]
    for path in sorted(judged_by):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def select_shard(students: list[str], shard: str | None) -> list[str]:
    """``shard`` "I/N" (1-based): every N-th student starting at the I-th, so N jobs split the class."""
    if shard is None:
        return students
    try:
        index, count = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 2/8), got {shard!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"--shard {shard}: I must be between 1 and N")
    return students[index - 1::count]


def _serve_queue(tasks, results, rubric: Rubric, mode: str, sim_gpu: str = DEFAULT_GPU,
                 limits: Limits | None = None) -> None:
    """A pool process: one graders' session for every student it takes from ``tasks`` (until None)."""
    start_warm_server()  # first: it imports torch while this process loads pytest and the graders
    me = os.getpid()

    def todo() -> Iterable[tuple[str, Path]]:
        while (task := tasks.get()) is not None:
            results.put(("started", me, task[0]))
            yield task[0], Path(task[1])

    # N pool processes share the cores: one torch thread per submission beats oversubscription.
    grade_stream(todo(), rubric, mode, dataclasses.replace(limits or Limits(), threads=1),
                 lambda report: results.put(("done", me, report)), sim_gpu)


def _grade_in_pool(todo: dict[str, Path], rubric: Rubric, mode: str, jobs: int,
                   on_report: Callable[[Report], None], serve: Callable[..., None] = _serve_queue,
                   sim_gpu: str = DEFAULT_GPU, limits: Limits | None = None) -> None:
    """Grade ``todo`` in ``jobs`` processes that pull students from one queue; each report arrives as soon
    as it is made. Nothing from student code crosses these queues: only names and our own Reports."""
    spawn = multiprocessing.get_context("spawn")
    tasks, results = spawn.Queue(), spawn.Queue()
    for student, folder in todo.items():
        tasks.put((student, str(folder)))
    for _ in range(jobs):
        tasks.put(None)
    workers = [spawn.Process(target=serve, args=(tasks, results, rubric, mode, sim_gpu, limits))
               for _ in range(jobs)]
    said = tempfile.TemporaryDirectory(prefix="practical8-said-")  # one machine-problem line per run (cuda_layers)
    # OPENBLAS_NUM_THREADS: the graders' small products need no spinning helper threads.
    with mock.patch.dict(os.environ, OPENBLAS_NUM_THREADS="1", **{SAID_DIR: said.name}):
        for worker in workers:
            worker.start()
    left, in_flight = set(todo), {}
    try:
        while left:
            try:
                kind, pid, payload = results.get(timeout=1.0)
            except queue.Empty:
                alive = {w.pid for w in workers if w.is_alive()}
                lost = [in_flight.pop(pid) for pid in list(in_flight) if pid not in alive]  # a grading process died
                if not alive:  # and no process is left for the students still queued
                    lost += sorted(left - set(lost))
                for student in lost:
                    left.discard(student)
                    on_report(Report.could_not_grade(student, rubric, mode, LOST, sim_gpu))
                continue
            if kind == "started":
                in_flight[pid] = payload
            elif payload.submission in left:
                in_flight.pop(pid, None)
                left.discard(payload.submission)
                on_report(payload)
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
        said.cleanup()


def grade_class(root: Path, out_dir: Path, rubric: Rubric, mode: str, jobs: int = 1,
                force: bool = False, shard: str | None = None, sim_gpu: str = DEFAULT_GPU,
                release_hidden: bool = False, limits: Limits | None = None) -> list[Report]:
    """Grade every submission under ``root`` (or one shard of them) into ``out_dir``; resumable. Returns the
    reports of the students graded now; ``out_dir/summary.csv`` covers every student graded there so far.

    Each student's files are written the moment that student is graded, so an interrupted run loses
    nothing; a re-run skips students whose fingerprint is unchanged (``force`` re-grades them) and grades
    again those whose grading could not run.
    """
    from tqdm import tqdm

    require_mode(mode)
    out_dir.mkdir(parents=True, exist_ok=True)
    submissions = find_submissions(root, rubric.assignment)
    todo, reports, kept = {}, [], {}
    for student in select_shard(sorted(submissions), shard):
        folder, stamp = submissions[student], out_dir / student / "fingerprint"
        key = fingerprint(folder, rubric, mode, sim_gpu)
        earlier = read_student(out_dir / student, rubric) if stamp.is_file() and stamp.read_text() == key else None
        if earlier is not None and not force:
            kept[student] = earlier
            write_student(earlier, out_dir, release_hidden)  # the feedback follows this run's --release-hidden
            continue
        todo[student] = (folder, key)

    def finish(report: Report) -> None:
        write_student(report, out_dir, release_hidden)
        stamp = out_dir / report.submission / "fingerprint"
        if report.not_graded:  # our failure, not the student's: the next run grades this student again
            stamp.unlink(missing_ok=True)
        else:
            stamp.write_text(todo[report.submission][1])
        reports.append(report)

    progress = tqdm(total=len(todo), desc="grading", unit="submission")

    def on_report(report: Report) -> None:
        finish(report)
        progress.update()

    folders = {student: folder for student, (folder, _) in todo.items()}
    if jobs <= 1 or len(todo) <= 1:
        grade_stream(folders.items(), rubric, mode, limits, on_report, sim_gpu)
    else:
        _grade_in_pool(folders, rubric, mode, jobs, on_report, sim_gpu=sim_gpu, limits=limits)
    progress.close()
    write_summary([*_graded_before(out_dir, rubric, exclude=set(kept) | set(todo)), *kept.values(), *reports],
                  out_dir / "summary.csv", rubric)
    return reports


def _graded_before(out_dir: Path, rubric: Rubric, exclude: set[str] = frozenset()) -> list[Report]:
    """The reports already in ``out_dir`` (other shards' students, earlier runs), but for ``exclude``."""
    found = (read_student(p, rubric) for p in sorted(out_dir.iterdir()) if p.is_dir() and p.name not in exclude)
    return [report for report in found if report is not None]


def merge(sources: list[Path], out_dir: Path, rubric: Rubric) -> Path:
    """Collect the students of several (shard) output folders into ``out_dir`` and write the class summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if not source.is_dir():
            raise FileNotFoundError(f"{source}: no such output folder to merge")
        for student_dir in sorted(p for p in source.iterdir() if read_student(p, rubric) is not None):
            target = out_dir / student_dir.name
            if target.resolve() != student_dir.resolve():
                shutil.copytree(student_dir, target, dirs_exist_ok=True)
    return write_summary(_graded_before(out_dir, rubric), out_dir / "summary.csv", rubric)
