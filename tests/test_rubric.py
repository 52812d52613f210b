"""grading.yml: ours is sound; malformed ones are refused with a message naming the problem."""

import copy

import pytest
import yaml
from conftest import REPO

from autograder.grading import GradingPlugin, grade
from autograder.rubric import RubricError, load_rubric, parse_rubric

GOOD = yaml.safe_load((REPO / "grading.yml").read_text())


def test_our_rubric_totals_100_with_visible_and_hidden_checks():
    rubric = load_rubric()
    assert rubric.max_score == 100
    assert {c.visibility for c in rubric.checks} == {"visible", "hidden"}


def _broken(edit):
    data = copy.deepcopy(GOOD)
    edit(data)
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(colour="red"), "unknown key(s) 'colour' in top level"),
    (lambda d: d["checks"]["placement"].update(pointz=3), "unknown key(s) 'pointz' in check 'placement'"),
    (lambda d: d["checks"]["placement"].update(points=-5), "check 'placement': points must be a number >= 0"),
    (lambda d: d["checks"]["placement"].update(visibility="secret"), "visibility must be one of"),
    (lambda d: d["checks"]["placement"].update(timeout=0), "timeout must be a number of seconds > 0"),
    (lambda d: d["checks"]["placement"].pop("title"), "check 'placement' has no 'title'"),
    (lambda d: d.update(total_points=90), "add up to 100, but total_points is 90"),
    (lambda d: d.update(checks=[]), "'checks' must map check ids"),
    (lambda d: d.update(tamper="strict"), "tamper must be review (flagged submissions keep their scores and are marked "
                                          "for review) or zero (flagged submissions score 0), got 'strict'"),
])
def test_malformed_rubric_is_refused_by_name(edit, message):
    with pytest.raises(RubricError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rubric(_broken(edit))


def test_missing_and_invalid_files_are_named(tmp_path):
    with pytest.raises(RubricError, match="rubric file not found"):
        load_rubric(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("checks: [unclosed")
    with pytest.raises(RubricError, match="not valid YAML"):
        load_rubric(bad)


def test_check_without_grader_is_refused():
    rubric = parse_rubric(_broken(lambda d: (d["checks"].update(extra={"title": "x", "points": 0}))))
    with pytest.raises(RubricError, match="check id\\(s\\) with no grader: extra"):
        grade(REPO / "solutions" / "practical8", rubric, "sim")


def test_grader_without_rubric_entry_is_refused():
    data = _broken(lambda d: d["checks"].pop("trace_prints"))
    data["total_points"] = 95
    with pytest.raises(RubricError, match="grader\\(s\\) with no entry in the rubric: trace_prints"):
        grade(REPO / "solutions" / "practical8", parse_rubric(data), "sim")


def test_disabled_check_is_not_run_or_counted(monkeypatch):
    data = _broken(lambda d: d["checks"]["trace_prints"].update(enabled=False))
    data["total_points"] = 95
    rubric = parse_rubric(data)
    ran: list[str] = []  # the check ids of the graders the session runs for the submission
    grade_one = GradingPlugin._grade_one

    def watched(self, items, name, folder):
        ran.extend(item.get_closest_marker("check").args[0] for item in items)
        return grade_one(self, items, name, folder)

    monkeypatch.setattr(GradingPlugin, "_grade_one", watched)
    report = grade(REPO / "solutions" / "practical8", rubric, "sim")
    assert "trace_prints" not in ran and set(ran) == {c.id for c in rubric.enabled}  # not run
    assert "trace_prints" not in {r.check.id for r in report.results} and report.score == report.max_score == 95


def test_docs_rubric_table_matches_grading_yml():
    readme = (REPO / "docs" / "rubric.md").read_text()
    for check in load_rubric().checks:
        row = f"| `{check.id}` | {check.points:g} | {check.visibility} |"
        assert row in readme, f"docs/rubric.md's table is out of date for {check.id}: expected a row {row!r}"
