"""The simulated two-GPU backend runs the practical's seed program faithfully."""

import copy
import time
from time import perf_counter as REAL_PERF_COUNTER  # bound before any simulation replaces time.perf_counter

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


def test_simulation_matches_plain_cpu_numerics_bit_for_bit():
    """The simulation computes with the very CPU kernels a CPU run uses: equal, not close."""
    torch.manual_seed(0)
    reference = SimpleMPModel("cpu", "cpu")
    reference_losses = train_fixed_batch(reference, steps=5)
    with simulated_gpus(2):
        torch.manual_seed(0)
        model = SimpleMPModel()
        losses = train_fixed_batch(model, steps=5)
        weights = {k: v.cpu() for k, v in model.state_dict().items()}
    assert losses == reference_losses
    expected = reference.state_dict()
    assert set(weights) == set(expected) == {"layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"}
    for name, value in expected.items():
        assert torch.equal(weights[name], value), name


def test_adam_and_momentum_state_live_on_the_parameters_device(simulated_gpus):
    model = SimpleMPModel()
    # the per-parameter state each optimizer keeps (Adam's `step` is a CPU scalar, on real GPUs too)
    for optimizer, kept in ((torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), {"momentum_buffer"}),
                            (torch.optim.Adam(model.parameters(), lr=1e-4), {"exp_avg", "exp_avg_sq"})):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(torch.randn(8, 1000)), torch.zeros(8, 1000, device="cuda:1")).backward()
        optimizer.step()
        for layer, device in ((model.layer1, CUDA0), (model.layer2, CUDA1)):
            state = optimizer.state[layer.weight]
            assert kept <= set(state), (type(optimizer).__name__, set(state))
            assert {name: state[name].device for name in kept} == dict.fromkeys(kept, device)


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


def _cycles(sim, seconds: float) -> int:
    """torch.cuda._sleep cycles that last ``seconds`` on the simulated GPU (its profile's clock)."""
    return round(seconds * sim.profile.clock_hz)


def test_printing_shows_the_device_and_waits_for_it(simulated_gpus):
    x = torch.ones(2, device="cuda:1")
    torch.cuda._sleep(_cycles(simulated_gpus, 20e-3))  # 20 ms on the current device, cuda:0: cuda:1 needs no wait
    assert repr(x) == "tensor([1., 1.], device='cuda:1')"
    with torch.cuda.device(1):
        torch.cuda._sleep(_cycles(simulated_gpus, 20e-3))
    start = time.perf_counter()
    str(x)
    assert time.perf_counter() - start >= 20e-3
    assert simulated_gpus.syncs[-1].device == "cuda:1" and simulated_gpus.syncs[-1].reason == "print"


def test_item_waits_for_the_device(simulated_gpus):
    x = torch.ones(2, device="cuda:1")
    with torch.cuda.device(1):
        torch.cuda._sleep(_cycles(simulated_gpus, 20e-3))
    start = time.perf_counter()
    assert x.sum().item() == 2.0
    assert time.perf_counter() - start >= 20e-3


def test_numpy_of_a_gpu_tensor_is_refused_as_on_real_gpus(simulated_gpus):
    with pytest.raises(TypeError, match="can't convert cuda:1 device type tensor to numpy"):
        torch.ones(2, device="cuda:1").numpy()


def _forward_times(sim) -> dict[str, float]:
    """One forward timed with each way of syncing (virtual seconds). Batch 1024: the GPUs, not the host's
    launches, set the pace (at batch 32 an A100 finishes each kernel before the host launches the next)."""
    model = SimpleMPModel()
    x = torch.randn(1024, 1000, device="cuda:0")  # already on cuda:0, so the forward starts without a host sync
    times = {sync: time_one_forward(model, x, sync) for sync in ("none", "current", "both")}
    return times


def test_without_sync_a_timer_reads_only_the_hosts_launches(simulated_gpus):
    times = _forward_times(simulated_gpus)
    profile = simulated_gpus.profile
    # 2 kernels on cuda:0, the copy, 2 kernels on cuda:1: five launches of the host, then one clock read
    assert times["none"] == pytest.approx(5 * profile.launch_s + 1e-6, abs=1e-9)
    assert times["none"] < times["current"] < times["both"]


def test_a_bare_synchronize_misses_the_work_left_on_cuda1(simulated_gpus):
    times = _forward_times(simulated_gpus)
    last = [i for i in simulated_gpus.intervals if i.device == "cuda:1"][-2:]  # the timed forward's addmm, relu
    assert [i.name for i in last] == ["addmm", "relu"]
    missed = sum(i.end - i.start for i in last)
    assert times["both"] - times["current"] == pytest.approx(missed, abs=2e-9)


