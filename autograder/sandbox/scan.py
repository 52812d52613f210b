"""The static scan at intake: what a submission's source says it will do that graded code has no reason to do.

    scan_file(Path("submitted/ann/practical8/model_parallel.py"))
    # [{"event": "sys._getframe", "where": "model_parallel.py:12", "detail": "caller = sys._getframe(2)"}]

Read with ``ast`` on the trusted side; nothing of the submission runs. It sees what the audit hook cannot (patching
a module attribute raises no audit event, ``signal.signal`` neither) and what a run may not reach (a branch no
probe takes); the hook sees what the source hides (``getattr(sys, "_get" + "frame")``). Settings an honest
submission makes are not patching: ``torch.backends.*`` flags, ``torch.manual_seed``, ``torch.set_num_threads``.
Code under ``if __name__ == "__main__":`` never runs when the module is imported, so it is not read, unless the
module rebinds ``__name__`` (or writes through ``globals()``, ``vars()`` or ``sys.modules``) to make it run.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

from .audit import LIBRARY_HELPERS, PROC_READABLE, student_module
from .intake import read_plain

# Names that reach frames, the interpreter's objects, other processes or signal handlers, by what they are called.
FLAGGED_NAMES = {
    "sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile", "sys.addaudithook",
    "threading.settrace", "threading.setprofile", "inspect.stack", "inspect.currentframe", "inspect.getouterframes",
    "inspect.getinnerframes", "inspect.trace", "traceback.walk_stack", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "os.fork", "os.forkpty", "os.system", "os.popen", "os.kill", "os.killpg", "os.setsid",
    "os.setpgid", "os.posix_spawn", "os.posix_spawnp", "signal.signal", "signal.setitimer", "signal.alarm",
    "signal.pthread_kill", "signal.set_wakeup_fd", "signal.siginterrupt", "resource.setrlimit", "resource.prlimit",
    "os.dup", "os.dup2", "os.close", "os.closerange", "os.pipe", "os.pipe2",  # taking over the replies pipe
    # library calls that hand a frame or a closure back to their caller
    "inspect.getclosurevars", "logging.currentframe", "traceback.walk_tb", *LIBRARY_HELPERS,
}
# operator's getters read attributes by a name given as a string: a name not written literally hides what they reach.
NAMED_GETTERS = {"operator.attrgetter": "attrgetter", "operator.methodcaller": "methodcaller",
                 "_operator.attrgetter": "attrgetter", "_operator.methodcaller": "methodcaller"}
FLAGGED_PREFIXES = ("os.exec", "os.spawn")  # execv, execve, spawnlp ...
FLAGGED_MODULES = {"ctypes": "ctypes", "_ctypes": "ctypes", "cffi": "ctypes", "subprocess": "subprocess",
                   "pty": "subprocess", "_posixsubprocess": "subprocess", "_posixshmem": "_posixshmem",
                   "_multiprocessing": "_multiprocessing", "posix": "posix", "autograder": "import autograder"}
FRAME_ATTRIBUTES = {"f_back", "f_locals", "f_globals", "f_builtins", "f_trace", "tb_frame", "gi_frame", "cr_frame",
                    "ag_frame", "__globals__"}
# Read off a function: its closure's cells, the function it wraps, its code, globals and defaults (the probes' state
# is in a closure: model.forward.__closure__[i].cell_contents).
FUNCTION_ATTRIBUTES = {"__closure__", "cell_contents", "__wrapped__", "__code__", "__defaults__", "__kwdefaults__"}
HOOKS = {"__torch_function__", "__torch_dispatch__", "TorchFunctionMode", "TorchDispatchMode"}
# Assigning to an attribute of these (modules, their classes, their submodules) patches what every caller sees.
PATCHED_ROOTS = ("torch", "time", "json", "builtins", "sys", "os", "autograder")
SETTINGS = ("torch.backends.", "torch._dynamo.config.", "torch._inductor.config.")  # configuration, not patching
SETATTR = {"builtins.setattr", "builtins.delattr", "object.__setattr__", "object.__delattr__", "type.__setattr__",
           "type.__delattr__"}
DYNAMIC_CODE = {"builtins.exec": "exec", "builtins.eval": "eval", "builtins.compile": "compile"}
IMPORT_CALLS = {"builtins.__import__", "importlib.import_module", "importlib.__import__"}
# getattr(os, name) with a computed name hides what it reaches (getattr(self, name) is the student's own business).
COMPUTED_ATTRIBUTE_MODULES = {"torch", "os", "sys", "time", "json", "builtins", "gc", "inspect", "ctypes", "signal",
                              "subprocess"}
ATTRIBUTE_CALLS = {"builtins.getattr", "builtins.setattr", "builtins.delattr"}
NAMESPACE_CALLS = {"builtins.globals", "builtins.vars", "builtins.locals"}  # globals()["__name__"] = "__main__"
AUTOGRADER_NAME = re.compile(r"autograder(\.\w+)*")
MAX_DETAIL = 160  # characters of the source line kept as evidence


def scan_file(path: Path) -> list[dict[str, str]]:
    """The findings for the submission at ``path`` (empty when it is clean or does not parse)."""
    return scan_source(read_plain(path).decode("utf-8", "replace"), Path(path).name)  # no link followed (intake)


def scan_source(source: str, filename: str) -> list[dict[str, str]]:
    """``{"event", "where": "<filename>:<line>", "detail": <the line>}`` per finding, one per (event, line)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # it will not import either: the checks say so to the student
        return []
    except (RecursionError, MemoryError):  # nested past what the parser can read: no honest source is
        return [{"event": "unreadable source", "where": f"{filename}:1", "detail": "nested too deeply to be scanned"}]
    lines = source.splitlines()
    findings: dict[tuple[str, int], None] = {}
    try:
        for event, node in _Scanner(tree).findings():
            findings.setdefault((event, node.lineno), None)
    except RecursionError:
        findings.setdefault(("unreadable source", 1), None)
    return [{"event": event, "where": f"{filename}:{line}", "detail": source_line(lines, line)}
            for event, line in sorted(findings, key=lambda key: (key[1], key[0]))]


