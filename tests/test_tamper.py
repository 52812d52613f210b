"""What cannot be prevented in one process is detected: the static scan at intake and the audit hook at run time flag
what a submission does to the grader, with the evidence (event, file:line); honest code is never flagged; grading.yml's
``tamper`` says whether a flag means review or zero; the flags reach results.json, summary.csv, the table and the
student's feedback.

Each hostile snippet is added to the reference right after its imports; the line it must be flagged at carries
``# <-``. The hook's cases hide from the scan (``getattr(sys, "_get" + "frame")``), so each detector is tested alone.
"""

import csv
import dataclasses
import json
import multiprocessing
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from autograder.grading import Report, grade_all
from autograder.reports import feedback_markdown, table, write_student, write_summary
from autograder.rubric import RubricError, parse_rubric
from autograder.samples import MUTANTS, REFERENCE, VARIANTS
from autograder.sandbox import ProbeFailed, SubmissionProcess, audit
from autograder.sandbox.client import FLAGS_OVERFLOWED, MAX_FLAGS
from autograder.sandbox.scan import scan_file, scan_source

ANCHOR = "from torch import nn\n"
MARK = "  # <-"
IMPORT_TIMEOUT_S = 60  # the first child waits for the warm server to import torch


def _with(snippet: str) -> tuple[str, int]:
    """The reference with ``snippet`` after its imports, and the line number of the line marked ``# <-``."""
    source = REFERENCE.read_text().replace(ANCHOR, ANCHOR + "\n" + snippet.strip("\n") + "\n", 1)
    marked = [number for number, line in enumerate(source.splitlines(), 1) if line.endswith(MARK)]
    assert len(marked) == 1, f"mark exactly one line of the snippet with '{MARK}'"
    return source, marked[0]


def _found(findings: list[dict], event: str, where: str) -> bool:
    return any(f["event"] == event and f["where"] == where for f in findings)


