"""The real-GPU recorder (``CudaRecorder``), run here on a stand-in CUDA layer: every way the host can wait for a
device is logged to the probe's own log - a sync function bound at import too - and nothing breaks on an event that
was never recorded. Tensors claim ``cuda:i`` through the simulation, which the recorder sits on like on real CUDA."""

import types

import pytest
import torch

from autograder.sandbox.recorder import CudaApi, CudaRecorder, unwatch, watch
from autograder.simgpu import simulated_gpus


class _Calls(list):
    def waited(self):
        return [entry for entry in self if entry[0] != "query"]


def _fake_api() -> tuple[CudaApi, _Calls, dict]:
    """A stand-in for torch.cuda and torch.accelerator that records what reached the 'driver'."""
    calls, state = _Calls(), {"current": 0, "done": False}

    class Event:
        def __init__(self, enable_timing: bool = False) -> None:
            self.device = None  # as torch.cuda.Event: None until recorded

        def record(self, stream=None) -> None:
            self.device = torch.device("cuda", state["current"] if stream is None else stream.device.index)

        def synchronize(self) -> None:
            calls.append(("event.synchronize", self.device))

        def query(self) -> bool:  # as CUDA: an event never recorded has nothing left to do
            calls.append(("query", self.device))
            return self.device is None or state["done"]

    class Stream:
        def __init__(self, index: int) -> None:
            self.device = torch.device("cuda", index)

        def synchronize(self) -> None:
            calls.append(("stream.synchronize", self.device))

        def query(self) -> bool:
            return True

    cuda = types.SimpleNamespace(
        synchronize=lambda device=None: calls.append(("synchronize", device)),
        current_device=lambda: state["current"], Event=Event, Stream=Stream,
        current_stream=lambda device=None: Stream(state["current"] if device is None else device))
    accelerator = types.SimpleNamespace(synchronize=lambda device=None: calls.append(("accelerator", device)),
                                        current_device_index=lambda: state["current"])
    return CudaApi(cuda, accelerator), calls, state


@pytest.fixture
def fake():
    api, calls, state = _fake_api()
    yield api, calls, state
    unwatch(api)


def _waits(recorder: CudaRecorder) -> list[tuple[str, str]]:
    return [(s.device, s.reason) for s in recorder.syncs]


def test_every_sync_function_is_logged_on_the_device_it_waits_for(fake):
    api, calls, state = fake
    with CudaRecorder(api) as log:
        api.cuda.synchronize()  # the current device
        api.cuda.synchronize("cuda:1")
        api.cuda.synchronize(torch.device("cuda", 1))
        state["current"] = 1
        api.cuda.synchronize("cuda")
        api.cuda.current_stream(0).synchronize()
        api.cuda.Stream(1).synchronize()
        api.accelerator.synchronize()
        api.accelerator.synchronize(0)
    assert _waits(log) == [("cuda:0", "synchronize"), ("cuda:1", "synchronize"), ("cuda:1", "synchronize"),
                           ("cuda:1", "synchronize"), ("cuda:0", "stream"), ("cuda:1", "stream"),
                           ("cuda:1", "synchronize"), ("cuda:0", "synchronize")]
    assert len(calls.waited()) == 8  # every call still reached the real function


def test_a_sync_function_bound_at_import_logs_to_each_later_probe(fake):
    """`from torch.cuda import synchronize` runs while the first probe's recorder is active (the module is imported by
    the first request): later probes must still see those waits, in their own log."""
    api, calls, _ = fake
    with CudaRecorder(api) as first:
        synchronize = api.cuda.synchronize  # what `from torch.cuda import synchronize` binds
        event_sync = api.cuda.Event.synchronize
    with CudaRecorder(api) as second:
        synchronize(1)
        event = api.cuda.Event()
        event.record(api.cuda.Stream(1))
        event_sync(event)
    assert first.syncs == []
    assert _waits(second) == [("cuda:1", "synchronize"), ("cuda:1", "event")]
    synchronize(0)  # no recorder active: the call goes through, nothing is logged anywhere
    assert calls[-1] == ("synchronize", 0) and len(second.syncs) == 2


def test_event_synchronize_and_query_loops(fake):
    api, calls, state = fake
    with CudaRecorder(api) as log:
        never = api.cuda.Event()
        never.synchronize()  # never recorded: waits for nothing, and must not raise (its device is None)
        assert never.query()  # done at once, and nothing to log
        end = api.cuda.Event()
        state["current"] = 1
        end.record()
        polls = 0
        while not end.query():  # a polling loop: logged once, when the host learns the device got there
            polls += 1
            state["done"] = polls >= 3
        end.synchronize()
        assert api.cuda.current_stream().query()
    assert _waits(log) == [("cuda:1", "event query"), ("cuda:1", "event"), ("cuda:1", "stream query")]


