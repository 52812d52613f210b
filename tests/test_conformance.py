"""The simulated GPUs against PyTorch's own OpInfo samples (``conformance_harness.py`` says how each is judged).

By default the first 2 float32 samples of every op (each on cuda:0 and cuda:1, gradients where the op has them) plus
one mixed-device call per op: about a minute on the 2-core box. The first float16 and bfloat16 sample (the dtypes
autocast produces) of every op whose CPU kernels take them are marked ``slow`` (``-m slow``). Every sample of every op
in every dtype is marked ``slow`` and runs when ``CONFORMANCE_FULL=1`` is set (``CONFORMANCE_FULL=<n>``: the first n
samples of each op; ``CONFORMANCE_FULL=float16=<n>,bfloat16=<n>``: per dtype; ``.ci/run`` sets it). Every sample
must conform or be refused with ``SimulationUnsupported`` and a reason; a silent divergence fails here.
"""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("expecttest", reason="op_db needs expecttest (a dev dependency)")

import conformance_harness as harness  # noqa: E402

FULL = os.environ.get("CONFORMANCE_FULL", "") not in ("", "0")


def _limit(text: str) -> int | None:
    """all (or 1): every sample; n (n > 1): the first n samples of each op."""
    return None if text in ("1", "all") else int(text)


def full_limits(setting: str) -> dict[str, int | None]:
    """CONFORMANCE_FULL=all|n for every dtype, or per dtype: float32=all,float16=16,bfloat16=16 (a dtype not
    named: every sample)."""
    if "=" not in setting:
        return {harness.dtype_name(d): _limit(setting) for d in harness.DTYPES}
    named = dict(part.split("=") for part in setting.split(","))
    return {harness.dtype_name(d): _limit(named.get(harness.dtype_name(d), "all")) for d in harness.DTYPES}


FULL_LIMITS = full_limits(os.environ.get("CONFORMANCE_FULL", "")) if FULL else {}
OPS = harness.float32_ops()
HALF = [(op, dtype) for dtype in harness.DTYPES[1:] for op in harness.ops_for(dtype)]
EVERY = [(op, dtype) for dtype in harness.DTYPES for op in harness.ops_for(dtype)]
TALLY = harness.Tally()


def _case_id(case) -> str:
    op, dtype = case
    return f"{harness.op_id(op)}-{harness.dtype_name(dtype)}"


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
            print("\n" + "\n".join(part.summary(f" ({name})") for name, part in TALLY.by_dtype().items()))


def _judge(op, limit, dtype=harness.DTYPE):
    outcomes = harness.check_op(op, limit, dtype)
    TALLY.outcomes += outcomes
    diverging = [f"sample {o.index}: {o.detail}" for o in outcomes if o.verdict == "diverges"]
    assert not diverging, (f"{harness.op_id(op)} in {harness.dtype_name(dtype)} diverges from the CPU on the "
                           f"simulated GPUs:\n" + "\n".join(diverging))
    for o in outcomes:
        if o.verdict == "unsupported":
            assert len(o.detail) > 20, f"{o.op}: SimulationUnsupported without a reason"


@pytest.mark.parametrize("op", OPS, ids=harness.op_id)
def test_first_samples_conform(op):
    _judge(op, harness.FAST_SAMPLES)


@pytest.mark.slow  # .ci/run's full step covers these samples (and every later one)
@pytest.mark.parametrize("case", HALF, ids=_case_id)
def test_first_half_precision_sample_conforms(case):
    op, dtype = case
    _judge(op, harness.FAST_SAMPLES_HALF, dtype)


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="every sample of every op: set CONFORMANCE_FULL=1 (.ci/run does)")
@pytest.mark.parametrize("case", EVERY, ids=_case_id)
def test_every_sample_conforms(case):
    op, dtype = case
    _judge(op, FULL_LIMITS[harness.dtype_name(dtype)], dtype)


def test_every_op_is_covered():
    """op_db lists every operator PyTorch tests a device with; the suite must not quietly shrink."""
    assert len(OPS) >= 600, f"only {len(OPS)} float32 OpInfos found"
    for dtype in harness.DTYPES[1:]:
        found = sum(d == dtype for _, d in HALF)
        assert found >= 400, f"only {found} {harness.dtype_name(dtype)} OpInfos found"


def test_full_run_limits_per_dtype():
    assert full_limits("1") == {"float32": None, "float16": None, "bfloat16": None}
    assert full_limits("16") == {"float32": 16, "float16": 16, "bfloat16": 16}
    assert full_limits("float16=8,bfloat16=4") == {"float32": None, "float16": 8, "bfloat16": 4}


def test_half_precision_runs_in_its_dtype_with_gradients():
    """The float16/bfloat16 cases really compute in that dtype, with gradients where the op has them."""
    op = next(o for o in OPS if o.name == "mul")
    for dtype in harness.DTYPES[1:]:
        assert harness.with_grad(op, dtype), f"mul has no {dtype} backward on the CPU?"
        sample = harness.samples(op, 1, dtype)[0]
        with harness.simulated_gpus(2):
            sim = harness._run(op, sample, torch.device("cuda", 1), grad_seed=0)
        assert sim.error is None and sim.flat[0].dtype == dtype, sim.error
        assert sim.grads and all(g.dtype == dtype for g in sim.grads)
        assert sim.grad_devices == [torch.device("cuda", 1)] * len(sim.grads), sim.grad_devices


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