# --------------------------------------------------------------------------------------------------- static scan
SCANNED = [  # (event, snippet): the scan must report ``event`` at the marked line
    ("sys._getframe", "import sys\ncaller = sys._getframe(1)  # <-"),
    ("sys._getframe", "from sys import _getframe as peek\n\n\ndef who():\n    return peek(1)  # <-"),
    ("inspect.stack", "import inspect\nframes = inspect.stack()  # <-"),
    ("inspect.currentframe", "import inspect as ins\nframe = ins.currentframe()  # <-"),
    ("inspect.getouterframes", "import inspect\nouter = inspect.getouterframes(None)  # <-"),
    (".f_back", "def up(frame):\n    return frame.f_back  # <-"),
    (".f_locals", "def names(frame):\n    return frame.f_locals  # <-"),
    (".f_globals", "def module_of(frame):\n    return frame.f_globals  # <-"),
    ("gc.get_objects", "import gc\neverything = gc.get_objects()  # <-"),
    ("gc.get_referrers", "import gc\nholders = gc.get_referrers(nn)  # <-"),
    ("import autograder", "import autograder.sandbox.probes  # <-"),
    ("import autograder", "from autograder.sandbox import probes  # <-"),
    ("import autograder", "import sys\nprobes = sys.modules['autograder.sandbox.probes']  # <-"),
    ("patches torch.Tensor.device", "torch.Tensor.device = property(lambda self: torch.device('cuda:1'))  # <-"),
    ("patches torch.cuda.synchronize", "torch.cuda.synchronize = lambda device=None: None  # <-"),
    ("patches torch.nn.Parameter.device", "from torch.nn import Parameter\nParameter.device = None  # <-"),
    ("patches torch.nn.Module.__call__", "setattr(nn.Module, '__call__', nn.Module.__call__)  # <-"),
    ("patches time.perf_counter", "import time\ntime.perf_counter = lambda: 0.0  # <-"),
    ("patches json.dumps", "import json\njson.dumps = lambda *args, **kwargs: '{}'  # <-"),
    ("patches builtins.print", "import builtins\nbuiltins.print = lambda *args, **kwargs: None  # <-"),
    ("patches sys.excepthook", "import sys\nsys.excepthook = print  # <-"),
    ("patches autograder.sandbox.probes.PROBES", "from autograder.sandbox import probes\nprobes.PROBES = {}  # <-"),
    ("patches torch", "vars(torch)['allclose'] = None  # <-"),
    ("sets .__code__", "def a():\n    pass\n\n\ndef b():\n    pass\n\n\na.__code__ = b.__code__  # <-"),
    ("__torch_function__", "class Liar(torch.Tensor):\n    def __torch_function__(self):  # <-\n        pass"),
    ("TorchFunctionMode", "from torch.overrides import TorchFunctionMode  # <-"),
    ("TorchDispatchMode", "from torch.utils import _python_dispatch\nM = _python_dispatch.TorchDispatchMode  # <-"),
    ("ctypes", "import ctypes  # <-"),
    ("os.fork", "import os\n\n\ndef twin():\n    return os.fork()  # <-"),
    ("os.system", "import os\nos.system('true')  # <-"),
    ("os.execv", "import os\n\n\ndef become():\n    os.execv('/bin/true', ['true'])  # <-"),
    ("os.posix_spawn", "import os\n\n\ndef spawn():\n    os.posix_spawn('/bin/true', ['true'], {})  # <-"),
    ("os.kill", "import os\n\n\ndef stop(pid):\n    os.kill(pid, 9)  # <-"),
    ("os.setsid", "import os\n\n\ndef detach():\n    os.setsid()  # <-"),
    ("subprocess", "import subprocess  # <-"),
    ("signal.signal", "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)  # <-"),
    ("/proc", "def spy():\n    return open('/proc/1/cmdline').read()  # <-"),
    ("exec", "exec('x = 1')  # <-"),
    ("eval", "y = eval('1 + 1')  # <-"),
    ("compile", "code = compile('1', 'f', 'eval')  # <-"),
    ("import of a computed name", "import importlib\nm = importlib.import_module('auto' + 'grader')  # <-"),
    ("subprocess", "__name__ = '__main__'\nif __name__ == '__main__':\n    import subprocess  # <-"),
    # Introspection of a function: the probes' state lies in a closure (model.forward.__closure__[i].cell_contents).
    (".__closure__", "def truth(model):\n    return model.forward.__closure__[0].cell_contents  # <-"),
    (".cell_contents", "def truth(cell):\n    return cell.cell_contents  # <-"),
    (".__wrapped__", "def unwrap(forward):\n    return forward.__wrapped__  # <-"),
    (".__code__", "def code_of(forward):\n    return forward.__code__  # <-"),
    (".__globals__", "def module_of(forward):\n    return forward.__globals__  # <-"),
    (".__defaults__", "def defaults(forward):\n    return forward.__defaults__  # <-"),
    (".__kwdefaults__", "def defaults(forward):\n    return forward.__kwdefaults__  # <-"),
    (".__closure__", "def truth(model):\n    return getattr(model.forward, '__closure__')  # <-"),
    # The modules under os, subprocess and multiprocessing, imported or looked up.
    ("subprocess", "import _posixsubprocess  # <-"),
    ("_posixshmem", "import _posixshmem  # <-"),
    ("_multiprocessing", "from _multiprocessing import SemLock  # <-"),
    ("posix", "import posix  # <-"),
    ("posix", "import sys\nfork = sys.modules['posix'].fork  # <-"),
    ("posix", "fork = __import__('posix').fork  # <-"),
    # Taking over the replies pipe.
    ("os.dup2", "import os\n\n\ndef take(fd):\n    os.dup2(fd, 1)  # <-"),
    ("os.dup", "import os\n\n\ndef take(fd):\n    return os.dup(fd)  # <-"),
    ("os.close", "import os\n\n\ndef drop(fd):\n    os.close(fd)  # <-"),
    ("os.closerange", "import os\n\n\ndef drop():\n    os.closerange(3, 1024)  # <-"),
    ("os.pipe", "import os\n\n\ndef fresh():\n    return os.pipe()  # <-"),
    # The autograder's modules by a computed name; namespaces written by key (and the main block they make run).
    ("import of a computed name", "import sys\nprobes = sys.modules['auto' + 'grader.sandbox.probes']  # <-"),
    ("import of a computed name", "import sys\nname = 'x'\nprobes = sys.modules.get(name)  # <-"),
    ("writes globals()", "globals()['__name__'] = '__main__'  # <-"),
    ("writes vars()", "vars()['x'] = 1  # <-"),
    ("writes sys.modules", "import sys\nsys.modules['json'] = None  # <-"),
    ("writes globals()", "globals().update(__name__='__main__')  # <-"),
    ("subprocess", "globals()['__name__'] = '__main__'\nif __name__ == '__main__':\n    import subprocess  # <-"),
    ("subprocess", "vars()['__na' + 'me__'] = '__main__'\nif __name__ == '__main__':\n    import subprocess  # <-"),
    # A module's attribute by a computed name.
    ("getattr of a computed name", "import os\nname = 'sys' + 'tem'\nrun = getattr(os, name)  # <-"),
    ("getattr of a computed name", "import time\nclock = getattr(time, 'perf_' + 'counter')  # <-"),
    ("setattr of a computed name", "import gc\nsetattr(gc, 'x' + 'y', None)  # <-"),
    ("delattr of a computed name", "import inspect\nname = 'stack'\ndelattr(inspect, name)  # <-"),
    # The autograder beyond the student kit's modules.
    ("import autograder", "from autograder import sandbox  # <-"),
    ("import autograder", "from autograder import busy, grading  # <-"),
    ("import autograder", "import autograder.samples  # <-"),
    ("import autograder", "import autograder  # <-"),
    ("import autograder", "import autograder.busy\nprobes = autograder.sandbox.probes  # <-"),
    ("patches autograder.busy.record", "from autograder import busy\nbusy.record = None  # <-"),
    # Library calls that hand a frame or a closure back, and operator's getters by a name not written (issue 23).
    ("inspect.getclosurevars", "import inspect\nfound = inspect.getclosurevars(print)  # <-"),
    ("logging.currentframe", "import logging\nframe = logging.currentframe()  # <-"),
    ("attrgetter of a computed name", "import operator\nname = 'f_' + 'back'\nup = operator.attrgetter(name)  # <-"),
    ("methodcaller of a computed name", "from operator import methodcaller\ncall = methodcaller('x' + 'y')  # <-"),
    (".f_back", "import operator\nup = operator.attrgetter('f_back.f_locals')  # <-"),
]


