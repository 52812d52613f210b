"""What each reader sees: the student's feedback honours visibility; a message shared by several checks is said once."""

from autograder.grading import CheckResult, Report
from autograder.reports import feedback_markdown, table

NOT_IMPLEMENTED = "SimpleMPModel.__init__ is not implemented yet: it raised NotImplementedError."


def _report(fast_rubric, failing: dict[str, str]) -> Report:
    results = [CheckResult(c, c.id not in failing, failing.get(c.id, "")) for c in fast_rubric.enabled]
    return Report("ann", "sim", results, sim_gpu="a100")


def test_hidden_checks_appear_only_as_their_total_until_released(fast_rubric):
    report = _report(fast_rubric, {"direct_transfer": "The activation went through the CPU.",
                                   "placement": "layer2.weight is on cuda:0."})
    hidden = [c for c in fast_rubric.enabled if c.visibility != "visible"]
    student = feedback_markdown(report)
    assert "direct_transfer" not in student and "through the CPU" not in student
    assert f"hidden checks ({len(hidden)}), released later | {sum(c.points for c in hidden) - 10:g} / " \
           f"{sum(c.points for c in hidden):g}" in student
    assert "placement" in student and "layer2.weight is on cuda:0." in student  # visible: shown with its message
    released = feedback_markdown(report, release_hidden=True)
    assert "**direct_transfer**: The activation went through the CPU." in released and "hidden checks" not in released


def test_a_message_shared_by_several_checks_is_written_once(fast_rubric):
    report = _report(fast_rubric, {"placement": NOT_IMPLEMENTED, "output_device": NOT_IMPLEMENTED,
                                   "forward_values": NOT_IMPLEMENTED})
    assert feedback_markdown(report).count(NOT_IMPLEMENTED) == 1
    assert "**placement, output_device, forward_values**: " + NOT_IMPLEMENTED in feedback_markdown(report)
    text = table(report, width=400)
    assert text.count(NOT_IMPLEMENTED) == 1 and text.count("(as placement)") == 2
    assert "2 simulated NVIDIA A100-SXM4-80GB" in text


ESCAPES = "\x1b[2J\x1b]52;c;aGVsbG8=\x07\x9b31m\r\x00"  # clear screen, OSC 52 (clipboard), C1 CSI, CR, NUL


def _controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]


def test_control_characters_of_student_text_reach_no_report(fast_rubric, tmp_path):
    """A submission's exception message and flag evidence are its own text: no escape sequence reaches the
    instructor's terminal, the student's feedback, results.json, summary.csv or JUnit."""
    import json

    from autograder.reports import gradescope_results, write_junit, write_student, write_summary

    report = _report(fast_rubric, {"placement": f"boom{ESCAPES}\nnext line\tend",
                                   "direct_transfer": f"hidden{ESCAPES}"})
    report.flags = [{"event": f"sys._getframe{ESCAPES}", "where": "model_parallel.py:3", "detail": f"x{ESCAPES}"}]
    folder = write_student(report, tmp_path / "out", release_hidden=True)
    write_summary([report], tmp_path / "summary.csv", fast_rubric)
    write_junit([report], tmp_path / "junit.xml")
    texts = {"table": table(report, width=400), "feedback": feedback_markdown(report, release_hidden=True),
             "results": json.dumps(gradescope_results(report), ensure_ascii=False),
             "results.json": json.loads((folder / "results.json").read_text()),
             "feedback.md": (folder / "feedback.md").read_text(),
             "summary.csv": (tmp_path / "summary.csv").read_text(), "junit": (tmp_path / "junit.xml").read_text()}
    texts["results.json"] = json.dumps(texts["results.json"], ensure_ascii=False)
    for name, text in texts.items():
        assert _controls(text) == [], name
    assert "boom[2J]52;c;aGVsbG8=31m\nnext line\tend" in texts["feedback"]  # newline and tab stay
