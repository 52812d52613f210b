"""TF32 on the simulated GPUs (simgpu/tf32.py): float32 GEMM operands rounded to a 10-bit mantissa where the switches
and the GPU say so - A100 and H100, not T4."""

import pytest
import torch
from torch import nn

from autograder.grading import grade
from autograder.samples import PRECISION_SAMPLES
from autograder.simgpu import simulated_gpus
from autograder.simgpu.tf32 import round_to_tf32


@pytest.fixture(autouse=True)
def _restore_switches():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


def test_rounding_is_to_nearest_even_on_the_low_13_bits():
    ulp = 2.0 ** -10  # TF32's spacing just above 1.0
    x = torch.tensor([1.0, 1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + 2 ** -20, -(1 + ulp / 2), float("inf"),
                      float("nan"), 1e-40])
    got = round_to_tf32(x)
    assert got[:5].tolist() == [1.0, 1.0, 1 + 2 * ulp, 1 + ulp, -1.0]  # ties go to the even mantissa
    assert got[5] == float("inf") and got[6].isnan()
    assert (got.view(torch.int32) & 0x1FFF == 0)[:5].all()  # nothing below TF32's last bit survives


def _matmul(gpu, switch):
    torch.manual_seed(0)
    a, b = torch.randn(64, 256), torch.randn(256, 32)
    with simulated_gpus(2, gpu=gpu):
        switch()
        got = (a.to("cuda:1") @ b.to("cuda:1")).cpu()
    return a, b, got


@pytest.mark.parametrize("switch", [
    lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
    lambda: torch.set_float32_matmul_precision("high"),
    lambda: torch.set_float32_matmul_precision("medium"),
], ids=["allow_tf32", "precision_high", "precision_medium"])
@pytest.mark.parametrize("gpu", ["a100", "h100"])
def test_tf32_gpus_round_matmul_inputs_when_enabled(gpu, switch):
    a, b, got = _matmul(gpu, switch)
    assert torch.equal(got, round_to_tf32(a) @ round_to_tf32(b))
    assert not torch.equal(got, a @ b)


@pytest.mark.parametrize(("gpu", "switch"), [
    ("t4", lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True)),  # a T4 has no TF32
    ("a100", lambda: None),  # off by default since PyTorch 1.12
    ("h100", lambda: torch.set_float32_matmul_precision("highest")),
])
def test_float32_matmuls_are_exact_without_tf32(gpu, switch):
    a, b, got = _matmul(gpu, switch)
    assert torch.equal(got, a @ b)


def test_linear_rounds_input_and_weight_not_bias_and_backward_too():
    torch.manual_seed(1)
    layer, x = nn.Linear(128, 16), torch.randn(8, 128, requires_grad=True)
    with simulated_gpus(2, gpu="a100"):
        torch.backends.cuda.matmul.allow_tf32 = True
        sim_layer = nn.Linear(128, 16).to("cuda:0")
        sim_layer.load_state_dict(layer.state_dict())
        sim_x = x.detach().to("cuda:0").requires_grad_()
        out = sim_layer(sim_x)
        out.sum().backward()
        got, grad = out.detach().cpu(), sim_x.grad.cpu()
    expected = torch.addmm(layer.bias, round_to_tf32(x.detach()), round_to_tf32(layer.weight.detach()).T)
    assert torch.equal(got, expected)
    ones = torch.ones(8, 16)
    assert torch.equal(grad, round_to_tf32(ones) @ round_to_tf32(layer.weight.detach()))  # the backward GEMM


def test_convolutions_follow_cudnn_allow_tf32():
    torch.manual_seed(2)
    conv, x = nn.Conv2d(3, 4, 3, bias=False), torch.randn(1, 3, 8, 8)
    outs = {}
    for allowed in (True, False):
        with simulated_gpus(2, gpu="a100"):
            torch.backends.cudnn.allow_tf32 = allowed  # on by default in PyTorch
            sim_conv = nn.Conv2d(3, 4, 3, bias=False).to("cuda:0")
            sim_conv.load_state_dict(conv.state_dict())
            outs[allowed] = sim_conv(x.to("cuda:0")).detach().cpu()
    with torch.no_grad():
        assert torch.equal(outs[False], conv(x))
        assert torch.equal(outs[True], nn.functional.conv2d(round_to_tf32(x), round_to_tf32(conv.weight)))


def test_a_tf32_submission_fails_on_an_a100_profile_and_passes_on_a_t4(graded_samples, fast_rubric, tmp_path):
    sample = next(m for m in PRECISION_SAMPLES if m.name == "tf32_matmuls")
    on_a100 = graded_samples.report(sample)  # the default profile
    assert on_a100.sim_gpu == "a100" and on_a100.failed() == sample.fails
    on_t4 = grade(sample.write(tmp_path / sample.name), fast_rubric, "sim", sim_gpu="t4")
    assert on_t4.failed() == set(), {r.check.id: r.message for r in on_t4.results if not r.passed}
