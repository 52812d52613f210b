"""The timing checks' workloads, tried on many ways of writing time_forward (in-process, fast): every correct one
reads the true device time in every scenario, on every simulated GPU; a bare synchronize() of cuda:0 misses the
output device's work by a clear margin, not by a hair (the numbers behind expected.py's constants)."""

import importlib.util
import random

import pytest
from conftest import every_profile

from autograder.graders.expected import (
    TIMING_HIGH,
    TIMING_LAST,
    TIMING_LOW,
    TIMING_REPEATS,
    TIMING_SCENARIOS,
    TIMING_WARMUP,
    timing_workloads,
)
from autograder.samples import REFERENCE
from autograder.sandbox import probes
from autograder.simgpu import simulated_gpus

SYNC_BOTH = "torch.cuda.synchronize(model.device0); torch.cuda.synchronize(model.device1)"
CORRECT = {
    "median_of_synced_forwards": """
    import statistics
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize(model.device1)
        for _ in range(repeats):
            t = time.perf_counter(); model(x); torch.cuda.synchronize(model.device1)
            times.append(time.perf_counter() - t)
    return statistics.median(times)
""",
    "min_of_timeit_repeat": f"""
    import timeit
    def step():
        model(x); {SYNC_BOTH}
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        {SYNC_BOTH}
        return min(timeit.repeat(step, repeat=repeats, number=1))
""",
    "cpu_of_the_output": """
    with torch.no_grad():
        for _ in range(warmup):
            out = model(x)
        out.cpu()
        start = time.perf_counter()
        for _ in range(repeats):
            out = model(x)
        out.cpu()
        return (time.perf_counter() - start) / repeats
""",
    "process_time": f"""
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        {SYNC_BOTH}
        start = time.process_time()
        for _ in range(repeats):
            model(x)
        {SYNC_BOTH}
        return (time.process_time() - start) / repeats
""",
    "datetime_now": f"""
    import datetime
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        {SYNC_BOTH}
        start = datetime.datetime.now()
        for _ in range(repeats):
            model(x)
        {SYNC_BOTH}
        return (datetime.datetime.now() - start).total_seconds() / repeats
""",
    "device_of_the_output": """
    with torch.no_grad():
        for _ in range(warmup):
            out = model(x)
        with torch.cuda.device_of(out):
            torch.cuda.synchronize()
        start = time.monotonic()
        for _ in range(repeats):
            out = model(x)
        with torch.cuda.device_of(out):
            torch.cuda.synchronize()
        return (time.monotonic() - start) / repeats
""",
    "stream_query_polling": """
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize(model.device1)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        while not torch.cuda.current_stream(model.device1).query():
            pass
        return (time.perf_counter() - start) / repeats
""",
}
BARE_SYNC = f"""
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        {SYNC_BOTH}
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats
"""


def _module(body: str, tmp_path, name: str):
    reference = REFERENCE.read_text()
    start = reference.index("    ### BEGIN SOLUTION\n    def wait_for_gpus")
    end = reference.index("    ### END SOLUTION", start)
    path = tmp_path / f"{name}.py"
    path.write_text(reference[:start] + body + reference[end:])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ratios(module, gpu: str, tmp_path) -> dict[str, float]:
    """k for every scenario, at every count of timed forwards the graders use (``scenario@repeats``)."""
    ratios = {}
    with simulated_gpus(2, gpu=gpu) as sim:
        for scenario in TIMING_SCENARIOS:
            for repeats in (TIMING_LAST, TIMING_REPEATS):
                before, after = timing_workloads(random.Random(f"7:{scenario}"), scenario)
                sim.reset()
                probes._BUILT.clear()
                observed = probes.time_forward(probes.Context(module, sim.clocks, tmp_path), ["cuda:0", "cuda:1"], 0,
                                               TIMING_WARMUP, repeats, before, after)
                ratios[f"{scenario}@{repeats}"] = observed["seconds"] / observed["true_seconds"]
    return ratios


@pytest.mark.parametrize("gpu", every_profile())
@pytest.mark.parametrize("name", list(CORRECT))
def test_a_correct_time_forward_reads_the_device_time_in_every_scenario(name, gpu, tmp_path):
    ratios = _ratios(_module(CORRECT[name], tmp_path, name), gpu, tmp_path)
    assert all(0.95 <= r <= 1.1 for r in ratios.values()), ratios


@pytest.mark.parametrize("gpu", every_profile())
def test_a_bare_synchronize_is_far_from_both_edges(gpu, tmp_path):
    ratios = _ratios(_module(BARE_SYNC, tmp_path, "bare"), gpu, tmp_path)
    assert TIMING_LOW + 0.05 <= ratios[f"even@{TIMING_REPEATS}"] <= TIMING_HIGH  # sees nearly all even work
    # misses the last forward's long device1 work: a third of it at three timed forwards, all of it at one
    assert ratios[f"heavy_on_device1@{TIMING_REPEATS}"] <= TIMING_LOW - 0.05
    assert ratios[f"heavy_on_device1@{TIMING_LAST}"] <= 0.05
