"""The seconds the timing checks read, measured in-process on a simulated GPU (fast, no sandbox): for one way of
writing time_forward, k = seconds returned / true seconds per timed forward for every (scenario, repeats) call the
graders make, the ratios each check judges, and the forwards run by the counting calls. Shared by
tests/test_timing_arithmetic.py and tests/test_timing_table.py; the graders (autograder/graders/test_timing.py) judge
the same ratios from the sandboxed process's replies.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import tempfile
from pathlib import Path

from autograder.graders.expected import (
    TIMING_HIGH,
    TIMING_LAST,
    TIMING_LOW,
    TIMING_MORE,
    TIMING_REPEATS,
    TIMING_WARMUP,
    timing_workloads,
)
from autograder.samples import REFERENCE, by_name
from autograder.sandbox import probes
from autograder.simgpu import simulated_gpus

# Every (scenario, repeats) the graders call time_forward with.
CALLS = (("even", TIMING_LAST), ("on_device0", TIMING_LAST), ("heavy_on_device1", TIMING_LAST),
         ("even", TIMING_REPEATS), ("after_warmup", TIMING_REPEATS))
# The ratio each check judges by its seconds, and the window it must fall in.
JUDGED = {"timing_synchronizes": ("follows", TIMING_LOW, None),
          "timing_covers_output_device": ("covers", TIMING_LOW, None),
          "timing_measures_device_time": ("measures", TIMING_LOW, TIMING_HIGH),
          "timing_excludes_warmup": ("after_warmup_relative", None, TIMING_HIGH)}


def load(source: str, name: str):
    folder = Path(tempfile.mkdtemp(prefix="timing-"))
    (folder / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(f"timing_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, folder


def sample_source(name: str) -> str:
    return REFERENCE.read_text() if name == "reference" else by_name(name).source()


@functools.cache
def measured(name: str, gpu: str, source: str | None = None, seed: str = "7") -> dict[str, float]:
    """k per call (``"scenario@repeats"``), the checks' ratios, and the forwards run with the usual counts and with
    TIMING_MORE more warm-up or timed forwards, for the sample ``name`` (or ``source``)."""
    got: dict[str, float] = {}
    with simulated_gpus(2, gpu=gpu) as sim:
        # Imported inside the simulation, as the sandbox does: `from torch.cuda import synchronize` binds its stand-in.
        module, folder = load(sample_source(name) if source is None else source, name)

        def call(warmup: int, repeats: int, before: list[float], after: list[float]) -> dict:
            sim.reset()
            probes._BUILT.clear()
            return probes.time_forward(probes.Context(module, sim.clocks, folder), ["cuda:0", "cuda:1"], 0, warmup,
                                       repeats, before, after)

        for scenario, repeats in CALLS:
            workload = timing_workloads(random.Random(f"{seed}:{scenario}"), scenario)
            observed = call(TIMING_WARMUP, repeats, *workload)
            seconds, true = observed["seconds"], observed["true_seconds"]
            got[f"{scenario}@{repeats}"] = seconds / true if isinstance(seconds, float) and true else float("nan")
            if repeats == TIMING_REPEATS:
                got["forwards"] = observed["forwards"]
        got["forwards_more_warmup"] = call(TIMING_WARMUP + TIMING_MORE, TIMING_REPEATS, [0.0], [0.0])["forwards"]
        got["forwards_more_repeats"] = call(TIMING_WARMUP, TIMING_REPEATS + TIMING_MORE, [0.0], [0.0])["forwards"]
    last, usual = f"@{TIMING_LAST}", f"@{TIMING_REPEATS}"
    got["follows"] = _ratio(got["on_device0" + last], got["even" + last])  # timing_synchronizes
    got["covers"] = _ratio(got["heavy_on_device1" + last], got["on_device0" + last])  # timing_covers_output_device
    got["measures"] = got["even" + usual]  # timing_measures_device_time
    relative = _ratio(got["after_warmup" + usual], got["even" + usual])
    got["after_warmup_relative"] = relative if got["follows"] >= TIMING_LOW else got["after_warmup" + usual]
    return got


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def seconds_verdicts(m: dict[str, float]) -> dict[str, bool]:
    """Whether each timing check passes on the ratios it judges (the counting of forwards aside): covers asks first
    that the clock waits at all, as timing_synchronizes does."""
    passed = {check: (low is None or m[key] >= low) and (high is None or m[key] <= high)
              for check, (key, low, high) in JUDGED.items()}
    passed["timing_covers_output_device"] &= passed["timing_synchronizes"]
    return passed


def verdicts(m: dict[str, float]) -> dict[str, bool]:
    """Whether each timing check passes: the seconds, and the forwards counted as the graders count them."""
    passed = seconds_verdicts(m)
    runs, more_warmup, more_repeats = m["forwards"], m["forwards_more_warmup"], m["forwards_more_repeats"]
    passed["timing_measures_device_time"] &= more_repeats - runs == TIMING_MORE
    passed["timing_excludes_warmup"] &= runs >= TIMING_WARMUP + TIMING_REPEATS and more_warmup - runs == TIMING_MORE
    return passed


def margin(m: dict[str, float], check: str) -> float:
    """How far the check's ratio lies from the nearest edge of its window (positive inside, negative outside)."""
    key, low, high = JUDGED[check]
    edges = [m[key] - low] if low is not None else []
    edges += [high - m[key]] if high is not None else []
    inside = all(e >= 0 for e in edges)
    return min(edges) if inside else -min(-e for e in edges if e < 0)
