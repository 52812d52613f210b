"""The practical's notebook runs top to bottom on a CPU-only machine (simulated GPUs)."""

import shutil

import nbclient
import nbformat
import pytest
from conftest import REPO


@pytest.mark.slow  # the whole notebook, end to end
@pytest.mark.timeout(600)
def test_solution_notebook_runs_top_to_bottom(tmp_path):
    folder = tmp_path / "practical8"  # a copy: the notebook writes its timeline pictures next to itself
    shutil.copytree(REPO / "solutions" / "practical8", folder)
    nb = nbformat.read(folder / "practical8.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(folder)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "two simulated NVIDIA A100-SXM4-80GB" in text or "real GPUs" in text  # its first line names the GPUs
    assert "output (32, 1000) on cuda:1" in text
    assert "Before move: cuda:0\nAfter move: cuda:1" in text
    assert text.count("loss") >= 5 and "one forward:" in text
    assert "total                          55/55" in text  # every public check passes on the reference
    assert "same output as the unsplit model: True" in text and "bubble measured" in text  # Part 5
    assert (folder / "sweep.png").is_file() and (folder / "sweep.json").is_file()  # the split-size sweep