def test_synchronized_timing_measures_the_device_time(simulated_gpus):
    model = SimpleMPModel()
    x = torch.randn(1024, 1000, device="cuda:0")
    measured = time_one_forward(model, x, "both")
    forward = [i for i in simulated_gpus.intervals if i.name in ("addmm", "relu", "copy cuda:0->cuda:1")][-6:]
    # the host launched the first kernel at its start, one launch after the clock started; one read stops it
    device_span = max(i.end for i in forward) - min(i.start for i in forward)
    assert measured == pytest.approx(device_span + simulated_gpus.profile.launch_s + 1e-6, abs=1e-9)


def test_a_kernel_costs_what_the_gpu_profile_says(simulated_gpus):
    """addmm of the seed's layer1 on an A100: 2*32*2000*1000 FLOPs at 19.5 TFLOP/s vs its bytes at 2039 GB/s."""
    profile = simulated_gpus.profile
    assert profile.key == "a100"
    layer1 = nn.Linear(1000, 2000).to("cuda:0")
    x = torch.randn(32, 1000, device="cuda:0")
    before = len(simulated_gpus.intervals)
    layer1(x)
    (kernel,) = [i for i in simulated_gpus.intervals[before:] if i.name == "addmm"]
    flops = 2 * 32 * 2000 * 1000 + 32 * 2000
    nbytes = 4 * (2000 + 32 * 1000 + 2000 * 1000 + 32 * 2000)  # bias, input, weight, output
    expected = 2e-6 + max(flops / 19.5e12, nbytes / 2039e9)
    assert kernel.end - kernel.start == pytest.approx(expected, abs=1e-9)


def test_a_copy_between_the_gpus_goes_over_the_peer_link(simulated_gpus):
    x = torch.randn(32, 2000, device="cuda:0")
    before = len(simulated_gpus.intervals)
    x.to("cuda:1")
    copies = [i for i in simulated_gpus.intervals[before:] if i.kind == "copy"]
    assert {i.device for i in copies} == {"cuda:0", "cuda:1"}  # PyTorch's two-way barrier: it holds both queues
    assert copies[0].end - copies[0].start == pytest.approx(2e-6 + 32 * 2000 * 4 / 300e9, abs=1e-9)


def test_cuda_events_agree_with_a_synchronized_wall_clock(simulated_gpus):
    start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.device(1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        start_event.record()
        torch.cuda._sleep(_cycles(simulated_gpus, 30e-3))
        end_event.record()
        end_event.synchronize()
        wall_ms = (time.perf_counter() - start) * 1000
    launch_ms = simulated_gpus.profile.launch_s * 1000
    assert start_event.elapsed_time(end_event) == pytest.approx(30.0 + launch_ms, abs=1e-6)
    assert wall_ms == pytest.approx(30.0 + launch_ms + 1e-3, abs=1e-6)  # + the clock read that stopped it


def test_every_host_clock_reads_virtual_time_and_sleep_never_sleeps(simulated_gpus):
    import datetime
    import timeit

    real_start = REAL_PERF_COUNTER()
    readers = {"perf_counter": time.perf_counter, "monotonic": time.monotonic, "time": time.time,
               "perf_counter_ns": lambda: time.perf_counter_ns() / 1e9, "time_ns": lambda: time.time_ns() / 1e9,
               "clock_gettime": lambda: time.clock_gettime(time.CLOCK_MONOTONIC),
               "default_timer": timeit.default_timer, "datetime.now": lambda: datetime.datetime.now().timestamp()}
    for name, read in readers.items():
        before = read()
        time.sleep(5.0)
        assert read() - before == pytest.approx(5.0, abs=1e-5), name
    assert REAL_PERF_COUNTER() - real_start < 1.0  # eight 5 s sleeps took no real time
    assert timeit.timeit("pass", number=10) < 1e-3  # timeit's default timer is the virtual one too


def test_a_polling_loop_on_an_event_ends(simulated_gpus):
    done = torch.cuda.Event()
    torch.cuda._sleep(_cycles(simulated_gpus, 5e-3))
    done.record()
    start, polls = time.perf_counter(), 0
    while not done.query():
        polls += 1
    assert time.perf_counter() - start >= 5e-3 - 1e-9 and polls > 0


def test_other_threads_keep_the_real_clocks(simulated_gpus):
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(time.perf_counter()))
    time.sleep(1000.0)  # the simulation's host is now far ahead of the real clock
    thread.start()
    thread.join()
    assert abs(seen[0] - REAL_PERF_COUNTER()) < 1.0


