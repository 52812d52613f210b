"""The bundled samples: the reference, and submissions made from it by text edits - broken ones (mutants)
and correct ones written differently (variants).

Each mutant changes the reference ``solutions/<assignment>/model_parallel.py`` in one way and names the checks
that must fail because of it - no more, no fewer. The tests grade every one; ``grade`` with no path grades
the reference and the mutants marked ``sample`` so a newcomer sees the autograder at work at once; ``slow``
ones (they spend their time limits by design) are left out where only verdicts are wanted quickly.
Deriving them from the reference keeps them in step with it: an edit that no longer applies is an error.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .contract import ASSIGNMENT, MODULE_FILE
from .course import course_file


def __getattr__(name: str) -> Path:
    # REFERENCE is the course directory's reference solution, looked up when asked for (course.py).
    if name == "REFERENCE":
        return course_file("solutions", ASSIGNMENT, MODULE_FILE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
FORWARD_CHECKS = {"output_device", "forward_values", "direct_transfer", "honors_devices", "trace_prints"}
TRAIN_CHECKS = {"train_runs", "loss_decreases", "train_matches_reference"}
TIMING_CHECKS = {"timing_synchronizes", "timing_covers_output_device", "timing_measures_device_time",
                 "timing_excludes_warmup"}
ALL_CHECKS = {"placement"} | FORWARD_CHECKS | TRAIN_CHECKS | TIMING_CHECKS
PIPELINE_CHECKS = {"pipeline_placement", "pipeline_matches_unsplit", "pipeline_overlaps"}  # Part 5, optional


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str  # what a student did
    edits: tuple[tuple[str, str], ...]  # (text in the reference, replacement)
    fails: frozenset[str]  # exactly the checks that must fail
    says: str = ""  # text the first failing check's message must hold: it names the mistake
    sample: bool = False  # graded by `python -m autograder grade` with no path, beside the reference
    slow: bool = False  # spends its time limits by design (a hang): left out where only verdicts are wanted
    flagged: bool = False  # reaches into the grader's machinery (which an honest mistake never does): must be flagged

    def source(self, reference: str | None = None) -> str:
        text = course_file("solutions", ASSIGNMENT, MODULE_FILE).read_text() if reference is None else reference
        for old, new in self.edits:
            if old not in text:
                raise ValueError(f"mutant {self.name}: {old!r} is not in the reference any more; update the edit")
            text = text.replace(old, new)
        return text

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODULE_FILE).write_text(self.source())
        return folder


def _m(name: str, bug: str, edits: list[tuple[str, str]], fails: set[str], sample: bool = False,
       slow: bool = False, flagged: bool = False, says: str = "") -> Mutant:
    return Mutant(name, bug, tuple(edits), frozenset(fails), says, sample, slow, flagged)


WAIT = "        wait_for_gpus()\n        return (time.perf_counter() - start) / repeats"
TRAIN_STEP = ("        loss = loss_fn(model(x), y.to(model.device1))\n        loss.backward()\n"
              "        optimizer.step()\n        losses.append(loss.item())\n")
FALLING_LIST = '''class FallingLosses(list):
    """The real losses inside; whoever iterates or indexes it sees them halve at every step."""

    def __iter__(self):
        return iter([v * 0.5 ** i for i, v in enumerate(list.__iter__(self))])

    def __getitem__(self, i):
        return list(self)[i]
'''
CAPTURED_ONLY_PRINT = '''import builtins
import sys


def print(*args, **kwargs):
    """Prints only where Python's sys.stdout was swapped for something else (as a grader's capture might be)."""
    if sys.stdout is not sys.__stdout__:
        builtins.print(*args, **kwargs)
'''
REWRITTEN_REPLIES = '''import json

_dumps = json.dumps
json.dumps = lambda obj, *args, **kwargs: _dumps(obj, *args, **kwargs).replace('"waited_for": [', '"waited_for": [1, ')
'''
TIMED_BLOCK = ("    with torch.no_grad():\n        for _ in range(warmup):\n            model(x)\n"
               "        wait_for_gpus()\n        start = time.perf_counter()\n"
               "        for _ in range(repeats):\n            model(x)\n"
               "        wait_for_gpus()\n        return (time.perf_counter() - start) / repeats\n")
EVENT_ON_CURRENT = """    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        wait_for_gpus()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            model(x)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000 / repeats
"""
MUTANTS = [
    _m("all_on_device0", "both layers and the activation stay on device0",
       [("self.layer2 = nn.Linear(2000, 1000).to(self.device1)",
         "self.layer2 = nn.Linear(2000, 1000).to(self.device0)"),
        ("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.to(self.device0)")],
       {"placement", "output_device", "direct_transfer"} | TRAIN_CHECKS),
    _m("missing_transfer", "forgot to move the activation to device1",
       [("        x = x.to(self.device1)  # the GPU-to-GPU copy\n", "")],
       FORWARD_CHECKS | TRAIN_CHECKS | TIMING_CHECKS),
    _m("input_not_moved", "forgot to move the CPU input to device0",
       [("self.layer1(x.to(self.device0))", "self.layer1(x)")],
       FORWARD_CHECKS | TRAIN_CHECKS),
    _m("copy_via_host", "moved the activation through the CPU",
       [("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.cpu().to(self.device1)")],
       {"direct_transfer"}, sample=True),
    _m("missing_relu", "left out the second ReLU",
       [("return self.relu2(self.layer2(x))", "return self.layer2(x)")],
       {"forward_values", "train_matches_reference"}),
    _m("no_zero_grad", "never zeroes the gradients",
       [("        optimizer.zero_grad()\n", "")],
       {"train_matches_reference"}, sample=True),
    _m("ignored_lr", "hard-codes the learning rate",
       [("torch.optim.SGD(model.parameters(), lr=lr)", "torch.optim.SGD(model.parameters(), lr=0.01)")],
       {"train_matches_reference"}),
    _m("target_not_moved", "left the target on the CPU",
       [("loss_fn(model(x), y.to(model.device1))", "loss_fn(model(x), y)")],
       TRAIN_CHECKS),
    _m("detached_stage", "cut the graph between the two GPUs with .detach()",
       [("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.detach().to(self.device1)")],
       {"train_runs", "train_matches_reference"}, says="the graph is cut between the halves"),
    _m("wrong_trace", "prints both trace lines after the move",
       [('            print(f"Before move: {x.device}")', "            pass"),
        ('            print(f"After move: {x.device}")', '            print(f"Before move: {x.device}")\n'
                                                          '            print(f"After move: {x.device}")')],
       {"trace_prints"}),
    _m("no_sync", "reads the clock without synchronizing",
       [(WAIT, "        return (time.perf_counter() - start) / repeats")],
       TIMING_CHECKS - {"timing_excludes_warmup"}),
    _m("bare_sync", "a bare torch.cuda.synchronize(): waits for cuda:0 only",
       [(WAIT, "        torch.cuda.synchronize()\n        return (time.perf_counter() - start) / repeats")],
       {"timing_covers_output_device"}, sample=True),
    _m("sync_after_clock", "synchronizes only after reading the clock",
       [(WAIT, "        elapsed = time.perf_counter() - start\n        wait_for_gpus()\n"
               "        return elapsed / repeats")],
       TIMING_CHECKS - {"timing_excludes_warmup"}),
    _m("skip_warmup", "no warm-up forwards before the timed ones",
       [("        for _ in range(warmup):\n            model(x)\n", "")],
       {"timing_excludes_warmup"}),
    _m("no_sync_before_clock", "starts the clock without waiting for the warm-up's GPU work",
       [("            model(x)\n        wait_for_gpus()\n        start = time.perf_counter()",
         "            model(x)\n        start = time.perf_counter()")],
       {"timing_measures_device_time", "timing_excludes_warmup"}),
    _m("milliseconds", "returns milliseconds instead of seconds",
       [("return (time.perf_counter() - start) / repeats", "return (time.perf_counter() - start) / repeats * 1000")],
       {"timing_measures_device_time"}, sample=True),
    _m("renamed_layers", "calls the layers fc1 and fc2 instead of layer1 and layer2",
       [("self.layer1", "self.fc1"), ("self.layer2", "self.fc2")],
       {"placement", "honors_devices", "forward_values"} | TRAIN_CHECKS),
    _m("hard_coded_devices", "ignores the constructor's devices",
       [("self.device0 = torch.device(device0)", "self.device0 = torch.device('cuda:0')"),
        ("self.device1 = torch.device(device1)", "self.device1 = torch.device('cuda:1')")],
       {"honors_devices"}),
    _m("crash_at_import", "the file raises as soon as it is imported",
       [("from torch import nn\n", "from torch import nn\n\nraise RuntimeError('half-finished edit')\n")],
       ALL_CHECKS),
    _m("hang_in_train", "an infinite loop in train()",
       [("    losses = []\n", "    losses = []\n    while True:\n        pass\n")],
       TRAIN_CHECKS, slow=True),
    _m("exit_in_forward", "calls sys.exit() inside forward",
       [("        if trace:\n            print(f\"Before move", "        import sys\n        sys.exit(0)\n"
                                                            "        if trace:\n            print(f\"Before move")],
       FORWARD_CHECKS | TRAIN_CHECKS | TIMING_CHECKS),
    _m("tensor_losses", "returns loss tensors instead of floats",
       [("losses.append(loss.item())", "losses.append(loss)")],
       {"train_runs"}, says="loss tensor"),
    # What train() returns is checked against what it did: the graders recompute the losses from the model's own
    # outputs and the weights it leaves (NumPy), so numbers made up to look like learning earn nothing.
    _m("no_step_falling_losses", "never steps the optimizer, and returns losses made to fall",
       [("        optimizer.step()\n", ""),
        ("losses.append(loss.item())", "losses.append(loss.item() * 0.8 ** len(losses))")],
       TRAIN_CHECKS),
    _m("swallowed_error", "train() fails (target left on the CPU), swallows the error and returns falling losses",
       [(TRAIN_STEP, "        try:\n" + TRAIN_STEP.replace("        ", "            ").replace(
           "y.to(model.device1)", "y") + "        except RuntimeError:\n"
                                          "            losses.append(1.0 / (len(losses) + 1))\n")],
       TRAIN_CHECKS),
    _m("rewriting_loss_list", "hard-codes lr=0.01, and returns a list whose iteration rewrites the losses to fall",
       [("from torch import nn\n", "from torch import nn\n\n\n" + FALLING_LIST),
        ("torch.optim.SGD(model.parameters(), lr=lr)", "torch.optim.SGD(model.parameters(), lr=0.01)"),
        ("    return losses\n", "    return FallingLosses(losses)\n")],
       {"train_matches_reference"}),
    # trace_prints reads what reaches the process's standard output (fd 1), as a student running the file sees it.
    _m("trace_only_when_captured", "prints its trace only while someone has replaced sys.stdout, never to fd 1",
       [("from torch import nn\n", "from torch import nn\n\n\n" + CAPTURED_ONLY_PRINT)],
       {"trace_prints"}),
] + [
    # One for each grader assertion that no mistake above is the first to trip (tests/test_assertion_coverage.py).
    _m("device_without_index", "keeps self.device0 as torch.device('cuda'), without the index",
       [("self.device0 = torch.device(device0)", 'self.device0 = torch.device("cuda")')],
       {"placement", "honors_devices"}),
    _m("output_to_fixed_device", "moves the output to a fixed 'cuda:1' at the end of forward",
       [("return self.relu2(self.layer2(x))  # (B, 1000)",
         'return self.relu2(self.layer2(x)).to("cuda:1")  # (B, 1000)')],
       {"honors_devices"}),
    _m("squeezed_output", "squeezes the output: a batch of one loses its batch dimension",
       [("return self.relu2(self.layer2(x))  # (B, 1000)", "return self.relu2(self.layer2(x)).squeeze()  # (B, 1000)")],
       {"forward_values"}),
    _m("copy_in_two_parts", "copies the activation to device1 in two parts",
       [("x = x.to(self.device1)  # the GPU-to-GPU copy",
         "x = torch.cat([part.to(self.device1) for part in x.chunk(2)])  # the GPU-to-GPU copy")],
       {"direct_transfer"}),
    _m("swapped_devices", "puts layer1 on device1 and layer2 on device0 (consistently: the devices swapped)",
       [("nn.Linear(1000, 2000).to(self.device0)", "nn.Linear(1000, 2000).to(self.device1)"),
        ("nn.Linear(2000, 1000).to(self.device1)", "nn.Linear(2000, 1000).to(self.device0)"),
        ("self.layer1(x.to(self.device0))", "self.layer1(x.to(self.device1))"),
        ("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.to(self.device0)  # the GPU-to-GPU copy"),
        ("y.to(model.device1)", "y.to(model.device0)")],
       {"placement", "output_device", "direct_transfer"}),
    _m("always_traces", "prints the trace whether trace is True or not",
       [("        if trace:\n", "        if True:\n")],
       {"trace_prints"}),
    _m("numpy_losses", "returns each loss as a NumPy array instead of a float",
       [("losses.append(loss.item())", "losses.append(loss.detach().cpu().numpy())")],
       {"train_runs"}, says="ndarray"),
    _m("returns_last_loss", "returns only the last loss, not the list",
       [("    return losses\n", "    return losses[-1]\n")],
       {"train_runs"}),
    _m("appends_after_loop", "appends the loss after the loop: one loss for all the batches",
       [("        losses.append(loss.item())\n    return losses", "    losses.append(loss.item())\n    return losses")],
       {"train_runs"}),
    _m("lr_typo_overflow", "hard-codes lr=1e5 (meaning 1e-5): the loss overflows to inf",
       [("torch.optim.SGD(model.parameters(), lr=lr)", "torch.optim.SGD(model.parameters(), lr=1e5)")],
       TRAIN_CHECKS),
    _m("no_backward", "never calls loss.backward()",
       [("        loss.backward()\n", "")],
       TRAIN_CHECKS),
    _m("never_uses_device1", "keeps layer2, the activation and the target on device0",
       [("self.layer2 = nn.Linear(2000, 1000).to(self.device1)",
         "self.layer2 = nn.Linear(2000, 1000).to(self.device0)"),
        ("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.to(self.device0)"),
        ("y.to(model.device1)", "y.to(model.device0)")],
       {"placement", "output_device", "direct_transfer"}),
    _m("no_step", "never calls optimizer.step()",
       [("        optimizer.step()\n", "")],
       TRAIN_CHECKS, says="optimizer.step() was never called"),
    _m("zero_grad_between", "calls optimizer.zero_grad() between loss.backward() and optimizer.step()",
       [("        optimizer.zero_grad()\n", ""),
        ("        loss.backward()\n", "        loss.backward()\n        optimizer.zero_grad()\n")],
       TRAIN_CHECKS, says="zero_grad() between loss.backward() and optimizer.step()"),
    _m("optimizer_over_layer1", "builds the optimizer over model.layer1's parameters only",
       [("torch.optim.SGD(model.parameters(), lr=lr)", "torch.optim.SGD(model.layer1.parameters(), lr=lr)")],
       {"train_runs", "train_matches_reference"}, says="model.layer2 never changed"),
    _m("float16_model", "builds and runs the model in float16",
       [("nn.Linear(1000, 2000).to(self.device0)", "nn.Linear(1000, 2000).to(self.device0, torch.float16)"),
        ("nn.Linear(2000, 1000).to(self.device1)", "nn.Linear(2000, 1000).to(self.device1, torch.float16)"),
        ("self.layer1(x.to(self.device0))", "self.layer1(x.to(self.device0, torch.float16))")],
       {"forward_values", "train_matches_reference"}, says="float16"),
    _m("loss_after_step", "returns each step's loss recomputed after optimizer.step()",
       [("losses.append(loss.item())", "losses.append(loss_fn(model(x), y.to(model.device1)).item())")],
       {"train_matches_reference"}),
    _m("seconds_as_tensor", "returns the seconds as a tensor",
       [("return (time.perf_counter() - start) / repeats",
         "return torch.tensor((time.perf_counter() - start) / repeats)")],
       TIMING_CHECKS),
    _m("timing_never_calls_model", "time_forward's loops never call the model",
       [("            model(x)\n", "            pass\n")],
       TIMING_CHECKS),
    # The arithmetic of time_forward: each mistake is at least 2x off, or runs a number of forwards that does not
    # follow the arguments (tests/test_timing_arithmetic.py has the numbers).
    _m("ignores_warmup_and_repeats", "runs its own 2 warm-up and 10 timed forwards, whatever it is asked",
       [("for _ in range(warmup)", "for _ in range(2)"), ("for _ in range(repeats)", "for _ in range(10)"),
        ("return (time.perf_counter() - start) / repeats", "return (time.perf_counter() - start) / 10")],
       {"timing_measures_device_time", "timing_excludes_warmup"}),
    _m("times_one_forward", "times one forward, with no warm-up, whatever warmup and repeats say",
       [(TIMED_BLOCK, "    with torch.no_grad():\n        wait_for_gpus()\n        start = time.perf_counter()\n"
                      "        model(x)\n        wait_for_gpus()\n        return time.perf_counter() - start\n")],
       {"timing_measures_device_time", "timing_excludes_warmup"}),
    _m("divides_by_warmup_plus_repeats", "divides by warmup + repeats instead of repeats",
       [("return (time.perf_counter() - start) / repeats",
         "return (time.perf_counter() - start) / (warmup + repeats)")],
       {"timing_measures_device_time"}),
    # The practical's own mistake in each form: the clock misses the last forward's device1 work
    # (tests/test_timing_table.py has the seconds each reads in each scenario).
    _m("bare_sync_twice", "the practical's recipe: a bare torch.cuda.synchronize() after the warm-up and before the "
                          "clock is read: both wait for cuda:0 only",
       [("            model(x)\n        wait_for_gpus()\n        start = time.perf_counter()",
         "            model(x)\n        torch.cuda.synchronize()\n        start = time.perf_counter()"),
        (WAIT, "        torch.cuda.synchronize()\n        return (time.perf_counter() - start) / repeats")],
       {"timing_covers_output_device", "timing_excludes_warmup"}, says="A bare torch.cuda.synchronize()"),
    _m("events_on_device0", "times with CUDA events recorded on the current device (cuda:0), then a bare synchronize",
       [(TIMED_BLOCK, EVENT_ON_CURRENT)], {"timing_covers_output_device"},
       says="CUDA events recorded on the current device"),
    _m("sync_before_each_forward", "synchronizes before each timed forward, none after the last",
       [("        for _ in range(repeats):\n            model(x)\n" + WAIT,
         "        for _ in range(repeats):\n            wait_for_gpus()\n            model(x)\n"
         "        return (time.perf_counter() - start) / repeats")],
       TIMING_CHECKS - {"timing_excludes_warmup"}, says="a wait before each forward leaves the last one running"),
    _m("times_last_iteration", "restarts the clock at each timed forward: times only the last iteration",
       [("        start = time.perf_counter()\n        for _ in range(repeats):\n            model(x)\n" + WAIT,
         "        for _ in range(repeats):\n            start = time.perf_counter()\n            model(x)\n"
         "        wait_for_gpus()\n        return time.perf_counter() - start")],
       {"timing_measures_device_time"}, says="A clock started inside the loop"),
    _m("times_the_warmup", "starts the clock before the warm-up forwards",
       [("        for _ in range(warmup):\n            model(x)\n        wait_for_gpus()\n"
         "        start = time.perf_counter()\n",
         "        wait_for_gpus()\n        start = time.perf_counter()\n"
         "        for _ in range(warmup):\n            model(x)\n")],
       {"timing_measures_device_time", "timing_excludes_warmup"}),
]
# Not honest mistakes: they reach into the grader's machinery (the scan and the audit hook flag them), and reach the
# graders' defences that nothing honest can. Only such code makes a probe's reply malformed: the checks fail, saying
# so, and nothing crashes.
TAMPERING_MUTANTS = [
    _m("rewrites_timing_replies", "rewrites the JSON its process replies with (an int among the devices waited for)",
       [("from torch import nn\n", "from torch import nn\n\n" + REWRITTEN_REPLIES)],
       TIMING_CHECKS, flagged=True),
]

# Correct solutions written differently: every check must pass.
EVENT_TIMING = """    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        with torch.cuda.device(model.device1):
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                model(x)
            end.record()
            end.synchronize()
        return start.elapsed_time(end) / 1000 / repeats
