"""pytest plugin (registered as an entry point): the ``simulated_gpus`` fixture.

    def test_my_model(simulated_gpus):
        model = SimpleMPModel("cuda:0", "cuda:1")   # runs on two simulated GPUs
        assert simulated_gpus.n == 2
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def simulated_gpus() -> Iterator[Any]:
    """Two simulated CUDA devices (a ``Simulation``) for the duration of one test."""
    from .simgpu import simulated_gpus as _simulated_gpus  # here: loading pytest must not import torch

    with _simulated_gpus(2) as sim:
        yield sim
