"""The probes read the student's objects without trusting them: base types' own methods, the contract's layers by
attribute, printed text from file descriptor 1 (``autograder/sandbox/reading.py``)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import REPO
from torch import nn

from autograder.contract import LAYER_SHAPES
from autograder.sandbox import inputs, probes
from autograder.sandbox.reading import describe_layers, layer_tensors, not_loadable, number, numbers, text


class RewritingList(list):
    def __iter__(self):
        return iter([0.0] * list.__len__(self))

    def __getitem__(self, i):
        return 0.0

    def __len__(self):
        return 1


class RewritingTuple(tuple):
    def __iter__(self):
        return iter([0.0])


class LyingFloat(float):
    def __float__(self):
        return 0.0

    def __repr__(self):
        return "0.0"


def test_lists_are_read_from_their_own_storage():
    assert numbers(RewritingList([3.0, 2.0, 1.0])) == [3.0, 2.0, 1.0]
    assert numbers(RewritingTuple((3.0, 2.0))) == [3.0, 2.0]


def test_numbers_are_exact_floats_whatever_the_subclass_says():
    read = number(LyingFloat(0.5))
    assert read == 0.5 and type(read) is float
    assert [number(x) for x in (2, np.float64(0.25))] == [2.0, 0.25]
    assert all(type(number(x)) is float for x in (2, np.float64(0.25)))


@pytest.mark.parametrize(("value", "name"), [(True, "bool"), (10 ** 400, "int"), (np.float32(1), "float32"),
                                              (torch.tensor(1.0), "Tensor"), ("0.5", "str")])
def test_anything_else_is_its_type_name(value, name):
    assert number(value) == repr(name)


def test_a_non_list_is_its_type_name():
    assert numbers(x for x in [1.0]) == "'generator'"
    assert numbers({"a": 1.0}) == "'dict'"


def test_text_is_an_exact_str():
    class Loud(str):
        def __str__(self):
            return "lie"

    assert type(text(Loud("truth"))) is str and text(Loud("truth")) == "truth"


class Aliased(nn.Module):
    """The layers built inside nn.Sequential stages first: their parameters are stage0.0.weight ... to PyTorch."""

    def __init__(self):
        super().__init__()
        self.stage0 = nn.Sequential(nn.Linear(1000, 2000), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Linear(2000, 1000), nn.ReLU())
        self.scale = nn.Parameter(torch.ones(1))
        self.layer1, self.layer2 = self.stage0[0], self.stage1[0]


def test_layers_are_found_by_attribute_not_by_parameter_name():
    model = Aliased()
    assert "layer1.weight" not in dict(model.named_parameters())  # PyTorch's first name wins
    found = layer_tensors(model)
    assert set(found) == set(LAYER_SHAPES) and found["layer1.weight"] is model.stage0[0].weight
    assert not_loadable(found) == []
    assert describe_layers(model) == {"layer1": "nn.Linear(1000, 2000)", "layer2": "nn.Linear(2000, 1000)"}


def test_the_graders_weights_go_into_the_attributes_and_the_rest_is_still_reported():
    model = Aliased()
    assert probes.load_weights(model, inputs.SEED) == []
    want = inputs.initial_weights(inputs.SEED)["layer1.weight"]
    assert np.array_equal(model.stage0[0].weight.detach().numpy(), want)
    assert list(probes.parameters(model)) == [*LAYER_SHAPES, "scale"]  # each tensor once, by its contract name


class Wrong(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(1000, 500)
        self.layer2 = nn.Sequential(nn.Linear(2000, 1000))


class Raising(nn.Module):
    @property
    def layer1(self):
        raise RuntimeError("a property that raises")


def test_what_the_student_wrote_is_described():
    model = Wrong()
    assert describe_layers(model) == {"layer1": "nn.Linear(1000, 500)",
                                      "layer2": "a Sequential with no `weight` tensor"}
    assert not_loadable(layer_tensors(model)) == list(LAYER_SHAPES)
    assert describe_layers(nn.Module())["layer1"] == "missing (the model has no attribute `layer1`)"
    assert describe_layers(Raising())["layer1"] == "missing (the model has no attribute `layer1`)"
    no_bias = nn.Module()
    no_bias.layer1, no_bias.layer2 = nn.Linear(1000, 2000, bias=False), "layer2"
    assert describe_layers(no_bias) == {"layer1": "nn.Linear(1000, 2000, bias=False)",
                                        "layer2": "a str, not an nn.Module"}
    assert not_loadable(layer_tensors(no_bias)) == ["layer1.bias", "layer2.weight", "layer2.bias"]


# Run in a process of its own: pytest captures sys.stdout and fd 1 itself, the submission's process does not.
STDOUT_SCRIPT = textwrap.dedent("""
    import io, json, os, sys, tempfile
    from pathlib import Path
    from autograder.sandbox.reading import stdout_of

    scratch, seen = Path(tempfile.mkdtemp()), {}
    print("before the window, not flushed")
    with stdout_of(scratch) as printed:
        print("print, not flushed")
    seen["print"] = printed[0]
    with stdout_of(scratch) as printed:
        sys.stdout.write("sys.stdout.write\\n")
        os.write(1, b"os.write\\n")
    seen["write"] = printed[0]
    real, sys.stdout = sys.stdout, io.StringIO()
    with stdout_of(scratch) as printed:
        print("into a replaced sys.stdout")
    sys.stdout = real
    seen["replaced"] = printed[0]
    seen["left"] = os.listdir(scratch)
    print(json.dumps(seen), flush=True)
""")


def test_printed_text_is_what_reaches_file_descriptor_1():
    done = subprocess.run([sys.executable, "-c", STDOUT_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    first, last = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert first == "before the window, not flushed"  # earlier output went where it was going, not into a window
    assert json.loads(last) == {"print": "print, not flushed\n", "write": "sys.stdout.write\nos.write\n",
                                "replaced": "", "left": []}
