"""See the idle GPUs: draw per-device busy intervals (``busy.py`` records them) as a timeline.

    python -m autograder timeline --out timeline.png            # the reference SimpleMPModel vs PipelinedMPModel
    python -m autograder timeline --sweep --out sweep.png       # pipelined speed-up against split_size

``draw`` makes one row per GPU, both panels on one time axis: busy bars (compute, copies), idle time shaded,
each device's utilisation; ``timeline.json`` beside the picture holds the numbers. The batch is large enough
that compute dominates (as in PyTorch's model-parallel tutorial): at batch 32 every GPU waits for the host's
launches, and nothing could overlap.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from .busy import Busy, idle_fraction, merged, record, utilisation
from .devices import NAMES, require_mode

BATCH, SPLIT_SIZE = 4096, 1024  # 4 micro-batches
SWEEP_SPLIT_SIZES = (4096, 2048, 1024, 512, 256, 128, 64, 32)


def span(intervals: list[Busy]) -> float:
    return max((b.end for b in intervals), default=0.0)


def panel_numbers(title: str, intervals: list[Busy], devices: tuple[str, ...] = NAMES) -> dict:
    """What timeline.json keeps of one panel: forward time, idle fraction, each device's busy intervals."""
    return {"title": title, "forward_s": span(intervals), "idle_fraction": idle_fraction(intervals, devices),
            "busy": {d: [[b.start, b.end, b.kind, b.name] for b in intervals if b.device == d] for d in devices}}