@pytest.mark.parametrize("event, snippet", SCANNED, ids=[f"{e}-{i}" for i, (e, _) in enumerate(SCANNED)])
def test_the_scan_flags_each_class_at_its_line(event, snippet):
    source, line = _with(snippet)
    findings = scan_source(source, "model_parallel.py")
    assert _found(findings, event, f"model_parallel.py:{line}"), findings
    flagged = next(f for f in findings if f["where"] == f"model_parallel.py:{line}")
    assert flagged["detail"] == source.splitlines()[line - 1].strip()  # the evidence is the line itself


HONEST = [  # what students write for good reasons: never a flag
    "torch.backends.cudnn.benchmark = True",
    "torch.backends.cuda.matmul.allow_tf32 = True",
    "torch.manual_seed(0)\ntorch.set_num_threads(2)",
    "import time, json, inspect, gc, os, sys\nsignature = inspect.signature(print)\ngc.collect()",
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'",
    "import re\npattern = re.compile('cuda:[0-9]')",
    "def compile(text):\n    return text\n\n\nsource = compile('mine')",
    "from torch.utils import benchmark\ntimer = benchmark.Timer('model(x)', globals={})",
    "import threading\nworker = threading.Thread(target=print)",
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt",
    "import warnings, logging\nwarnings.warn('slow on CPU')\nlogging.getLogger(__name__).info('ready')",
    "memory = open('/proc/self/status').read()",
    "if __name__ == '__main__':\n    import subprocess\n    subprocess.run(['nvidia-smi'])\n    exec('print(1)')",
    # The student kit's modules, which the notebook uses.
    "from autograder.busy import record\nfrom autograder.timeline import record as timeline_record",
    "from autograder import busy, contract, devices, notebook, simgpu, timeline\nimport autograder.simgpu.profiles",
    "import autograder.busy\nrecorded = autograder.busy.record\nimport importlib\n"
    "notebook = importlib.import_module('autograder.notebook')",
    # getattr of the student's own objects by a computed name; a module's attribute by a constant; its own module.
    "class Box:\n    size = 1\n\n    def get(self, name):\n        return getattr(self, name)\n\n\n"
    "name = 'size'\nvalue = getattr(Box, name)\nsetattr(Box, name, 2)",
    "def second(model):\n    return getattr(model, 'device1')",
    "import time, sys\nclock = getattr(time, 'perf_counter')\nhere = sys.modules[__name__]\n"
    "torch_ = sys.modules['torch']",
    "import functools\n\n\n@functools.wraps(print)\ndef say(*args):\n    return print(*args)",
    "import os\nfolder = os.path.join(os.getcwd(), 'out')\nnames = os.listdir('.')",
    # Literal getters, the student's own layers by a built name, the process's own /proc entries by its pid.
    "import operator\nweights = operator.attrgetter('weight', 'bias')\nmove = operator.methodcaller('to', 'cpu')",
    "class Two:\n    layer1 = layer2 = None\n\n\nlayers = [getattr(Two, f'layer{i}') for i in (1, 2)]",
    "import os\nstatus = open(f'/proc/{os.getpid()}/status').read()",
]


@pytest.mark.parametrize("snippet", HONEST)
def test_the_scan_never_flags_honest_code(snippet):
    assert scan_source(REFERENCE.read_text().replace(ANCHOR, ANCHOR + snippet + "\n", 1), "model_parallel.py") == []


