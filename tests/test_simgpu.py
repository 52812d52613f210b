"""The simulated two-GPU backend runs the practical's seed program faithfully."""

import copy
import statistics
import time

import pytest
import torch
import torch.nn as nn
from seed_program import SimpleMPModel, time_one_forward, train_fixed_batch, train_random_batches

from autograder import SimulationUnsupported, simulated_gpus
from autograder.simgpu import active_simulation

MISMATCH_PREFIX = "Expected all tensors to be on the same device"
CUDA0, CUDA1 = torch.device("cuda:0"), torch.device("cuda:1")


def test_reports_two_gpus(simulated_gpus):
    assert torch.cuda.is_available()
    assert torch.cuda.device_count() == 2
    assert torch.cuda.current_device() == 0


def test_seed_model_places_each_half_on_its_gpu(simulated_gpus):
    model = SimpleMPModel()
    assert {n: str(p.device) for n, p in model.named_parameters()} == {
        "layer1.weight": "cuda:0", "layer1.bias": "cuda:0", "layer2.weight": "cuda:1", "layer2.bias": "cuda:1"}
    assert model.layer2.weight.is_cuda and model.layer2.weight.get_device() == 1
    assert model(torch.randn(32, 1000)).device == CUDA1


def test_twenty_sgd_steps_lower_the_loss_with_everything_on_its_device(simulated_gpus):
    torch.manual_seed(0)
    model = SimpleMPModel()
    losses = train_fixed_batch(model, steps=20, lr=0.5)
    assert losses[-1] < 0.9 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    for name, p in model.named_parameters():
        expected = CUDA0 if name.startswith("layer1") else CUDA1
        assert p.device == expected and p.grad.device == expected, name
        assert p.detach().device == p.data.device == p[:1].device == expected, name
    assert {k: str(v.device) for k, v in model.state_dict().items()}["layer2.weight"] == "cuda:1"


def test_simulation_matches_plain_cpu_numerics():
    torch.manual_seed(0)
    reference = SimpleMPModel("cpu", "cpu")
    reference_losses = train_fixed_batch(reference, steps=5)
    with simulated_gpus(2):
        torch.manual_seed(0)
        model = SimpleMPModel()
        losses = train_fixed_batch(model, steps=5)
        weights = {k: v.cpu() for k, v in model.state_dict().items()}
    assert losses == pytest.approx(reference_losses, rel=1e-6)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(weights[name], value)


def test_adam_and_momentum_state_live_on_the_parameters_device(simulated_gpus):
    model = SimpleMPModel()
    for optimizer in (torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                      torch.optim.Adam(model.parameters(), lr=1e-4)):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(torch.randn(8, 1000)), torch.zeros(8, 1000, device="cuda:1")).backward()
        optimizer.step()
        for tensor in optimizer.state[model.layer2.weight].values():
            if tensor.dim() > 0:
                assert tensor.device == CUDA1


def test_forgetting_the_move_raises_pytorchs_error(simulated_gpus):
    model = SimpleMPModel()
    hidden = model.relu1(model.layer1(torch.randn(4, 1000).to("cuda:0")))
    with pytest.raises(RuntimeError, match=MISMATCH_PREFIX) as error:
        model.layer2(hidden)  # forgot hidden.to(device1)
    assert "cuda:0 and cuda:1!" in str(error.value)


def test_cpu_target_raises_pytorchs_error(simulated_gpus):
    model = SimpleMPModel()
    with pytest.raises(RuntimeError, match=MISMATCH_PREFIX):
        nn.MSELoss()(model(torch.randn(4, 1000)), torch.randn(4, 1000))


def test_cpu_scalars_mix_with_gpu_tensors_as_on_real_gpus(simulated_gpus):
    x = torch.ones(3, device="cuda:1")
    assert (x * torch.tensor(2.0)).device == CUDA1


def test_one_direct_copy_per_forward_is_recorded(simulated_gpus):
    model = SimpleMPModel()
    x = torch.randn(32, 1000, device="cuda:0")
    before = len(simulated_gpus.transfers)
    model(x)
    moves = simulated_gpus.transfers[before:]
    assert [(m.src, m.dst, m.nbytes, m.via_host) for m in moves] == [("cuda:0", "cuda:1", 32 * 2000 * 4, False)]


