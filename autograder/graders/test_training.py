"""Part 2: train() runs on the GPUs, lowers the loss, and takes exactly the reference SGD steps."""

import functools
import math

import numpy as np
import pytest

from autograder.graders.conftest import SEED, require_layers
from autograder.sandbox.inputs import initial_weights, make_batches

LOSS_RTOL = 2e-4  # sim is bit-exact to CPU; fp32 GPU kernels differ by ~1e-6 relative
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 1e-6
REFERENCE_LR, REFERENCE_STEPS = 0.2, 4
FIXED_LR, FIXED_STEPS, REQUIRED_DROP = 0.5, 5, 0.95  # reference: 0.457 -> 0.421 (-8%) in 5 steps


def _losses(observed: dict, steps: int) -> list[float]:
    losses = observed["losses"]
    assert isinstance(losses, list), f"train() returned {losses}; expected a list with one float per batch."
    assert len(losses) == steps, f"train() returned {len(losses)} losses for {steps} batches; expected {steps}."
    assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses), (
        f"train() returned {losses[:3]}...; expected finite Python floats. Use `loss.item()`.")
    return losses


def _reference_run(observe, devices) -> dict:
    """One probe serves train_runs and train_matches_reference: REFERENCE_STEPS random batches."""
    return observe("train", devices=list(devices), seed=SEED, steps=REFERENCE_STEPS, lr=REFERENCE_LR, fixed=False,
                   final_weights=True)


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


def reference_sgd(initial: dict, batches, lr: float) -> tuple[list[float], dict]:
    """Plain SGD on the MSE loss of relu(W2 relu(W1 x + b1) + b2), from ``initial`` (trusted, NumPy).

    The gradients are written out (two Linear layers, two ReLUs, mean squared error), so the reference
    shares no code with the PyTorch the student's process runs. Returns the losses and the final
    weights, named as in SimpleMPModel.
    """
    w1, b1, w2, b2 = (np.array(initial[f"layer{i}.{kind}"]) for i in (1, 2) for kind in ("weight", "bias"))
    losses = []
    for x, y in batches:
        h1 = x @ w1.T + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T + b2
        out = np.maximum(h2, 0)
        losses.append(float(np.mean((out - y) ** 2, dtype=np.float64)))
        d_h2 = np.where(h2 > 0, 2 * (out - y) / out.size, 0).astype(np.float32)  # relu'(0) = 0, as in torch
        d_h1 = np.where(h1 > 0, d_h2 @ w2, 0).astype(np.float32)
        w2 -= lr * (d_h2.T @ a1)
        b2 -= lr * d_h2.sum(0)
        w1 -= lr * (d_h1.T @ x)
        b1 -= lr * d_h1.sum(0)
    return losses, {"layer1.weight": w1, "layer1.bias": b1, "layer2.weight": w2, "layer2.bias": b2}


@functools.lru_cache(maxsize=1)
def _expected(seed: int, steps: int, lr: float) -> tuple[list[float], dict]:
    """Reference SGD from the graders' initial weights: the same for every submission, so made once."""
    return reference_sgd(initial_weights(seed), make_batches(seed, steps, False), lr)


@pytest.mark.check("train_matches_reference")
def test_train_matches_reference(observe, load_arrays, devices):
    observed = _reference_run(observe, devices)
    require_layers(observed)
    losses = _losses(observed, REFERENCE_STEPS)
    expected, expected_final = _expected(SEED, REFERENCE_STEPS, REFERENCE_LR)
    for step, (got, want) in enumerate(zip(losses, expected, strict=True)):
        assert math.isclose(got, want, rel_tol=LOSS_RTOL), (
            f"Step {step} loss is {got:.6f}; reference SGD(lr={REFERENCE_LR}) from the weights the grader put "
            f"into your layers gives {want:.6f}. " + (
                "The first step already differs: check the loss (nn.MSELoss between output and target)."
                if step == 0 else
                "Check that each step calls optimizer.zero_grad(), that SGD uses the lr argument, and that "
                "gradients flow through both layers (no .detach() on the activation)."))
    final = load_arrays(observed["final"])
    for name, want in expected_final.items():
        got = final.get(name)
        assert got is not None and got.shape == want.shape and np.allclose(got, want, rtol=WEIGHT_RTOL,
                                                                            atol=WEIGHT_ATOL), (
            f"After {REFERENCE_STEPS} steps `{name}` differs from reference SGD"
            + (" - it did not change at all: no gradient reaches layer1. Do not .detach() the activation "
               "when you move it to device1." if got is not None and np.array_equal(got, initial_weights(SEED)[name])
               else ". Check zero_grad, lr and that every parameter is optimized."))
