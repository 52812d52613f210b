"""The kit's visible timing check carries only what it needs (issue 23, item 7): no hidden timing scenario's name or
workload rule, and the same workloads as the graders for the scenarios it keeps."""

import random

from autograder.graders import expected
from autograder.kit import public_graders
from autograder.rubric import load_rubric


def _public_expected():
    source = public_graders(load_rubric())["expected.py"].replace("from ..", "from autograder.")
    namespace: dict = {}
    exec(compile(source, "public_expected.py", "exec"), namespace)  # noqa: S102 - our own generated module
    return namespace


def test_no_hidden_scenario_name_or_rule_ships():
    files = public_graders(load_rubric())
    public = _public_expected()
    kept = set(public["TIMING_SCENARIOS"])
    assert kept and kept < set(expected.TIMING_SCENARIOS)
    for name in set(expected.TIMING_SCENARIOS) - kept:
        assert not any(name in text for text in files.values()), f"the kit names the hidden scenario {name!r}"


def test_the_kept_scenarios_draw_the_graders_workloads():
    public = _public_expected()
    for scenario in public["TIMING_SCENARIOS"]:
        for seed in range(20):
            assert public["timing_workloads"](random.Random(seed), scenario) == expected.timing_workloads(
                random.Random(seed), scenario), scenario