@pytest.mark.parametrize("edit", [*VARIANTS, *MUTANTS], ids=lambda m: m.name)
def test_the_scan_never_flags_the_variants_or_honest_mistakes(edit):
    assert scan_source(edit.source(), "model_parallel.py") == []


def test_the_scan_never_flags_the_reference_and_never_runs_the_code(tmp_path):
    assert scan_file(REFERENCE) == []
    bomb = tmp_path / "model_parallel.py"
    bomb.write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\nimport ctypes\n")
    assert [f["event"] for f in scan_file(bomb)] == ["ctypes"] and not (tmp_path / "ran").exists()
    bomb.write_text("def broken(:\n")
    assert scan_file(bomb) == []  # the checks tell the student it does not import


# --------------------------------------------------------------------------------------------------- audit hook
HOOKED = [  # (event, where: None = the marked line, snippet): seen at run time, hidden from the scan
    ("sys._getframe", None, "import sys\ncaller = getattr(sys, '_get' + 'frame')(0)  # <-"),
    ("sys._getframe", None, "import inspect\nframes = getattr(inspect, 'st' + 'ack')(0)  # <-"),
    (".tb_frame", None, "try:\n    raise ValueError\nexcept ValueError as error:\n"
                        "    frame = getattr(error.__traceback__, 'tb_' + 'frame')  # <-"),
    ("gc.get_objects", None, "import gc\neverything = getattr(gc, 'get_' + 'objects')()  # <-"),
    ("gc.get_referrers", None, "import gc\nholders = getattr(gc, 'get_' + 'referrers')(nn)  # <-"),
    ("import autograder", None, "import importlib\nname = 'auto' + 'grader.rubric'\n"
                                "rubric = importlib.import_module(name)  # <-"),
    ("patches time.perf_counter", "model_parallel.py",
     "import time\nsetattr(time, 'perf_' + 'counter', lambda: 0.0)  # <-"),
    ("patches torch.Tensor.device", "model_parallel.py",
     "setattr(torch.Tensor, 'dev' + 'ice', property(lambda self: torch.device('cpu')))  # <-"),
    ("patches json.dump", "model_parallel.py", "import json\nsetattr(json, 'du' + 'mp', lambda *args: None)  # <-"),
    ("patches builtins.print", "model_parallel.py",
     "import builtins\nsetattr(builtins, 'pr' + 'int', lambda *args, **kwargs: None)  # <-"),
    ("patches autograder.sandbox.probes.PROBES['forward']", "model_parallel.py",
     "import sys\nprobes = sys.modules['auto' + 'grader.sandbox.probes']\n"
     "probes.PROBES['for' + 'ward'] = lambda ctx, **kwargs: {}  # <-"),
    ("sets .__code__", None, "def a():\n    pass\n\n\nsetattr(a, '__co' + 'de__', (lambda: None).__code__)  # <-"),
    ("ctypes.dlopen", None, "import sys\nlibc = sys.modules['ct' + 'ypes'].CDLL(None)  # <-"),
    ("os.system", None, "import os\ngetattr(os, 'sys' + 'tem')('true')  # <-"),
    ("os.posix_spawn", None, "import os\ntry:\n    getattr(os, 'posix_' + 'spawn')('/bin/true', ['true'], {})  # <-\n"
                             "except OSError:\n    pass"),
    ("os.fork", None, "import os\npid = getattr(os, 'fo' + 'rk')()  # <-\nif pid == 0:\n    os._exit(0)\n"
                      "os.waitpid(pid, 0)"),
    ("subprocess.Popen", None, "import importlib\nname = 'sub' + 'process'\nrun = importlib.import_module(name).run\n"
                               "try:\n    run(['true'])  # <-\nexcept OSError:\n    pass"),
    ("signal.pthread_kill", None, "import signal, threading\n"
                                  "getattr(signal, 'pthread_' + 'kill')(threading.get_ident(), 0)  # <-"),
    ("/proc", None, "try:\n    open('/pr' + 'oc/1/cmdline').read()  # <-\nexcept OSError:\n    pass"),
    ("exec", None, "import builtins\ngetattr(builtins, 'ex' + 'ec')('x = 1')  # <-"),
    ("sys.settrace", None, "import sys\ngetattr(sys, 'set' + 'trace')(None)  # <-"),
    ("patches autograder.sandbox.probes._Workloads.seconds_per_forward", "model_parallel.py",
     "import sys\nprobes = sys.modules['auto' + 'grader.sandbox.probes']\n"
     "setattr(probes._Workloads, 'seconds_per_' + 'forward', lambda self, marks: 0.0)  # <-"),
    # Frames and closures through a library that hands them back, and getattr by a name built at run time (issue 23).
    ("sys._getframe", None, "import logging\nframe = vars(logging)['current' + 'frame']()  # <-"),
    ("inspect.getclosurevars", None, "import inspect\nfound = vars(inspect)['getclosure' + 'vars'](lambda: nn)  # <-"),
    (".f_back", None, "try:\n    raise ValueError\nexcept ValueError as error:\n    here = error.__traceback__\n"
                             "name = 'f_' + 'back'\nup = getattr(here.tb_frame, name)  # <-"),
    (".__closure__", None, "def outer():\n    return lambda: nn\n\n\nname = '__clo' + 'sure__'\n"
                                  "cells = getattr(outer(), name)  # <-"),
    # The hook's module and builtins are within reach (no audited event): rebinding them changes nothing it does.
    ("sys._getframe", None, "import builtins, sys\naudit = sys.modules['auto' + 'grader.sandbox.audit']\n"
                            "audit.FRAME_HELPERS = audit.DIRECT = audit.ANY = ()\n"
                            "audit._STUDENT = audit._LIBRARY = audit.MAX_LINES = audit._quote = None\n"
                            "setattr(builtins, 'an' + 'y', lambda values: False)\n"
                            "caller = getattr(sys, '_get' + 'frame')(0)  # <-"),
]


