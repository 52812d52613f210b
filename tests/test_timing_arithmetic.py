"""The timing checks' numbers, measured in-process on every simulated GPU for the timing mutants (fast): each
arithmetic mistake is at least 2x off the true device time, and so far outside [TIMING_LOW, TIMING_HIGH]; one that
ignores warmup/repeats reads true seconds (the forwards it times all carry the same work) and shows only in the
count of forwards; a clock that waits follows the GPUs' work whatever its units or divisor. These are the
measurements behind expected.py's timing comment; tests/test_grading.py shows the checks each mutant fails.
"""

import functools
import importlib.util
import random
import tempfile
from pathlib import Path

import pytest

from autograder.graders.expected import (
    TIMING_HIGH,
    TIMING_LOW,
    TIMING_MORE,
    TIMING_REPEATS,
    TIMING_SCENARIOS,
    TIMING_WARMUP,
    timing_workloads,
)
from autograder.samples import REFERENCE, by_name
from autograder.sandbox import probes
from autograder.simgpu import PROFILES, simulated_gpus


@functools.cache
def measured(name: str, gpu: str) -> dict[str, float]:
    """k per scenario (seconds returned / true seconds per timed forward), the grader's derived ratios, and the
    forwards run with the usual counts and with TIMING_MORE more warm-up or timed forwards."""
    source = REFERENCE.read_text() if name == "reference" else by_name(name).source()
    folder = Path(tempfile.mkdtemp(prefix="timing-"))
    (folder / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(f"timing_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got: dict[str, float] = {}
    with simulated_gpus(2, gpu=gpu) as sim:
        def call(warmup: int, repeats: int, before: list[float], after: list[float]) -> dict:
            sim.reset()
            probes._BUILT.clear()
            return probes.time_forward(probes.Context(module, sim.clocks, folder), ["cuda:0", "cuda:1"], 0, warmup,
                                       repeats, before, after)

        for scenario in TIMING_SCENARIOS:
            observed = call(TIMING_WARMUP, TIMING_REPEATS, *timing_workloads(random.Random(f"7:{scenario}"), scenario))
            got[scenario] = observed["seconds"] / observed["true_seconds"]
            got["forwards"] = observed["forwards"]
        got["forwards_more_warmup"] = call(TIMING_WARMUP + TIMING_MORE, TIMING_REPEATS, [0.0], [0.0])["forwards"]
        got["forwards_more_repeats"] = call(TIMING_WARMUP, TIMING_REPEATS + TIMING_MORE, [0.0], [0.0])["forwards"]
    got["follows"] = got["on_device0"] / got["even"]  # timing_synchronizes
    got["covers"] = got["heavy_on_device1"] / got["on_device0"]  # timing_covers_output_device
    got["after_warmup_relative"] = got["after_warmup"] / got["even"]  # timing_excludes_warmup
    return got


GPUS = list(PROFILES)


@pytest.mark.parametrize("gpu", GPUS)
def test_the_reference_reads_true_seconds_and_follows_the_work(gpu):
    m = measured("reference", gpu)
    assert all(0.95 <= m[s] <= 1.1 for s in TIMING_SCENARIOS), m
    assert 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m
    assert m["forwards"] == TIMING_WARMUP + TIMING_REPEATS
    assert m["forwards_more_warmup"] - m["forwards"] == m["forwards_more_repeats"] - m["forwards"] == TIMING_MORE


@pytest.mark.parametrize("gpu", GPUS)
def test_dividing_by_warmup_plus_repeats_reads_half(gpu):
    m = measured("divides_by_warmup_plus_repeats", gpu)
    assert m["even"] <= 0.51 and m["even"] <= TIMING_LOW / 1.5, m  # >= 2x off the truth, 1.6x under the window
    assert 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m  # it waits: only the arithmetic fails


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("name", ["times_the_warmup", "no_sync_before_clock"])
def test_counting_the_warmup_reads_double(name, gpu):
    m = measured(name, gpu)
    assert m["even"] >= 1.98 and m["even"] >= 1.5 * TIMING_HIGH, m  # >= 2x off the truth, 1.5x over the window
    assert m["after_warmup_relative"] >= 2 * TIMING_HIGH, m
    assert m["follows"] >= TIMING_LOW + 0.1, m  # it waits: timing_synchronizes passes (0.95)


@pytest.mark.parametrize("gpu", GPUS)
def test_ignoring_warmup_and_repeats_shows_only_in_the_count(gpu):
    m = measured("ignores_warmup_and_repeats", gpu)
    assert TIMING_LOW <= m["even"] <= TIMING_HIGH, m  # why the forwards are counted: the seconds look right
    assert m["forwards_more_warmup"] == m["forwards_more_repeats"] == m["forwards"] == 12


@pytest.mark.parametrize("gpu", GPUS)
def test_timing_one_forward_runs_one(gpu):
    m = measured("times_one_forward", gpu)
    assert m["forwards"] == m["forwards_more_warmup"] == m["forwards_more_repeats"] == 1


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("name", ["no_sync", "sync_after_clock"])
def test_a_clock_that_never_waits_does_not_follow_the_work(name, gpu):
    m = measured(name, gpu)
    assert m["follows"] <= TIMING_LOW / 2, m  # at least 2x under the bar
    assert m["even"] <= 0.1, m


@pytest.mark.parametrize("gpu", GPUS)
def test_a_bare_synchronize_follows_the_work_but_misses_device1(gpu):
    m = measured("bare_sync", gpu)
    assert m["follows"] >= 1.0, m
    assert m["covers"] <= TIMING_LOW - 0.05, m
    assert TIMING_LOW + 0.05 <= m["even"] <= TIMING_HIGH, m


@pytest.mark.parametrize("gpu", GPUS)
def test_milliseconds_are_a_constant_factor(gpu):
    m = measured("milliseconds", gpu)
    assert 950 <= m["even"] <= 1100 and 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m
