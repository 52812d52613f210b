"""Part 1: the two halves of the model live on the devices given to the constructor.

The halves are ``model.layer1`` and ``model.layer2``, found by attribute as the contract names them; the probe
reports their tensors as ``layer1.weight`` ... whatever names PyTorch registered them under first (a layer that is
also ``self.stage0[0]`` is ``stage0.0.weight`` to ``named_parameters()``). Other parameters may live anywhere.
"""

import pytest

from autograder.graders.expected import LAYER_SHAPES, SEED, layer_problem, misplaced


def _check_layers(built: dict, device0: str, device1: str) -> None:
    _require_layers(built)  # so the contract's layers are there, of the contract's shapes
    params = built["params"]
    wrong = misplaced({name: params[name]["device"] for name in LAYER_SHAPES}, (device0, device1))
    if wrong:
        name, device, home = wrong[0]
        raise AssertionError(f"`model.{name}` is on {device}; expected {home}. Create {name.split('.')[0]} and move "
                             f"it with `.to(self.device{0 if home == device0 else 1})`.")


def _require_layers(built: dict) -> None:
    problem = layer_problem(built)
    others = [name for name in built["params"] if name not in LAYER_SHAPES]
    assert problem is None, f"{problem} Build them in __init__ with these shapes." + (
        f" (The model's other parameters: {', '.join(others[:6])}{' ...' if len(others) > 6 else ''}.)"
        if others else "")


@pytest.mark.check("placement")
def test_placement(observe, devices):
    built = observe("build", devices=list(devices), seed=SEED)
    for i, name in enumerate(("device0", "device1")):
        assert built[name] == f"device(type='cuda', index={i})", (
            f"self.{name} is {built[name]}; expected torch.device('{devices[i]}'). "
            f"Keep it as `self.{name} = torch.device({name})`.")
    _check_layers(built, *devices)


def _role(device: str, devices: tuple[str, str] | list[str]) -> str:
    return "device0" if device == devices[0] else "device1" if device == devices[1] else device


@pytest.mark.check("honors_devices")
def test_honors_devices(observe, devices):
    """Judged against the model built with the usual devices, whatever it does with them (placement judges that):
    with the two swapped, each layer and the output must move along, to the device of the same role."""
    swapped = [devices[1], devices[0]]
    usual = observe("build", devices=list(devices), seed=SEED, forward_batch=4)
    built = observe("build", devices=swapped, seed=SEED, forward_batch=4)
    _require_layers(built)
    _require_layers(usual)
    where = {name: (usual["params"][name]["device"], built["params"][name]["device"]) for name in LAYER_SHAPES}
    where["the output"] = (usual["output_device"], built["output_device"])
    for name, (before, after) in where.items():
        role = _role(before, devices)
        thing = name if name == "the output" else f"`model.{name}`"
        assert _role(after, swapped) == role, (
            f"With SimpleMPModel(device0='{devices[0]}', device1='{devices[1]}') {thing} is on {before} ({role}); "
            f"with SimpleMPModel(device0='{swapped[0]}', device1='{swapped[1]}') it is on {after}, not on the new "
            f"{role}" + (f" ({swapped[int(role[-1])]})" if role in ("device0", "device1") else "") + ": the model "
            "does not follow the constructor's arguments. Use self.device0/self.device1 (made from them), not "
            "hard-coded 'cuda:0'/'cuda:1' or torch.device('cuda').")
