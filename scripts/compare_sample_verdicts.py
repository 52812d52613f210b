"""The bundled samples, graded through the instructor's command, against the verdicts each is meant to get.

    python -m autograder grade --devices cuda --results OUT/samples/results.json   # OUT/samples/<name>/results.json
    python scripts/compare_sample_verdicts.py OUT/samples

Each sample is the reference or a mutant of ``autograder/samples.py``, whose ``fails`` names exactly the checks it
must fail (``doctor.unexpected_verdicts`` judges, as the doctor does). Prints one line per sample; exits 1 when any
verdict differs or nothing was found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def graded_from(results_dir: Path) -> dict[str, dict[str, bool]]:
    """sample -> check -> passed, from the Gradescope results.json files under ``results_dir``."""
    graded = {}
    for path in sorted(Path(results_dir).glob("*/results.json")):
        tests = json.loads(path.read_text())["tests"]
        graded[path.parent.name] = {t["name"].split(":")[0]: t["status"] == "passed" for t in tests}
    return graded


def main(argv: list[str] | None = None) -> int:
    from autograder.doctor import unexpected_verdicts

    (results_dir,) = argv if argv is not None else sys.argv[1:]
    graded = graded_from(Path(results_dir))
    if not graded:
        print(f"no <sample>/results.json under {results_dir}: nothing was graded", file=sys.stderr)
        return 1
    wrong = unexpected_verdicts(graded)
    for name in graded:
        print(f"{name}: {'UNEXPECTED' if any(w.startswith(name + ':') for w in wrong) else 'as expected'}")
    for line in wrong:
        print(line, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