def test_copy_through_the_host_is_recorded_as_such(simulated_gpus):
    h = torch.randn(32, 2000, device="cuda:0")
    before = len(simulated_gpus.transfers)
    h.cpu().to("cuda:1")
    assert [(m.src, m.dst, m.via_host) for m in simulated_gpus.transfers[before:]] == [
        ("cuda:0", "cpu", True), ("cpu", "cuda:1", True)]


def test_every_way_of_naming_a_device_works(simulated_gpus):
    assert torch.randn(2, device="cuda:1").device == CUDA1
    assert torch.randn(2, device=torch.device("cuda")).device == CUDA0
    assert torch.randn(2).cuda().device == CUDA0 and torch.randn(2).cuda(1).device == CUDA1
    assert torch.randn(2).to(1).device == CUDA1
    assert nn.Linear(3, 4, device="cuda:1").weight.device == CUDA1
    assert nn.Linear(3, 4).cuda(1).bias.device == CUDA1
    x = torch.randn(2, device="cuda:1")
    assert torch.zeros_like(x).device == CUDA1 and x.new_zeros(3).device == CUDA1
    assert torch.randn(2).to(x).device == CUDA1
    assert copy.deepcopy(nn.Linear(3, 4).to("cuda:1")).weight.device == CUDA1
    with torch.cuda.device(1):
        assert torch.randn(2).cuda().device == CUDA1
        assert torch.cuda.current_device() == 1
    torch.cuda.set_device(1)
    assert torch.ones(1, device="cuda").device == CUDA1


def test_printing_shows_the_device_and_waits_for_it(simulated_gpus):
    x = torch.ones(2, device="cuda:1")
    torch.cuda._sleep(int(20e-3 * 1e9))  # 20 ms on the current device, cuda:0: printing cuda:1 doesn't wait
    assert repr(x) == "tensor([1., 1.], device='cuda:1')"
    with torch.cuda.device(1):
        torch.cuda._sleep(int(20e-3 * 1e9))
    start = time.perf_counter()
    str(x)
    assert time.perf_counter() - start >= 20e-3
    assert simulated_gpus.syncs[-1].device == "cuda:1" and simulated_gpus.syncs[-1].reason == "print"


def test_item_waits_for_the_device(simulated_gpus):
    x = torch.ones(2, device="cuda:1")
    with torch.cuda.device(1):
        torch.cuda._sleep(int(20e-3 * 1e9))
    start = time.perf_counter()
    assert x.sum().item() == 2.0
    assert time.perf_counter() - start >= 20e-3


def test_numpy_of_a_gpu_tensor_is_refused_as_on_real_gpus(simulated_gpus):
    with pytest.raises(TypeError, match="can't convert cuda:1 device type tensor to numpy"):
        torch.ones(2, device="cuda:1").numpy()


def _median_forward_times(syncs: tuple[str, ...], trials: int = 15) -> list[float]:
    """The median time of one forward per way of syncing; the ways take turns within each trial, so a
    change in the machine's speed during the test affects them alike."""
    model = SimpleMPModel()
    x = torch.randn(32, 1000, device="cuda:0")  # already on cuda:0, so the forward starts without a host sync
    times = [[time_one_forward(model, x, sync) for sync in syncs] for _ in range(trials)]
    return [statistics.median(column) for column in zip(*times, strict=True)]


def test_timing_without_sync_or_with_current_device_only_under_measures(simulated_gpus):
    none, current, both = _median_forward_times(("none", "current", "both"))
    assert none < 0.7 * both, (none, both)
    assert current < 0.85 * both, (current, both)
    assert none < current, (none, current)


def test_synchronized_timing_measures_the_device_time(simulated_gpus):
    model = SimpleMPModel()
    x = torch.randn(32, 1000, device="cuda:0")
    measured = time_one_forward(model, x, "both")
    intervals = [i for i in simulated_gpus.intervals if i.end > simulated_gpus.intervals[-1].end - measured * 2]
    last_forward_end = max(i.end for i in intervals)
    assert last_forward_end <= time.perf_counter()
    device_busy = sum(i.end - i.start for i in simulated_gpus.intervals[-6:])  # the timed forward's own work
    assert measured >= 0.8 * device_busy / 2


