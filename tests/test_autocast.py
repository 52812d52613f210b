"""torch.autocast("cuda") on the simulated GPUs follows CUDA's op lists and dtypes (simgpu/autocast.py), and GradScaler
trains; autocast submissions get the verdicts real GPUs give them (samples.PRECISION_SAMPLES)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.samples import PRECISION_SAMPLES
from autograder.simgpu import autocast as policy
from autograder.simgpu.placement import device_of

HALF, BF16, FLOAT = torch.float16, torch.bfloat16, torch.float32


def _on(device="cuda:0", *shape, dtype=FLOAT):
    return torch.randn(*(shape or (4, 8)), device=device, dtype=dtype)


def test_matmuls_run_in_float16_by_default_and_in_the_dtype_asked_for(simulated_gpus):
    layer = nn.Linear(8, 8).to("cuda:1")
    x = _on("cuda:1")
    with torch.autocast("cuda"):
        assert layer(x).dtype == HALF and (x @ x.T).dtype == HALF and torch.mm(x, x.T).dtype == HALF
        assert layer(x).device == torch.device("cuda:1")
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        assert layer(x).dtype == BF16
    with pytest.warns(FutureWarning), torch.cuda.amp.autocast():
        assert layer(x).dtype == HALF
    assert layer(x).dtype == FLOAT  # outside: float32 again


def test_the_float32_list_and_the_dtype_list_give_float32(simulated_gpus):
    with torch.autocast("cuda"):
        h = nn.Linear(8, 8).to("cuda:0")(_on())  # float16
        target = _on()
        assert F.mse_loss(h, target).dtype == FLOAT
        assert F.softmax(h, dim=1).dtype == FLOAT and h.softmax(1).dtype == FLOAT
        assert h.sum().dtype == FLOAT and torch.exp(h).dtype == FLOAT and F.layer_norm(h, (8,)).dtype == FLOAT
        assert F.cross_entropy(h, torch.tensor([0, 1, 2, 3], device="cuda:0")).dtype == FLOAT
        assert torch.relu(h).dtype == HALF  # on no list: the dtype it is given
        assert (h + target).dtype == FLOAT  # ordinary type promotion
        assert h.sum(dtype=HALF).dtype == HALF  # a dtype the caller gave is kept


def test_the_promote_list_takes_the_widest_input(simulated_gpus):
    with torch.autocast("cuda"):
        a, b = _on(dtype=HALF), _on()
        assert torch.addcmul(a, a, a).dtype == HALF and torch.addcmul(a, a, b).dtype == FLOAT


def test_cpu_tensors_and_float64_are_not_cast(simulated_gpus):
    with torch.autocast("cuda"):
        assert nn.Linear(8, 8)(torch.randn(4, 8)).dtype == FLOAT  # the CPU: CUDA autocast leaves it alone
        d = _on(dtype=torch.float64)
        assert (d @ d.T).dtype == torch.float64


def test_binary_cross_entropy_is_refused_as_on_cuda(simulated_gpus):
    with torch.autocast("cuda"), pytest.raises(RuntimeError, match="unsafe to autocast"):
        F.binary_cross_entropy(torch.sigmoid(_on()), torch.rand(4, 8, device="cuda:0"))


def test_autocast_values_are_the_float16_computation(simulated_gpus):
    layer = nn.Linear(8, 8).to("cuda:0")
    x = _on()
    with torch.autocast("cuda"):
        got = layer(x)
    with torch.no_grad():
        expected = F.linear(x.half(), layer.weight.half(), layer.bias.half())
    assert torch.equal(got.detach().cpu(), expected.cpu())


def test_gradscaler_trains_a_model_across_both_gpus(simulated_gpus):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32).to("cuda:0"), nn.ReLU())
    head = nn.Linear(32, 4).to("cuda:1")
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    x, y = _on("cuda:0", 8, 16), _on("cuda:1", 8, 4)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        with torch.autocast("cuda"):
            loss = F.mse_loss(head(model(x).to("cuda:1")), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert loss.dtype == FLOAT and losses[-1] < losses[0]
    assert all(p.grad.dtype == FLOAT and device_of(p.grad) == device_of(p) for p in params)
    assert scaler.get_scale() == 65536.0 and torch.cuda.amp.GradScaler().is_enabled()


def test_the_lists_are_pytorchs_own():
    """The lists were copied from the installed torch's autocast_mode.h: they still match it."""
    import re
    from pathlib import Path

    header = (Path(torch.__file__).parent / "include" / "ATen" / "autocast_mode.h").read_text()

    def macro(name):
        body = header.split(f"#define {name}(_)")[1].split("\n\n")[0]
        return set(re.findall(r"_\((\w+)", body))

    assert macro("AT_FORALL_LOWER_PRECISION_FP") == policy.LOWER
    assert macro("AT_FORALL_FP32") <= policy.FP32
    assert macro("AT_FORALL_FP32_SET_OPT_DTYPE") == policy.FP32_SET_OPT_DTYPE
    assert macro("AT_FORALL_PROMOTE") == policy.PROMOTE


@pytest.mark.parametrize("sample", [m for m in PRECISION_SAMPLES if m.name != "tf32_matmuls"], ids=lambda m: m.name)
def test_lower_precision_submissions_lose_the_checks_real_gpus_fail(sample, graded_samples):
    report = graded_samples.report(sample)
    assert not report.not_graded, report.not_graded
    assert report.failed() == sample.fails, {r.check.id: r.message for r in report.results if not r.passed}
    assert report.flags == []  # lower precision is a mistake here, never tampering
