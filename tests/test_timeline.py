"""The idle GPUs, made visible: recorded busy intervals, the bubble, the timeline picture and the split-size sweep.

On simulated GPUs time is virtual and device time comes from the GPU profile's cost model, so these numbers are
the model's own: the same on any machine, under any load, every run.
"""

import json

import pytest
from conftest import REPO

from autograder.busy import idle_fraction, overlap_seconds
from autograder.cli import main
from autograder.simgpu import simulated_gpus
from autograder.timeline import BATCH, reference_timelines, span, split_size_sweep

BUBBLE_POINTS = 0.02  # the target: within 2 points of (p-1)/(m+p-1)


def test_simple_model_devices_never_overlap():
    with simulated_gpus(2):
        (_, simple), _ = reference_timelines()
    assert overlap_seconds(simple) == 0.0
    assert {b.device for b in simple} == {"cuda:0", "cuda:1"}
    assert idle_fraction(simple) == pytest.approx(0.5, abs=0.04)  # each GPU waits while the other computes


def _pipelined(micro_batches: int):
    with simulated_gpus(2):
        return reference_timelines(BATCH, BATCH // micro_batches)


@pytest.mark.parametrize("micro_batches", [
    pytest.param(2, marks=pytest.mark.xfail(strict=True, reason=(
        "2.2 points under the formula on the default A100: each micro-batch's NVLink copy (13% of a stage) keeps "
        "both GPUs busy, which (p-1)/(m+p-1) leaves out; a strict xfail, so meeting the target shows here"))),
    4, 8])
def test_pipeline_bubble_matches_the_formula(micro_batches):
    (_, simple), (_, pipelined) = _pipelined(micro_batches)
    stages = 2
    # the GPUs compute together for at least half the share an ideal pipeline would, (m-1)/(m+1) (measured: 0.30,
    # 0.53, 0.67 of the span at m = 2, 4, 8: copies and launches take the rest)
    ideal = (micro_batches - 1) / (micro_batches + 1)
    assert overlap_seconds(pipelined) >= 0.5 * ideal * span(pipelined)
    assert span(pipelined) < span(simple)  # the point of Part 5: the pipelined forward is shorter
    assert idle_fraction(pipelined) == pytest.approx((stages - 1) / (micro_batches + stages - 1), abs=BUBBLE_POINTS)


def test_the_timeline_is_the_same_every_run():
    first, second = _pipelined(4), _pipelined(4)
    assert first == second


def test_the_split_size_sweep_has_the_tutorials_shape():
    """Speed-up rises as micro-batches overlap, then falls when they are so small that the launches dominate."""
    with simulated_gpus(2):
        rows = split_size_sweep(split_sizes=(4096, 1024, 256, 32))
    speed_ups = [r["speed_up"] for r in rows]
    assert speed_ups[0] == pytest.approx(1.0, abs=0.02)  # one micro-batch: the unsplit model
    assert speed_ups[1] > 1.3 and speed_ups[2] > speed_ups[0] and speed_ups[3] < speed_ups[2]


def test_the_sweep_shows_its_progress_and_stays_quiet_in_the_notebook(capsys):
    """`timeline --sweep` takes a minute or more on a small CPU: a bar, one step per split size; the notebook's
    call (no progress) prints nothing, and the rows are the same either way."""
    with simulated_gpus(2):
        quiet = split_size_sweep(split_sizes=(4096, 1024))
        assert capsys.readouterr().err == ""
        shown = split_size_sweep(split_sizes=(4096, 1024), progress=True)
    err = capsys.readouterr().err
    assert "split sizes" in err and "2/2" in err
    # The same sweep: the second starts later on the virtual clock, so its sums may differ in the last bits.
    assert [r["split_size"] for r in shown] == [r["split_size"] for r in quiet]
    assert [r["speed_up"] for r in shown] == pytest.approx([r["speed_up"] for r in quiet], rel=1e-9)


def test_timeline_command_writes_a_png_and_its_numbers(tmp_path, capsys):
    out = tmp_path / "timeline.png"
    assert main(["timeline", "--out", str(out), "--devices", "sim"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads(out.with_suffix(".json").read_text())
    simple, pipelined = numbers["panels"]
    assert pipelined["forward_s"] < simple["forward_s"] and set(simple["busy"]) == {"cuda:0", "cuda:1"}
    assert "simulated NVIDIA A100" in capsys.readouterr().out


def test_readme_shows_the_timeline():
    assert "docs/timeline.png" in (REPO / "README.md").read_text()
    assert (REPO / "docs" / "timeline.png").is_file()


def test_a_profiler_that_saw_nothing_is_said_not_drawn(monkeypatch, tmp_path):
    """Real GPUs: torch.profiler can return no kernel events at all (issue 14, item 10); the timeline says so instead
    of drawing an empty picture or dividing by a zero span (stand-in: a record() that saw nothing)."""
    from autograder import timeline

    monkeypatch.setattr(timeline, "record", lambda work: [])
    with simulated_gpus(2), pytest.raises(LookupError, match="recorded no GPU activity"):
        timeline.reference_timelines(batch=64, split_size=16)