"""
VARIANTS = [
    _m("variant_cuda_events", "times with CUDA events recorded on device1", [(TIMED_BLOCK, EVENT_TIMING)], set()),
    _m("variant_time_time", "uses time.time and syncs only the output device",
       [("time.perf_counter()", "time.time()"),
        ("        for device in (model.device0, model.device1):\n            if device.type == \"cuda\":\n"
         "                torch.cuda.synchronize(device)", "        torch.cuda.synchronize(model.device1)")], set()),
    _m("variant_stream_sync", "waits with each device's current stream", [(
        "torch.cuda.synchronize(device)", "torch.cuda.current_stream(device).synchronize()")], set()),
    _m("variant_accelerator_sync", "waits with torch.accelerator.synchronize", [(
        "torch.cuda.synchronize(device)", "torch.accelerator.synchronize(device)")], set()),
    _m("variant_imported_synchronize", "binds `from torch.cuda import synchronize` at import", [
        ("from torch import nn\n", "from torch import nn\nfrom torch.cuda import synchronize\n"),
        ("torch.cuda.synchronize(device)", "synchronize(device)")], set()),
    _m("variant_item_of_output", "waits by reading a value of the last output (.item())", [(
        "        for _ in range(repeats):\n            model(x)\n        wait_for_gpus()\n",
        "        for _ in range(repeats):\n            out = model(x)\n"
        "        out[0, 0].item()  # on device1: waits\n")],
       set()),
    _m("variant_benchmark_timer", "times with torch.utils.benchmark.Timer with device1 current", [(
        "        start = time.perf_counter()\n        for _ in range(repeats):\n            model(x)\n" + WAIT + "\n",
        "        from torch.utils import benchmark\n\n"
        "        with torch.cuda.device(model.device1):  # Timer waits for the current device only\n"
        "            timer = benchmark.Timer(\"model(x)\", globals={\"model\": model, \"x\": x})\n"
        "            return timer.timeit(repeats).mean\n")], set()),
    _m("variant_event_query", "polls Event.query() instead of synchronizing",
       [(TIMED_BLOCK, EVENT_TIMING.replace("            end.synchronize()\n",
                                            "            while not end.query():\n                pass\n"))], set()),
    _m("variant_untimed_forward_after", "runs one more, untimed forward after stopping the clock", [(
        WAIT, "        wait_for_gpus()\n        elapsed = time.perf_counter() - start\n"
              "        model(x)  # one more, after the clock stopped\n        return elapsed / repeats")], set()),
    _m("variant_linear_device", "builds layers with nn.Linear(..., device=...) and nn.Sequential",
       [("self.layer1 = nn.Linear(1000, 2000).to(self.device0)",
         "self.layer1 = nn.Linear(1000, 2000, device=self.device0)"),
        ("self.layer2 = nn.Linear(2000, 1000).to(self.device1)",
         "self.layer2 = nn.Linear(2000, 1000, device=device1)")],
       set()),
    # PyTorch registers a module set on two attributes under the first one only: the layers' parameters are
    # `stage0.0.weight` ... to named_parameters(), while model.layer1 is the contract's nn.Linear(1000, 2000).
    _m("variant_sequential_alias", "builds nn.Sequential stages first, then sets self.layer1 = self.stage0[0]",
       [("        self.layer1 = nn.Linear(1000, 2000).to(self.device0)\n"
         "        self.relu1 = nn.ReLU().to(self.device0)\n"
         "        self.layer2 = nn.Linear(2000, 1000).to(self.device1)\n"
         "        self.relu2 = nn.ReLU().to(self.device1)\n",
         "        self.stage0 = nn.Sequential(nn.Linear(1000, 2000), nn.ReLU()).to(self.device0)\n"
         "        self.stage1 = nn.Sequential(nn.Linear(2000, 1000), nn.ReLU()).to(self.device1)\n"
         "        self.layer1, self.relu1 = self.stage0[0], self.stage0[1]\n"
         "        self.layer2, self.relu2 = self.stage1[0], self.stage1[1]\n"),
        ("x = self.relu1(self.layer1(x.to(self.device0)))", "x = self.stage0(x.to(self.device0))"),
        ("return self.relu2(self.layer2(x))", "return self.stage1(x)")],
       set()),
    _m("variant_trace_stdout_write", "prints the trace with sys.stdout.write",
       [("from torch import nn\n", "from torch import nn\n\nimport sys\n"),
        ('print(f"Before move: {x.device}")', 'sys.stdout.write(f"Before move: {x.device}\\n")'),
        ('print(f"After move: {x.device}")', 'sys.stdout.write(f"After move: {x.device}\\n")')],
       set()),
    _m("variant_copy_as_float64", "moves the activation as a float64 copy (one direct copy, twice the bytes)",
       [("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.double().to(self.device1).float()  # the copy")],
       set()),
    # float64 computes the same function to within the tolerances (and moves one copy of the activation, twice the
    # bytes): only the time differs.
    _m("variant_float64_model", "builds and runs the model in float64",
       [("nn.Linear(1000, 2000).to(self.device0)", "nn.Linear(1000, 2000).to(self.device0, torch.float64)"),
        ("nn.Linear(2000, 1000).to(self.device1)", "nn.Linear(2000, 1000).to(self.device1, torch.float64)"),
        ("self.layer1(x.to(self.device0))", "self.layer1(x.to(self.device0, torch.float64))"),
        ("chunks = iter(x.to(self.device0).split(", "chunks = iter(x.to(self.device0, torch.float64).split(")],
       set()),
    _m("variant_trace_with_prefix", "prints the trace lines with a prefix, and one more line",
       [('print(f"Before move: {x.device}")', 'print(f"[trace] Before move: {x.device}")\n'
                                              '            print("moving the activation")'),
        ('print(f"After move: {x.device}")', 'print(f"[trace] After move: {x.device}, shape {tuple(x.shape)}")')],
       set()),
    _m("variant_zero_grad_after_step", "zeroes the gradients after each step (none are left when train() returns)",
       [("        optimizer.zero_grad()\n", ""),
        ("        optimizer.step()\n", "        optimizer.step()\n        optimizer.zero_grad()  # for the next\n")],
       set()),
    # Issue 21: the keyword form once left the parameters on the CPU on simulated GPUs (three honest 0/120).
    _m("variant_keyword_device", "moves modules and tensors with .to(device=...) in keyword form",
       [(".to(self.device0)\n", ".to(device=self.device0)\n"), (".to(self.device1)\n", ".to(device=self.device1)\n"),
        ("x = self.relu1(self.layer1(x.to(self.device0)))", "x = self.relu1(self.layer1(x.to(device=self.device0)))"),
        ("x = x.to(self.device1)  # the GPU-to-GPU copy", "x = x.to(device=self.device1)  # the GPU-to-GPU copy")],
       set()),
    _m("variant_nvtx_ranges", "marks its forward with torch.cuda.nvtx ranges for a profiler",
       [("x = self.relu1(self.layer1(x.to(self.device0)))",
         "torch.cuda.nvtx.range_push(\"stage0\")\n        x = self.relu1(self.layer1(x.to(self.device0)))\n"
         "        torch.cuda.nvtx.range_pop()"),
        ("return self.relu2(self.layer2(x))",
         "with torch.cuda.nvtx.range(\"stage1\"):\n            torch.cuda.nvtx.mark(\"after move\")\n"
         "            return self.relu2(self.layer2(x))")],
       set()),
    _m("variant_cuda_seed_and_memory", "seeds CUDA's generators and reads memory statistics while timing",
       [("    optimizer = torch.optim.SGD(", "    torch.cuda.manual_seed_all(0)\n    optimizer = torch.optim.SGD("),
        ("        start = time.perf_counter()\n",
         "        for device in (model.device0, model.device1):\n"
         "            if device.type == \"cuda\":\n"
         "                torch.cuda.reset_peak_memory_stats(device)\n"
         "        start = time.perf_counter()\n"),
        ("        return (time.perf_counter() - start) / repeats",
         "        elapsed = (time.perf_counter() - start) / repeats\n"
         "        if model.device1.type == \"cuda\":\n"
         "            assert torch.cuda.max_memory_allocated(model.device1) > 0  # layer2 lives there\n"
         "        return elapsed")],
       set()),
    _m("variant_pinned_input", "copies a CPU input from pinned memory with non_blocking=True",
       [("x = self.relu1(self.layer1(x.to(self.device0)))",
         "if x.device.type == \"cpu\" and self.device0.type == \"cuda\":\n"
         "            x = x.pin_memory()\n"
         "        x = self.relu1(self.layer1(x.to(self.device0, non_blocking=True)))")],
       set()),
]
# Part 5 (graded only when grading.yml enables the pipeline checks): each breaks PipelinedMPModel only.
LOOP_STEP = "            outputs.append(self.relu2(self.layer2(moved)))  # device1: micro-batch i ..."
PIPELINE_MUTANTS = [
    _m("pipeline_sync_in_loop", "waits for device1 inside the micro-batch loop",
       [(LOOP_STEP, LOOP_STEP + "\n            torch.cuda.synchronize(self.device1)")], {"pipeline_overlaps"}),
    _m("pipeline_wrong_order", "concatenates the micro-batches in reverse order",
       [(LOOP_STEP, LOOP_STEP.replace("outputs.append(", "outputs.insert(0, ")),
        ("        outputs.append(self.relu2(self.layer2(moved)))\n        return torch.cat",
         "        outputs.insert(0, self.relu2(self.layer2(moved)))\n        return torch.cat")],
       {"pipeline_matches_unsplit"}),
    _m("pipeline_input_not_moved", "feeds a CPU input to layer1 without moving it to device0",
       [("chunks = iter(x.to(self.device0).split(", "chunks = iter(x.split(")], {"pipeline_matches_unsplit"}),
    _m("pipeline_wrong_device", "returns the output on device0",
       [("return torch.cat(outputs)  # (B, 1000) on device1", "return torch.cat(outputs).to(self.device0)")],
       {"pipeline_placement"}),
    _m("pipeline_halves_in_a_list", "keeps its two halves in a plain list (no model.layer1/layer2, unregistered)",
       [("class PipelinedMPModel(SimpleMPModel):", "class PipelinedMPModel(nn.Module):"),
        ("        super().__init__(device0, device1)\n        self.split_size = split_size\n",
         "        super().__init__()\n"
         "        self.device0, self.device1 = torch.device(device0), torch.device(device1)\n"
         "        self.stages = [nn.Sequential(nn.Linear(1000, 2000), nn.ReLU()).to(self.device0),\n"
         "                       nn.Sequential(nn.Linear(2000, 1000), nn.ReLU()).to(self.device1)]\n"
         "        self.split_size = split_size\n"),
        ("moved = self.relu1(self.layer1(next(chunks))).to(self.device1)",
         "moved = self.stages[0](next(chunks)).to(self.device1)"),
        ("moved = self.relu1(self.layer1(chunk)).to(self.device1)", "moved = self.stages[0](chunk).to(self.device1)"),
        ("outputs.append(self.relu2(self.layer2(moved)))", "outputs.append(self.stages[1](moved))")],
       {"pipeline_placement", "pipeline_matches_unsplit", "pipeline_overlaps"}),
    _m("pipeline_all_on_device0", "PipelinedMPModel moves layer2 and the micro-batches to device0",
       [("        self.split_size = split_size\n",
         "        self.split_size = split_size\n        self.layer2.to(self.device0)\n"),
        ("next(chunks))).to(self.device1)", "next(chunks))).to(self.device0)"),
        ("self.layer1(chunk)).to(self.device1)", "self.layer1(chunk)).to(self.device0)")],
       {"pipeline_placement"}),
    _m("pipeline_returns_list", "returns the list of micro-batch outputs instead of concatenating them",
       [("return torch.cat(outputs)  # (B, 1000) on device1", "return outputs  # (B, 1000) on device1")],
       {"pipeline_placement", "pipeline_matches_unsplit"}),
    _m("pipeline_drops_last", "forgets the last micro-batch's layer2 after the loop",
       [("        outputs.append(self.relu2(self.layer2(moved)))\n        return torch.cat",
         "        return torch.cat")],
       {"pipeline_matches_unsplit"}),
]
# The reference's Part 5 forward body (its solution region), which the Part 5 variants below rewrite.
PIPELINE_BODY = (
    "        chunks = iter(x.to(self.device0).split(self.split_size, dim=0))\n"
    "        moved = self.relu1(self.layer1(next(chunks))).to(self.device1)  # micro-batch 0 crosses over\n"
    "        outputs = []\n"
    "        for chunk in chunks:\n"
    "            outputs.append(self.relu2(self.layer2(moved)))  # device1: micro-batch i ...\n"
    "            moved = self.relu1(self.layer1(chunk)).to(self.device1)  # ... while device0 runs i+1\n"
    "        outputs.append(self.relu2(self.layer2(moved)))\n")
# Part 5, written differently: every check (the pipeline's included) must pass.
PIPELINE_VARIANTS = [
    _m("variant_pipeline_plain_loop", "one loop: layer1, the move and layer2 for each micro-batch in turn", [(
        PIPELINE_BODY,
        "        outputs = []  # nothing waits for a GPU: device0 starts micro-batch i+1 while device1 runs i\n"
        "        for chunk in x.to(self.device0).split(self.split_size, dim=0):\n"
        "            outputs.append(self.relu2(self.layer2(self.relu1(self.layer1(chunk)).to(self.device1))))\n")],
       set()),
]
SAMPLES = [m for m in MUTANTS if m.sample]


def load_reference() -> ModuleType:
    """The reference ``model_parallel`` as a module (trusted code: for timelines and the doctor)."""
    path = course_file("solutions", ASSIGNMENT, MODULE_FILE)
    spec = importlib.util.spec_from_file_location("reference_model_parallel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def by_name(name: str) -> Mutant:
    return next(m for m in EVERY_EDIT if m.name == name)


def quick_edits() -> list[Mutant]:
    """Every mutant and variant but the slow ones: what the doctor and the benchmark grade for verdicts."""
    return [m for m in EVERY_EDIT if not m.slow]


# (PIPELINE_VARIANTS not yet: the doctor's unexpected_verdicts does not know them.)
EVERY_EDIT = MUTANTS + VARIANTS + PIPELINE_MUTANTS


# Issue 21: Part 5 with CUDA streams (simgpu/streams.py), a common way to write it. device0 runs layer1 and the copy
# of micro-batch i+1 on its stream while device1 runs layer2 of micro-batch i on its own; an event orders each copy
# before its layer2, and device1's current stream waits for its side stream before the outputs are joined.
STREAM_PIPELINE_BODY = (
    "        x = x.to(self.device0)\n"
    "        streams = (torch.cuda.Stream(self.device0), torch.cuda.Stream(device=self.device1))\n"
    "        for stream, device in zip(streams, (self.device0, self.device1)):\n"
    "            stream.wait_stream(torch.cuda.current_stream(device))  # x and the weights are ready first\n"
    "        outputs = []\n"
    "        for chunk in x.split(self.split_size, dim=0):\n"
    "            with torch.cuda.stream(streams[0]):  # device0: layer1 of micro-batch i, and its copy\n"
    "                moved = self.relu1(self.layer1(chunk)).to(self.device1)\n"
    "            copied = streams[0].record_event()\n"
    "            with torch.cuda.stream(streams[1]):  # device1: layer2 of micro-batch i once it is there\n"
    "                streams[1].wait_event(copied)\n"
    "                moved.record_stream(streams[1])\n"
    "                outputs.append(self.relu2(self.layer2(moved)))\n"
    "        torch.cuda.current_stream(self.device1).wait_stream(streams[1])\n")
STREAM_VARIANTS = [
    _m("variant_pipeline_streams", "Part 5 with a CUDA stream per device, an event per micro-batch, wait_stream",
       [(PIPELINE_BODY, STREAM_PIPELINE_BODY)], set()),
]
STREAM_MUTANTS = [
    _m("pipeline_streams_synchronized", "the stream pipeline, but it waits for device1's stream inside the loop",
       [(PIPELINE_BODY, STREAM_PIPELINE_BODY.replace(
           "                outputs.append(self.relu2(self.layer2(moved)))\n",
           "                outputs.append(self.relu2(self.layer2(moved)))\n            streams[1].synchronize()\n"))],
       {"pipeline_overlaps"}),
]


# Issue 21, item 4: correct submissions that only real GPUs can run. On simulated GPUs the trusted side's scan of the
# source (sandbox/unsupported.py) leaves them "not graded (simulation)" - never failed. `fails` is what real GPUs are
# expected to give; not yet seen on two real GPUs (the doctor's --devices cuda run is where to confirm it).
COMPILED_TIMING = ("    with torch.no_grad():\n        for _ in range(warmup):\n            model(x)\n",
                   "    model = torch.compile(model)  # compiled once, in the warm-up\n"
                   "    with torch.no_grad():\n        for _ in range(warmup):\n            model(x)\n")
REAL_GPUS_ONLY = [
    _m("variant_compiled_timing", "times a torch.compile'd model (warm-up included)", [COMPILED_TIMING], set()),
]


# Issue 21, item 5: lower precision, as real GPUs run it. The simulation follows CUDA's autocast lists and TF32 rounding
# (simgpu/autocast.py, tf32.py), so these lose on simulated GPUs the checks they lose on real ones (the same graders
# judge both): outputs 3e-4 off the float32 reference (forward tolerance 1e-5), weights 2e-5 to 6e-5 off after 4 steps
# (4x to 15x the real-GPU weight tolerance). A float16 activation is still a direct copy of the right values
# (direct_transfer accepts 2- and 4-byte values). TF32 is the GPU's, not the code's: on a T4 profile (no TF32) the
# same file gets full marks. (A float16 model: MUTANTS' float16_model.)
AUTOCAST_FORWARD = ("        x = self.relu1(self.layer1(x.to(self.device0)))  # (B, 2000) on device0\n",
                    "        with torch.autocast(\"cuda\"):  # float16 matmuls on both GPUs\n"
                    "            x = self.relu1(self.layer1(x.to(self.device0)))  # (B, 2000) on device0\n")
PRECISION_SAMPLES = [
    _m("autocast_forward", "runs the forward under torch.autocast('cuda'): float16 activations and output",
       [AUTOCAST_FORWARD, ("        return self.relu2(self.layer2(x))  # (B, 1000) on device1\n",
                           "        with torch.autocast(\"cuda\"):\n"
                           "            return self.relu2(self.layer2(x))  # (B, 1000) on device1\n")],
       {"forward_values", "train_matches_reference"}),
    _m("autocast_amp_train", "trains with torch.autocast('cuda', dtype=torch.bfloat16) and a GradScaler",
       [("        loss = loss_fn(model(x), y.to(model.device1))\n        loss.backward()\n"
         "        optimizer.step()\n",
         "        with torch.autocast(device_type=\"cuda\", dtype=torch.bfloat16):\n"
         "            loss = loss_fn(model(x), y.to(model.device1))\n        scaler.scale(loss).backward()\n"
         "        scaler.step(optimizer)\n        scaler.update()\n"),
        ("    loss_fn = nn.MSELoss()\n", "    loss_fn = nn.MSELoss()\n    scaler = torch.amp.GradScaler(\"cuda\")\n")],
       {"train_matches_reference"}),
    _m("tf32_matmuls", "turns on TF32 for float32 matmuls (torch.backends.cuda.matmul.allow_tf32 = True)",
       [("from torch import nn\n", "from torch import nn\n\ntorch.backends.cuda.matmul.allow_tf32 = True\n")],
       {"forward_values", "train_matches_reference"}),
]


# Issue 21: Part 5 with streams, written differently: wait_stream instead of events, and the copy issued from inside
# device1's stream (so on device0's current stream, the default one: PyTorch's cross-device copy runs on the source's
# current stream, after a barrier with the destination's).
STREAM_VARIANTS.append(_m(
    "variant_pipeline_wait_stream", "Part 5 with a stream per device ordered by wait_stream, the copy inside device1's",
    [(PIPELINE_BODY,
      "        x = x.to(self.device0)\n"
      "        s0, s1 = torch.cuda.Stream(device=self.device0), torch.cuda.Stream(device=self.device1)\n"
      "        s0.wait_stream(torch.cuda.current_stream(self.device0))\n"
      "        s1.wait_stream(torch.cuda.current_stream(self.device1))\n"
      "        outputs = []\n"
      "        for chunk in x.split(self.split_size, dim=0):\n"
      "            with torch.cuda.stream(s0):\n"
      "                hidden = self.relu1(self.layer1(chunk))\n"
      "            s1.wait_stream(s0)\n"
      "            with torch.cuda.stream(s1):\n"
      "                hidden.record_stream(torch.cuda.current_stream(self.device0))  # the copy's stream reads it\n"
      "                outputs.append(self.relu2(self.layer2(hidden.to(self.device1))))\n"
      "        torch.cuda.current_stream(self.device1).wait_stream(s1)\n")],
    set()))
