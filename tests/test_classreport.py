"""The class report, on a class of 15 (5 stubs, 5 correct, 5 with one bug each) graded by the README's instructor
commands as written: the terminal table, class.json's numbers (expected ones computed from each mutant's declared
failing checks and grading.yml's points), and report.html looked at in a real browser (Debian's chromium driven by
Playwright): the pictures load and show the bars, every link reaches the student's file. Plus, without grading:
flagged and not-graded submissions are listed with their reason, and nothing a student wrote becomes HTML."""

import json
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO
from docs_commands import block

from autograder.classreport import first_sentence, html_page, summarize, terminal_text
from autograder.grading import CheckResult, Report
from autograder.kit import wheel_name
from autograder.rubric import load_rubric
from autograder.samples import MUTANTS, VARIANTS

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); Playwright's own download is not reachable
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STUB = (REPO / "assignment" / "practical8" / "model_parallel.py").read_text()
REFERENCE = (REPO / "solutions" / "practical8" / "model_parallel.py").read_text()
# One bug each: honest mistakes (no hang, nothing flagged), from the one that fails the fewest checks to the one that
# fails the most, so the scores spread over the histogram.
HONEST = sorted((m for m in MUTANTS if not m.slow and not m.flagged), key=lambda m: (len(m.fails), m.name))
ONE_BUG = [HONEST[round(i * (len(HONEST) - 1) / 4)] for i in range(5)]
CORRECT = [None, *[v for v in VARIANTS if not v.slow][:4]]  # the reference and four other correct ways


def _class(root: Path) -> dict[str, str]:
    sources = {f"stub{i}": STUB for i in range(5)}
    sources |= {f"correct{i}": REFERENCE if v is None else v.source() for i, v in enumerate(CORRECT)}
    sources |= {f"bug{i}": m.source() for i, m in enumerate(ONE_BUG)}
    for student, source in sources.items():
        folder = root / student / "practical8"
        folder.mkdir(parents=True)
        (folder / "model_parallel.py").write_text(source)
    return sources


@pytest.fixture(scope="module")
def rubric():
    return load_rubric()


@pytest.fixture(scope="module")
def class_day(tmp_path_factory):
    """A course folder where the README's five instructor commands ran as written, on a class of 15."""
    course = tmp_path_factory.mktemp("class") / "course"
    course.mkdir()
    for name in ("solutions", "grading.yml", "nbgrader_config.py"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, course / name)
    _class(course / "submitted")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = block("README.md", "## For instructors: five commands")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=course, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return {"course": course, "graded": course / "graded", "stdout": done.stdout}


def _expected_score(fails: frozenset[str], rubric) -> float:
    return sum(c.points for c in rubric.enabled if c.id not in fails)


@pytest.mark.slow
def test_release_and_kit_come_first(class_day):
    practical = class_day["course"] / "assignment" / "practical8"
    assert "raise NotImplementedError" in (practical / "model_parallel.py").read_text()
    assert (practical / wheel_name()).is_file()


@pytest.mark.slow
def test_the_class_table_ends_the_grading_and_report_prints_it_again(class_day, rubric):
    out = class_day["stdout"]
    assert "graded 15 submissions; summary in graded/summary.csv" in out
    table = out[out.index("Class report: 15 students in graded"):]
    table = table[:table.index("Written: graded/report.html")]
    assert "(15 graded, 0 not graded, 0 flagged)" in table
    for check in rubric.enabled:
        assert f"\n{check.id} " in table, f"no row for {check.id}"
    assert "Scores (out of 100), students per bin:" in table
    assert out.count(table) == 3, "`report graded/` (and --release-hidden) did not print the grading's table"


