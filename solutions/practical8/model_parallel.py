"""Practical 8: layer-wise model parallelism across two GPUs.

Fill in every ``# YOUR CODE HERE``; every function says in its docstring what it must do.
With no GPUs at hand, the practical's notebook runs this file on two simulated GPUs.

Check your work as you go: install the student kit once (the wheel handed out with this file), then run the public
checks in this folder - on two simulated GPUs unless two real ones are present::

    python -m pip install practical8_student_kit-0.1.0-py3-none-any.whl
    python -m autograder check

At first every check fails with NotImplementedError: that is the starting point. The hidden checks are graded after
you submit.

The model: ``layer1 = Linear(1000, 2000)`` + ReLU on ``device0``, ``layer2 = Linear(2000, 1000)`` + ReLU on
``device1``. The activation travels from ``device0`` to ``device1`` in ``forward``: that copy is the whole
idea of model parallelism, and the reason the two GPUs take turns instead of working together.
"""

from __future__ import annotations

import time
from typing import Iterable

import torch
from torch import nn


class SimpleMPModel(nn.Module):
    """Two linear layers split across two devices (Part 1)."""

    def __init__(self, device0: str | torch.device = "cuda:0", device1: str | torch.device = "cuda:1") -> None:
        """Keep ``self.device0`` / ``self.device1`` as ``torch.device`` and build the two halves.

        ``self.layer1 = nn.Linear(1000, 2000)`` and ``self.relu1`` live on ``device0``;
        ``self.layer2 = nn.Linear(2000, 1000)`` and ``self.relu2`` live on ``device1``.
        """
        super().__init__()
        ### BEGIN SOLUTION
        self.device0 = torch.device(device0)
        self.device1 = torch.device(device1)
        self.layer1 = nn.Linear(1000, 2000).to(self.device0)
        self.relu1 = nn.ReLU().to(self.device0)
        self.layer2 = nn.Linear(2000, 1000).to(self.device1)
        self.relu2 = nn.ReLU().to(self.device1)
        ### END SOLUTION

    def forward(self, x: torch.Tensor, trace: bool = False) -> torch.Tensor:
        """Run ``x`` (possibly on the CPU) through both halves; return the output on ``device1``.

        Move ``x`` to ``device0``, apply layer1 + relu1, move the activation to ``device1`` (directly,
        not through the CPU), apply layer2 + relu2. With ``trace=True`` print ``Before move: <device>``
        and ``After move: <device>`` (the activation's device) around that move (Part 3).
        """
        ### BEGIN SOLUTION
        x = self.relu1(self.layer1(x.to(self.device0)))  # (B, 2000) on device0
        if trace:
            print(f"Before move: {x.device}")
        x = x.to(self.device1)  # the GPU-to-GPU copy
        if trace:
            print(f"After move: {x.device}")
        return self.relu2(self.layer2(x))  # (B, 1000) on device1
        ### END SOLUTION


class PipelinedMPModel(SimpleMPModel):
    """Part 5 (optional): the same two halves, fed micro-batches so that both GPUs work at once."""

    def __init__(self, device0: str | torch.device = "cuda:0", device1: str | torch.device = "cuda:1",
                 split_size: int = 8) -> None:
        super().__init__(device0, device1)
        self.split_size = split_size

    def forward(self, x: torch.Tensor, trace: bool = False) -> torch.Tensor:
        """Same result as ``SimpleMPModel.forward``, computed ``split_size`` rows at a time, pipelined.

        Split the batch (on ``device0``) into micro-batches. While ``device1`` runs layer2 + relu2 on
        micro-batch i, ``device0`` must already run layer1 + relu1 on micro-batch i+1: launch them in that
        order and never wait for a GPU inside the loop. Concatenate the outputs in order, on ``device1``.
        """
        ### BEGIN SOLUTION
        chunks = iter(x.to(self.device0).split(self.split_size, dim=0))
        moved = self.relu1(self.layer1(next(chunks))).to(self.device1)  # micro-batch 0 crosses over
        outputs = []
        for chunk in chunks:
            outputs.append(self.relu2(self.layer2(moved)))  # device1: micro-batch i ...
            moved = self.relu1(self.layer1(chunk)).to(self.device1)  # ... while device0 runs i+1
        outputs.append(self.relu2(self.layer2(moved)))
        return torch.cat(outputs)  # (B, 1000) on device1
        ### END SOLUTION


def train(model: SimpleMPModel, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], lr: float = 0.01) -> list[float]:
    """Train ``model`` with SGD(lr) on MSE loss, one step per ``(x, y)`` batch (CPU tensors) (Part 2).

    The target must live where the output is (``model.device1``). Each step: zero the gradients,
    forward, loss, backward, optimizer step. Return every step's loss as a Python float.
    """
    ### BEGIN SOLUTION
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y.to(model.device1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
    ### END SOLUTION


def time_forward(model: SimpleMPModel, x: torch.Tensor, warmup: int = 2, repeats: int = 10) -> float:
    """Return the seconds one forward pass of ``model`` on ``x`` takes on the GPUs (Part 4).

    Run ``warmup`` untimed forwards first (the first calls pay one-off start-up costs), then time
    ``repeats`` forwards with a wall clock. GPU work is asynchronous: before reading the clock, wait
    until *both* devices have finished (a bare ``torch.cuda.synchronize()`` waits only for the current
    device, cuda:0, while the last kernels run on ``model.device1``).
    """
    ### BEGIN SOLUTION
    def wait_for_gpus() -> None:
        for device in (model.device0, model.device1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)

    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        wait_for_gpus()
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        wait_for_gpus()
        return (time.perf_counter() - start) / repeats
    ### END SOLUTION