def test_cuda_events_agree_with_a_synchronized_wall_clock(simulated_gpus):
    start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.device(1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        start_event.record()
        torch.cuda._sleep(int(30e-3 * 1e9))
        end_event.record()
        end_event.synchronize()
        wall_ms = (time.perf_counter() - start) * 1000
    assert start_event.elapsed_time(end_event) == pytest.approx(30.0, rel=0.05)
    assert wall_ms == pytest.approx(30.0, rel=0.3)


def test_devices_take_turns_in_a_forward(simulated_gpus):
    model = SimpleMPModel()
    x = torch.randn(32, 1000, device="cuda:0")
    before = len(simulated_gpus.intervals)
    model(x)
    compute = [i for i in simulated_gpus.intervals[before:] if i.kind == "compute"]
    gpu0_end = max(i.end for i in compute if i.device == "cuda:0")
    gpu1_start = min(i.start for i in compute if i.device == "cuda:1")
    assert gpu0_end <= gpu1_start


def test_backward_runs_on_the_devices(simulated_gpus):
    model = SimpleMPModel()
    before = len(simulated_gpus.intervals)
    model(torch.randn(8, 1000)).sum().backward()
    backward = [i for i in simulated_gpus.intervals[before:] if i.name.startswith("backward")]
    assert {i.device for i in backward} == {"cuda:0", "cuda:1"}
    grad_copies = [t for t in simulated_gpus.transfers if (t.src, t.dst) == ("cuda:1", "cuda:0")]
    assert len(grad_copies) == 1


def test_seed_training_loop_prints_losses(simulated_gpus, capsys):
    train_random_batches(SimpleMPModel(), steps=5)
    assert capsys.readouterr().out.count("loss") == 5


def test_trace_prints_the_move(simulated_gpus, capsys):
    SimpleMPModel()(torch.randn(2, 1000), trace=True)
    assert capsys.readouterr().out == "Before move: cuda:0\nAfter move: cuda:1\n"


@pytest.mark.parametrize("call, message", [
    (lambda: torch.compile(nn.Linear(2, 2)), "torch.compile"),
    (lambda: torch.cuda.Stream(), "torch.cuda.Stream"),
    (lambda: torch.ones(2, device="cuda:1").to_sparse(), "sparse"),
    (lambda: torch.ones(2).type("torch.cuda.FloatTensor"), "legacy CUDA tensor types"),
])
def test_what_cannot_be_simulated_is_refused_by_name(simulated_gpus, call, message):
    with pytest.raises(SimulationUnsupported, match=message):
        call()


def test_invalid_device_ordinal_is_an_error(simulated_gpus):
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        torch.ones(1, device="cuda:2")


def test_leaving_restores_torch_exactly():
    names = ("is_available", "device_count", "synchronize", "Event", "device", "_sleep", "current_device")
    before = {n: getattr(torch.cuda, n) for n in names}
    compile_before = torch.compile
    with simulated_gpus(2):
        x = torch.ones(2, device="cuda:1")
    assert {n: getattr(torch.cuda, n) for n in names} == before
    assert torch.compile is compile_before
    assert not torch._C._is_torch_function_mode_enabled()
    assert x.device.type == "cpu"  # outside the simulation the tensor is what it really is
    with pytest.raises(RuntimeError, match="No simulated GPUs are active"):
        active_simulation()


def test_two_uses_do_not_share_state():
    with simulated_gpus(2) as first:
        torch.ones(2).to("cuda:1")
    with simulated_gpus(2) as second:
        assert second.transfers == [] and second.syncs == []
    assert len(first.transfers) == 1


def test_nesting_is_refused():
    with simulated_gpus(2):
        with pytest.raises(RuntimeError, match="already active"):
            with simulated_gpus(2):
                pass


def test_no_grad_and_detach(simulated_gpus):
    model = SimpleMPModel()
    with torch.no_grad():
        out = model(torch.randn(2, 1000))
    assert not out.requires_grad and out.device == CUDA1