@pytest.mark.slow
def test_class_json_holds_the_classes_numbers(class_day, rubric):
    data = json.loads((class_day["graded"] / "class.json").read_text())
    expected = {f"stub{i}": 0.0 for i in range(5)} | {f"correct{i}": 100.0 for i in range(5)}
    expected |= {f"bug{i}": _expected_score(m.fails, rubric) for i, m in enumerate(ONE_BUG)}
    assert data["scores"] == expected
    counts = [0] * 10
    for score in expected.values():
        counts[min(int(score // 10), 9)] += 1
    assert data["histogram"]["counts"] == counts and counts[0] >= 5 and counts[9] >= 5
    assert sum(c > 0 for c in counts) >= 3, f"one-bug scores should spread: {counts}"
    for row in data["checks"]:
        failing_bugs = sum(row["check"] in m.fails for m in ONE_BUG)
        assert (row["passed"], row["of"]) == (15 - 5 - failing_bugs, 15), row
        assert row["students_with_it"] == 5 and "is not implemented yet" in row["most_common_message"], row
    assert data["flagged"] == [] and data["not_graded"] == []


@pytest.mark.slow
def test_release_hidden_shows_the_hidden_checks_without_grading_again(class_day, rubric):
    feedback = (class_day["graded"] / "correct0" / "feedback.md").read_text()
    assert "released later" not in feedback
    for check in rubric.enabled:
        assert f"| {check.id}: " in feedback
    assert "graded 0 submissions; kept 15 graded earlier (unchanged since; --force grades them again)" in (
        class_day["stdout"])


@pytest.fixture(scope="module")
def served(class_day):
    """graded/ over HTTP on localhost (what a browser needs to follow the links; nothing leaves the machine)."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(class_day["graded"]))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
def test_report_html_in_a_real_browser(served, class_day):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{served}/report.html")
            images = page.evaluate("""() => [...document.images].map(img => {
                const canvas = document.createElement('canvas');
                canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
                const context = canvas.getContext('2d');
                context.drawImage(img, 0, 0);
                const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
                let blue = 0, green = 0;  // the histogram's bars (#4477aa), the per-check bars (#228833)
                for (let i = 0; i < data.length; i += 4) {
                    if (data[i] === 0x44 && data[i + 1] === 0x77 && data[i + 2] === 0xaa) blue++;
                    if (data[i] === 0x22 && data[i + 1] === 0x88 && data[i + 2] === 0x33) green++;
                }
                return {id: img.id, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
                        blue, green};
            })""")
            by_id = {image["id"]: image for image in images}
            assert set(by_id) == {"histogram", "check-rates"}
            for image in images:
                assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
            assert by_id["histogram"]["blue"] > 500 and by_id["check-rates"]["green"] > 500, images
            assert requests == [f"{served}/report.html"], "the page fetched something: it must be self-contained"
            rows = page.locator("#checks tr").count()
            assert rows == 1 + len(load_rubric().enabled)
            links = page.eval_on_selector_all("#students a", "links => links.map(a => a.href)")
            assert len(links) == 30
            for link in links:
                response = page.request.get(link)
                assert response.status == 200, link
                student = link.rsplit("/", 2)[-2]
                if link.endswith("feedback.md"):
                    assert response.text().startswith(f"# Practical 8 feedback: {student}")
        finally:
            browser.close()


# ------------------------------------------------------------------ without grading: flags, not graded, escaping
def _report(name: str, rubric, passed: bool, message: str = "", **kwargs) -> Report:
    return Report(name, "sim", [CheckResult(c, passed, "" if passed else message) for c in rubric.enabled],
                  sim_gpu="a100", **kwargs)


def test_flagged_and_not_graded_are_listed_with_their_reason_and_left_out_of_the_numbers(rubric, tmp_path):
    flag = {"event": "sys._getframe", "where": "model_parallel.py:12", "detail": "sys._getframe(2)"}
    broken = _report("carol", rubric, False, "Grading could not run (x).\nline two", not_graded="Grading could "
                     "not run (the sandbox did not start).\nTraceback ...")
    reports = [_report("ann", rubric, True, flags=[flag]), _report("bob", rubric, False, "Wrong. Try again."), broken]
    summary = summarize(reports, rubric)
    assert summary["students"] == 3 and summary["graded"] == 2 and set(summary["scores"]) == {"ann", "bob"}
    assert summary["flagged"] == [{"student": "ann", "flags": 1,
                                   "evidence": ["sys._getframe at model_parallel.py:12: `sys._getframe(2)`"]}]
    assert summary["not_graded"][0]["student"] == "carol"
    assert all(row["of"] == 2 and row["passed"] == 1 and row["most_common_message"] == "Wrong."
               for row in summary["checks"])
    text = terminal_text(summary, tmp_path)
    assert "flagged for review: ann (1 flag(s)); first: sys._getframe at model_parallel.py:12" in text
    assert "not graded: carol: Grading could not run (the sandbox did not start)." in text
    assert "Traceback" not in text  # the first line in the terminal; the whole reason is in the student's files


def test_nothing_a_student_wrote_becomes_html_or_a_terminal_sequence(rubric, tmp_path):
    evil = "<script>alert(1)</script>\x1b[2J"
    summary = summarize([_report(evil, rubric, False, f"{evil}. More.")], rubric)
    page = html_page(summary, {"histogram": "", "checks": ""})
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
    assert "\x1b" not in terminal_text(summary, tmp_path)


def test_first_sentence_groups_the_same_mistake():
    assert first_sentence("`layer2` is on cuda:0; expected cuda:1. Move it (found 3.2 ms).") == (
        "`layer2` is on cuda:0; expected cuda:1.")
    assert first_sentence("no full stop") == "no full stop"
