"""The simulated GPUs against PyTorch's own OpInfo samples (``conformance_harness.py`` says how each is judged).

By default the first 2 float32 samples of every op (each on cuda:0 and cuda:1, gradients included) plus one
mixed-device call per op: under 3 minutes on the 2-core box. Every sample of every op is marked ``slow`` and runs
when ``CONFORMANCE_FULL=1`` is set (``CONFORMANCE_FULL=<n>``: the first n samples of each op; ``.ci/run`` sets
it). Every sample must conform or be refused with ``SimulationUnsupported`` and a reason; a silent divergence
fails here.
"""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("expecttest", reason="op_db needs expecttest (a dev dependency)")

import conformance_harness as harness  # noqa: E402

FULL = os.environ.get("CONFORMANCE_FULL", "") not in ("", "0")
# CONFORMANCE_FULL=all (or 1): every sample; CONFORMANCE_FULL=<n> (n > 1): the first n samples of each op
FULL_LIMIT = None if os.environ.get("CONFORMANCE_FULL", "") in ("1", "all") else int(os.environ.get(
    "CONFORMANCE_FULL") or 0) or None
OPS = harness.float32_ops()
TALLY = harness.Tally()


@pytest.fixture(scope="module", autouse=True)
def conformance_rate(request):
    """After the module: the rate, on the terminal (docs/simulation.md quotes it with the machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(harness.ONE_THREAD)
    yield
    torch.set_num_threads(threads)
    if TALLY.outcomes:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\n" + TALLY.summary())


def _judge(op, limit):
    outcomes = harness.check_op(op, limit)
    TALLY.outcomes += outcomes
    diverging = [f"sample {o.index}: {o.detail}" for o in outcomes if o.verdict == "diverges"]
    assert not diverging, f"{harness.op_id(op)} diverges from the CPU on the simulated GPUs:\n" + "\n".join(diverging)
    for o in outcomes:
        if o.verdict == "unsupported":
            assert len(o.detail) > 20, f"{o.op}: SimulationUnsupported without a reason"


@pytest.mark.parametrize("op", OPS, ids=harness.op_id)
def test_first_samples_conform(op):
    _judge(op, harness.FAST_SAMPLES)


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="every sample of every op: set CONFORMANCE_FULL=1 (.ci/run does)")
@pytest.mark.parametrize("op", OPS, ids=harness.op_id)
def test_every_sample_conforms(op):
    _judge(op, FULL_LIMIT)


def test_every_op_is_covered():
    """op_db lists every operator PyTorch tests a device with; the suite must not quietly shrink."""
    assert len(OPS) >= 600, f"only {len(OPS)} float32 OpInfos found"


def test_a_divergence_is_caught():
    """The harness itself: a simulated op that leaves its output on the CPU is a divergence, not a pass."""
    op = next(o for o in OPS if o.name == "add")
    sample = harness.samples(op, 1)[0]
    cpu = harness._run(op, sample, None, grad_seed=0)
    with harness.simulated_gpus(2):
        sim = harness._run(op, sample, torch.device("cuda", 0), grad_seed=0)
        assert harness.compare(op, cpu, sim, torch.device("cuda", 0)) == ""
        sim.devices = [torch.device("cpu")] * len(sim.devices)  # as if the simulation had forgotten the tag
        assert "on cpu, expected cuda:0" in harness.compare(op, cpu, sim, torch.device("cuda", 0))
    sim.flat = [t + 1e-6 for t in sim.flat]
    sim.devices = [torch.device("cuda", 0)] * len(sim.devices)
    assert "values differ" in harness.compare(op, cpu, sim, torch.device("cuda", 0))
