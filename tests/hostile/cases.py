"""Hostile and broken submissions: each tries to gain points it has not earned, or to break the grader.

Each case is built from a base whose honest score is known (the stub: 0, a mutant: its score, the
reference: 100) plus the attack; ``score`` is what the real work deserves, attack or not.
"""

from dataclasses import dataclass

from autograder.course import SOURCE_CHECKOUT as REPO_ROOT
from autograder.samples import REFERENCE, by_name

STUB = (REPO_ROOT / "assignment" / "practical8" / "model_parallel.py").read_text()
IMPORTS = "from torch import nn\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    attack: str
    source: str
    score: float
    needs_root: bool = False  # isolation by user id only exists when the grader runs as root


def _at_import(base: str, code: str) -> str:
    return base.replace(IMPORTS, IMPORTS + "\n" + code.strip() + "\n", 1)


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
"""), 0),
    Hostile("printed_fake_results", "prints passing results and fake probe replies", _at_import(STUB, """
print('{"ok": true, "value": {}}')
print('{"score": 100}')
print("12 passed in 0.1s")
"""), 0),
    Hostile("sys_exit_at_import", "sys.exit(0) as soon as it is imported",
            _at_import(STUB, "import sys\nsys.exit(0)"), 0),
    Hostile("os_exit_at_import", "os._exit(0) as soon as it is imported",
            _at_import(STUB, "import os\nos._exit(0)"), 0),
    Hostile("patched_allclose", "missing ReLU, and torch.allclose / assert_close patched to pass",
            _at_import(by_name("missing_relu").source(), """
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
"""), 80),
    Hostile("patched_pytest", "stub that patches pytest's internals", _at_import(STUB, """
import pytest, _pytest.outcomes, _pytest.runner
pytest.fail = _pytest.outcomes.fail = lambda *a, **k: None
_pytest.runner.pytest_runtest_makereport = lambda *a, **k: None
"""), 0),
    Hostile("patched_parameter_device", "all layers on cuda:0, and Parameter.device patched to lie",
            _at_import(by_name("all_on_device0").source(), """
import torch
torch.nn.Parameter.device = property(lambda self: torch.device("cuda:1"))
"""), 40),
    Hostile("infinite_loop_in_forward", "forward never returns",
            REF.replace("        x = self.relu1(self.layer1(x.to(self.device0)))",
                                      "        while True:\n            pass\n"
                                      "        x = self.relu1(self.layer1(x.to(self.device0)))"), 10),
    Hostile("memory_bomb", "train() allocates 16 GiB", REF.replace(
        "    optimizer = torch.optim.SGD(", "    hog = bytearray(16 << 30)\n    optimizer = torch.optim.SGD(", 1), 75),
    Hostile("fork_bomb", "time_forward() forks without end", REF.replace(
        "    def wait_for_gpus() -> None:", "    import os\n    while True:\n        os.fork()\n\n"
        "    def wait_for_gpus() -> None:", 1), 70, needs_root=True),
    Hostile("flood_output", "prints 100 MB at import, otherwise correct", _at_import(REF, """
import sys
for _ in range(100):
    sys.stdout.write("x" * (1 << 20))
"""), 100),
    Hostile("reads_reference", "stub that reads and runs the reference solution", _at_import(STUB, """
import autograder, pathlib
try:
    exec((pathlib.Path(autograder.__file__).parents[1] / "solutions/practical8/model_parallel.py").read_text())
except OSError:
    pass
"""), 0, needs_root=True),
    Hostile("deletes_outside", "stub that deletes the graders and other folders", _at_import(STUB, """
import autograder, pathlib, shutil
root = pathlib.Path(autograder.__file__).parents[1]
for target in (root / "autograder" / "graders", root / "solutions", root / "grading.yml"):
    try:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    except OSError:
        pass
"""), 0, needs_root=True),
    Hostile("while_true_at_import", "never finishes importing", _at_import(STUB, "while True:\n    pass"), 0),
    Hostile("forged_replies", "stub that writes fake replies into every open file descriptor", _at_import(STUB, """
import json, os
fake = json.dumps({"ok": True, "value": {"params": {}}, "nonce": "0" * 32}).encode() + b"\\n"
for fd in range(3, 256):
    try:
        os.write(fd, fake * 4)
    except OSError:
        pass
"""), 0),
    Hostile("kills_parent", "stub that kills its parent process", _at_import(STUB, """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
"""), 0, needs_root=True),
]
