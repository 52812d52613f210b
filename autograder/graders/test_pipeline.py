"""Part 5 (optional in grading.yml): the pipelined model computes the same thing, with the GPUs overlapping."""

import numpy as np
import pytest

from autograder.graders.expected import FORWARD_ATOL as ATOL
from autograder.graders.expected import FORWARD_RTOL as RTOL
from autograder.graders.expected import (
    LAYER_SHAPES,
    SEED,
    expected_output,
    layer_problem,
    misplaced,
    require_layers,
)

# Share of the forward during which both GPUs compute. Measured with STAGE_S on the simulated T4, A100 and H100: 0.60
# for the reference and for the plain loop (layer1, move, layer2 per micro-batch), as (m-1)/(m+1) says for 4
# micro-batches; 0.0 with a sync inside the loop. The floor is half of what correct code reaches.
MIN_OVERLAP = 0.30
STAGE_S = 1e-3  # GPU work added behind every layer1 and layer2 call: each micro-batch's stages take far longer than
# the host's launches, as a large batch's would (batch 32 alone is launch-bound on any GPU: nothing could overlap)


def _pipelined(observe, devices, batch=32, split_size=8, **options):
    return observe("pipeline", devices=list(devices), seed=SEED, batch=batch, split_size=split_size, **options)


def _where(observed: dict) -> str:
    """Where the output is, or what it is instead of a tensor (the probe's description of it, shortened)."""
    if observed["output"]:
        return f"on {observed['output_device']}"
    described = " ".join(observed["output_device"].split())
    return f"not a tensor but {described if len(described) <= 60 else described[:57] + '...'}"


@pytest.mark.check("pipeline_placement")
def test_pipeline_placement(observe, devices):
    observed = _pipelined(observe, devices)
    problem = layer_problem(observed)
    assert problem is None, f"In PipelinedMPModel, {problem}"
    params = observed["params"]
    wrong = misplaced({name: params[name] for name in LAYER_SHAPES}, devices)  # present: layer_problem said so
    assert not wrong, "PipelinedMPModel's `model.{}` is on {}; expected {}.".format(*wrong[0])
    assert observed["output_device"] == devices[1], (
        f"PipelinedMPModel's output is {_where(observed)}; expected a tensor on {devices[1]}. Concatenate the "
        "micro-batch outputs (torch.cat) where layer2 computed them.")


@pytest.mark.check("pipeline_matches_unsplit")
def test_pipeline_matches_unsplit(observe, load_arrays, devices):
    # 30 rows: the last micro-batch is smaller; a CPU input: the forward moves it to device0, as SimpleMPModel's does
    for batch, split_size, on_cpu in ((32, 8, False), (30, 8, False), (32, 8, True)):
        observed = _pipelined(observe, devices, batch, split_size, input_on_cpu=on_cpu)
        require_layers(observed)
        assert observed["output"], (
            f"PipelinedMPModel's output is {_where(observed)}; expected one (B, 1000) tensor: torch.cat the "
            "micro-batch outputs, in order.")
        got = load_arrays(observed["output"])["out"]
        expected = expected_output(SEED, batch)
        assert got.shape == expected.shape, (
            f"For a batch of {batch} in micro-batches of {split_size} the output has shape {tuple(got.shape)}; "
            f"expected {tuple(expected.shape)}: keep every micro-batch, the last one may be smaller.")
        if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
            rows_match = [np.allclose(got[i], expected[i], rtol=RTOL, atol=ATOL) for i in range(batch)]
            hint = ("Some rows are right but in the wrong place: concatenate the micro-batches in order."
                    if any(rows_match) or any(np.allclose(got[i], expected[j], rtol=RTOL, atol=ATOL)
                                              for i in range(0, batch, split_size) for j in range(batch))
                    else "Each micro-batch must go through layer1, relu1, the move, layer2 and relu2.")
            raise AssertionError(f"For a batch of {batch} in micro-batches of {split_size} the output differs from "
                                 f"the unsplit model with the same weights. {hint}")


@pytest.mark.check("pipeline_overlaps")
def test_pipeline_overlaps(observe, devices):
    observed = _pipelined(observe, devices, stage_s=STAGE_S)
    share = observed["overlap_s"] / observed["span_s"] if observed["span_s"] else 0.0
    assert share >= MIN_OVERLAP, (
        f"With 4 micro-batches both GPUs computed at the same time for {share:.0%} of the forward; expected at "
        f"least {MIN_OVERLAP:.0%}. Launch device1's work on micro-batch i, then device0's on i+1, and never "
        "synchronize (or .item()/.cpu()/print) inside the loop.")
