"""Part 1 and 3: the forward pass - where the output lands, its values, the one copy, the trace."""

import numpy as np
import pytest

from autograder.graders.expected import FORWARD_ATOL as ATOL
from autograder.graders.expected import FORWARD_RTOL as RTOL
from autograder.graders.expected import SEED, expected_output, require_layers

BATCH_SIZES = [1, 7, 32]
TRACE_BATCH_SIZES = [4]
ACTIVATION_WIDTH = 2000  # the relu1 output is (B, 2000)
FLOAT_BYTES = (2, 4, 8)  # float16/bfloat16, float32, float64: one copy of the activation in any float dtype
TRACE = ("Before move: ", "After move: ")


def _forward(observe, devices, trace=False):
    sizes = TRACE_BATCH_SIZES if trace else BATCH_SIZES
    return observe("forward", devices=list(devices), seed=SEED, batch_sizes=sizes, trace=trace)


def _runs(observed: dict) -> list[dict]:
    """One run per batch size asked for, in order: looked up, so a missing one is an error, never a pass."""
    runs = {run["batch"]: run for run in observed["runs"]}
    return [runs[b] for b in BATCH_SIZES]


@pytest.mark.check("output_device")
def test_output_device(observe, devices):
    for run in _runs(_forward(observe, devices)):
        assert run["output_device"] == devices[1], (
            f"For a batch of {run['batch']} the output is on {run['output_device']}; expected {devices[1]}, "
            "where layer2 lives. Return relu2(layer2(x)) computed on device1.")


@pytest.mark.check("forward_values")
def test_forward_values(observe, load_arrays, devices):
    observed = _forward(observe, devices)
    require_layers(observed)
    outputs, runs = load_arrays(observed["outputs"]), {run["batch"]: run for run in observed["runs"]}
    for b in BATCH_SIZES:
        expected = expected_output(SEED + b, b)
        got = outputs.get(f"batch{b}")
        assert got is not None and got.shape == expected.shape, (
            f"For a (batch={b}, 1000) input the output has shape {None if got is None else tuple(got.shape)}; "
            f"expected {tuple(expected.shape)}.")
        if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
            worst = np.abs(got - expected).max()
            negative = (got < 0).any()
            dtype = runs[b]["dtype"]
            hint = (f"The output is {dtype}: the model must compute in torch.float32, nn.Linear's default (drop the "
                    ".half() / float16 / bfloat16 conversions). " if dtype not in (None, "torch.float32") else
                    "Some outputs are negative: apply relu2 after layer2. " if negative else
                    "Check the order layer1 -> relu1 -> move -> layer2 -> relu2. ")
            raise AssertionError(f"For a batch of {b} the output differs from relu(W2·relu(W1·x+b1)+b2), computed "
                                 f"from the weights the grader put into your layers, by up to {worst:.3g}. {hint}")


@pytest.mark.check("direct_transfer")
def test_direct_transfer(observe, devices):
    for run in _runs(_forward(observe, devices)):
        # The input's move from the host, to whichever device the model sends it (placement judges which), is not
        # the activation's: the moves that follow it are.
        transfers = run["transfers"]
        first = next((i for i, t in enumerate(transfers) if t["src"] != "cpu"), len(transfers))
        moves = transfers[first:]
        described = ", ".join(f"{t['src']}->{t['dst']}" for t in moves) or "none"
        assert not any(t["via_host"] for t in moves), (
            f"The activation went through the CPU ({described}); expected one direct {devices[0]}->{devices[1]} "
            "copy. Use `x.to(self.device1)` directly, without `.cpu()`.")
        assert len(moves) == 1, (
            f"A forward of batch {run['batch']} made {len(moves)} copies between devices ({described}); expected "
            f"exactly one, {devices[0]}->{devices[1]}, of the (B, 2000) activation. Move it once, after relu1.")
        move = moves[0]
        values = run["batch"] * ACTIVATION_WIDTH
        assert (move["src"], move["dst"]) == devices and move["nbytes"] in {values * size for size in FLOAT_BYTES}, (
            f"The copy was {move['src']}->{move['dst']} of {move['nbytes']} bytes; expected {devices[0]}->"
            f"{devices[1]} of the relu1 output ({run['batch']} x {ACTIVATION_WIDTH} values: {values * 4} bytes in "
            "float32).")


@pytest.mark.check("trace_prints")
def test_trace_prints(observe, devices):
    run = _forward(observe, devices, trace=True)["runs"][0]
    traced = run["printed"]
    # Judged against where this forward's activation really was: before the move, where the first copy out of a GPU
    # took it from; after, where the output is (a model that never reaches device1, or swaps the devices, loses
    # placement, output_device and direct_transfer, not this check).
    after = run["output_device"] if run["output_device"].startswith("cuda") else devices[1]
    before = next((t["src"] for t in run["transfers"] if t["src"].startswith("cuda")), after)
    wanted = [f"{TRACE[0]}{before}", f"{TRACE[1]}{after}"]
    # ``printed`` is what reached the process's standard output (fd 1), as a student running the file would see it;
    # the two lines may carry more text and sit among other output, in this order.
    lines, found = traced.splitlines(), 0
    for line in lines:
        if found < len(wanted) and wanted[found] in line:
            found += 1
    assert found == len(wanted), (
        f"With trace=True the forward wrote {traced!r} to standard output; expected a line with {wanted[0]!r}, then "
        f"one with {wanted[1]!r}: print the activation's device just before and just after "
        "`.to(self.device1)`.")
    quiet = _forward(observe, devices)["runs"][0]["printed"]
    assert not any(text in quiet for text in TRACE), (
        f"With trace=False the forward wrote {quiet!r} to standard output; expected no trace: print only when "
        "trace is True.")
