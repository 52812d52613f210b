"""CUDA streams on the simulated GPUs behave as CUDA's do (simgpu/streams.py, clock.py), and a correct
stream-based Part 5 pipeline gets the Part 5 points, overlapping as the reference does.

Every time below is exact: the clock is virtual, so intervals either overlap or they do not.
"""

import pytest
import torch

from autograder.busy import overlap_seconds, record
from autograder.grading import grade
from autograder.samples import PIPELINE_CHECKS, STREAM_MUTANTS, STREAM_VARIANTS

MS = 1e-3


def _sleep(sim, seconds: float) -> None:
    torch.cuda._sleep(round(seconds * sim.profile.clock_hz))


def _sleeps(sim) -> list:
    return [i for i in sim.clocks.intervals if i.name == "_sleep"]


def test_a_new_stream_does_not_wait_for_the_default_stream(simulated_gpus):
    _sleep(simulated_gpus, MS)  # on cuda:0's default stream
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        _sleep(simulated_gpus, MS)
    first, second = _sleeps(simulated_gpus)
    assert (first.stream, second.stream) == (0, side.stream_id) and second.start < first.end  # they run together


def test_wait_stream_orders_a_stream_after_another(simulated_gpus):
    _sleep(simulated_gpus, MS)
    side = torch.cuda.Stream(device="cuda:0")
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        _sleep(simulated_gpus, MS)
    first, second = _sleeps(simulated_gpus)
    assert second.start >= first.end


def test_an_event_on_one_device_holds_back_a_stream_of_the_other(simulated_gpus):
    _sleep(simulated_gpus, 2 * MS)  # cuda:0
    done = torch.cuda.Event()
    done.record()
    s1 = torch.cuda.Stream(device=1)
    s1.wait_event(done)
    unordered = torch.cuda.Stream(device=1)
    for stream in (s1, unordered):
        with torch.cuda.stream(stream):
            _sleep(simulated_gpus, MS)
    on0, after_event, free = _sleeps(simulated_gpus)
    assert after_event.device == free.device == "cuda:1"
    assert after_event.start >= on0.end and free.start < on0.end
    assert simulated_gpus.clocks.now_ns < on0.end * 1e9  # waiting on an event is the stream's, never the host's


def test_the_stream_context_makes_the_stream_and_its_device_current_then_restores_both(simulated_gpus):
    s1 = torch.cuda.Stream(device="cuda:1")
    assert torch.cuda.current_stream() == torch.cuda.default_stream() and torch.cuda.current_device() == 0
    with torch.cuda.stream(s1):
        assert torch.cuda.current_device() == 1 and torch.cuda.current_stream() == s1
        assert torch.cuda.current_stream(0) == torch.cuda.default_stream(0)
        y = torch.ones(4, device="cuda:1") * 2  # queued on s1
    assert torch.cuda.current_device() == 0 and torch.cuda.current_stream(1) == torch.cuda.default_stream(1)
    assert simulated_gpus.clocks.intervals[-1].stream == s1.stream_id and y.device == torch.device("cuda:1")
    with torch.cuda.stream(None):  # PyTorch's no-op form
        assert torch.cuda.current_device() == 0
    with s1:  # a torch.Stream is its own context manager
        assert torch.cuda.current_stream() == s1 and torch.cuda.current_device() == 1
    assert torch.cuda.current_stream(1) == torch.cuda.default_stream(1) and torch.cuda.current_device() == 0
    assert s1 != torch.cuda.Stream(device="cuda:1") and s1.device == torch.device("cuda:1")


def test_elapsed_time_between_events_on_two_streams_of_one_device(simulated_gpus):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    side = torch.cuda.Stream()
    side.wait_event(start)
    with torch.cuda.stream(side):
        _sleep(simulated_gpus, 3 * MS)
    end.record(side)
    end.synchronize()
    assert start.elapsed_time(end) == pytest.approx(3.0, abs=0.01)  # ms, the sleep and its launch
    other = torch.cuda.Event(enable_timing=True)
    other.record(torch.cuda.Stream(device=1))
    with pytest.raises(RuntimeError, match="same device"):
        start.elapsed_time(other)


def test_synchronize_waits_for_every_stream_of_its_device_and_only_that_device(simulated_gpus):
    with torch.cuda.stream(torch.cuda.Stream(device=0)):
        _sleep(simulated_gpus, 2 * MS)
    with torch.cuda.stream(torch.cuda.Stream(device=1)):
        _sleep(simulated_gpus, 5 * MS)
    on0, on1 = _sleeps(simulated_gpus)
    torch.cuda.synchronize()  # the current device, cuda:0: all its streams, nothing of cuda:1's
    now = simulated_gpus.clocks.now_ns / 1e9
    assert on0.end <= now < on1.end
    torch.cuda.synchronize("cuda:1")
    assert simulated_gpus.clocks.now_ns / 1e9 >= on1.end


