"""The same seed program, unchanged, on two real GPUs (skipped unless two are present)."""

import pytest
import torch
from seed_program import SimpleMPModel, time_one_forward, train_fixed_batch

from autograder.grading import grade
from autograder.samples import REFERENCE, TIMING_CHECKS, VARIANTS, by_name

pytestmark = [pytest.mark.cuda2, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two real CUDA GPUs")]


def test_seed_program_trains_on_two_real_gpus():
    torch.manual_seed(0)
    model = SimpleMPModel()
    losses = train_fixed_batch(model, steps=20, lr=0.5)
    assert losses[-1] < 0.9 * losses[0]
    assert model.layer1.weight.grad.device == torch.device("cuda:0")
    assert model.layer2.weight.grad.device == torch.device("cuda:1")


def test_seed_program_raises_the_same_mismatch_error():
    model = SimpleMPModel()
    hidden = model.relu1(model.layer1(torch.randn(4, 1000, device="cuda:0")))
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        model.layer2(hidden)


def test_seed_timing_runs_on_real_gpus():
    model = SimpleMPModel()
    assert time_one_forward(model, torch.randn(32, 1000, device="cuda:0"), "both") > 0


@pytest.mark.parametrize("name", ["reference", "no_sync", "bare_sync", "skip_warmup", "no_sync_before_clock",
                                  *(v.name for v in VARIANTS)])
def test_timing_verdicts_on_real_gpus_match_the_samples(name, fast_rubric, tmp_path):
    """Every correct way of waiting passes, and each timing mistake loses its checks, on real GPUs too."""
    import dataclasses

    rubric = dataclasses.replace(fast_rubric, checks=tuple(
        dataclasses.replace(c, enabled=c.id in TIMING_CHECKS) for c in fast_rubric.checks))
    folder = REFERENCE.parent if name == "reference" else by_name(name).write(tmp_path / name)
    expected = set() if name == "reference" else set(by_name(name).fails) & TIMING_CHECKS
    assert grade(folder, rubric, "cuda").failed() == expected
