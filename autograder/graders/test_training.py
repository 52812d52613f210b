"""Part 2: train() runs on the GPUs, lowers the loss, and takes exactly the reference SGD steps.

Every verdict is recomputed here with NumPy from what train() left behind, never taken from what it says: the
probe saves the weights train() leaves in model.layer1/layer2 and the outputs of the forwards it made, and the
graders compute the losses themselves on the batches they know (``sandbox.inputs``).
- train_runs: the returned list holds one Python float per batch, each the MSE of one of the model's own outputs
  against that step's target (so the returned losses are the real ones, whatever the forward computes: a forward bug
  costs the forward's checks, not this one); both layers got gradients, each on the device the model put it on; and
  both layers' weights changed.
- loss_decreases: the MSE on the fixed batch with the weights train() left is strictly lower than with the grader's.
- train_matches_reference: the final weights, and the returned losses (one-element tensors read as their values), are
  the reference SGD's.
Each judges its own behaviour only: a list of loss tensors costs train_runs' "one float per batch", a hard-coded lr
train_matches_reference; which optimizer steps ran, over which layers, only chooses the message.
"""

import math

import numpy as np
import pytest

from autograder.graders.expected import (
    REFERENCE_LR,
    REFERENCE_STEPS,
    SEED,
    contract_forward,
    expected_training,
    mse,
    require_layers,
    training_tolerances,
    unexplained_loss,
)
from autograder.sandbox.inputs import initial_weights, make_batches

# One fixed batch of FIXED_ROWS rows, FIXED_STEPS steps at FIXED_LR: with the weights the reference leaves, the loss
# goes 0.465 -> 0.341 (-27%); a hard-coded lr of 0.01 -0.6% (train_matches_reference's mistake, not this check's: the
# loss must only fall). (8 rows, not 32: the same property, a quarter of the CPU time.)
FIXED_LR, FIXED_STEPS, FIXED_ROWS = 0.5, 5, 8
LAYERS = ("layer1", "layer2")


def _losses(observed: dict, steps: int) -> list[float]:
    """The returned losses as numbers (a one-element tensor read as its value), or a failure saying what came back."""
    losses = observed["losses"]
    assert isinstance(losses, list), f"train() returned {losses}; expected a list with one float per batch."
    assert len(losses) == steps, f"train() returned {len(losses)} losses for {steps} batches; expected {steps}."
    others = sorted({x.strip("'") for x in losses if isinstance(x, str)})  # the probe's names of non-numbers
    assert not others, (
        f"train() returned a list holding {', '.join(others)} values; expected one Python float per batch. "
        "Use `loss.item()`.")
    assert all(math.isfinite(x) for x in losses), (
        f"train() returned {losses}; expected finite losses. Lower the learning rate or check the loss.")
    return losses


def _returned_losses(observed: dict, steps: int) -> list[float] | None:
    """The returned losses where they can be read as one number per step, else None (train_runs says why)."""
    losses = observed["losses"]
    if isinstance(losses, list) and len(losses) == steps and all(isinstance(x, float) for x in losses):
        return losses
    return None


def _unchanged(final: dict, initial: dict) -> list[str]:
    """The layers (layer1, layer2) whose weight and bias are exactly what the grader put in."""
    return [layer for layer in LAYERS
            if all(np.array_equal(final[f"{layer}.{kind}"], initial[f"{layer}.{kind}"]) for kind in ("weight", "bias"))]


def _why_unchanged(observed: dict, layers: list[str]) -> str:
    """What most likely kept ``layers`` from changing, from the optimizer steps the probe saw (a message only)."""
    held = {name.split(".")[0] for name in observed["held"]}
    if observed["steps"] == 0:
        return "optimizer.step() was never called: call it after loss.backward(), every step."
    if not held & set(layers):
        return (f"the optimizer does not hold {' or '.join(f'model.{layer}' for layer in layers)}: build it over "
                "model.parameters().")
    if not observed["grads_at_step"]:
        return ("every optimizer.step() found the gradients already zero: optimizer.zero_grad() between "
                "loss.backward() and optimizer.step() clears them before the step uses them. Zero them before "
                "backward() (or after step()).")
    return "check that optimizer.step() follows loss.backward() and uses the lr argument."


def _reference_run(observe, devices) -> dict:
    """One probe serves train_runs and train_matches_reference: REFERENCE_STEPS random batches."""
    return observe("train", devices=list(devices), seed=SEED, steps=REFERENCE_STEPS, lr=REFERENCE_LR, fixed=False)