def test_stream_query_and_synchronize_are_the_streams_own(simulated_gpus):
    busy, idle = torch.cuda.Stream(), torch.cuda.Stream()
    with torch.cuda.stream(busy):
        _sleep(simulated_gpus, MS)
    assert idle.query() and not busy.query()
    busy.synchronize()
    assert busy.query() and simulated_gpus.clocks.now_ns / 1e9 >= _sleeps(simulated_gpus)[0].end


def test_a_copy_between_devices_runs_on_the_sources_current_stream(simulated_gpus):
    s0, s1 = torch.cuda.Stream(device=0), torch.cuda.Stream(device=1)
    x = torch.ones(1000, device="cuda:0")
    with torch.cuda.stream(s1):  # cuda:1 current, with s1: the copy waits for s1 and s1 for the copy
        with torch.cuda.stream(s0):  # cuda:0's current stream: where the copy is issued
            y = x.to("cuda:1")
    copies = [i for i in simulated_gpus.clocks.intervals if i.kind == "copy"]
    assert {(i.device, i.stream) for i in copies} == {("cuda:0", s0.stream_id), ("cuda:1", s1.stream_id)}
    assert y.device == torch.device("cuda:1")


def test_compute_kernels_of_two_streams_share_the_device_but_sleeps_do_not(simulated_gpus):
    a = torch.randn(512, 512, device="cuda:0")
    streams = torch.cuda.Stream(), torch.cuda.Stream()
    for stream in streams:
        with torch.cuda.stream(stream):
            a @ a  # the cost model's kernel fills the GPU
    first, second = (i for i in simulated_gpus.clocks.intervals if i.name == "mm")
    assert second.start >= first.end and first.stream != second.stream


def test_record_stream_takes_a_simulated_stream(simulated_gpus):
    side = torch.cuda.Stream(device=1)
    t = torch.ones(3, device="cuda:1")
    t.record_stream(side)  # a hint to the caching allocator: nothing to simulate, but it must be accepted
    assert isinstance(side, torch.cuda.Stream) and isinstance(side, torch.Stream)


def test_streams_stay_usable_after_the_simulation_resets_its_queues(simulated_gpus):
    side = torch.cuda.Stream(device=1)
    with torch.cuda.stream(side):
        torch.cuda.set_device(0)  # a current stream left behind by one run ...
    with torch.cuda.stream(side):
        pass
    torch.cuda.set_stream(side)
    simulated_gpus.reset()
    assert torch.cuda.current_stream(1) == torch.cuda.default_stream(1)  # ... is not the next run's
    with torch.cuda.stream(side):
        _sleep(simulated_gpus, MS)
    assert side.query() is False


def test_the_stream_pipeline_overlaps_the_gpus_as_the_reference_does(simulated_gpus, tmp_path):
    import importlib.util

    path = STREAM_VARIANTS[0].write(tmp_path) / "model_parallel.py"
    spec = importlib.util.spec_from_file_location("stream_variant", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stage = round(MS * simulated_gpus.profile.clock_hz)

    def stage_work(device):
        def hook(*_):
            with torch.cuda.device(device):
                torch.cuda._sleep(stage)
        return hook

    model = module.PipelinedMPModel("cuda:0", "cuda:1", split_size=8)
    model.layer1.register_forward_hook(stage_work("cuda:0"))
    model.layer2.register_forward_hook(stage_work("cuda:1"))
    x = torch.randn(32, 1000, device="cuda:0")
    with torch.no_grad():
        busy = record(lambda: model(x), ("cuda:0", "cuda:1"))
    span = max(b.end for b in busy)
    # 4 micro-batches of 1 ms stages: (m-1)/(m+1) = 0.6 of the forward with both GPUs busy, the reference's share
    assert overlap_seconds(busy) / span == pytest.approx(0.6, abs=0.01)


@pytest.mark.parametrize("sample", STREAM_VARIANTS + STREAM_MUTANTS, ids=lambda m: m.name)
def test_stream_pipelines_get_the_part5_verdicts_of_real_gpus(sample, fast_rubric, tmp_path):
    report = grade(sample.write(tmp_path / sample.name), fast_rubric.with_enabled(PIPELINE_CHECKS), "sim")
    assert not report.not_graded, report.not_graded
    assert report.failed() == sample.fails, {r.check.id: r.message for r in report.results if not r.passed}
    assert report.flags == []  # streams are not tampering
    if not sample.fails:
        assert report.score == report.max_score == 120



def test_a_kernel_waiting_on_an_event_leaves_the_sms_to_another_stream(simulated_gpus):
    a = torch.randn(512, 512, device="cuda:0")
    _sleep(simulated_gpus, 2 * MS)  # the default stream's event below is reached after 2 ms
    later = torch.cuda.Stream()
    later.wait_event(torch.cuda.current_stream().record_event())
    with torch.cuda.stream(later):
        a @ a  # queued now, runs after 2 ms
    with torch.cuda.stream(torch.cuda.Stream()):
        a @ a  # launched after it, free to run at once
    waiting, free = (i for i in simulated_gpus.clocks.intervals if i.name == "mm")
    assert free.end <= waiting.start and waiting.start * 1e3 >= 2.0
