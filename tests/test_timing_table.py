"""Every way of timing the samples hold x every timing check, on every simulated GPU: the seconds each check reads
(its ratio, see expected.py) and its verdict, which must be exactly the sample's stated one and lie at least
MARGIN from the threshold it is judged by - passing or failing, never by a hair.

"Ways of timing": the reference, every mutant and variant in autograder/samples.py whose time_forward differs from
the reference's, and the correct styles of tests/test_timing_workloads.py. Measured in-process
(tests/timing_measure.py), as the graders' probe measures in the sandbox; tests/test_grading.py grades the samples
for real on the default GPU.
Run with ``-s`` to see the table.
"""

import math

import pytest
from conftest import every_profile
from test_timing_workloads import CORRECT, _module
from timing_measure import JUDGED, margin, measured, verdicts

from autograder.samples import EVERY_EDIT, REFERENCE, TIMING_CHECKS

MARGIN = 0.05  # the least distance of a judged ratio from its threshold (as the doctor's timing_margins requires)


def _time_forward(source: str) -> str:
    return source[source.index("def time_forward"):]


TIMING_SAMPLES = [m for m in EVERY_EDIT if _time_forward(m.source()) != _time_forward(REFERENCE.read_text())]
STYLES = ["reference"] + [m.name for m in TIMING_SAMPLES] + [f"style:{name}" for name in CORRECT]


def _measure(style: str, gpu: str, tmp_path) -> dict[str, float]:
    if style.startswith("style:"):
        name = style.split(":", 1)[1]
        source = _module_source(CORRECT[name], tmp_path, name)
        return measured(name, gpu, source)
    return measured(style, gpu)


def _module_source(body: str, tmp_path, name: str) -> str:
    _module(body, tmp_path, name)  # the same splice test_timing_workloads grades
    return (tmp_path / f"{name}.py").read_text()


def _stated(style: str) -> set[str]:
    if style == "reference" or style.startswith("style:"):
        return set()
    return set(next(m for m in TIMING_SAMPLES if m.name == style).fails & TIMING_CHECKS)


def test_the_table_holds_the_practicals_mistake_in_every_form():
    assert {"bare_sync", "bare_sync_twice", "events_on_device0", "sync_before_each_forward"} <= set(STYLES)


@pytest.mark.parametrize("gpu", every_profile())
@pytest.mark.parametrize("style", STYLES)
def test_each_way_of_timing_loses_exactly_its_stated_timing_checks(style, gpu, tmp_path):
    m = _measure(style, gpu, tmp_path)
    failed = {check for check, ok in verdicts(m).items() if not ok}
    row = {check: f"{m[key]:.3g}" for check, (key, _, _) in JUDGED.items()}
    print(f"{style:32} {gpu:5} " + " ".join(f"{c.removeprefix('timing_')}={v}{'' if c not in failed else ' FAIL'}"
                                             for c, v in row.items()))
    assert failed == _stated(style), row
    for check, (key, _, _) in JUDGED.items():
        if math.isnan(m[key]):  # no float or no forward at all: nothing to measure a margin of
            continue
        assert abs(margin(m, check)) >= MARGIN, (check, row)
