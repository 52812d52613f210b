"""Grade submissions: run the hidden pytest graders against each and collect one verdict per check.

    report = grade(Path("submission/"), load_rubric(), "sim")          # mode: "sim" or "cuda" (devices.py)
    grade_all([("alice", Path("alice/")), ...], rubric, "sim", on_report=print)   # one pytest session
    for name, report in grade_samples(rubric, "sim"): ...             # the reference and the sample mutants

The graders run here, in the trusted process; each submission runs in its own process (``sandbox``).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .contract import MODULE_FILE
from .devices import require_mode
from .graders import PLUGIN_NAME
from .rubric import Check, Rubric, RubricError
from .sandbox import SubmissionProcess, start_warm_server
from .sandbox.client import GradingMachineProblem
from .sandbox.intake import NotAPlainFile, read_module
from .sandbox.limits import Limits
from .sandbox.scan import combine, scan_source
from .sandbox.unsupported import not_simulated
from .simgpu.profiles import DEFAULT_GPU, gpu_profile

GRADERS_DIR = Path(__file__).resolve().parent / "graders"
TIMEOUT_MARGIN_S = 15  # pytest-timeout is the outer guard; the probe's own limit normally fires first
# The graders' pytest session loads only the plugins it uses: no third-party plugin installed on the grading
# machine can change a verdict, and the session starts faster (entry points are not scanned for each one).
_PLUGINS = ["-p", "pytest_timeout"]
# Built-in plugins the graders do not use; unraisableexception alone costs a 0.3 s gc.collect() per submission.
_NOT_NEEDED = [arg for name in ("cacheprovider", "warnings", "unraisableexception", "threadexception", "logging",
                                "faulthandler", "doctest", "junitxml", "pastebin", "setuponly", "setupplan",
                                "stepwise", "unittest", "tmpdir", "monkeypatch", "recwarn", "debugging",
                                "legacypath") for arg in ("-p", f"no:{name}")]


@dataclass(frozen=True)
class CheckResult:
    check: Check
    passed: bool
    message: str
    # The grader's line that failed ("test_timing.py:57"), for the autograder's own tests (which assertion each mutant
    # trips); never written to any report, never shown to anyone.
    where: str | None = field(default=None, compare=False, repr=False)

    @property
    def score(self) -> float:
        return self.check.points if self.passed else 0.0


@dataclass
class Report:
    submission: str
    mode: str  # "cuda" (real GPUs) or "sim"
    results: list[CheckResult] = field(default_factory=list)
    not_graded: str | None = None  # why grading itself could not run (ours, not the student's): grade it again
    sim_gpu: str | None = None  # with mode "sim": the simulated GPU's profile (simgpu/profiles.py); else None
    # What the submission did that graded code must not ({"event", "where": "model_parallel.py:12", "detail"}): the
    # static scan's findings and the audit hook's events. grading.yml's `tamper` says what a flag costs.
    flags: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode != "sim":
            self.sim_gpu = None  # real GPUs: no profile, whatever the caller's default

    @property
    def graded_on(self) -> str:
        """"2 real GPUs" or "2 simulated NVIDIA A100-SXM4-80GB": for every report a person reads."""
        if self.mode == "cuda":
            return "2 real GPUs"
        return f"2 simulated {gpu_profile(self.sim_gpu).name}" if self.sim_gpu else "2 simulated GPUs"

    @classmethod
    def all_failed(cls, submission: str, rubric: Rubric, mode: str, why: str, sim_gpu: str | None = None) -> Report:
        """Every enabled check failed for one reason the student can act on (e.g. the file is missing)."""
        return cls(submission, mode, [CheckResult(c, False, why) for c in rubric.enabled], sim_gpu=sim_gpu)

    @classmethod
    def could_not_grade(cls, submission: str, rubric: Rubric, mode: str, reason: str,
                        sim_gpu: str | None = None) -> Report:
        """Grading itself failed (ours, not the student's code): every check says so, and a re-run grades again."""
        why = f"Grading could not run ({reason}). Ask your instructor to grade it again."
        report = cls.all_failed(submission, rubric, mode, why, sim_gpu)
        report.not_graded = why
        return report

    def to_dict(self) -> dict[str, Any]:
        """Plain data (report.json): what a resumed or merged class run reads back instead of grading again."""
        return {"submission": self.submission, "mode": self.mode, "sim_gpu": self.sim_gpu,
                "not_graded": self.not_graded, "flags": self.flags,
                "results": [{"check": r.check.id, "passed": r.passed, "message": r.message} for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], rubric: Rubric) -> Report:
        """The report ``to_dict`` wrote, with its checks as ``rubric`` defines them now."""
        results = [CheckResult(rubric.check(r["check"]), r["passed"], r["message"]) for r in data["results"]]
        return cls(data["submission"], data["mode"], results, data.get("not_graded"), data.get("sim_gpu"),
                   [dict(flag) for flag in data.get("flags", [])])

    @property
    def score(self) -> float:
        return sum(r.score for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.check.points for r in self.results)

    def failed(self) -> set[str]:
        return {r.check.id for r in self.results if not r.passed}

    def apply_tamper_policy(self, policy: str) -> None:
        """grading.yml's ``tamper``: "review" keeps the scores (the flags mark it for review); "zero" fails every
        check of a flagged submission, each message saying why, with the evidence."""
        if policy != "zero" or not self.flags:
            return
        shown = "; ".join(evidence(flag) for flag in self.flags[:5])
        more = f" (and {len(self.flags) - 5} more)" if len(self.flags) > 5 else ""
        why = (f"This submission scores 0 because it was flagged for review: it does what graded code must not "
               f"({shown}{more}), and this course scores flagged submissions 0. If this is a mistake, ask your "
               "instructor to review it.")
        self.results = [CheckResult(r.check, False, why) for r in self.results]


def evidence(flag: dict[str, str]) -> str:
    """One flag as a person reads it: ``sys._getframe at model_parallel.py:12: `caller = sys._getframe(2)```."""
    detail = f": `{flag['detail']}`" if flag.get("detail") else ""
    return f"{flag.get('event', '?')} at {flag.get('where', '?')}{detail}"


class GradingPlugin:
    """Runs the graders' items once per submission, in one pytest session, and collects a verdict per check.

    The session (configuration, plugins, fixtures, collection) is set up once however many submissions
    pass through it; ``submission`` is the one being graded, read by the graders' ``observe`` fixture.
    """

    def __init__(self, rubric: Rubric, mode: str, limits: Limits | None,
                 submissions: Iterable[tuple[str, Path]], on_report: Callable[[Report], None],
                 sim_gpu: str = DEFAULT_GPU, seed: int | None = None) -> None:
        self.rubric, self.mode, self.limits = rubric, mode, limits
        self.submissions, self.on_report = submissions, on_report
        self.sim_gpu = gpu_profile(sim_gpu).key
        # The graders draw their workloads from this: fresh for every grading run, so no submission can know
        # them in advance; fixed only where a test must see two runs alike.
        self.seed = secrets.randbits(64) if seed is None else seed
        self.submission: SubmissionProcess | None = None
        self.outcomes: dict[str, tuple[bool, str]] = {}
        self.failed_at: dict[str, str | None] = {}  # check id -> the grader's line that failed (CheckResult.where)
        self.undecided: dict[str, str] = {}  # check id -> why its grader decided nothing (skipped, xfail)
        self.error: str | None = None
        self.reported = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        for name, folder in self.submissions:
            self.on_report(self._grade_one(session.items, name, Path(folder)))
            self.reported += 1
        return True

    def _grade_one(self, items: list[pytest.Item], name: str, folder: Path) -> Report:
        self.outcomes, self.failed_at, self.undecided = {}, {}, {}
        try:  # a plain file of the submission's own, read once through a descriptor that followed no link
            source = read_module(folder)
        except NotAPlainFile as exc:  # the student's to fix, with one clear line
            return Report.all_failed(name, self.rubric, self.mode, str(exc), self.sim_gpu)
        try:
            found = scan_source(source.decode("utf-8", "replace"), MODULE_FILE)  # at intake, before any of it runs
            left = self.mode == "sim" and not_simulated(source.decode("utf-8", "replace"), MODULE_FILE)
            if left:  # torch.compile, CUDA graphs, custom kernels: for real GPUs to grade, never failed here
                report = Report.all_failed(name, self.rubric, self.mode, left, self.sim_gpu)
                report.not_graded, report.flags = left, found
                return report
            with SubmissionProcess(folder, self.mode, self.limits, self.rubric.submission_timeout,
                                   self.sim_gpu) as submission:
                self.submission = submission
                try:
                    for i, item in enumerate(items):  # what pytest's own loop does, once per submission
                        nextitem = items[i + 1] if i + 1 < len(items) else None
                        item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                        if submission.machine_problem:  # decided by the trusted side (client.py): grade it again
                            raise GradingMachineProblem(submission.machine_problem)
                finally:  # every way out of a check tears it down, or the next submission's first check fails
                    _tear_down(items)
                flags = combine(found, submission.read_flags(), folder / MODULE_FILE)
        except GradingMachineProblem as exc:
            return Report.could_not_grade(name, self.rubric, self.mode, f"grading machine problem: {exc}",
                                          self.sim_gpu)
        except Exception as exc:  # noqa: BLE001 - this submission's checks fail with the reason; the next goes on
            return Report.could_not_grade(name, self.rubric, self.mode, f"{type(exc).__name__}: {exc}", self.sim_gpu)
        finally:
            self.submission = None
        if self.undecided:  # the graders' fault, not the student's: no verdict stands until they are fixed
            return Report.could_not_grade(name, self.rubric, self.mode, "; ".join(self.undecided.values()),
                                          self.sim_gpu)
        report = Report(name, self.mode, sim_gpu=self.sim_gpu, flags=flags)
        for check in self.rubric.enabled:
            passed, message = self.outcomes.get(check.id, (False, "The check did not run."))
            report.results.append(CheckResult(check, passed, message, self.failed_at.get(check.id)))
        report.apply_tamper_policy(self.rubric.tamper)
        return report

    def timeout_for(self, item: pytest.Item) -> float:
        return self.rubric.check(_check_id(item)).timeout

    def pytest_collectreport(self, report) -> None:
        if report.failed and self.error is None:
            self.error = f"the graders could not be loaded ({report.nodeid}): {report.longreprtext[-1500:]}"

    def pytest_collection_modifyitems(self, session, config, items: list[pytest.Item]) -> None:
        if self.error:
            raise pytest.UsageError(self.error)
        ids = {}
        for item in items:
            check_id = _check_id(item)
            if check_id is None:
                self.error = f"grader {item.nodeid} has no @pytest.mark.check(...) marker"
                raise pytest.UsageError(self.error)
            ids[check_id] = item
        try:
            self.rubric.require_graders(set(ids))
        except RubricError as exc:
            self.error = str(exc)
            raise pytest.UsageError(self.error) from None
        enabled = {c.id for c in self.rubric.enabled}
        items[:] = [item for item in items if _check_id(item) in enabled]
        for item in items:
            item.add_marker(pytest.mark.timeout(self.timeout_for(item) + TIMEOUT_MARGIN_S))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        check_id = _check_id(item)
        if report.skipped or item.get_closest_marker("xfail") is not None:
            # Only a passed grader earns points: one that skips, or expects to fail, decides nothing (pytest would
            # count it as passed, or as not failed) - an error of the graders.
            self.undecided.setdefault(check_id, _undecided(check_id, report))
        elif report.failed and self.outcomes.get(check_id, (True,))[0]:  # the first failure is the message
            self.outcomes[check_id] = (False, _message(call))
            self.failed_at[check_id] = _grader_line(call)
        elif report.when == "call" and check_id not in self.outcomes:
            self.outcomes[check_id] = (True, "")


def _tear_down(items: list[pytest.Item]) -> None:
    """Tear down whatever the graders set up (pytest's own end of session does the same): after the last item it
    is already done; after a submission left early (a machine problem, an error of ours) it is not."""
    if items:
        items[0].session._setupstate.teardown_exact(None)


def _check_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("check")
    return marker.args[0] if marker else None


def _undecided(check_id: str, report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail") or not report.skipped:
        return f"the grader of {check_id} is marked xfail, so it cannot decide the check"
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return f"the grader of {check_id} was skipped ({reason.removeprefix('Skipped: ')})"


def _grader_line(call: pytest.CallInfo) -> str | None:
    """``file.py:line``: the innermost frame in the graders' folder when the failure was raised (CheckResult.where)."""
    if call.excinfo is None:
        return None
    for entry in reversed(call.excinfo.traceback):
        path = Path(str(entry.path))
        if path.parent == GRADERS_DIR:
            return f"{path.name}:{entry.lineno + 1}"  # pytest counts lines from 0
    return None


def _message(call: pytest.CallInfo) -> str:
    """The student-facing part of a failure: the message only, never the graders' source or traceback."""
    if call.excinfo is None:
        return "The check failed."
    exc = call.excinfo.value
    text = getattr(exc, "msg", None) or str(exc)
    if isinstance(exc, AssertionError):
        text = text.split("\nassert ")[0]
    if "Timeout >" in text:
        return "The check ran out of time; your code may contain an infinite loop or a very slow step."
    if not isinstance(exc, (AssertionError, pytest.fail.Exception)):
        text = f"The grader could not evaluate your submission ({type(exc).__name__}: {text})."
    return text.strip()


def grade(submission_dir: Path, rubric: Rubric, mode: str, limits: Limits | None = None,
          sim_gpu: str = DEFAULT_GPU, seed: int | None = None) -> Report:
    """Run every enabled check of ``rubric`` against ``submission_dir``; one ``CheckResult`` per check."""
    submission_dir = require_submission(submission_dir)
    reports: list[Report] = []
    grade_all([(str(submission_dir), submission_dir)], rubric, mode, limits, reports.append, sim_gpu, seed)
    return reports[0]


def require_submission(folder: Path) -> Path:
    """``folder`` if it holds the student's module, else a FileNotFoundError that says what to point to."""
    folder = Path(folder)
    if not (folder / MODULE_FILE).is_file():
        raise FileNotFoundError(f"{folder}: no {MODULE_FILE} here. Point to the folder that holds the student's "
                                f"{MODULE_FILE}.")
    return folder


def grade_samples(rubric: Rubric, mode: str, sim_gpu: str = DEFAULT_GPU,
                  limits: Limits | None = None) -> list[tuple[str, Report]]:
    """(name, report) for the reference and each sample mutant; a report's title names the mistake made."""
    import tempfile

    from .samples import REFERENCE, SAMPLES

    with tempfile.TemporaryDirectory() as tmp:
        folders = [("reference", REFERENCE.parent)] + [(m.name, m.write(Path(tmp) / m.name)) for m in SAMPLES]
        reports: list[Report] = []
        grade_all(folders, rubric, mode, limits, on_report=reports.append, sim_gpu=sim_gpu)
    titles = ["reference"] + [f"{m.name} ({m.bug})" for m in SAMPLES]
    for report, title in zip(reports, titles, strict=True):  # one session grades them in order
        report.submission = title
    return [(name, report) for (name, _), report in zip(folders, reports, strict=True)]


def grade_all(submissions: Iterable[tuple[str, Path]], rubric: Rubric, mode: str,
              limits: Limits | None = None, on_report: Callable[[Report], None] = lambda report: None,
              sim_gpu: str = DEFAULT_GPU, seed: int | None = None) -> None:
    """Grade each ``(name, folder)`` in turn, in one pytest session; ``on_report`` gets each report at once.

    ``submissions`` may be a generator (a queue of work): it is read one submission at a time. A submission
    that cannot be graded gets a report saying why; a broken rubric or graders stop everything (RubricError).
    """
    require_mode(mode)
    start_warm_server()  # imports torch there while this process loads the graders
    plugin = GradingPlugin(rubric, mode, limits, submissions, on_report, sim_gpu, seed)
    args = [str(GRADERS_DIR), "-c", str(GRADERS_DIR / "pytest.ini"), "--rootdir", str(GRADERS_DIR), "-q",
            "-s", "--tb=no", "--no-header", *_PLUGINS, *_NOT_NEEDED]
    said = io.StringIO()  # pytest's own words (e.g. "ERROR: ..."): our error says it once, or quotes it
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said), _quiet_env():
        exit_code = pytest.main(args, plugins=[_Named(plugin)])
    if plugin.error:
        raise RubricError(plugin.error)
    if exit_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise RuntimeError(f"the graders' pytest session in {GRADERS_DIR} stopped ({exit_code.name}) after "
                           f"{plugin.reported} submission(s); grading could not run. {said.getvalue()[-1500:]}")


class _Named:
    """Registers the plugin under a fixed name so the graders' conftest can find it."""

    def __init__(self, plugin: GradingPlugin) -> None:
        self.plugin = plugin

    def pytest_configure(self, config) -> None:
        config.pluginmanager.register(self.plugin, PLUGIN_NAME)


@contextlib.contextmanager
def _quiet_env() -> Any:
    """No PYTEST_ADDOPTS from the caller's environment, and no plugin autoloading, during grading."""
    saved = {name: os.environ.pop(name, None) for name in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
