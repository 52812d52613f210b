"""The practical's seed program (Parts 1-4), written for two real GPUs, used unchanged by the tests.

Devices are arguments only so that the very same code can also run on plain CPU tensors
(``device0 = device1 = "cpu"``) as the numerical reference.
"""

import time

import torch
import torch.nn as nn


class SimpleMPModel(nn.Module):
    def __init__(self, device0="cuda:0", device1="cuda:1"):
        super().__init__()
        self.device0, self.device1 = torch.device(device0), torch.device(device1)
        self.layer1 = nn.Linear(1000, 2000).to(self.device0)
        self.relu1 = nn.ReLU().to(self.device0)
        self.layer2 = nn.Linear(2000, 1000).to(self.device1)
        self.relu2 = nn.ReLU().to(self.device1)

    def forward(self, x, trace=False):
        x = self.relu1(self.layer1(x.to(self.device0)))
        if trace:
            print("Before move:", x.device)
        x = x.to(self.device1)
        if trace:
            print("After move:", x.device)
        return self.relu2(self.layer2(x))


def train_fixed_batch(model, steps=20, lr=0.01, seed=0):
    """Part 2 on one fixed batch: returns the losses (floats)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 1000, generator=g), torch.randn(32, 1000, generator=g)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y.to(model.device1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_random_batches(model, steps=5, lr=0.01):
    """Part 2 as the practical has it: fresh random batches, loss printed each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    for step in range(steps):
        x, y = torch.randn(32, 1000), torch.randn(32, 1000).to(model.device1)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        print(f"step {step}: loss {loss.item():.4f}")


def time_one_forward(model, x, sync="both"):
    """Part 4: time one forward. sync is "none", "current" (bare synchronize()) or "both"."""
    with torch.no_grad():
        model(x)  # warm-up
        torch.cuda.synchronize(model.device0)
        torch.cuda.synchronize(model.device1)
        start = time.perf_counter()
        model(x)
        if sync == "current":
            torch.cuda.synchronize()
        elif sync == "both":
            torch.cuda.synchronize(model.device0)
            torch.cuda.synchronize(model.device1)
        return time.perf_counter() - start
