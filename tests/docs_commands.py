"""The commands the README and docs/*.md tell a reader to type, as the tests that run them read them.

A test runs a documented block *as written* by reading it here (``block(page, marker)``: the first ```bash block
after ``marker``), never from a copy of its own; tests/test_docs.py then checks that every command of every page is in
such a block (or in .ci/run) - except the lines that install from PyTorch's CPU wheel index, which the test machine
cannot reach: the one documented exception, each marked "not run by a test" on its line.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = "--index-url https://download.pytorch.org/whl/cpu"  # the one exception (only PyPI is reachable here)
NOT_RUN_MARK = "not run by a test"
BLOCK = re.compile(r"^ *```bash\n(.*?)^ *```", re.S | re.M)


def page_text(page: str) -> str:
    return (REPO / page).read_text()


def block(page: str, marker: str) -> str:
    """The first bash block after ``marker`` on ``page`` (a path from the repository root), its lines dedented."""
    text = page_text(page)
    if marker not in text:
        raise AssertionError(f"{page} no longer has {marker!r}: update the test that runs its commands")
    found = BLOCK.search(text, text.index(marker))
    assert found, f"{page}: no ```bash block after {marker!r}"
    return "".join(line.strip() + "\n" for line in found.group(1).splitlines())


def commands(script: str) -> list[str]:
    """The command lines of a block: comments and blank lines dropped, each line as typed (``  # ...`` cut off)."""
    lines = (re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip() for line in script.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def page_blocks(path: Path) -> list[str]:
    return ["".join(line.strip() + "\n" for line in b.splitlines()) for b in BLOCK.findall(path.read_text())]
