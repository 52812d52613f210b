"""See the idle GPUs: draw per-device busy intervals (``busy.py`` records them) as a timeline.

    python -m autograder timeline --out timeline.png      # the reference SimpleMPModel vs PipelinedMPModel

``draw`` makes one row per GPU: busy bars (compute, copies), idle time shaded, and each device's utilisation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .busy import TIMELINE_SCALE, Busy, idle_fraction, merged, record, utilisation
from .devices import NAMES, require_mode


def draw(panels: list[tuple[str, list[Busy]]], path: Path, devices: tuple[str, ...] = NAMES) -> Path:
    """One panel per (title, intervals), one row per GPU; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.9 * len(panels) + 0.6), squeeze=False)
    for ax, (title, intervals) in zip(axes[:, 0], panels, strict=True):
        span = max((b.end for b in intervals), default=1.0)
        for row, device in enumerate(devices):
            ax.broken_barh([(0, span)], (row - 0.4, 0.8), facecolors="#eeeeee", hatch="//", edgecolor="#cccccc")
            for kind, colour in (("compute", "#1f77b4" if row == 0 else "#ff7f0e"), ("copy", "#2ca02c")):
                bars = [(s, e - s) for s, e in merged(intervals, device, (kind,))]
                ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=colour)
            ax.text(span * 1.01, row, f"{utilisation(intervals, device):.0%} busy", va="center", fontsize=9)
        ax.set_yticks(range(len(devices)), [f"GPU {d.split(':')[1]}" for d in devices])
        ax.set_xlim(0, span * 1.12)
        ax.invert_yaxis()
        ax.set_title(f"{title}: {span * 1e3:.1f} ms, idle {idle_fraction(intervals, devices):.0%}", fontsize=10,
                     loc="left")
        ax.set_xlabel("time (s)", fontsize=8)
    fig.suptitle("blue/orange = compute, green = copy between the GPUs, hatched = idle", fontsize=9, y=0.995)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reference_timelines(batch: int = 32, split_size: int = 8) -> list[tuple[str, list[Busy]]]:
    """One forward of the reference SimpleMPModel and PipelinedMPModel (same weights), recorded."""
    from .samples import load_reference

    module = load_reference()
    torch.manual_seed(0)
    simple = module.SimpleMPModel(*NAMES)
    pipelined = module.PipelinedMPModel(*NAMES, split_size=split_size)
    pipelined.load_state_dict(simple.state_dict())
    x = torch.randn(batch, 1000, device=NAMES[0])
    with torch.no_grad():
        simple(x), pipelined(x)  # warm-up
        panels = [("SimpleMPModel: the GPUs take turns", record(lambda: simple(x))),
                  (f"PipelinedMPModel, {batch // split_size} micro-batches: the GPUs overlap",
                   record(lambda: pipelined(x)))]
    return panels


def draw_reference(path: Path, mode: str) -> tuple[Path, str]:
    """`python -m autograder timeline`: the reference's forward on real (``mode`` cuda) or simulated GPUs."""
    from .simgpu import simulated_gpus

    if require_mode(mode) == "cuda":
        return draw(reference_timelines(batch=4096, split_size=512), path), "real GPUs"
    with simulated_gpus(2, scale=TIMELINE_SCALE):
        return draw(reference_timelines(), path), "simulated GPUs"
