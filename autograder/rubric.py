"""grading.yml -> a validated, frozen ``Rubric``. Every key is declared once here, with its default."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .contract import ASSIGNMENT
from .course import RUBRIC_FILE, course_file

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")  # Gradescope's values
TAMPER_POLICIES = ("review", "zero")  # what a submission flagged by the scan or the audit hook gets (sandbox/audit.py)
TOP_KEYS = {"assignment": "name of the assignment", "total_points": "the sum the points must reach",
            "submission_timeout": "seconds all checks of one submission may take together (default 300)",
            "defaults": "default values for every check", "checks": "check id -> settings",
            "tamper": "what a flagged submission gets: review (scores kept, marked for review; default) or zero"}
CHECK_KEYS = {"title": None, "points": None, "visibility": "visible", "timeout": 60.0, "enabled": True}


class RubricError(ValueError):
    """grading.yml is malformed or does not match the graders; the message names the problem."""


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    points: float
    visibility: str = "visible"
    timeout: float = 60.0
    enabled: bool = True


@dataclass(frozen=True)
class Rubric:
    assignment: str
    checks: tuple[Check, ...]
    source: str = "grading.yml"
    submission_timeout: float = 300.0
    tamper: str = "review"

    @property
    def enabled(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.enabled)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.enabled)

    def with_enabled(self, check_ids: set[str]) -> Rubric:
        """This rubric with ``check_ids`` enabled too (e.g. the optional Part 5)."""
        checks = tuple(replace(c, enabled=True) if c.id in check_ids else c for c in self.checks)
        return replace(self, checks=checks)

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(f"{self.source}: no check {check_id!r}")

    def require_graders(self, grader_ids: set[str]) -> None:
        """Every check has a grader and every grader has a check, or a RubricError naming them."""
        no_grader = sorted({c.id for c in self.checks} - grader_ids)
        no_entry = sorted(grader_ids - {c.id for c in self.checks})
        problems = []
        if no_grader:
            problems.append(f"check id(s) with no grader: {', '.join(no_grader)} "
                            f"(known graders: {', '.join(sorted(grader_ids))})")
        if no_entry:
            problems.append(f"grader(s) with no entry in the rubric: {', '.join(no_entry)}")
        if problems:
            raise RubricError(f"{self.source}: " + "; ".join(problems))


def load_rubric(path: Path | str | None = None) -> Rubric:
    """``path``, or the course directory's grading.yml (``course.py``)."""
    path = course_file(RUBRIC_FILE) if path is None else Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RubricError(f"{path}: rubric file not found") from None
    except yaml.YAMLError as exc:
        raise RubricError(f"{path}: not valid YAML: {exc}") from None
    return parse_rubric(data, str(path))


def parse_rubric(data: Any, source: str = "grading.yml") -> Rubric:
    def fail(message: str) -> RubricError:
        return RubricError(f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with keys " + ", ".join(TOP_KEYS))
    _reject_unknown(data, TOP_KEYS, "top level", fail)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise fail("'defaults' must be a mapping")
    _reject_unknown(defaults, CHECK_KEYS, "defaults", fail)
    raw_checks = data.get("checks")
    if not isinstance(raw_checks, dict) or not raw_checks:
        raise fail("'checks' must map check ids to their settings")
    checks = []
    for check_id, raw in raw_checks.items():
        if not isinstance(raw, dict):
            raise fail(f"check '{check_id}' must be a mapping with at least 'title' and 'points'")
        _reject_unknown(raw, CHECK_KEYS, f"check '{check_id}'", fail)
        values = {**{k: v for k, v in CHECK_KEYS.items() if v is not None}, **defaults, **raw}
        for required in ("title", "points"):
            if required not in values:
                raise fail(f"check '{check_id}' has no '{required}'")
        points, timeout = values["points"], values["timeout"]
        if not isinstance(points, (int, float)) or isinstance(points, bool) or points < 0:
            raise fail(f"check '{check_id}': points must be a number >= 0, got {points!r}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise fail(f"check '{check_id}': timeout must be a number of seconds > 0, got {timeout!r}")
        if values["visibility"] not in VISIBILITIES:
            raise fail(f"check '{check_id}': visibility must be one of {', '.join(VISIBILITIES)}, "
                       f"got {values['visibility']!r}")
        if not isinstance(values["enabled"], bool):
            raise fail(f"check '{check_id}': enabled must be true or false, got {values['enabled']!r}")
        checks.append(Check(str(check_id), str(values["title"]), float(points), values["visibility"],
                            float(timeout), values["enabled"]))
    budget = data.get("submission_timeout", 300.0)
    if not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0:
        raise fail(f"submission_timeout must be a number of seconds > 0, got {budget!r}")
    tamper = data.get("tamper", "review")
    if tamper not in TAMPER_POLICIES:
        raise fail(f"tamper must be review (flagged submissions keep their scores and are marked for review) or "
                   f"zero (flagged submissions score 0), got {tamper!r}")
    rubric = Rubric(str(data.get("assignment", ASSIGNMENT)), tuple(checks), source, float(budget), tamper)
    total = data.get("total_points")
    if total is not None and abs(rubric.max_score - total) > 1e-9:
        raise fail(f"the enabled checks' points add up to {rubric.max_score:g}, but total_points is {total}")
    return rubric


def _reject_unknown(mapping: dict, known: dict, where: str, fail) -> None:
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise fail(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; known keys: {', '.join(known)}")