def test_host_reads_of_device_values_wait_for_that_device(fake):
    api, _, _ = fake
    with simulated_gpus(2):
        out = torch.ones(4, 4, device="cuda:1")
        flag = torch.zeros((), device="cuda:0")
        with CudaRecorder(api) as log:
            out[0, 0].item()
            float(out[0, 0])
            int(out[0, 0])
            bool(flag)
            out[0].tolist()
            repr(out)
            f"{flag}"
            out.nonzero()
            torch.equal(out, out)
            float(torch.ones(()))  # a CPU tensor: no device to wait for
    reasons = _waits(log)
    assert [device for device, _ in reasons] == ["cuda:1"] * 3 + ["cuda:0"] + ["cuda:1"] * 2 + ["cuda:0"] + [
        "cuda:1"] * 2
    assert {reason for _, reason in reasons} == {"item"}


def test_copies_log_transfers_and_the_blocking_ones_log_a_wait(fake):
    api, _, _ = fake
    with simulated_gpus(2):
        with CudaRecorder(api) as log:
            x = torch.ones(8, 8)
            on0 = x.to("cuda:0")  # blocking host -> device: the host waits for cuda:0's stream (memcpy_and_sync)
            x.to("cuda:0", non_blocking=True)  # staged, no wait
            x.cuda(1, True)  # positional non_blocking
            on1 = on0.to("cuda:1")  # between GPUs: never a host wait
            on1.cpu()  # device -> host: waits
            on1.to("cpu", torch.float32, True)  # non_blocking positionally: no wait
            torch.empty(8, 8).copy_(on1)  # copy_ to the host: waits
            on0.copy_(x, non_blocking=True)
            torch.tensor([1.0, 2.0], device="cuda:1")  # Python data to a device: a blocking copy
    moves = [(t.src, t.dst, t.via_host) for t in log.transfers]
    assert moves == [("cpu", "cuda:0", True), ("cpu", "cuda:0", True), ("cpu", "cuda:1", True),
                     ("cuda:0", "cuda:1", False), ("cuda:1", "cpu", True), ("cuda:1", "cpu", True),
                     ("cuda:1", "cpu", True), ("cpu", "cuda:0", True), ("cpu", "cuda:1", True)]
    assert _waits(log) == [("cuda:0", "copy from host"), ("cuda:1", "copy to host"), ("cuda:1", "copy to host"),
                           ("cuda:1", "copy from host")]


def test_one_order_across_transfers_and_waits(fake):
    api, _, _ = fake
    with simulated_gpus(2):
        with CudaRecorder(api) as log:
            on1 = torch.ones(2, device="cuda:0").to("cuda:1")
            api.cuda.synchronize(1)
            marker = log.next_seq()
            on1.sum().item()
    seqs = [t.seq for t in log.transfers] + [s.seq for s in log.syncs]
    assert len(set(seqs)) == len(seqs)
    assert [s.seq > marker for s in log.syncs] == [False, True]


def test_the_wrappers_are_installed_once_and_can_be_removed(fake):
    api, _, _ = fake
    original = api.cuda.synchronize
    with CudaRecorder(api):
        wrapped = api.cuda.synchronize
    with CudaRecorder(api):
        assert api.cuda.synchronize is wrapped  # the same wrapper for the life of the process
    assert watch(api) is watch(api)
    unwatch(api)
    assert api.cuda.synchronize is original


def test_the_recorder_over_torch_itself_leaves_torch_as_it_found_it():
    """The default CudaApi wraps torch.cuda and torch.accelerator (a CPU build has them too); removing the wrappers
    restores every attribute exactly."""
    from autograder.sandbox.recorder import TORCH

    before = (torch.cuda.synchronize, torch.cuda.Event.synchronize, torch.cuda.Event.query,
              torch.cuda.Stream.synchronize, torch.cuda.Stream.query, torch.accelerator.synchronize)
    try:
        with CudaRecorder():
            assert torch.cuda.synchronize is not before[0] and torch.cuda.synchronize.__wrapped__ is before[0]
            assert torch.accelerator.synchronize.__wrapped__ is before[5]
    finally:
        unwatch(TORCH)
    after = (torch.cuda.synchronize, torch.cuda.Event.synchronize, torch.cuda.Event.query,
             torch.cuda.Stream.synchronize, torch.cuda.Stream.query, torch.accelerator.synchronize)
    assert after == before


def test_query_loops_are_logged_waits_on_simulated_gpus_too():
    """The simulation keeps the same log: a polling loop over Event.query() or Stream.query() ends with one wait."""
    with simulated_gpus(2) as sim:
        with torch.cuda.device(1):
            torch.cuda._sleep(1_000_000)
            end = torch.cuda.Event()
            end.record()
        polls = 0
        while not end.query():
            polls += 1
        assert polls > 0 and torch.cuda.current_stream(1).query()
        assert [(s.device, s.reason) for s in sim.syncs] == [("cuda:1", "event query"), ("cuda:1", "stream query")]
