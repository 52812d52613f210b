"""Detection inside the submission's process: a PEP 578 audit hook, and a check that nothing was patched.

    audit.install(reply_fd, submission_dir)   # in worker._load, just before the submission is imported
    before = audit.snapshot()                 # around each piece of student code ...
    audit.report_patches(before, "while model_parallel.py was imported")

Student code shares this process with the probes, so a sandbox cannot stop it from walking frames, reading
``gc``, patching torch or loading ctypes. What it cannot do is hide it: CPython calls the hook for each audited
event, and a hook cannot be removed from Python. An event counts only when the student's code caused it: the
nearest frame outside the standard library must be the student's, and the standard-library frames in between
must be a helper that does the thing on the caller's behalf (``inspect.stack`` walks frames; ``warnings.warn``
and ``collections.namedtuple`` also call ``sys._getframe``, for themselves, so they do not count). torch, numpy
and the autograder trigger the same events all the time and never count.

Each event goes to the trusted side at once, as one JSON line on the replies pipe - before the student's code
runs again, so a later tamper cannot take it back. The hook keeps everything it uses in its closure: nothing a
submission can reach through this module (or ``builtins``) changes what it sees.

Patching module and class attributes raises no audit event in 3.11 (``object.__setattr__`` fires only for
``__code__``, ``__bases__``, ``__class__`` ...), so ``snapshot``/``report_patches`` compare the namespaces the
graders rely on around each piece of student code (best effort: this module is reachable from student code, and
the comparison names no line; ``scan.py`` finds the same in the source, with its line).
"""

from __future__ import annotations

import _thread
import os
import site
import sys
import sysconfig
import types
from _json import encode_basestring_ascii as _quote  # C: a submission cannot patch how a line is written
from pathlib import Path
from typing import Any

from ..contract import MODULE_FILE

MAX_LINES = 100  # distinct (event, where) pairs sent per process: a flood cannot fill the replies pipe
MAX_DETAIL = 200  # characters of an event's argument kept as its detail; a line stays far below PIPE_BUF
AUTOGRADER_DIR = str(Path(__file__).resolve().parents[1])
# /proc files an honest program reads about itself (memory, CPU); everything else there (other processes'
# command lines, this process's fds and memory) is how a submission finds what it should not.
PROC_READABLE = ("/proc/self/status", "/proc/self/statm", "/proc/self/stat", "/proc/self/limits",
                 "/proc/cpuinfo", "/proc/meminfo")

# Which standard-library frames may stand between the event and the student's frame:
DIRECT = ()  # none: the student called the audited builtin itself (exec, gc.get_objects ...)
ANY = ("",)  # any: fork, ctypes, /proc are the student's doing whichever stdlib module did it for them
# These hand the caller's frames (or a function's closure) back to it. Only when the student's code called them
# directly: every standard-library frame between the event and the student's must be one of them, so logging's own
# findCaller (it calls logging.currentframe for itself, then goes on in logging) never counts.
FRAME_HELPERS = ("inspect", "traceback.walk_stack", "logging.<lambda>", "logging.currentframe")
CLOSURE_HELPERS = ("inspect.getclosurevars",)  # reads __code__ (an audited read) to reach a function's closure
# Library functions that do the same on their caller's behalf (``module.function``): like the standard library's
# helpers above, they count only when the student's code called them directly. TorchScript's resolution helpers hand
# back a caller's frame (``createResolutionCallbackFromFrame(frames_up)`` resolves names in the frame it reaches) or a
# function's closure; torch.utils._pytree walks containers only (no frame, closure or code attribute), so it needs none.
LIBRARY_HELPERS = ("torch._jit_internal.createResolutionCallbackFromFrame", "torch._jit_internal.get_closure",
                   "torch._jit_internal.createResolutionCallbackFromClosure",
                   "torch._jit_internal.get_type_hint_captures", "torch._jit_internal.get_class_name_lineno")
# getattr with a name the student's code computed, resolved at run time (``checked_getattr``): these names reach
# frames, closures, code and the interpreter's internals. Honest dunders (__name__, __class__ ...) are not among them.
RUN_TIME_NAMES = frozenset(("f_back", "f_locals", "f_globals", "f_builtins", "f_code", "f_trace", "tb_frame",
                            "tb_next", "gi_frame", "cr_frame", "ag_frame", "cell_contents"))
