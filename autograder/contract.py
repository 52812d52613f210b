"""The student's contract, stated once: the assignment's names, the layers and where each one lives.

The sandbox (which feeds the student's code), the graders (which judge it) and the class tools (which find
submissions) all read these; the rubric's ``assignment`` defaults to ``ASSIGNMENT``.
"""

from __future__ import annotations

ASSIGNMENT = "practical8"  # nbgrader's assignment name: solutions/<it>/, assignment/<it>/, submitted/<s>/<it>/
MODULE = "model_parallel"  # the student's module ...
MODULE_FILE = f"{MODULE}.py"  # ... and its file

# The parameters every SimpleMPModel (and PipelinedMPModel) has, with their shapes: layer1 on device0, layer2
# on device1 (``home_device``).
LAYER_SHAPES: dict[str, tuple[int, ...]] = {
    "layer1.weight": (2000, 1000), "layer1.bias": (2000,),
    "layer2.weight": (1000, 2000), "layer2.bias": (1000,),
}
INPUT_FEATURES, OUTPUT_FEATURES = 1000, 1000


def home_device(parameter: str, devices: tuple[str, str] | list[str]) -> str | None:
    """Where ``parameter`` must live: layer1's on device0, layer2's on device1, anything else unconstrained."""
    layer = parameter.split(".")[0]
    return {"layer1": devices[0], "layer2": devices[1]}.get(layer)
