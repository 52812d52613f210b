"""``python -m autograder doctor``: what this machine has, and proof that grading on it can be trusted.

- two or more GPUs: every sample and mutant is graded with real GPUs and with simulated ones, and any
  check whose verdict differs is listed (there must be none); the reference ``time_forward`` against the
  hardware's per-forward floor; the bandwidth of one 256 KB activation copy, direct and through the host.
- one GPU: what one GPU can prove - unsynchronized timers under-measure a ``torch.cuda._sleep`` kernel of
  known length, synchronized ones and ``Event.elapsed_time`` measure it; the timing grader's verdicts with
  ``_sleep`` calibration hold on the device; training on the GPU matches the CPU within the graders'
  tolerance; ``--devices cuda`` refuses with one GPU.
- no GPU: says so, and runs the simulated half (the same asynchrony claims on the simulated devices).
Writes ``doctor.json`` and ``doctor.md`` to ``--out``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

from .devices import NAMES, DevicesUnavailable, resolve, torch_gpu_count
from .samples import quick_edits

SLEEP_S = 0.05  # the known kernel length for the asynchrony checks
ACTIVATION_BYTES = 32 * 2000 * 4  # the 256 KB (B=32, 2000 floats) activation copied cuda:0 -> cuda:1


def machine() -> dict[str, Any]:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "gpu_count": count,
                            "gpus": [torch.cuda.get_device_name(i) for i in range(count)]}
    if count >= 2:
        info["peer_access_0_to_1"] = torch.cuda.can_device_access_peer(0, 1)
    if count:
        from .simgpu.profiles import nearest_profile

        info["nearest_simulated_gpu"] = nearest_profile(info["gpus"][0]).key
    return info


def _cycles_for(seconds: float, device: str) -> int:
    from .sandbox.probes import sleep_cycles

    return sleep_cycles(seconds, torch.device(device))


def asynchrony(device: str = "cuda:0") -> dict[str, Any]:
    """A ``_sleep`` kernel of known length, timed three ways on ``device`` (real or simulated)."""
    cycles = _cycles_for(SLEEP_S, device)
    with torch.cuda.device(device):
        torch.cuda.synchronize()
        start = time.perf_counter()
        torch.cuda._sleep(cycles)
        no_sync = time.perf_counter() - start
        torch.cuda.synchronize()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start = time.perf_counter()
        begin.record()
        torch.cuda._sleep(cycles)
        end.record()
        torch.cuda.synchronize()
        synced = time.perf_counter() - start
        event = begin.elapsed_time(end) / 1000
    checks = {
        "no_sync_under_measures": no_sync < 0.5 * SLEEP_S,
        "sync_measures": 0.9 * SLEEP_S <= synced <= 1.5 * SLEEP_S,
        "event_agrees": abs(event - synced) <= 0.2 * SLEEP_S,
    }
    return {"sleep_s": SLEEP_S, "no_sync_s": no_sync, "synchronized_s": synced, "event_s": event,
            "checks": checks, "ok": all(checks.values())}


def training_numerics(device: str = "cuda:0") -> dict[str, Any]:
    """The reference train() on ``device`` vs the graders' NumPy reference SGD, within their tolerance."""
    from .graders.expected import LOSS_RTOL, REFERENCE_LR, REFERENCE_STEPS, reference_sgd
    from .samples import load_reference
    from .sandbox import inputs, probes

    reference = load_reference()
    model = reference.SimpleMPModel(device, device)
    probes.load_weights(model, 0)
    device_losses = reference.train(model, probes.make_batches(0, REFERENCE_STEPS, False), lr=REFERENCE_LR)
    cpu_losses, _ = reference_sgd(inputs.initial_weights(0), inputs.make_batches(0, REFERENCE_STEPS, False),
                                  REFERENCE_LR)
    worst = max(abs(a - b) / abs(b) for a, b in zip(device_losses, cpu_losses, strict=True))
    return {"device": device, "max_relative_difference": worst, "tolerance": LOSS_RTOL, "ok": worst <= LOSS_RTOL}