def _run_import(folder: Path, source: str, timeout: float = IMPORT_TIMEOUT_S) -> list[dict]:
    """The audit hook's flags from importing ``source`` in the sandbox (the import's own outcome does not matter)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_parallel.py").write_text(source)
    with SubmissionProcess(folder, "sim") as process:
        try:
            process.probe("import", timeout)
        except ProbeFailed:
            pass
        return process.read_flags()


@pytest.mark.parametrize("event, where, snippet", HOOKED, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(HOOKED)])
def test_the_audit_hook_flags_each_class_the_scan_cannot_see(event, where, snippet, tmp_path):
    source, line = _with(snippet)
    where = where or f"model_parallel.py:{line}"
    assert not _found(scan_source(source, "model_parallel.py"), event, where), "the scan saw it: not the hook's test"
    flags = _run_import(tmp_path / "submission", source)
    assert _found(flags, event, where), flags


def test_the_flag_is_sent_before_the_submission_can_take_it_back(tmp_path):
    """It walks a frame, then closes every descriptor (the reply pipe with them): the flag had already left."""
    source, line = _with("import os, sys\ncaller = getattr(sys, '_get' + 'frame')(0)  # <-\nos.closerange(3, 1024)")
    flags = _run_import(tmp_path / "submission", source, timeout=20)
    assert _found(flags, "sys._getframe", f"model_parallel.py:{line}"), flags


def test_the_hook_attributes_by_caller_and_counts_each_place_once(tmp_path):
    """Library code walking frames on its own behalf (warnings, logging, namedtuple, dataclasses, traceback) is not
    the student's; the student's own walk, repeated in a loop, is one flag."""
    source, line = _with("import collections, dataclasses, logging, sys, traceback, typing, warnings\n"
                         "warnings.warn('honest')\nlogging.getLogger('x').warning('honest')\n"
                         "Pair = collections.namedtuple('Pair', 'a b')\nT = typing.TypeVar('T')\n\n\n"
                         "@dataclasses.dataclass\nclass Box:\n    size: int = 1\n\n\n"
                         "try:\n    raise ValueError\nexcept ValueError:\n    text = traceback.format_exc()\n"
                         "for _ in range(3):\n    getattr(sys, '_get' + 'frame')(0)  # <-")
    flags = _run_import(tmp_path / "submission", source)
    assert flags == [{"event": "sys._getframe", "where": f"model_parallel.py:{line}", "detail": ""}]


def test_honest_library_use_and_built_names_are_never_flagged(tmp_path):
    """logging (its findCaller walks frames through logging.currentframe), warnings, namedtuple, dataclass,
    inspect.signature, and getattr of the student's own layers by a built name: no flag (issue 23, item 2)."""
    source, _ = _with("import collections, dataclasses, inspect, logging, warnings\n"
                      "logging.basicConfig()\nlogging.getLogger('x').warning('honest')\nlogging.info('honest')\n"
                      "warnings.warn('honest')\nPair = collections.namedtuple('Pair', 'a b')\n\n\n"
                      "@dataclasses.dataclass\nclass Box:\n    layer1: int = 1\n    layer2: int = 2\n\n\n"
                      "sizes = [getattr(Box(), f'layer{i}') for i in (1, 2)]\n"
                      "shown = inspect.signature(Box).parameters\nname = getattr(Box, '__na' + 'me__')  # <-")
    assert scan_source(source, "model_parallel.py") == []
    assert _run_import(tmp_path / "submission", source) == []


