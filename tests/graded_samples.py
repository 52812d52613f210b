"""The bundled mutants and variants, each graded at most once per test session, however many tests read its report.

tests/test_grading.py (verdicts) and tests/test_assertion_coverage.py (which grader assertion each mutant trips) read
the same reports through the session fixtures ``graded_samples`` and ``graded_part5`` (conftest.py). Asked for one
sample, it grades that one; asked for many, it grades the missing ones in one graders' session (faster).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from autograder.grading import Report, grade_all
from autograder.rubric import Rubric
from autograder.samples import Mutant


class GradedSamples:
    def __init__(self, rubric: Rubric, folder: Path) -> None:
        self.rubric, self.folder = rubric, folder
        self._reports: dict[str, Report] = {}

    def reports(self, samples: Iterable[Mutant]) -> dict[str, Report]:
        samples = list(samples)
        missing = [m for m in samples if m.name not in self._reports]
        if missing:
            graded: list[Report] = []
            grade_all([(m.name, m.write(self.folder / m.name)) for m in missing], self.rubric, "sim",
                      on_report=graded.append)
            self._reports.update(zip((m.name for m in missing), graded, strict=True))
        return {m.name: self._reports[m.name] for m in samples}

    def report(self, sample: Mutant) -> Report:
        return self.reports([sample])[sample.name]
