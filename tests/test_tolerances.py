"""The graders' numeric tolerances (expected.py) against the noise they must absorb and the mistakes they must not:
the simulation is bit-exact to PyTorch on the CPU, which differs from the graders' NumPy reference by at least 10x
less than each tolerance; small training mistakes move the losses by more than LOSS_RTOL."""


import numpy as np
import pytest
import torch

from autograder.graders.expected import (
    FORWARD_ATOL,
    FORWARD_RTOL,
    LOSS_RTOL,
    REFERENCE_LR,
    REFERENCE_STEPS,
    WEIGHT_ATOL,
    WEIGHT_RTOL,
    expected_output,
    reference_sgd,
)
from autograder.samples import load_reference
from autograder.sandbox import probes
from autograder.sandbox.inputs import SEED, initial_weights, make_batches
from autograder.simgpu import simulated_gpus

SEEDS = (SEED, 1, 2, 3, 4, 5)
MARGIN = 10  # each tolerance is at least this many times the noise measured here
REFERENCE = load_reference()


def _train(devices, seed: int, lr: float = REFERENCE_LR, optimizer_options=None, frozen_layer1: bool = False):
    """The reference's train() from the graders' weights, or the same loop with another optimizer; (losses, weights)."""
    torch.manual_seed(seed)
    model = REFERENCE.SimpleMPModel(*devices)
    probes.load_weights(model, seed)
    batches = probes.make_batches(seed, REFERENCE_STEPS, False)
    if optimizer_options is None and not frozen_layer1:
        losses = REFERENCE.train(model, batches, lr=lr)
    else:
        if frozen_layer1:
            model.layer1.requires_grad_(False)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, **(optimizer_options or {}))
        losses = []
        for x, y in batches:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y.to(model.device1))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    weights = {name: t.detach().cpu().numpy().copy() for name, t in probes.layer_tensors(model).items()}
    return losses, weights


def _loss_differences(losses, seed: int) -> list[float]:
    expected, _ = reference_sgd(initial_weights(seed), make_batches(seed, REFERENCE_STEPS, False), REFERENCE_LR)
    return [abs(a - b) / abs(b) for a, b in zip(losses, expected, strict=True)]


def test_the_simulation_trains_bit_for_bit_as_the_cpu():
    on_cpu = _train(("cpu", "cpu"), SEED)
    with simulated_gpus(2):
        simulated = _train(("cuda:0", "cuda:1"), SEED)
    assert simulated[0] == on_cpu[0]
    assert all(np.array_equal(simulated[1][name], on_cpu[1][name]) for name in on_cpu[1]) and len(on_cpu[1]) == 4


@pytest.mark.parametrize("seed", SEEDS)
def test_training_noise_is_far_below_the_tolerances(seed):
    losses, weights = _train(("cpu", "cpu"), seed)
    assert max(_loss_differences(losses, seed)) <= LOSS_RTOL / MARGIN
    _, expected = reference_sgd(initial_weights(seed), make_batches(seed, REFERENCE_STEPS, False), REFERENCE_LR)
    for name, want in expected.items():
        assert np.allclose(weights[name], want, rtol=WEIGHT_RTOL / MARGIN, atol=WEIGHT_ATOL / MARGIN), name


def test_forward_noise_is_far_below_the_tolerances():
    model = REFERENCE.SimpleMPModel("cpu", "cpu")
    probes.load_weights(model, SEED)
    pipelined = REFERENCE.PipelinedMPModel("cpu", "cpu", split_size=8)
    probes.load_weights(pipelined, SEED)
    checked = 0
    with torch.no_grad():
        for batch_seed in range(SEED, SEED + 12):
            for rows in (1, 7, 32):
                got = model(probes.make_batch(batch_seed, rows, 1000)).numpy()
                assert np.allclose(got, expected_output(batch_seed, rows), rtol=FORWARD_RTOL / MARGIN,
                                   atol=FORWARD_ATOL / MARGIN)
                checked += 1
        for rows in (30, 32):
            got = pipelined(probes.make_batch(SEED, rows, 1000)).numpy()
            assert np.allclose(got, expected_output(SEED, rows), rtol=FORWARD_RTOL / MARGIN, atol=FORWARD_ATOL / MARGIN)
    assert checked == 36


@pytest.mark.parametrize(("mistake", "options"), [
    ("layer1 never updates", {"frozen_layer1": True}),
    ("lr 0.1% off", {"lr": REFERENCE_LR * 0.999}),
    ("weight decay 1e-4", {"optimizer_options": {"weight_decay": 1e-4}}),
])
def test_small_training_mistakes_move_the_losses_beyond_the_tolerance(mistake, options):
    losses, _ = _train(("cpu", "cpu"), SEED, **options)
    worst = max(_loss_differences(losses, SEED))
    assert worst >= 2 * LOSS_RTOL, f"{mistake} moves the losses by {worst:.2g} at most"
