"""Issue 14's real-GPU paths on two real GPUs (skipped elsewhere; scripts/verify_on_gpus.sh runs them): the
sandboxed process's GPU self-test, every way of waiting seen by the recorder in the probe that ran it, the pipelined
reference overlapping (and a sync in its loop not), the profiler seeing the kernels it should."""

import random
import warnings

import pytest
import torch

from autograder.graders.expected import SEED, TIMING_LOW, TIMING_REPEATS, TIMING_WARMUP, timing_workloads
from autograder.samples import REFERENCE, by_name
from autograder.sandbox import SubmissionProcess

with warnings.catch_warnings():  # the graders' own `check` marker is registered by the grading session only
    warnings.simplefilter("ignore")
    from autograder.graders.test_pipeline import MIN_OVERLAP, STAGE_S

pytestmark = [pytest.mark.cuda2,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two real CUDA GPUs")]
DEVICES = ["cuda:0", "cuda:1"]
WAYS_OF_WAITING = ["reference", "variant_imported_synchronize", "variant_stream_sync", "variant_accelerator_sync",
                   "variant_event_query", "variant_item_of_output", "variant_cuda_events", "variant_time_time"]


def _folder(name, tmp_path):
    return REFERENCE.parent if name == "reference" else by_name(name).write(tmp_path / name)


def test_the_sandboxed_process_passes_its_gpu_self_test():
    with SubmissionProcess(REFERENCE.parent, "cuda") as submission:
        built = submission.probe("build", 120, devices=DEVICES, seed=SEED)
        assert submission.machine_problem is None and submission.sandbox_notes is not None
    assert built["params"]["layer2.weight"]["device"] == "cuda:1"


@pytest.mark.parametrize("name", WAYS_OF_WAITING)
def test_every_way_of_waiting_is_seen_in_the_probe_that_ran_it(name, tmp_path):
    """Twice in one process, so a sync function bound at import must log to the second probe's recorder too."""
    before, after = timing_workloads(random.Random(name), "heavy_on_device1")
    with SubmissionProcess(_folder(name, tmp_path), "cuda") as submission:
        for repeat in range(2):
            observed = submission.probe("time_forward", 120, devices=DEVICES, seed=SEED + repeat,
                                        warmup=TIMING_WARMUP, repeats=TIMING_REPEATS, before=before, after=after)
            assert observed["seconds"] / observed["true_seconds"] >= TIMING_LOW, observed
            if name != "variant_cuda_events":  # events on device1 time the device itself: no host wait needed
                assert "cuda:1" in observed["waited_for"], (repeat, observed)


@pytest.mark.parametrize(("name", "overlaps"), [("reference", True), ("pipeline_sync_in_loop", False)])
def test_the_pipeline_overlap_on_real_gpus(name, overlaps, tmp_path):
    """Item 6: with STAGE_S of GPU work behind each stage the reference overlaps clearly on real GPUs (batch 32
    alone is launch-bound), and a sync inside the loop does not."""
    with SubmissionProcess(_folder(name, tmp_path), "cuda") as submission:
        observed = submission.probe("pipeline", 120, devices=DEVICES, seed=SEED, batch=32, split_size=8,
                                    stage_s=STAGE_S)
    share = observed["overlap_s"] / observed["span_s"]
    if overlaps:
        assert share >= 2 * MIN_OVERLAP, observed
    else:
        assert share < MIN_OVERLAP / 2, observed


def test_the_profiler_sees_both_gpus_busy():
    """Item 10: busy.record on real GPUs (CPU and CUDA activity, records outside the session dropped)."""
    from autograder.busy import record

    x = torch.randn(4096, 1000, device="cuda:0")
    w0, w1 = torch.randn(1000, 2000, device="cuda:0"), torch.randn(2000, 1000, device="cuda:1")
    busy = record(lambda: (x @ w0).relu().to("cuda:1") @ w1)
    devices = {b.device for b in busy if b.kind == "compute"}
    assert devices == {"cuda:0", "cuda:1"} and any(b.kind == "copy" for b in busy)
    assert all(0 <= b.start <= b.end < 10 for b in busy)