def _hook_calls(tmp_path: Path, monkeypatch, library: Path) -> tuple[list, dict]:
    """The hook, built for ``tmp_path/submission`` with ``library`` on sys.path, and what it sends; ``run[file]`` calls
    it as code compiled from that file would (``via`` the helper defined in ``library/helper.py``)."""
    submission = tmp_path / "submission"
    submission.mkdir()
    monkeypatch.setattr("sys.path", [str(library), *__import__("sys").path])
    sent: list = []
    hook = audit._hook(lambda *args: sent.append(args), audit._classifier(submission))
    helper: dict = {}
    exec(compile("def walk(hook, event, args):\n    hook(event, args)\n", str(library / "helper.py"), "exec"), helper)
    run = {}
    for name, code in (("student", "def go(hook, event, args):\n    hook(event, args)\n"),
                       ("via helper", "def go(hook, event, args):\n    walk(hook, event, args)\n")):
        namespace = {"walk": helper["walk"]}
        exec(compile(code, str(submission / "model_parallel.py"), "exec"), namespace)
        run[name] = lambda event, args=(), go=namespace["go"]: go(hook, event, args)
    return sent, run


def test_a_library_on_pythonpath_is_not_the_students_code(tmp_path, monkeypatch):
    """HPC sites provide torch and numpy through PYTHONPATH (``module load``): what their code does is theirs."""
    library = tmp_path / "modules" / "torch-2.3" / "lib"
    library.mkdir(parents=True)
    sent, run = _hook_calls(tmp_path, monkeypatch, library)
    run["via helper"]("sys._getframe", (1,))
    assert sent == []
    run["student"]("sys._getframe", (1,))
    assert [event for event, _, _ in sent] == ["sys._getframe"]
    classify = audit._classifier(tmp_path / "submission")
    assert classify(str(library / "torch" / "__init__.py"))[0] == "library"
    assert classify(str(tmp_path / "submission" / "model_parallel.py"))[0] == "student"
    assert classify(__import__("inspect").__file__) == ("stdlib", "inspect")  # inside a prefix: still the stdlib


def test_a_sys_path_entry_that_holds_the_submission_is_not_a_library(tmp_path, monkeypatch):
    sent, run = _hook_calls(tmp_path, monkeypatch, tmp_path)  # the scratch folder, say, or "/"
    run["via helper"]("sys._getframe", (1,))
    assert [event for event, _, _ in sent] == ["sys._getframe"]


def test_the_hook_lets_the_student_kit_be_imported_and_nothing_else_of_the_autograder(tmp_path, monkeypatch):
    sent, run = _hook_calls(tmp_path, monkeypatch, tmp_path / "unused")
    kit = [f"autograder.{name}" for name in ("busy", "timeline", "notebook", "simgpu", "simgpu.profiles", "devices",
                                             "contract")]
    for name in ["autograder", *kit]:
        run["student"]("import", (name, None, [], [], []))
    for path in ("__init__.py", "busy.py", "notebook.py", "simgpu/profiles.py"):
        run["student"]("exec", (compile("", f"{audit.AUTOGRADER_DIR}/{path}", "exec"),))
    assert sent == []
    for name in ("autograder.sandbox.probes", "autograder.graders", "autograder.grading", "autograder.samples",
                 "autograder.busybody"):
        run["student"]("import", (name, None, [], [], []))
    run["student"]("exec", (compile("", f"{audit.AUTOGRADER_DIR}/sandbox/probes.py", "exec"),))
    assert [detail for _, _, detail in sent] == ["autograder.sandbox.probes", "autograder.graders",
                                                 "autograder.grading", "autograder.samples", "autograder.busybody",
                                                 "autograder/sandbox/probes.py"]


def test_importing_the_student_kit_in_the_sandbox_is_never_flagged(tmp_path):
    source = REFERENCE.read_text().replace(ANCHOR, ANCHOR + "from autograder.busy import record\n"
                                           "from autograder import contract, devices, notebook, simgpu, timeline\n"
                                           "import importlib\nkit = importlib.import_module('autograder.notebook')\n",
                                           1)
    assert scan_source(source, "model_parallel.py") == []
    assert _run_import(tmp_path / "submission", source) == []


def test_methods_of_the_sandbox_classes_are_watched(monkeypatch):
    from autograder.sandbox import probes

    sent: list = []
    monkeypatch.setattr(audit, "_send", lambda *args: sent.append(args))
    before = audit.snapshot()
    audit.report_patches(before, "while nothing happened")
    assert sent == []
    monkeypatch.setattr(probes._Workloads, "seconds_per_forward", lambda self, marks: 0.0)
    audit.report_patches(before, "while model_parallel.py was imported")
    assert [event for event, _, _ in sent] == ["patches autograder.sandbox.probes._Workloads.seconds_per_forward"]


