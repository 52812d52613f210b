"""The timing checks' numbers, measured in-process on every simulated GPU for the timing mutants (fast; keys are
``scenario@repeats``, see tests/timing_measure.py): each arithmetic mistake is at least 2x off the true device time,
and so far outside [TIMING_LOW, TIMING_HIGH]; one that
ignores warmup/repeats reads true seconds (the forwards it times all carry the same work) and shows only in the
count of forwards; a clock that waits follows the GPUs' work whatever its units or divisor. These are the
measurements behind expected.py's timing comment; tests/test_grading.py shows the checks each mutant fails.
"""

import pytest
from timing_measure import measured

from autograder.graders.expected import (
    TIMING_HIGH,
    TIMING_LAST,
    TIMING_LOW,
    TIMING_MORE,
    TIMING_REPEATS,
    TIMING_WARMUP,
)
from autograder.simgpu import PROFILES

CALLS = ("even@1", "on_device0@1", "heavy_on_device1@1", "even@3", "after_warmup@3")
assert TIMING_LAST == 1 and TIMING_REPEATS == 3  # the keys above


GPUS = list(PROFILES)


@pytest.mark.parametrize("gpu", GPUS)
def test_the_reference_reads_true_seconds_and_follows_the_work(gpu):
    m = measured("reference", gpu)
    assert all(0.95 <= m[s] <= 1.1 for s in CALLS), m
    assert 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m
    assert m["forwards"] == TIMING_WARMUP + TIMING_REPEATS
    assert m["forwards_more_warmup"] - m["forwards"] == m["forwards_more_repeats"] - m["forwards"] == TIMING_MORE


@pytest.mark.parametrize("gpu", GPUS)
def test_dividing_by_warmup_plus_repeats_reads_half(gpu):
    m = measured("divides_by_warmup_plus_repeats", gpu)
    assert m["even@3"] <= 0.51 and m["even@3"] <= TIMING_LOW / 1.5, m  # >= 2x off the truth, 1.6x under the window
    assert 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m  # it waits: only the arithmetic fails


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("name", ["times_the_warmup", "no_sync_before_clock"])
def test_counting_the_warmup_reads_double(name, gpu):
    m = measured(name, gpu)
    assert m["even@3"] >= 1.98 and m["even@3"] >= 1.5 * TIMING_HIGH, m  # >= 2x off the truth, 1.5x over the window
    assert m["after_warmup_relative"] >= 2 * TIMING_HIGH, m
    assert m["follows"] >= TIMING_LOW + 0.1, m  # it waits: timing_synchronizes passes (0.95)


@pytest.mark.parametrize("gpu", GPUS)
def test_ignoring_warmup_and_repeats_shows_only_in_the_count(gpu):
    m = measured("ignores_warmup_and_repeats", gpu)
    assert TIMING_LOW <= m["even@3"] <= TIMING_HIGH, m  # why the forwards are counted: the seconds look right
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
    assert m["even@3"] <= 0.1, m


@pytest.mark.parametrize("gpu", GPUS)
def test_a_bare_synchronize_follows_the_work_but_misses_device1(gpu):
    m = measured("bare_sync", gpu)
    assert m["follows"] >= 1.0, m
    assert m["covers"] <= TIMING_LOW - 0.05, m
    assert TIMING_LOW + 0.05 <= m["even@3"] <= TIMING_HIGH, m


@pytest.mark.parametrize("gpu", GPUS)
def test_milliseconds_are_a_constant_factor(gpu):
    m = measured("milliseconds", gpu)
    assert 950 <= m["even@3"] <= 1100 and 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("name", ["bare_sync", "bare_sync_twice", "events_on_device0"])
def test_every_wait_for_cuda0_alone_misses_the_last_forwards_device1_work(name, gpu):
    """The practical's own mistake, in each form: the one timed forward's work on device1 is nearly all missed, and a
    bare wait after the warm-up gains nothing of device1's at the clock's start (the warm-up's work is on device0)."""
    m = measured(name, gpu)
    assert m["covers"] <= 0.05 and m["follows"] >= TIMING_LOW + 0.1, m
    assert TIMING_LOW + 0.05 <= m["even@3"] <= TIMING_HIGH, m


@pytest.mark.parametrize("gpu", GPUS)
def test_a_wait_before_each_forward_only_reads_as_no_wait(gpu):
    m = measured("sync_before_each_forward", gpu)
    assert m["follows"] <= TIMING_LOW / 2, m  # the one timed forward is never waited for
    assert m["even@3"] <= (TIMING_REPEATS - 1) / TIMING_REPEATS + 0.01, m  # the last of three is missed


@pytest.mark.parametrize("gpu", GPUS)
def test_a_clock_restarted_at_each_forward_reads_all_of_them(gpu):
    m = measured("times_last_iteration", gpu)
    assert abs(m["even@3"] - TIMING_REPEATS) <= 0.05, m  # the earlier forwards were still running on the GPUs
    assert 0.95 <= m["follows"] <= 1.05 and 0.95 <= m["covers"] <= 1.05, m
