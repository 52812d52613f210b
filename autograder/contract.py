"""The student's contract, stated once: the assignment's names, the layers and where each one lives.

The sandbox (which feeds the student's code), the graders (which judge it) and the class tools (which find
submissions) all read these; the rubric's ``assignment`` defaults to ``ASSIGNMENT``.
"""

from __future__ import annotations

ASSIGNMENT = "practical8"  # nbgrader's assignment name: solutions/<it>/, assignment/<it>/, submitted/<s>/<it>/
MODULE = "model_parallel"  # the student's module ...
MODULE_FILE = f"{MODULE}.py"  # ... and its file

# The layers every SimpleMPModel (and PipelinedMPModel) has, as attributes: ``model.layer1`` =
# nn.Linear(1000, 2000) on device0, ``model.layer2`` = nn.Linear(2000, 1000) on device1 (``home_device``). The
# probes find them by these attributes, never by parameter names: PyTorch names a module registered twice
# (``self.stage0 = nn.Sequential(...)``; ``self.layer1 = self.stage0[0]``) after its first attribute only.
LINEAR_LAYERS: dict[str, tuple[int, int]] = {"layer1": (1000, 2000), "layer2": (2000, 1000)}  # (in, out) features
# Their parameters, named "<layer>.weight" / "<layer>.bias" in every observation, with nn.Linear's shapes.
LAYER_SHAPES: dict[str, tuple[int, ...]] = {
    f"{layer}.{kind}": shape
    for layer, (n_in, n_out) in LINEAR_LAYERS.items()
    for kind, shape in (("weight", (n_out, n_in)), ("bias", (n_out,)))
}
INPUT_FEATURES, OUTPUT_FEATURES = 1000, 1000


def expected_layer(layer: str) -> str:
    """What ``model.<layer>`` must be, as the student writes it: ``nn.Linear(1000, 2000)``."""
    return "nn.Linear({}, {})".format(*LINEAR_LAYERS[layer])


def home_device(parameter: str, devices: tuple[str, str] | list[str]) -> str | None:
    """Where ``parameter`` must live: layer1's on device0, layer2's on device1, anything else unconstrained."""
    layer = parameter.split(".")[0]
    return {"layer1": devices[0], "layer2": devices[1]}.get(layer)