def test_a_flood_of_forged_audit_lines_cannot_push_the_evidence_out(tmp_path):
    """MAX_FLAGS forged lines first: the real flag still gets in (the first of its event), and one flag says that
    lines were dropped."""
    process = SubmissionProcess(tmp_path, "sim")
    process._replies, _ = multiprocessing.Pipe(duplex=False)
    forged = [{"event": "sys._getframe", "where": f"model_parallel.py:{i}", "detail": ""} for i in range(MAX_FLAGS)]
    real = {"event": "ctypes.dlopen", "where": "model_parallel.py:7", "detail": "libc"}
    lines = [json.dumps({"audit": flag}).encode() for flag in [*forged, real, *forged]]
    process._buffer = b"\n".join(lines) + b'\n{"ready": true}\n'
    try:
        assert process._next_line(time.monotonic() + 5) == b'{"ready": true}'
        assert real in process.flags and forged[0] in process.flags
        assert len(process.flags) == MAX_FLAGS + 1 and process.flags[-1]["event"] == FLAGS_OVERFLOWED
    finally:
        process.close()


def test_the_client_collects_audit_lines_whenever_they_come_and_keeps_each_once(tmp_path):
    """Start-up included: the hook's lines are taken out before the line the caller waits for; forged or garbled
    ones cannot crowd out a reply."""
    process = SubmissionProcess(tmp_path, "sim")
    process._replies, _ = multiprocessing.Pipe(duplex=False)
    flag = {"event": "gc.get_objects", "where": "model_parallel.py:3", "detail": ""}
    line = json.dumps({"audit": flag}).encode()
    process._buffer = line + b"\n" + line + b'\n{"audit": garbled\n{"ready": true}\n'
    try:
        assert process._next_line(time.monotonic() + 5) == b'{"ready": true}'
        assert process.flags == [flag]
    finally:
        process.close()


# --------------------------------------------------------------------------------------------------- grading, policy
FLAGGED, CLEAN = "flagged", "honest_extras"
HONEST_EXTRAS = """import json
import threading
import warnings

import matplotlib
import torch.utils.benchmark

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

torch.backends.cudnn.benchmark = True
# (not allow_tf32: that changes the numbers, as on an A100 - the tf32_matmuls sample carries its verdicts)
torch.backends.cudnn.deterministic = True
torch.manual_seed(0)
helper = threading.Thread(target=lambda: json.dumps({"ready": True}))
helper.start()
helper.join()
warnings.filterwarnings("ignore")
"""
MAIN_BLOCK = """

if __name__ == "__main__":
    import subprocess

    subprocess.run(["nvidia-smi"], check=False)
    plt.plot([1, 2], [3, 4])
"""
TIMER = ("        start = time.perf_counter()\n        for _ in range(repeats):\n            model(x)\n"
         "        wait_for_gpus()\n        return (time.perf_counter() - start) / repeats\n")
WITH_TIMER = ("        with torch.cuda.device(model.device1):  # Timer waits for the current device only\n"
              "            timer = torch.utils.benchmark.Timer('model(x)', globals={'model': model, 'x': x})\n"
              "            return timer.timeit(repeats).mean\n")


def _honest_extras() -> str:
    source = REFERENCE.read_text().replace(ANCHOR, ANCHOR + HONEST_EXTRAS, 1)
    assert TIMER in source, "the reference's timed loop changed: update TIMER"
    return source.replace(TIMER, WITH_TIMER) + MAIN_BLOCK


def _flagged() -> tuple[str, int, int]:
    """Correct work, plus frame walking the scan sees (at import) and one only the hook sees (in forward)."""
    source, walk = _with("import sys\nimport ctypes  # <-")
    walk_in_forward = "        getattr(sys, '_get' + 'frame')(0)"
    forward = "        x = self.relu1(self.layer1(x.to(self.device0)))"
    source = source.replace(forward, walk_in_forward + "\n" + forward, 1)
    return source, walk, source.splitlines().index(walk_in_forward) + 1