HONEST_DUNDERS = frozenset(("__name__", "__qualname__", "__module__", "__doc__", "__class__", "__len__", "__iter__",
                            "__call__", "__annotations__", "__version__", "__file__", "__getitem__", "__enter__",
                            "__exit__", "__init__", "__repr__", "__str__", "__dict__"))
FRAME_ATTRIBUTES = ("tb_frame", "gi_frame", "cr_frame", "ag_frame")  # ways to a frame that raise object.__getattr__
CODE_ATTRIBUTES = ("__code__", "__defaults__", "__kwdefaults__", "__bases__", "__class__")  # object.__setattr__
PROCESS_EVENTS = ("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
                  "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit")
PATH_EVENTS = ("open", "os.listdir", "os.scandir", "glob.glob", "os.walk", "os.fwalk")
WATCHED_MODULES = ("builtins", "time", "json", "json.encoder", "torch", "torch.nn", "torch.nn.functional",
                   "torch.cuda", "torch.optim")
WATCHED_CLASSES = ("torch.Tensor", "torch.nn.Module", "torch.nn.Parameter", "torch.nn.Linear", "torch.nn.ReLU",
                   "torch.optim.Optimizer", "torch.optim.SGD", "json.encoder.JSONEncoder")
WATCHED_PACKAGES = ("autograder.sandbox", "autograder.simgpu")  # whose classes' methods are watched too
_STUDENT, _STDLIB, _LIBRARY, _PASS = "student", "stdlib", "library", "pass"


def _dir(path: str) -> str:
    return os.path.join(os.path.abspath(path), "")


# Whose code a file is, decided by where it lies; found here, in the warm server, before any sandbox narrows the view.
# The interpreter's prefixes count as library too (a stdlib folder inside them is matched first: the longest folder
# that holds a file decides), and so does every absolute sys.path entry (``install`` adds them: torch provided
# through PYTHONPATH by an HPC ``module load`` is a library, not the student's code).
LIBRARY_DIRS = tuple(_dir(p) for p in sorted({*(sysconfig.get_paths()[key] for key in ("purelib", "platlib")),
                                             *site.getsitepackages(), site.getusersitepackages(), AUTOGRADER_DIR,
                                             sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}))
