"""The graders: full marks for the reference, zero for the stubs, and each mutant loses exactly its checks.

The mutants' and variants' reports come from the session's ``graded_samples`` / ``graded_part5`` (each graded once;
tests/test_assertion_coverage.py reads the same reports).
"""

import pytest
from conftest import REPO

from autograder.grading import grade
from autograder.samples import (
    ALL_CHECKS,
    MUTANTS,
    PIPELINE_CHECKS,
    PIPELINE_MUTANTS,
    PIPELINE_VARIANTS,
    TAMPERING_MUTANTS,
    VARIANTS,
)


def test_reference_scores_full_marks(grade_sim):
    report = grade_sim(REPO / "solutions" / "practical8")
    assert report.failed() == set(), {r.check.id: r.message for r in report.results if not r.passed}
    assert report.score == report.max_score == 100
    assert report.flags == []  # neither the scan nor the audit hook (test_tamper.py) finds anything to review


def test_stubs_score_zero_and_say_not_implemented(grade_sim):
    report = grade_sim(REPO / "assignment" / "practical8")
    assert report.score == 0 and report.failed() == ALL_CHECKS
    assert all("is not implemented yet" in r.message and "YOUR CODE HERE" in r.message for r in report.results)


def test_there_are_at_least_fifteen_mutants():
    assert len(MUTANTS) >= 15


@pytest.mark.parametrize("mutant", [pytest.param(m, marks=pytest.mark.slow if m.slow else (), id=m.name)
                                    for m in MUTANTS + TAMPERING_MUTANTS])  # a hang spends its time limits: slow
def test_mutant_loses_exactly_its_checks(mutant, graded_samples):
    report = graded_samples.report(mutant)
    assert not report.not_graded, report.not_graded
    assert report.failed() == mutant.fails, {r.check.id: r.message for r in report.results if not r.passed}
    for result in report.results:
        if not result.passed:
            assert len(result.message) > 40, f"{result.check.id}: message too thin for a student: {result.message!r}"
    # an honest mistake is never flagged for review; one that reaches into the grader always is
    assert bool(report.flags) == mutant.flagged, report.flags
    first = next((r for r in report.results if not r.passed), None)
    assert mutant.says in (first.message if first else ""), (mutant.says, first and first.message)


def test_the_mistakes_whose_messages_pointed_elsewhere_have_their_message_stated():
    """zero_grad between backward and step, an optimizer missing a layer, the last iteration timed, a float16 model,
    a cut graph, loss tensors: each first message must name the mistake (asserted above)."""
    from autograder.samples import by_name

    for name in ("zero_grad_between", "optimizer_over_layer1", "times_last_iteration", "float16_model",
                 "detached_stage", "tensor_losses"):
        assert by_name(name).says, name


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda m: m.name)
def test_correct_variants_score_full_marks(variant, graded_samples):
    report = graded_samples.report(variant)
    assert not report.not_graded, report.not_graded
    assert report.failed() == set(), {r.check.id: r.message for r in report.results if not r.passed}
    assert report.flags == []  # written unusually is not tampering


def test_every_check_is_caught_by_some_honest_mutant():
    caught = set().union(*(m.fails for m in MUTANTS if m.name != "crash_at_import"))
    assert caught == ALL_CHECKS
    assert set().union(*(m.fails for m in PIPELINE_MUTANTS)) == PIPELINE_CHECKS


def test_reference_scores_full_marks_with_part5(fast_rubric):
    report = grade(REPO / "solutions" / "practical8", fast_rubric.with_enabled(PIPELINE_CHECKS), "sim")
    assert report.failed() == set(), {r.check.id: r.message for r in report.results if not r.passed}
    assert report.score == report.max_score == 120


@pytest.mark.parametrize("mutant", PIPELINE_MUTANTS, ids=lambda m: m.name)
def test_part5_mutant_loses_exactly_its_checks(mutant, graded_part5):
    report = graded_part5.report(mutant)
    assert not report.not_graded, report.not_graded
    assert report.failed() == mutant.fails, {r.check.id: r.message for r in report.results if not r.passed}


@pytest.mark.parametrize("variant", PIPELINE_VARIANTS, ids=lambda m: m.name)
def test_part5_variants_score_full_marks(variant, graded_part5):
    report = graded_part5.report(variant)
    assert not report.not_graded, report.not_graded
    assert report.failed() == set(), {r.check.id: r.message for r in report.results if not r.passed}


def test_one_session_grades_each_submission_on_its_own(fast_rubric, tmp_path):
    """Many submissions pass through one graders' session: a crash, an exit or a wrong answer in one leaves
    the verdicts of the next untouched."""
    from autograder.grading import grade_all
    from autograder.samples import by_name

    stream = ["no_sync", "crash_at_import", "exit_in_forward", "missing_relu"]
    submissions = [("first", REPO / "solutions" / "practical8")]
    submissions += [(name, by_name(name).write(tmp_path / name)) for name in stream]
    submissions += [("last", REPO / "solutions" / "practical8")]
    reports = []
    grade_all(iter(submissions), fast_rubric, "sim", on_report=reports.append)
    assert [r.submission for r in reports] == [name for name, _ in submissions]
    expected = [set(), *(by_name(name).fails for name in stream), set()]
    assert [r.failed() for r in reports] == expected


def test_the_grading_process_never_imports_torch():
    """Only the warm server and the submissions' processes import torch; the graders judge with NumPy, so a
    grading process starts in a fraction of a second and shares no torch state with student code."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from autograder.grading import grade; "
            "from autograder.rubric import load_rubric; "
            "report = grade(Path(sys.argv[1]), load_rubric(), 'sim'); "
            "assert report.score == 100, report.failed(); assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "solutions" / "practical8")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
