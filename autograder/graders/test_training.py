"""Part 2: train() runs on the GPUs, lowers the loss, and takes exactly the reference SGD steps."""

import math

import pytest
import torch

from autograder.graders.conftest import SEED
from autograder.sandbox.probes import make_batches

LOSS_RTOL = 2e-4  # sim is bit-exact to CPU; fp32 GPU kernels differ by ~1e-6 relative
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 1e-6
REFERENCE_LR, REFERENCE_STEPS = 0.2, 4
FIXED_LR, FIXED_STEPS, REQUIRED_DROP = 0.5, 5, 0.95  # reference: 0.454 -> 0.418 (-8%) in 5 steps


def _losses(observed: dict, steps: int) -> list[float]:
    losses = observed["losses"]
    assert isinstance(losses, list), f"train() returned {losses}; expected a list with one float per batch."
    assert len(losses) == steps, f"train() returned {len(losses)} losses for {steps} batches; expected {steps}."
    assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses), (
        f"train() returned {losses[:3]}...; expected finite Python floats. Use `loss.item()`.")
    return losses


def _reference_run(observe, devices) -> dict:
    """One probe serves train_runs and train_matches_reference: REFERENCE_STEPS random batches."""
    return observe("train", devices=list(devices), seed=SEED, steps=REFERENCE_STEPS, lr=REFERENCE_LR, fixed=False)


@pytest.mark.check("train_runs")
def test_train_runs(observe, devices):
    observed = _reference_run(observe, devices)
    _losses(observed, REFERENCE_STEPS)
    for name, device in observed["grad_devices"].items():
        expected = devices[0] if name.startswith("layer1.") else devices[1]
        assert device == expected, f"`{name}.grad` is on {device}; expected {expected}, where `{name}` lives."


@pytest.mark.check("loss_decreases")
def test_loss_decreases(observe, devices):
    observed = observe("train", devices=list(devices), seed=SEED, steps=FIXED_STEPS, lr=FIXED_LR, fixed=True)
    losses = _losses(observed, FIXED_STEPS)
    assert losses[-1] <= REQUIRED_DROP * losses[0], (
        f"Training {FIXED_STEPS} steps on one fixed batch with lr={FIXED_LR} went from loss {losses[0]:.4f} to "
        f"{losses[-1]:.4f}; expected it to fall by at least {1 - REQUIRED_DROP:.0%}. Check that you call "
        "optimizer.step() after loss.backward(), and use the lr argument.")


def reference_sgd(initial: dict, batches, lr: float, device: str = "cpu") -> tuple[list[float], dict]:
    """Plain single-device SGD from the submission's own initial weights (trusted, on the CPU).

    Returns the losses and the final weights, named as in SimpleMPModel.
    """
    model = torch.nn.Sequential(torch.nn.Linear(1000, 2000), torch.nn.ReLU(), torch.nn.Linear(2000, 1000),
                                torch.nn.ReLU())
    with torch.no_grad():
        for mine, theirs in (("0", "layer1"), ("2", "layer2")):
            getattr(model, mine).weight.copy_(initial[f"{theirs}.weight"])
            getattr(model, mine).bias.copy_(initial[f"{theirs}.bias"])
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for x, y in ((x.to(device), y.to(device)) for x, y in batches):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    final = {f"{theirs}.{kind}": getattr(getattr(model, mine), kind).detach().cpu()
             for mine, theirs in (("0", "layer1"), ("2", "layer2")) for kind in ("weight", "bias")}
    return losses, final


@pytest.mark.check("train_matches_reference")
def test_train_matches_reference(observe, load_tensors, devices):
    observed = _reference_run(observe, devices)
    losses = _losses(observed, REFERENCE_STEPS)
    expected, expected_final = reference_sgd(load_tensors(observed["initial"]),
                                             make_batches(SEED, REFERENCE_STEPS, False), REFERENCE_LR)
    for step, (got, want) in enumerate(zip(losses, expected, strict=True)):
        assert math.isclose(got, want, rel_tol=LOSS_RTOL), (
            f"Step {step} loss is {got:.6f}; reference SGD(lr={REFERENCE_LR}) from your model's own initial "
            f"weights gives {want:.6f}. " + (
                "The first step already differs: check the loss (nn.MSELoss between output and target)."
                if step == 0 else
                "Check that each step calls optimizer.zero_grad(), that SGD uses the lr argument, and that "
                "gradients flow through both layers (no .detach() on the activation)."))
    final = load_tensors(observed["final"])
    for name, want in expected_final.items():
        got = final.get(name)
        assert got is not None and torch.allclose(got, want, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL), (
            f"After {REFERENCE_STEPS} steps `{name}` differs from reference SGD"
            + (" - it did not change at all: no gradient reaches layer1. Do not .detach() the activation "
               "when you move it to device1." if got is not None and torch.equal(got, load_tensors(
                   observed["initial"])[name]) else ". Check zero_grad, lr and that every parameter is optimized."))
