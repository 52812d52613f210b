"""Part 1: the two halves of the model live on the devices given to the constructor."""

import pytest

from autograder.graders.expected import LAYER_SHAPES, SEED, misplaced


def _check_layers(params: dict, device0: str, device1: str) -> None:
    for name, shape in LAYER_SHAPES.items():
        assert name in params, (f"The model has no parameter `{name}`; expected self.layer1 = nn.Linear(1000, 2000) "
                                f"and self.layer2 = nn.Linear(2000, 1000). Found: {', '.join(params) or 'none'}.")
        assert tuple(params[name]["shape"]) == shape, (
            f"`{name}` has shape {params[name]['shape']}; expected {list(shape)}. Check the Linear layer sizes.")
    wrong = misplaced({name: info["device"] for name, info in params.items()}, (device0, device1))
    if wrong:
        name, device, home = wrong[0]
        raise AssertionError(f"`{name}` is on {device}; expected {home}. Create {name.split('.')[0]} and move it "
                             f"with `.to(self.device{0 if home == device0 else 1})`.")


@pytest.mark.check("placement")
def test_placement(observe, devices):
    built = observe("build", devices=list(devices), seed=SEED)
    for i, name in enumerate(("device0", "device1")):
        assert built[name] == f"device(type='cuda', index={i})", (
            f"self.{name} is {built[name]}; expected torch.device('{devices[i]}'). "
            f"Keep it as `self.{name} = torch.device({name})`.")
    _check_layers(built["params"], *devices)


@pytest.mark.check("honors_devices")
def test_honors_devices(observe, devices):
    swapped = [devices[1], devices[0]]
    built = observe("build", devices=swapped, seed=SEED, forward_batch=4)
    try:
        _check_layers(built["params"], *swapped)
    except AssertionError as exc:
        raise AssertionError(f"With SimpleMPModel(device0='{swapped[0]}', device1='{swapped[1]}'): {exc} "
                             "Use the constructor's arguments, not hard-coded 'cuda:0'/'cuda:1'.") from None
    assert built["output_device"] == swapped[1], (
        f"With device1='{swapped[1]}' the output is on {built['output_device']}; expected {swapped[1]}. "
        "Move the activation with `.to(self.device1)`, not to a fixed device.")