def combine(found: list[dict[str, str]], events: list[dict[str, str]], path: Path) -> list[dict[str, str]]:
    """The scan's findings and the audit hook's events as one list, in the order of the source, one per (event,
    where); an event at a line of the submission gets that line as its evidence (the hook sends only the file:line)."""
    lines = read_plain(path).decode("utf-8", "replace").splitlines()
    merged = {(flag["event"], flag["where"]): flag for flag in found}
    for event in events:
        file, _, number = event["where"].rpartition(":")
        if file == Path(path).name and number.isdigit():
            code = source_line(lines, int(number))
            event = {**event, "detail": f"{code} ({event['detail']})" if event["detail"] else code}
        merged.setdefault((event["event"], event["where"]), event)
    return sorted(merged.values(), key=_in_source_order)


def _in_source_order(flag: dict[str, str]) -> tuple:
    file, _, number = flag["where"].rpartition(":")
    return (file, int(number), flag["event"]) if number.isdigit() else (flag["where"], 0, flag["event"])


def source_line(lines: list[str], number: int) -> str:
    """Line ``number`` (1-based), trimmed, as evidence."""
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 3] + "..."


class _Scanner:
    """One pass over the tree; ``aliases`` maps each imported name to what it names (``np`` -> ``numpy``)."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.aliases: dict[str, str] = {}
        bound: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                bound.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
        # A builtin the student did not rebind (their own `compile` function is not Python's).
        self.builtins = {name for name in dir(builtins) if name not in bound and name not in self.aliases}
        # Rebinding __name__ (directly, or through globals(), vars() or sys.modules) can make the main block run.
        self.runs_main = "__name__" in bound or any(self._namespace_write(node) for node in ast.walk(tree))
        # The strings of paths to the process's own /proc entries built with its pid (f"/proc/{os.getpid()}/status",
        # os.path.join("/proc", str(os.getpid()), "status") ...): honest, as "/proc/self/status" is.
        self.own_proc: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.JoinedStr, ast.BinOp, ast.Call)):
                path = self._render(node)
                if path is not None and path.startswith("/proc/self/") and path.rstrip("/") in PROC_READABLE:
                    self.own_proc.update(id(part) for part in ast.walk(node) if isinstance(part, ast.Constant))

    def _render(self, node: ast.AST) -> str | None:
        """The string an expression builds when its only unknown is ``os.getpid()`` (rendered "self"), else None."""
        if isinstance(node, ast.Constant):
            return node.value if type(node.value) in (str, int) and type(node.value) is not bool else None
        if isinstance(node, ast.FormattedValue):
            return None if node.format_spec else self._render(node.value)
        if isinstance(node, ast.JoinedStr):
            parts = [self._render(value) for value in node.values]
            return None if None in parts else "".join(map(str, parts))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div, ast.Mod)):
            left, right = self._render(node.left), self._render(node.right)
            if isinstance(node.op, ast.Mod) and isinstance(node.right, ast.Tuple):
                right = [self._render(item) for item in node.right.elts]
                right = None if None in right else tuple(right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Mod):
                try:
                    return str(left).replace("%d", "%s") % right
                except (TypeError, ValueError):
                    return None
            return f"{left}{right}" if isinstance(node.op, ast.Add) else f"{str(left).rstrip('/')}/{right}"
        if isinstance(node, ast.Call) and not node.keywords:
            function = self.name(node.func)
            parts = [self._render(arg) for arg in node.args]
            if function in ("os.getpid", "posix.getpid") and not node.args:
                return "self"
            if None in parts:
                return None
            if function == "builtins.str" and len(parts) == 1:
                return str(parts[0])
            if function in ("os.path.join", "posixpath.join", "pathlib.Path", "pathlib.PurePath") and parts:
                return "/".join(str(part).rstrip("/") for part in parts[:-1]) + (
                    "/" if len(parts) > 1 else "") + str(parts[-1])
            if isinstance(node.func, ast.Attribute) and node.func.attr == "format":
                template = self._render(node.func.value)
                try:
                    return template.format(*parts) if isinstance(template, str) else None
                except (IndexError, KeyError, ValueError):
                    return None
        return None

    def _namespace(self, node: ast.AST) -> str | None:
        """``globals()``, ``vars()``, ``locals()`` or ``sys.modules`` (``sys.modules[m].__dict__`` too), or None."""
        if isinstance(node, ast.Call) and self.name(node.func) in NAMESPACE_CALLS:
            return f"{self.name(node.func)[len('builtins.'):]}()"
        if self.name(node) == "sys.modules":
            return "sys.modules"
        if isinstance(node, ast.Attribute) and node.attr == "__dict__" and isinstance(node.value, ast.Subscript) \
                and self.name(node.value.value) == "sys.modules":
            return "sys.modules"
        return None

    def _namespace_write(self, node: ast.AST) -> str | None:
        """``globals()[k] = v`` (or del), ``globals().update(...)`` / ``.__setitem__`` / ``.setdefault``: the
        namespace written, or None."""
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            return self._namespace(node.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("update", "__setitem__", "setdefault", "pop", "__delitem__"):
            return self._namespace(node.func.value)
        return None

    def name(self, node: ast.AST) -> str | None:
        """What an expression names, as a dotted path (``torch.Tensor.device``), or None."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            return f"builtins.{node.id}" if node.id in self.builtins else None
        if isinstance(node, ast.Attribute):
            base = self.name(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call) and self.name(node.func) == "builtins.getattr" and len(node.args) >= 2:
            base, attr = self.name(node.args[0]), _constant(node.args[1])
            return f"{base}.{attr}" if base and attr else None
        return None

    def findings(self):
        """(event, node) pairs, in the order of the source."""
        for node in _walk(self.tree, self.runs_main):
            yield from self._imports(node)
            yield from self._references(node)
            yield from self._patches(node)
            yield from self._calls(node)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in self.own_proc:
                yield from self._strings(node)

    def _imports(self, node: ast.AST):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            return
        if isinstance(node, ast.ImportFrom) and node.module == "autograder":
            modules = modules[1:]  # from autograder import busy: judged by what it takes
        for module in modules:
            if student_module(module):  # the student kit's modules (autograder.busy ...): a notebook imports them
                continue
            event = FLAGGED_MODULES.get(module.split(".")[0])
            if event or _flagged(module):
                yield event or module, node
            if module.split(".")[-1] in HOOKS:
                yield module.split(".")[-1], node

    def _references(self, node: ast.AST):
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            dotted = self.name(node)
            if dotted and _flagged(dotted):
                yield dotted, node
        if isinstance(node, ast.Attribute) and node.attr in FRAME_ATTRIBUTES:
            yield f".{node.attr}", node
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and node.attr in FUNCTION_ATTRIBUTES:
            yield f".{node.attr}", node
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            dotted = self.name(node)  # autograder.sandbox... reached through `import autograder.busy`
            if dotted and dotted.startswith("autograder.") and not student_module(dotted):
                yield "import autograder", node
        loaded = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
        if loaded and self.name(node.value) == "sys.modules":
            yield from self._module_lookup(node.slice, node)
        written = self._namespace_write(node)
        if written:
            yield f"writes {written}", node
        named = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else \
            node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else None
        if named in HOOKS:
            yield named, node

    def _module_lookup(self, key: ast.AST, node: ast.AST):
        """``sys.modules[key]`` (or ``.get(key)``): a computed key, an autograder module or a flagged one."""
        name = _constant(key)
        if name is None:
            if not (isinstance(key, ast.Name) and key.id == "__name__"):  # sys.modules[__name__]: its own module
                yield "import of a computed name", node
        elif name.split(".")[0] in FLAGGED_MODULES and not student_module(name):
            yield FLAGGED_MODULES[name.split(".")[0]], node

    def _patches(self, node: ast.AST):
        """Assignments (and deletions) of attributes of torch, time, json, builtins, sys, os or the autograder."""
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in _flatten(targets):
            if isinstance(target, ast.Attribute):
                if target.attr == "__code__":
                    yield "sets .__code__", node
                owner = self.name(target.value)
                if owner and _patchable(f"{owner}.{target.attr}"):
                    yield f"patches {owner}.{target.attr}", node
            elif isinstance(target, ast.Subscript):  # torch.__dict__["x"] = ..., vars(torch)["x"] = ...
                holder = target.value
                if isinstance(holder, ast.Attribute) and holder.attr == "__dict__":
                    owner = self.name(holder.value)
                elif isinstance(holder, ast.Call) and self.name(holder.func) == "builtins.vars" and holder.args:
                    owner = self.name(holder.args[0])
                else:
                    owner = None
                if owner and _patchable(f"{owner}.?"):
                    yield f"patches {owner}", node

    def _calls(self, node: ast.AST):
        if not isinstance(node, ast.Call):
            return
        function = self.name(node.func)
        if function in ATTRIBUTE_CALLS and len(node.args) >= 2 and _constant(node.args[1]) is None:
            owner = node.args[0]  # the module itself, by the name it was imported as: not self, not a model
            if isinstance(owner, ast.Name) and self.name(owner) in COMPUTED_ATTRIBUTE_MODULES:
                yield f"{function[len('builtins.'):]} of a computed name", node
        if function in NAMED_GETTERS:
            names = node.args if NAMED_GETTERS[function] == "attrgetter" else node.args[:1]
            for arg in names:
                literal = _constant(arg)
                if literal is None:
                    yield f"{NAMED_GETTERS[function]} of a computed name", node
                for part in (literal or "").split("."):
                    if part in FRAME_ATTRIBUTES or part in FUNCTION_ATTRIBUTES:
                        yield f".{part}", node
        if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args and \
                self.name(node.func.value) == "sys.modules":
            yield from self._module_lookup(node.args[0], node)
        if function in SETATTR and len(node.args) >= 2:
            owner, attr = self.name(node.args[0]), _constant(node.args[1]) or "?"
            if owner and _patchable(f"{owner}.{attr}"):
                yield f"patches {owner}.{attr}", node
        elif function == "builtins.getattr" and len(node.args) >= 2:  # getattr(sys, "_getframe")
            dotted, attr = self.name(node), _constant(node.args[1])
            if dotted and _flagged(dotted):
                yield dotted, node
            if attr in FRAME_ATTRIBUTES or attr in FUNCTION_ATTRIBUTES:
                yield f".{attr}", node
        elif function in DYNAMIC_CODE:
            yield DYNAMIC_CODE[function], node
        elif function in IMPORT_CALLS and node.args:
            module = _constant(node.args[0])
            if module is None:
                yield "import of a computed name", node
            elif module.split(".")[0] in FLAGGED_MODULES and not student_module(module):
                yield FLAGGED_MODULES[module.split(".")[0]], node

    def _strings(self, node: ast.Constant):
        text = node.value
        if "/proc" in text and text.rstrip("/") not in PROC_READABLE:
            yield "/proc", node
        if AUTOGRADER_NAME.fullmatch(text) and not student_module(text):  # sys.modules["autograder.sandbox.probes"]
            yield "import autograder", node


def _walk(tree: ast.Module, runs_main: bool):
    """Every node but docstrings, and but the body of ``if __name__ == "__main__":`` (unless it can run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in reversed(list(ast.iter_child_nodes(node))):
            if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                continue  # a docstring or a bare string: it does nothing
            if isinstance(child, ast.If) and node is tree and _is_main_guard(child.test) and not runs_main:
                todo.extend(reversed(child.orelse))
                continue
            todo.append(child)


def _is_main_guard(test: ast.AST) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {_constant(test.left), _constant(test.comparators[0])}
    names = {side.id for side in (test.left, test.comparators[0]) if isinstance(side, ast.Name)}
    return names == {"__name__"} and "__main__" in sides


def _flagged(dotted: str) -> bool:
    return dotted in FLAGGED_NAMES or dotted.startswith(FLAGGED_PREFIXES) and dotted.count(".") == 1


def _patchable(dotted: str) -> bool:
    return dotted.split(".")[0] in PATCHED_ROOTS and not dotted.startswith(SETTINGS)


def _constant(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _flatten(targets: list[ast.AST]):
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            yield from _flatten(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _flatten([target.value])
        else:
            yield target