def draw(panels: list[tuple[str, list[Busy]]], path: Path, devices: tuple[str, ...] = NAMES,
         where: str = "") -> Path:
    """One panel per (title, intervals), one row per GPU, one shared time axis; writes a PNG and, beside it,
    the same numbers as JSON (``FILE.json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = max((span(intervals) for _, intervals in panels), default=1.0) or 1.0
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.9 * len(panels) + 0.7), squeeze=False, sharex=True)
    for ax, (title, intervals) in zip(axes[:, 0], panels, strict=True):
        for row, device in enumerate(devices):
            ax.broken_barh([(0, span(intervals))], (row - 0.4, 0.8), facecolors="#eeeeee", hatch="//",
                           edgecolor="#cccccc")
            for kind, colour in (("compute", "#1f77b4" if row == 0 else "#ff7f0e"), ("copy", "#2ca02c")):
                bars = [(s, e - s) for s, e in merged(intervals, device, (kind,))]
                ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=colour)
            ax.text(longest * 1.01, row, f"{utilisation(intervals, device):.0%} busy", va="center", fontsize=9)
        ax.set_yticks(range(len(devices)), [f"GPU {d.split(':')[1]}" for d in devices])
        ax.set_xlim(0, longest * 1.12)
        ax.invert_yaxis()
        ax.set_title(f"{title}: {span(intervals) * 1e3:.2f} ms, idle {idle_fraction(intervals, devices):.0%}",
                     fontsize=10, loc="left")
    axes[-1, 0].set_xlabel("time (s)" + (f" - {where}" if where else ""), fontsize=8)
    fig.suptitle("blue/orange = compute, green = copy between the GPUs, hatched = idle", fontsize=9, y=0.995)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    numbers = {"where": where, "panels": [panel_numbers(title, intervals, devices) for title, intervals in panels]}
    path.with_suffix(".json").write_text(json.dumps(numbers, indent=1) + "\n")
    return path


def _reference_models(split_sizes: tuple[int, ...], module: Any = None):
    if module is None:  # only then: the student kit has no samples.py (no reference), and its notebook passes `module`
        from .samples import load_reference

        module = load_reference()
    torch.manual_seed(0)
    simple = module.SimpleMPModel(*NAMES)
    pipelined = {}
    for split_size in split_sizes:
        pipelined[split_size] = module.PipelinedMPModel(*NAMES, split_size=split_size)
        pipelined[split_size].load_state_dict(simple.state_dict())
    return simple, pipelined


def _recorded(model: torch.nn.Module, x: torch.Tensor) -> list[Busy]:
    with torch.no_grad():
        model(x)  # warm-up
        busy = record(lambda: model(x))
    if not busy:  # real GPUs only: the profiler can drop a session's kernels (busy.py); never draw an empty picture
        raise LookupError("torch.profiler recorded no GPU activity for the reference's forward on these GPUs, so there "
                          "is nothing to draw. Run the timeline again; if it stays empty, this machine's profiler "
                          "(CUPTI) drops GPU activity.")
    return busy


def reference_timelines(batch: int = BATCH, split_size: int = SPLIT_SIZE) -> list[tuple[str, list[Busy]]]:
    """One forward of the reference SimpleMPModel and PipelinedMPModel (same weights), recorded."""
    simple, pipelined = _reference_models((split_size,))
    x = torch.randn(batch, 1000, device=NAMES[0])
    return [(f"SimpleMPModel, batch {batch}: the GPUs take turns", _recorded(simple, x)),
            (f"PipelinedMPModel, {-(-batch // split_size)} micro-batches of {split_size}: the GPUs overlap",
             _recorded(pipelined[split_size], x))]


def split_size_sweep(batch: int = BATCH, split_sizes: tuple[int, ...] = SWEEP_SPLIT_SIZES,
                     module: Any = None, progress: bool = False) -> list[dict]:
    """Forward time of PipelinedMPModel for each split size, and its speed-up over SimpleMPModel: the reference's,
    or those of ``module`` (a student's model_parallel, in the notebook). ``progress``: a bar on stderr, one step per
    split size (the command line's sweep takes a minute or more on a small CPU; tqdm is not in the student kit)."""
    simple, pipelined = _reference_models(split_sizes, module)
    x = torch.randn(batch, 1000, device=NAMES[0])
    unsplit = span(_recorded(simple, x))
    rows = []
    steps = pipelined.items()
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, total=len(pipelined), desc="split sizes", unit="size")
    for split_size, model in steps:
        busy = _recorded(model, x)
        rows.append({"split_size": split_size, "micro_batches": -(-batch // split_size), "forward_s": span(busy),
                     "speed_up": unsplit / span(busy), "idle_fraction": idle_fraction(busy)})
    return rows


def draw_sweep(rows: list[dict], path: Path, batch: int = BATCH, where: str = "") -> Path:
    """Speed-up over SimpleMPModel against split_size (log axis), as PyTorch's model-parallel tutorial plots it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([r["split_size"] for r in rows], [r["speed_up"] for r in rows], marker="o")
    ax.axhline(1.0, color="#999999", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("split_size (rows per micro-batch)")
    ax.set_ylabel("speed-up over SimpleMPModel")
    best = max(rows, key=lambda r: r["speed_up"])
    ax.set_title(f"PipelinedMPModel, batch {batch}: best {best['speed_up']:.2f}x at split_size {best['split_size']}"
                 + (f"\n{where}" if where else ""), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    path.with_suffix(".json").write_text(json.dumps({"where": where, "batch": batch, "sweep": rows}, indent=1) + "\n")
    return path


def draw_reference(path: Path, mode: str, sim_gpu: str = "a100", sweep: bool = False) -> tuple[Path, str]:
    """`python -m autograder timeline [--sweep]`: the reference on real (``mode`` cuda) or simulated GPUs."""
    from .simgpu import gpu_profile, simulated_gpus

    real = require_mode(mode) == "cuda"
    where = f"2 real GPUs ({torch.cuda.get_device_name(0)})" if real else f"2 simulated {gpu_profile(sim_gpu).name}"
    with contextlib.nullcontext() if real else simulated_gpus(2, gpu=sim_gpu):
        drawn = draw_sweep(split_size_sweep(progress=True), path, where=where) if sweep else draw(
            reference_timelines(), path, where=where)
    return drawn, where