@pytest.fixture(scope="module")
def graded(tmp_path_factory, fast_rubric):
    """One session per policy: the flagged submission and the honest one under `tamper: review` and `tamper: zero`."""
    root = tmp_path_factory.mktemp("tamper")
    source, _, _ = _flagged()
    folders = {FLAGGED: root / FLAGGED, CLEAN: root / CLEAN}
    folders[FLAGGED].mkdir()
    (folders[FLAGGED] / "model_parallel.py").write_text(source)
    folders[CLEAN].mkdir()
    (folders[CLEAN] / "model_parallel.py").write_text(_honest_extras())
    reports = {}
    for policy in ("review", "zero"):
        found: list[Report] = []
        grade_all(folders.items(), dataclasses.replace(fast_rubric, tamper=policy), "sim", on_report=found.append)
        reports[policy] = {report.submission: report for report in found}
    return reports, root


def test_honest_extras_score_full_marks_and_are_never_flagged(graded):
    """matplotlib, torch.utils.benchmark.Timer, a thread, a __main__ block, torch.backends settings: under `tamper:
    zero` a false flag would cost every point."""
    reports, _ = graded
    for policy in ("review", "zero"):
        report = reports[policy][CLEAN]
        assert report.flags == [] and report.score == report.max_score == 100, (
            report.flags, {r.check.id: r.message for r in report.results if not r.passed})


def test_review_keeps_the_scores_and_records_the_evidence_of_scan_and_hook(graded):
    reports, _ = graded
    report = reports["review"][FLAGGED]
    _, walk, hidden = _flagged()
    assert report.score == 100
    assert _found(report.flags, "ctypes", f"model_parallel.py:{walk}")  # the scan, at intake
    assert _found(report.flags, "sys._getframe", f"model_parallel.py:{hidden}")  # the hook, during forward
    by_hook = next(f for f in report.flags if f["event"] == "sys._getframe")
    assert by_hook["detail"] == "getattr(sys, '_get' + 'frame')(0)"  # the trusted side adds the line


def test_zero_scores_a_flagged_submission_0_and_says_why_in_every_check(graded):
    reports, _ = graded
    report = reports["zero"][FLAGGED]
    _, walk, hidden = _flagged()
    assert report.score == 0 and report.flags == reports["review"][FLAGGED].flags
    for result in report.results:
        assert "flagged for review" in result.message and f"model_parallel.py:{hidden}" in result.message
        assert f"ctypes at model_parallel.py:{walk}: `import ctypes" in result.message


def test_every_report_shows_the_evidence(graded, tmp_path, fast_rubric):
    reports, _ = graded
    flagged, clean = reports["review"][FLAGGED], reports["review"][CLEAN]
    _, walk, hidden = _flagged()
    for report in (flagged, clean):
        write_student(report, tmp_path)
    results = json.loads((tmp_path / FLAGGED / "results.json").read_text())
    assert results["extra_data"]["flags"] == flagged.flags
    assert json.loads((tmp_path / CLEAN / "results.json").read_text())["extra_data"] == {"flags": []}
    assert "flagged for review" in results["output"] and f"model_parallel.py:{hidden}" in results["output"]
    assert Report.from_dict(json.loads((tmp_path / FLAGGED / "report.json").read_text()), fast_rubric).flags == \
        flagged.flags  # a resumed run keeps them
    with write_summary([flagged, clean], tmp_path / "summary.csv", fast_rubric).open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert f"ctypes@model_parallel.py:{walk}" in rows[FLAGGED]["flags"].split("; ")
    assert f"sys._getframe@model_parallel.py:{hidden}" in rows[FLAGGED]["flags"].split("; ")
    assert rows[CLEAN]["flags"] == ""
    assert f"flagged: {len(flagged.flags)}" in table(flagged) and "flagged" not in table(clean)
    feedback = feedback_markdown(flagged)
    assert "## Flagged for review" in feedback and f"model_parallel.py:{hidden}" in feedback
    assert "flagged" not in feedback_markdown(clean).lower()


def test_the_student_sees_the_evidence_but_no_hidden_check(graded):
    report = graded[0]["zero"][FLAGGED]
    feedback = feedback_markdown(report)
    hidden = [r.check.id for r in report.results if r.check.visibility != "visible"]
    assert hidden and not any(check in feedback for check in hidden)
    assert "import ctypes" in feedback


def test_the_policy_is_read_from_grading_yml_and_anything_else_is_refused_in_one_line():
    ours = yaml.safe_load((REPO / "grading.yml").read_text())
    assert parse_rubric(ours).tamper == "review"
    assert parse_rubric({**ours, "tamper": "zero"}).tamper == "zero"
    assert parse_rubric({key: value for key, value in ours.items() if key != "tamper"}).tamper == "review"
    for bad in ("Zero", "flag", 0, None, ["zero"]):
        with pytest.raises(RubricError) as refused:
            parse_rubric({**ours, "tamper": bad})
        assert "\n" not in str(refused.value) and "tamper must be review" in str(refused.value), refused.value