@pytest.mark.check("train_runs")
def test_train_runs(observe, load_arrays, devices, grading):
    observed = _reference_run(observe, devices)
    losses = _losses(observed, REFERENCE_STEPS)
    require_layers(observed)
    outputs = load_arrays(observed["outputs"])
    made = [outputs[f"forward{i}"] for i in range(observed["forwards"]) if f"forward{i}" in outputs]
    targets = [y for _, y in make_batches(SEED, REFERENCE_STEPS, False)]
    step = unexplained_loss(losses, made, targets, training_tolerances(grading.mode)[0])
    assert step is None, (
        f"train() returned {losses[step]:.6f} as the loss of step {step}, but no forward of your model in that step "
        f"gives it: train() called the model {observed['forwards']} time(s) for {REFERENCE_STEPS} batches"
        + (f", and the mean squared error of its output against the step's target is "
           f"{mse(made[step], targets[step]):.6f}" if len(made) == REFERENCE_STEPS
           and made[step].shape == targets[step].shape else "")
        + ". Return `loss.item()` of the loss you call backward() on, one per batch: "
        "loss = nn.MSELoss()(model(x), y.to(model.device1)).")
    grads = observed["grad_devices"]
    missing = [layer for layer in LAYERS if not any(name.startswith(f"{layer}.") for name in grads)]
    assert not missing, (
        f"During train() {' and '.join(f'model.{layer}' for layer in missing)} got no gradient"
        + (". Call loss.backward() each step, on the loss of the model's output, with the layers' parameters "
           "requiring gradients." if len(missing) == len(LAYERS) else
           f" while model.{'layer2' if missing == ['layer1'] else 'layer1'} did: the graph is cut between the halves "
           "(a .detach(), .data or a new tensor made from the activation as it moves to device1). Move it with "
           "`.to(self.device1)` alone, so that backward() reaches both layers."))
    final, initial = load_arrays(observed["final"]), initial_weights(SEED)
    unchanged = _unchanged(final, initial)
    assert not unchanged, (
        f"After {REFERENCE_STEPS} steps {' and '.join(f'model.{layer}' for layer in unchanged)} "
        f"{'never changed' if len(unchanged) == 1 else 'hold exactly the weights the grader put in'} although "
        f"{'it' if len(unchanged) == 1 else 'they'} got gradients: {_why_unchanged(observed, unchanged)}")
    assert observed["tensor_losses"] == 0, (
        f"train() returned {observed['tensor_losses']} loss tensor(s); expected one Python float per batch (the "
        "values are right). Append `loss.item()`, not `loss`: a tensor keeps its graph and its GPU memory alive.")


@pytest.mark.check("loss_decreases")
def test_loss_decreases(observe, load_arrays, devices):
    observed = observe("train", devices=list(devices), seed=SEED, steps=FIXED_STEPS, lr=FIXED_LR, fixed=True,
                       rows=FIXED_ROWS)
    require_layers(observed)  # what train() returned is train_runs' concern: the verdict is recomputed here
    x, y = make_batches(SEED, 1, True, FIXED_ROWS)[0]
    before = mse(contract_forward(initial_weights(SEED), x), y)
    with np.errstate(over="ignore", invalid="ignore"):  # weights that diverged give inf or nan: no fall, no warning
        after = mse(contract_forward(load_arrays(observed["final"]), x), y)
    assert after < before, (
        f"Training {FIXED_STEPS} steps on one fixed batch of {FIXED_ROWS} rows with lr={FIXED_LR} left weights whose "
        f"loss on that batch is {after:.4f} (recomputed by the grader); it was {before:.4f} with the weights the "
        "grader put in, and should be lower. Check that you call optimizer.step() after loss.backward(), that "
        "the optimizer holds model.parameters(), and that the learning rate is not so large that the loss grows.")


@pytest.mark.check("train_matches_reference")
def test_train_matches_reference(observe, load_arrays, devices, grading):
    loss_rtol, weight_rtol, weight_atol = training_tolerances(grading.mode)
    observed = _reference_run(observe, devices)
    require_layers(observed)
    expected, expected_final = expected_training(SEED, REFERENCE_STEPS, REFERENCE_LR)
    # The weights first: they carry every step, including the last, which no returned loss shows.
    final, initial = load_arrays(observed["final"]), initial_weights(SEED)
    unchanged = _unchanged(final, initial)
    assert not unchanged, (
        f"After {REFERENCE_STEPS} steps {' and '.join(f'model.{layer}' for layer in unchanged)} did not change at "
        f"all; reference SGD(lr={REFERENCE_LR}) updates both layers. "
        + ("No gradient reaches layer1: a .detach() on the activation as it moves to device1 cuts it off."
           if not any(name.startswith("layer1.") for name in observed["grad_devices"]) else
           _why_unchanged(observed, unchanged)))
    for name, want in expected_final.items():
        got = final[name]
        assert np.allclose(got, want, rtol=weight_rtol, atol=weight_atol), (
            f"After {REFERENCE_STEPS} steps `model.{name}` differs from reference SGD(lr={REFERENCE_LR}) from the "
            f"weights the grader put into your layers, by up to {np.abs(got - want).max():.3g}. Check that each step "
            "calls optimizer.zero_grad(), that SGD uses the lr argument (and nothing else: no momentum, no weight "
            "decay), that every parameter is optimized, and that the model computes in float32.")
    losses = _returned_losses(observed, REFERENCE_STEPS)
    if losses is None:  # not one number per step: train_runs says so; the weights above decided this check
        return
    for step, (got, want) in enumerate(zip(losses, expected, strict=True)):
        assert math.isclose(got, want, rel_tol=loss_rtol), (
            f"train() trained the layers as reference SGD(lr={REFERENCE_LR}) does, but returned {got:.7f} as the loss "
            f"of step {step}; the loss that step computes is {want:.7f}. Return `loss.item()` of the loss you call "
            "backward() on, computed before optimizer.step().")