STDLIB_DIRS = tuple(_dir(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib"))
# The autograder's modules a student may import (the student kit ships them for the notebook): ``autograder`` itself
# only as their package. Everything else of it (sandbox, graders, grading, samples ...) is flagged.
STUDENT_MODULES = ("autograder.busy", "autograder.timeline", "autograder.notebook", "autograder.simgpu",
                   "autograder.devices", "autograder.contract")


def student_module(name: str) -> bool:
    """Whether ``name`` (dotted) is one of ``STUDENT_MODULES`` or inside one."""
    return any(name == m or name.startswith(m + ".") for m in STUDENT_MODULES)


def _library_dirs(student: str) -> tuple[str, ...]:
    """``LIBRARY_DIRS`` and the absolute sys.path entries, but none that is the submission's folder or holds it."""
    found = {*LIBRARY_DIRS}
    for entry in sys.path:
        if type(entry) is str and os.path.isabs(entry):
            found.update((_dir(entry), _dir(os.path.realpath(entry))))
    return tuple(sorted(p for p in found if not student.startswith(p)))


def install(reply_fd: int, submission: Path) -> None:
    """Add the hook (once per process); each event the submission causes becomes one line on ``reply_fd``."""
    global _send
    if _send is not None:
        return
    _send = _sender(reply_fd)
    sys.addaudithook(_hook(_send, _classifier(submission)))


_send: Any = None  # the installed sender, for report_patches; None until install


def _sender(fd: int):
    """``send(event, where, detail)``: one ``{"audit": {...}}`` line, at most once per (event, where)."""
    seen: set[tuple[str, str]] = set()
    write, length, quote, max_lines, max_detail = os.write, len, _quote, MAX_LINES, MAX_DETAIL

    def send(event: str, where: str, detail: str) -> None:
        if (event, where) in seen or length(seen) >= max_lines:
            return
        seen.add((event, where))
        line = (f'{{"audit": {{"event": {quote(event)}, "where": {quote(where)}, '
                f'"detail": {quote(detail[:max_detail])}}}}}\n')
        try:
            write(fd, line.encode())
        except OSError:  # the submission closed the pipe: its replies are lost too, so nothing is gained
            pass

    return send


def _classifier(submission: Path):
    """``classify(filename) -> (kind, module)``: whose code a frame runs, cached per file name."""
    student = _dir(str(Path(submission).resolve()))
    libraries_, stdlib_, sep = _library_dirs(student), STDLIB_DIRS, os.sep
    cache: dict[str, tuple[str, str]] = {}
    abspath, max_, len_ = os.path.abspath, max, len
    student_kind, stdlib_kind, library_kind, pass_kind = _STUDENT, _STDLIB, _LIBRARY, _PASS

    def classify(filename: str) -> tuple[str, str]:
        known = cache.get(filename)
        if known is None:
            path = filename if filename[:1] in ("/", "<") else abspath(filename)  # almost always absolute
            if filename.startswith("<frozen "):  # importlib, codecs ...: frozen into the interpreter
                known = (stdlib_kind, filename[8:-1])
            elif filename[:1] in ("<", ""):  # code compiled from a string: passes the question on to its caller
                known = (pass_kind, "")
            elif path.startswith(student):
                known = (student_kind, "")
            elif path.startswith(libraries_) or path.startswith(stdlib_):
                # The longest folder decides: site-packages lies inside the stdlib folder, which lies inside a
                # prefix; on a tie (the stdlib folder is on sys.path too) it is the stdlib.
                library = max_((p for p in libraries_ if path.startswith(p)), key=len_, default="")
                prefix = max_((p for p in stdlib_ if path.startswith(p)), key=len_, default="")
                kind, folder = (library_kind, library) if len_(library) > len_(prefix) else (stdlib_kind, prefix)
                module = path[len_(folder):-3].replace(sep, ".")  # (a library's: for LIBRARY_HELPERS)
                known = (kind, module[:-9] if module.endswith(".__init__") else module)
            else:  # not the interpreter's, not a library's: a file the student's code wrote, e.g. in /tmp
                known = (student_kind, "")
            cache[filename] = known
        return known

    return classify


def _hook(send, classify):
    """The audit hook. Everything it uses is bound here, constants and builtins too: rebinding this module's names
    or a builtin later (the submission can reach both without an audited event) changes nothing it does."""
    getframe, get_ident, busy = sys._getframe, _thread.get_ident, set()
    pid, code_type = os.getpid, types.CodeType
    type_, str_, bytes_, int_, tuple_, list_, len_, any_ = type, str, bytes, int, tuple, list, len, any
    base_exception = BaseException
    type_name = type.__dict__["__name__"].__get__  # never a student metaclass's __name__
    student, stdlib, library, autograder_dir = _STUDENT, _STDLIB, _LIBRARY, AUTOGRADER_DIR + "/"
    direct, any_helper, frame_helpers, proc_readable = DIRECT, ANY, FRAME_HELPERS, PROC_READABLE
    closure_helpers, library_helpers = CLOSURE_HELPERS, frozenset(LIBRARY_HELPERS)
    frame_attributes, code_attributes = FRAME_ATTRIBUTES, CODE_ATTRIBUTES
    process_events, path_events = PROCESS_EVENTS, PATH_EVENTS
    kit = tuple_(m[len_("autograder."):].replace(".", "/") for m in STUDENT_MODULES)  # busy, simgpu ...
    allowed_files = frozenset(("__init__.py", *(f"{m}.py" for m in kit)))
    allowed_folders = tuple_(f"{m}/" for m in kit)
    allowed_names = tuple_(STUDENT_MODULES)

    def allowed(name: str) -> bool:
        return any_(name == m or name.startswith(m + ".") for m in allowed_names)
    interesting = frozenset(("sys._getframe", "sys._current_frames", "object.__getattr__", "object.__setattr__",
                             "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.settrace",
                             "sys.setprofile", "sys.addaudithook", "import", "exec", "compile", "code.__new__",
                             *PROCESS_EVENTS, *PATH_EVENTS))

    def text(value: Any) -> str:
        """An event argument as text, without calling any method a submission could define."""
        kind = type_(value)
        if kind is str_:
            return value
        if kind is bytes_:
            return value.decode("utf-8", "replace")
        if kind is int_:
            return int_.__repr__(value)
        if kind is tuple_ or kind is list_:
            return " ".join(text(v) for v in value[:8])
        return f"<{type_name(kind)}>"

    def suspicious_path(path: str) -> str | None:
        """The label of a path the submission has no business reading, or None."""
        path = path.rstrip("/") if len_(path) > 1 else path
        if path == "/proc" or path.startswith("/proc/"):
            own = f"/proc/{pid()}/"
            if path.startswith(own):
                path = "/proc/self/" + path[len_(own):]
            return None if path in proc_readable else "/proc"
        if path.startswith(autograder_dir):
            return "reads autograder files"
        return None

    def judge(event: str, args: tuple) -> tuple[str, str, tuple, bool] | None:
        """(label, detail, helpers, through_import) for an event worth attributing, else None."""
        if event == "object.__getattr__":
            name = args[1] if len_(args) > 1 and type_(args[1]) is str_ else ""
            if name == "__code__":  # honest code and libraries read it; through getclosurevars it reaches closures
                return "inspect.getclosurevars", "", closure_helpers, False
            return (f".{name}", "", frame_helpers, False) if name in frame_attributes else None
        if event == "object.__setattr__":
            name = args[1] if len_(args) > 1 and type_(args[1]) is str_ else ""
            if name in code_attributes:
                return f"sets .{name}", f"on a {type_name(type_(args[0]))}", direct, False
            return None
        if event in ("sys._getframe", "sys._current_frames"):
            return event, "", frame_helpers, False
        if event == "import":
            name = text(args[0])
            if name.split(".")[0] != "autograder" or name == "autograder" or allowed(name):
                return None
            return "import autograder", name, any_helper, True
        if event == "exec":
            code = args[0]
            filename = code.co_filename if type_(code) is code_type else ""
            if filename.startswith(autograder_dir):  # importlib.import_module raises no import event
                inside = filename[len_(autograder_dir):]
                if inside in allowed_files or inside.startswith(allowed_folders):
                    return None
                return "import autograder", "autograder/" + inside, any_helper, True
            return "exec", filename, direct, False
        if event == "compile":
            return "compile", text(args[0]).strip().split("\n")[0], direct, False
        if event in path_events:
            path = text(args[0]) if args else ""
            label = suspicious_path(path)
            return (label, path, any_helper, False) if label else None
        if event.startswith("ctypes.") or event in process_events:
            return event, text(args[0]) if args else "", any_helper, False
        return event, "", direct, False  # gc walks, tracing, another audit hook, code objects built by hand

    def attribute(frame: Any, helpers: tuple, through_import: bool) -> str | None:
        """``file:line`` of the student's frame that caused the event, or None when it was not the student."""
        while frame is not None:
            code = frame.f_code
            kind, module = classify(code.co_filename)
            if kind is student:
                return f"{code.co_filename.rpartition('/')[2]}:{frame.f_lineno}"
            if kind is library:
                if f"{module}.{code.co_name}" not in library_helpers:
                    return None
                helpers = any_helper  # the helper's own standard-library calls (inspect.currentframe) are its doing
            if kind is stdlib:
                if module.startswith("importlib") and not through_import:
                    return None  # the import system's own files and code objects, for an import statement
                if not any_(module == h or module.startswith(h + ".") or f"{module}.{code.co_name}" == h
                            or h == "" for h in helpers):
                    return None
            frame = frame.f_back
        return None

    def hook(event: str, args: tuple) -> None:
        if event not in interesting and not event.startswith("ctypes."):
            return
        me = get_ident()
        if me in busy:  # our own frame reads raise events too
            return
        busy.add(me)
        try:
            verdict = judge(event, args)
            if verdict is not None:
                label, detail, helpers, through_import = verdict
                where = attribute(getframe(1), helpers, through_import)
                if where is not None:
                    send(label, where, detail)
        except base_exception:  # noqa: BLE001 - an exception here would surface in the code that raised the event
            pass
        finally:
            busy.discard(me)

    return hook


def checked_getattr(submission: Path):
    """``getattr`` for the student's module namespace (``worker._load`` puts it there before the module runs): the
    builtin, plus a flag when the name it resolves at run time reaches frames, closures or code (RUN_TIME_NAMES, or a
    dunder other than HONEST_DUNDERS) - what ``getattr(frame, "f_" + "back")`` hides from the scan. A literal name
    is the scan's to judge; ``getattr(self, f"layer{i}")`` passes untouched."""
    builtin, getframe, type_, str_ = getattr, sys._getframe, type, str
    own, names, honest = str(Path(submission).resolve()) + os.sep, RUN_TIME_NAMES, HONEST_DUNDERS

    def getattr_(obj: Any, name: Any, *default: Any) -> Any:
        if type_(name) is str_ and (name in names or (name[:2] == "__" and name[-2:] == "__" and name not in honest)):
            caller = getframe(1)
            if _send is not None and caller.f_code.co_filename.startswith(own):
                _send(f".{name}", f"{caller.f_code.co_filename.rpartition(os.sep)[2]}:{caller.f_lineno}",
                      "a name computed at run time")
        return builtin(obj, name, *default)

    getattr_.__name__ = getattr_.__qualname__ = "getattr"
    getattr_.__doc__ = builtin.__doc__
    return getattr_


# ---------------------------------------------------------------------------------------------- patches
def snapshot() -> dict[str, tuple[dict[str, Any], bool]]:
    """What the graders rely on in the watched namespaces, ``{namespace: ({name: object}, whole?)}``: compared by
    identity, so an object replaced by an equal-looking one still counts."""
    taken = {}
    for label, namespace, whole in _watched():
        values = {}
        for name, value in list(namespace.items()):
            if whole or callable(value) or type(value) is type(sys) or isinstance(value, (classmethod, property)):
                values[name] = value
            elif type(value) is dict and name.isupper():  # a registry such as probes.PROBES
                values.update({f"{name}[{key!r}]": v for key, v in list(value.items()) if callable(v)})
        taken[label] = (values, whole)
    return taken


def report_patches(before: dict[str, tuple[dict[str, Any], bool]], when: str) -> None:
    """Send a flag for each watched name that is not the object it was in ``before`` (replaced, removed, or - in a
    class or a small stdlib module - added: ``torch.Tensor.device = ...`` shadows the inherited property)."""
    if _send is None:
        return
    after = snapshot()
    for label, (values, whole) in before.items():
        now = after.get(label, ({}, whole))[0]
        changed = [name for name, value in values.items() if now.get(name, _GONE) is not value]
        if whole:
            changed += [name for name, value in now.items() if name not in values and type(value) is not type(sys)]
        for name in changed:
            _send(f"patches {label}.{name}", MODULE_FILE, f"{label}.{name} changed {when}")


_GONE = object()


def _watched() -> list[tuple[str, Any, bool]]:
    """(label, namespace, compare every value?): stdlib modules and classes entirely; torch's and the autograder's
    modules by their callables (they keep caches in plain values)."""
    found = []
    for name in WATCHED_MODULES:
        if name in sys.modules:
            found.append((name, vars(sys.modules[name]), not name.startswith("torch")))
    for dotted in WATCHED_CLASSES:
        module, _, cls = dotted.rpartition(".")
        owner = sys.modules.get(module)
        value = owner.__dict__.get(cls) if owner is not None else None
        if isinstance(value, type):
            found.append((dotted, value.__dict__, True))
    found += [(name, vars(module), False) for name, module in list(sys.modules.items())
              if name.split(".")[0] == "autograder" and module is not None]
    # The classes the sandbox and the simulator define (probes._Workloads.seconds_per_forward ...): their methods
    # and descriptors, not their plain values (``_State.log`` changes while a probe runs).
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith(WATCHED_PACKAGES):
            found += [(f"{name}.{key}", value.__dict__, False) for key, value in list(vars(module).items())
                      if isinstance(value, type) and value.__module__ == name]
    return found
