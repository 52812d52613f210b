"""What only real GPUs can run is "not graded (simulation)", never failed - decided by the trusted side's scan of
the source (sandbox/unsupported.py), never by an exception the student's process raises."""

import csv

import pytest

from autograder.grading import grade
from autograder.reports import gradescope_results, table, write_summary
from autograder.samples import REAL_GPUS_ONLY, by_name
from autograder.sandbox.unsupported import not_simulated, unsupported_constructs


@pytest.mark.parametrize(("source", "what"), [
    ("import torch\nmodel = torch.compile(model)\n", "torch.compile"),
    ("import torch\n@torch.compile\ndef f(x):\n    return x\n", "torch.compile"),
    ("import torch as t\nf = t.compile(f, mode='max-autotune')\n", "torch.compile"),
    ("from torch import compile as c\n", "torch.compile"),
    ("import torch._dynamo\n", "torch.compile (torch._dynamo)"),
    ("import torch\ng = torch.cuda.CUDAGraph()\nwith torch.cuda.graph(g):\n    pass\n",
     "CUDA graphs (torch.cuda.CUDAGraph)"),
    ("from torch.cuda import make_graphed_callables\n", "CUDA graphs (torch.cuda.make_graphed_callables)"),
    ("from torch.utils.cpp_extension import load_inline\n",
     "a custom C++/CUDA extension (torch.utils.cpp_extension)"),
    ("import triton.language as tl\n", "a custom Triton kernel"),
    ("def f():\n    import triton\n    return triton.jit\n", "a custom Triton kernel"),
    ("import numba\nk = numba.cuda.jit(f)\n", "a custom CUDA kernel (numba.cuda)"),
])
def test_each_construct_only_real_gpus_run_is_found(source, what):
    assert what in {found for found, _ in unsupported_constructs(source)}


@pytest.mark.parametrize("source", [
    "import torch\n# model = torch.compile(model)\n",  # a comment
    "import torch\nhelp_text = 'try torch.compile on a GPU'\n",  # a string
    "import re\npattern = re.compile('a+')\n",  # another library's compile
    "import torch\nclass M(torch.nn.Module):\n    def compile(self):\n        return self\nM().compile()\n",
    "import torch\nif __name__ == '__main__':\n    torch.compile(model)\n",  # never runs when imported
    "import torch\ntorch.cuda.graphs_are_fun = 1\n",  # a name that only starts like one
    "this is not python(",
])
def test_what_the_simulation_can_run_is_not_left_for_real_gpus(source):
    assert unsupported_constructs(source) == []
    assert not_simulated(source, "model_parallel.py") is None


def test_the_reason_names_the_construct_the_line_and_what_to_do():
    why = not_simulated("import torch\n\n\nmodel = torch.compile(model)\n", "model_parallel.py")
    assert why.startswith("Not graded on simulated GPUs: model_parallel.py uses torch.compile (line 4: "
                          "`model = torch.compile(model)`)")
    assert "--devices cuda" in why and "not a failure" in why


def test_a_compiled_submission_is_not_graded_on_simulated_gpus_and_counted(fast_rubric, tmp_path):
    sample = REAL_GPUS_ONLY[0]
    report = grade(sample.write(tmp_path / sample.name), fast_rubric, "sim")
    assert report.not_graded and report.not_graded.startswith("Not graded on simulated GPUs")
    assert "torch.compile (line" in report.not_graded and report.flags == []
    assert all(r.message == report.not_graded for r in report.results)
    shown = table(report)
    assert " FAIL " not in shown and "PASS" not in shown  # nothing failed: it was not graded
    assert gradescope_results(report)["output"] == report.not_graded  # not "Graded on ..."
    with write_summary([report], tmp_path / "summary.csv", fast_rubric).open() as f:
        (row,) = csv.DictReader(f)
    assert row["not_graded"] == report.not_graded


def test_an_unsupported_error_raised_at_run_time_without_the_construct_in_the_source_fails_its_checks(
        fast_rubric, tmp_path):
    """torch.compile reached without naming it (a computed attribute): the scan sees no construct, so the run-time
    refusal is an error like any other - otherwise raising it would buy a student "not graded" instead of a fail."""
    mutant = by_name("no_sync")  # any submission: the hidden compile goes into its time_forward
    folder = tmp_path / "hidden_compile"
    folder.mkdir()
    source = mutant.source().replace("    with torch.no_grad():\n        for _ in range(warmup):",
                                     "    model = getattr(torch, 'comp' + 'ile')(model)\n"
                                     "    with torch.no_grad():\n        for _ in range(warmup):", 1)
    assert "getattr(torch, 'comp' + 'ile')" in source
    (folder / "model_parallel.py").write_text(source)
    report = grade(folder, fast_rubric, "sim")
    assert report.not_graded is None
    failed = {r.check.id: r.message for r in report.results if not r.passed}
    assert set(failed) >= {"timing_synchronizes", "timing_measures_device_time"}
    assert all("torch.compile" in message for message in failed.values()), failed
