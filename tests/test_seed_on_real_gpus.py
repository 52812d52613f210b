"""The same seed program, unchanged, on two real GPUs (skipped unless two are present)."""

import pytest
import torch
from seed_program import SimpleMPModel, time_one_forward, train_fixed_batch

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two real CUDA GPUs")


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