def test_the_same_program_gives_the_same_times_and_logs_bit_for_bit():
    def run() -> tuple:
        with simulated_gpus(2) as sim:
            torch.manual_seed(0)
            model = SimpleMPModel()
            losses = train_fixed_batch(model, steps=3, lr=0.5)
            times = _forward_times(sim)
            return losses, times, sim.intervals, sim.transfers, sim.syncs

    assert run() == run()


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
    loss = model(torch.randn(8, 1000)).sum()
    before = len(simulated_gpus.intervals)
    loss.backward()
    backward = [i for i in simulated_gpus.intervals[before:] if i.kind == "compute"]
    assert {i.device for i in backward} == {"cuda:0", "cuda:1"}
    assert {"mm", "threshold_backward"} <= {i.name for i in backward}
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
    (lambda: torch.cuda.ExternalStream(0), "torch.cuda.ExternalStream"),
    (lambda: torch.ones(2, device="cuda:1").to_sparse(), "sparse"),
    (lambda: torch.ones(2).type("torch.cuda.FloatTensor"), "legacy CUDA tensor types"),
])
def test_what_cannot_be_simulated_is_refused_by_name(simulated_gpus, call, message):
    with pytest.raises(SimulationUnsupported, match=message):
        call()


def test_invalid_device_ordinal_is_an_error(simulated_gpus):
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        torch.ones(1, device="cuda:2")


def test_leaving_restores_torch_and_the_clocks_exactly():
    import datetime
    import timeit

    names = ("is_available", "device_count", "synchronize", "Event", "device", "_sleep", "current_device")
    before = {n: getattr(torch.cuda, n) for n in names}
    clocks = ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "clock_gettime",
              "clock_gettime_ns", "sleep")
    clocks_before = {n: getattr(time, n) for n in clocks}
    others_before = (timeit.default_timer, timeit.Timer.__init__.__defaults__, timeit.timeit.__defaults__,
                     datetime.datetime)
    compile_before = torch.compile
    with simulated_gpus(2):
        x = torch.ones(2, device="cuda:1")
        assert time.perf_counter is not clocks_before["perf_counter"]
    assert {n: getattr(time, n) for n in clocks} == clocks_before
    assert (timeit.default_timer, timeit.Timer.__init__.__defaults__, timeit.timeit.__defaults__,
            datetime.datetime) == others_before
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


def test_event_loops_keep_real_time_inside_the_simulation(simulated_gpus):
    """asyncio (as a Jupyter kernel's loop) times out in real time: on the virtual clock it would poll for seconds."""
    import asyncio

    start = REAL_PERF_COUNTER()
    asyncio.run(asyncio.sleep(0.002))
    assert REAL_PERF_COUNTER() - start < 0.5


def test_a_clock_bound_inside_reads_real_time_after_the_simulation():
    with simulated_gpus(2):
        from time import perf_counter as bound_inside
    start = bound_inside()
    time.sleep(0.05)
    assert bound_inside() - start >= 0.05


def test_datetime_now_is_a_datetime_and_cpu_clocks_are_virtual_too(simulated_gpus):
    import datetime
    import os

    assert isinstance(datetime.datetime.now(), datetime.datetime)
    before = (time.process_time(), time.thread_time(), os.times().elapsed)
    time.sleep(2.0)
    after = (time.process_time(), time.thread_time(), os.times().elapsed)
    assert [b - a for a, b in zip(before, after, strict=True)] == pytest.approx([2.0] * 3, abs=1e-4)


def test_device_of_and_invalid_ordinals_as_on_real_gpus(simulated_gpus):
    out = torch.ones(2, device="cuda:1")
    with torch.cuda.device_of(out):
        assert torch.cuda.current_device() == 1
    for call in (lambda: torch.cuda.synchronize(5), lambda: torch.cuda.current_stream(5).synchronize()):
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            call()


def test_an_empty_tensor_keeps_its_device(simulated_gpus):
    assert (torch.empty(0, 3, device="cuda:0") + 1).device == CUDA0


def test_reset_never_makes_an_event_run_backwards(simulated_gpus):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(_cycles(simulated_gpus, 10e-3))
    simulated_gpus.reset()  # between two probes: queued work is finished, not forgotten
    end.record()
    end.synchronize()
    assert start.elapsed_time(end) >= 10.0