def verdicts(mode: str, sim_gpu: str = "a100") -> dict[str, dict[str, bool]]:
    """The reference and every quick sample (Part 5 included), graded on ``mode``: submission -> check -> passed."""
    import tempfile

    from .grading import grade_all
    from .rubric import load_rubric
    from .samples import PIPELINE_CHECKS, REFERENCE, quick_edits

    rubric = load_rubric().with_enabled(PIPELINE_CHECKS)
    out: dict[str, dict[str, bool]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = [("reference", REFERENCE.parent)] + [(m.name, m.write(Path(tmp) / m.name)) for m in quick_edits()]
        grade_all(folders, rubric, mode, sim_gpu=sim_gpu,
                  on_report=lambda r: out.__setitem__(r.submission, {c.check.id: c.passed for c in r.results}))
    return out


def differences(real: dict[str, dict[str, bool]], sim: dict[str, dict[str, bool]]) -> list[str]:
    """Checks whose verdict differs between two runs, as readable lines."""
    lines = []
    for name in sorted(set(real) | set(sim)):
        for check in sorted(set(real.get(name, {})) | set(sim.get(name, {}))):
            a, b = real.get(name, {}).get(check), sim.get(name, {}).get(check)
            if a != b:
                lines.append(f"{name}: {check} is {_word(a)} on real GPUs but {_word(b)} on simulated GPUs")
    return lines


def _word(passed: bool | None) -> str:
    return "missing" if passed is None else "passed" if passed else "failed"


def copy_bandwidth(src: str = NAMES[0], dst: str = NAMES[1], repeats: int = 50) -> dict[str, float]:
    """GB/s of one 256 KB activation copy, directly and through the host."""
    x = torch.randn(ACTIVATION_BYTES // 4, device=src)

    def timed(move) -> float:
        move()
        torch.cuda.synchronize(src), torch.cuda.synchronize(dst)
        start = time.perf_counter()
        for _ in range(repeats):
            move()
        torch.cuda.synchronize(src), torch.cuda.synchronize(dst)
        return ACTIVATION_BYTES * repeats / (time.perf_counter() - start) / 1e9

    return {"direct_GBps": timed(lambda: x.to(dst)), "via_host_GBps": timed(lambda: x.cpu().to(dst))}


def forward_timing() -> dict[str, Any]:
    """The reference time_forward on real GPUs, and the floor: the two layers' kernels alone (CUDA events)."""
    from .samples import load_reference

    module = load_reference()
    model = module.SimpleMPModel(*NAMES)
    x = torch.randn(32, 1000, device=NAMES[0])
    measured = module.time_forward(model, x, warmup=5, repeats=100)
    floors = []
    with torch.no_grad():
        for _ in range(20):
            e = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            e[0].record(torch.cuda.current_stream("cuda:0"))
            h = model.relu1(model.layer1(x))
            e[1].record(torch.cuda.current_stream("cuda:0"))
            h1 = h.to("cuda:1")
            e[2].record(torch.cuda.current_stream("cuda:1"))
            model.relu2(model.layer2(h1))
            e[3].record(torch.cuda.current_stream("cuda:1"))
            torch.cuda.synchronize("cuda:0"), torch.cuda.synchronize("cuda:1")
            floors.append((e[0].elapsed_time(e[1]) + e[2].elapsed_time(e[3])) / 1000)
    return {"gpu": torch.cuda.get_device_name(0), "time_forward_s": measured, "kernel_floor_s": min(floors)}


def reference_speeds() -> dict[str, float]:
    """The reference on the current GPUs (real, or simulated ones): seconds per forward of SimpleMPModel and of
    PipelinedMPModel at the timeline's batch, and GB/s of one 256 KB copy between the GPUs."""
    from .samples import load_reference
    from .timeline import BATCH, SPLIT_SIZE

    module = load_reference()
    torch.manual_seed(0)
    simple = module.SimpleMPModel(*NAMES)
    pipelined = module.PipelinedMPModel(*NAMES, split_size=SPLIT_SIZE)
    pipelined.load_state_dict(simple.state_dict())
    x = torch.randn(BATCH, 1000, device=NAMES[0])
    seconds = lambda model: module.time_forward(model, x, warmup=1, repeats=5)  # noqa: E731 - the reference's own
    return {"simple_forward_s": seconds(simple), "pipelined_forward_s": seconds(pipelined),
            "copy_256KB_GBps": copy_bandwidth()["direct_GBps"]}


def model_vs_gpus(profile_key: str, measured: dict[str, float] | None = None) -> dict[str, Any]:
    """What the simulation's ``profile_key`` predicts for the reference against what the current GPUs measure
    (``measured``, or measured now), as measured / predicted ratios: how far simulated timings are from here."""
    from .simgpu import gpu_profile, simulated_gpus

    measured = reference_speeds() if measured is None else measured
    with simulated_gpus(2, gpu=profile_key):
        predicted = reference_speeds()
    return {"profile": gpu_profile(profile_key).name, "measured": measured, "predicted": predicted,
            "measured_over_predicted": {k: measured[k] / predicted[k] for k in measured}}


def run(out_dir: Path, sim_gpu: str = "a100") -> dict[str, Any]:
    from .simgpu import simulated_gpus
    from .simgpu.profiles import nearest_profile

    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()}
    count = report["machine"]["gpu_count"]
    if count >= 2:
        report["mode"] = "two GPUs"
        real, sim = verdicts("cuda"), verdicts("sim", sim_gpu)
        report["verdict_differences"] = differences(real, sim)
        report["graded"] = len(real)
        report["forward_timing"] = forward_timing()
        report["copy_256KB"] = copy_bandwidth()
        report["asynchrony"] = asynchrony("cuda:0")
        report["model_vs_gpus"] = model_vs_gpus(nearest_profile(report["machine"]["gpus"][0]).key)
        report["ok"] = not report["verdict_differences"] and report["asynchrony"]["ok"]
    elif count == 1:
        report["mode"] = "one GPU"
        report["asynchrony"] = asynchrony("cuda:0")
        report["timing_grader_on_gpu"] = _timing_verdicts_one_gpu()
        report["training_numerics"] = training_numerics("cuda:0")
        try:
            resolve("cuda", torch_gpu_count)
            report["refuses_devices_cuda"] = False
        except DevicesUnavailable as exc:
            report["refuses_devices_cuda"] = True
            report["refusal_message"] = str(exc)
        report["ok"] = all((report["asynchrony"]["ok"], report["timing_grader_on_gpu"]["ok"],
                            report["training_numerics"]["ok"], report["refuses_devices_cuda"]))
    else:
        report["mode"] = "no GPU: simulated half only"
        with simulated_gpus(2, gpu=sim_gpu):
            report["asynchrony_simulated"] = asynchrony("cuda:0")
        report["simulated_verdicts_unexpected"] = unexpected_verdicts(verdicts("sim", sim_gpu))
        sim = report["simulated_verdicts_unexpected"]
        report["graded"] = 1 + len(quick_edits())
        report["ok"] = report["asynchrony_simulated"]["ok"] and not sim
    write(report, out_dir)
    return report


def unexpected_verdicts(graded: dict[str, dict[str, bool]]) -> list[str]:
    """Submissions whose failed checks are not exactly those their mutant is meant to fail.

    Part 1-4 mutants are judged on the Part 1-4 checks only (breaking the model breaks Part 5 as well).
    """
    from .samples import ALL_CHECKS, MUTANTS, PIPELINE_MUTANTS, VARIANTS

    expected = {"reference": (frozenset(), None)}
    expected |= {m.name: (m.fails, ALL_CHECKS) for m in MUTANTS}
    expected |= {m.name: (m.fails, None) for m in VARIANTS + PIPELINE_MUTANTS}
    wrong = []
    for name, checks in graded.items():
        fails, scope = expected[name]
        failed = {k for k, ok in checks.items() if not ok and (scope is None or k in scope)}
        if failed != fails:
            wrong.append(f"{name}: failed {sorted(failed)}, expected {sorted(fails)}")
    return wrong


def _timing_verdicts_one_gpu() -> dict[str, Any]:
    """The timing graders' observations, on one real GPU (device0 = device1 = cuda:0): reference vs no sync."""
    import random
    import tempfile

    from .graders.expected import TIMING_HIGH, TIMING_LOW, TIMING_REPEATS, TIMING_WARMUP, timing_workloads
    from .samples import REFERENCE, by_name
    from .sandbox import SubmissionProcess

    before, after = timing_workloads(random.Random(0), "even")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in (("reference", REFERENCE.parent), ("no_sync", by_name("no_sync").write(Path(tmp) / "n"))):
            with SubmissionProcess(folder, "cuda") as submission:
                obs = submission.probe("time_forward", 120, devices=["cuda:0", "cuda:0"], seed=0,
                                       warmup=TIMING_WARMUP, repeats=TIMING_REPEATS, before=before, after=after)
            ratios[name] = obs["seconds"] / obs["true_seconds"]
    ok = TIMING_LOW <= ratios["reference"] <= TIMING_HIGH and not TIMING_LOW <= ratios["no_sync"] <= TIMING_HIGH
    return {"measured_over_true": ratios, "accepted_range": [TIMING_LOW, TIMING_HIGH], "ok": ok}


def claims(report: dict[str, Any]) -> list[tuple[str, str, str, bool, str]]:
    """(claim, expected, measured, holds, what to do if it does not) for every claim the report checked."""
    rows = []
    for key in ("asynchrony", "asynchrony_simulated"):
        if key in report:
            a, where = report[key], "simulated GPU" if key.endswith("simulated") else "GPU"
            ms = lambda seconds: f"{seconds * 1e3:.2f} ms"  # noqa: E731
            rows += [
                (f"a clock without a sync misses a {ms(a['sleep_s'])} kernel ({where})", f"< {ms(a['sleep_s'] / 2)}",
                 ms(a["no_sync_s"]), a["checks"]["no_sync_under_measures"],
                 "the device runs kernels synchronously (CUDA_LAUNCH_BLOCKING=1?): unset it before grading"),
                (f"a synchronized clock measures it ({where})", f"{ms(0.9 * a['sleep_s'])} - {ms(1.5 * a['sleep_s'])}",
                 ms(a["synchronized_s"]), a["checks"]["sync_measures"],
                 "the GPU is shared or throttled: grade on an idle GPU"),
                (f"CUDA events agree with it ({where})", f"within {ms(0.2 * a['sleep_s'])}", ms(a["event_s"]),
                 a["checks"]["event_agrees"], "report it: events and the host clock disagree on this machine"),
            ]
    if "simulated_verdicts_unexpected" in report:
        wrong = report["simulated_verdicts_unexpected"]
        rows.append((f"every sample gets its verdicts on simulated GPUs ({report['graded']} graded)",
                     "no difference", "; ".join(wrong) or "none", not wrong,
                     "the autograder is broken on this machine: run its tests (python -m pytest)"))
    if "verdict_differences" in report:
        diff = report["verdict_differences"]
        rows.append((f"real and simulated GPUs reach the same verdicts ({report['graded']} graded)", "no difference",
                     "; ".join(diff) or "none", not diff, "grade with --devices sim, and report the differences"))
    if "timing_grader_on_gpu" in report:
        t = report["timing_grader_on_gpu"]
        low, high = t["accepted_range"]
        rows.append(("the timing graders accept the reference and refuse no-sync on this GPU",
                     f"reference in [{low}, {high}], no-sync outside",
                     ", ".join(f"{k} {v:.2f}" for k, v in t["measured_over_true"].items()), t["ok"],
                     "do not grade timing on this machine"))
    if "training_numerics" in report:
        n = report["training_numerics"]
        rows.append(("training on the GPU matches the graders' NumPy reference", f"<= {n['tolerance']:g} relative",
                     f"{n['max_relative_difference']:.2g}", n["ok"], "report it: the GPU's float32 differs too much"))
    if "refuses_devices_cuda" in report:
        rows.append(("--devices cuda refuses with fewer than two GPUs", "refused",
                     "refused" if report["refuses_devices_cuda"] else "accepted", report["refuses_devices_cuda"],
                     "report it: grading would silently simulate"))
    return rows


def write(report: dict[str, Any], out_dir: Path) -> None:
    """doctor.json (everything measured) and doctor.md (a table: claim, expected, measured, verdict, what to do)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "doctor.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"# autograder doctor - {report['date']}", "", f"**{report['mode']}** - "
             f"{'all claims hold' if report['ok'] else 'SOME CLAIMS FAIL'}", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in report["machine"].items()]
    lines += ["", "## Claims", "", "| claim | expected | measured | verdict | if it fails |", "|---|---|---|---|---|"]
    lines += [f"| {claim} | {expected} | {measured} | {'holds' if ok else '**FAILS**'} | {'' if ok else fix} |"
              for claim, expected, measured, ok, fix in claims(report)]
    if "model_vs_gpus" in report:
        m = report["model_vs_gpus"]
        lines += ["", f"## The simulation's {m['profile']} against these GPUs (measured / predicted)", "",
                  "| quantity | measured | predicted | ratio |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {_short(m['measured'][k])} | {_short(m['predicted'][k])} | {_short(v)} |"
                  for k, v in m["measured_over_predicted"].items()]
    lines += ["", "Every number measured is in doctor.json."]
    (out_dir / "doctor.md").write_text("\n".join(lines) + "\n")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)
