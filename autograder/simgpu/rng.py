"""Random numbers on the simulated GPUs: one generator per device, seeded by ``torch.cuda.manual_seed*``.

On real GPUs every device has its own default generator (CUDA's Philox), separate from the CPU's: seeding one
device gives the same numbers on every run, and drawing on a GPU leaves the CPU's stream untouched. The simulation
keeps that shape with one CPU generator per simulated device, swapped in around each random op that runs there.
The numbers themselves are the CPU's (Mersenne Twister), not Philox's: the same seed gives the same values on
every simulated run, but not the values a real GPU draws; graders never compare random draws across devices.
``torch.manual_seed(s)`` seeds the CPU and every device, as PyTorch's own does (it calls ``manual_seed_all``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

CUDA_DEFAULT_SEED = 67280421310721  # c10's default_rng_seed_val: a fresh CUDA generator's initial_seed()


class DeviceGenerators:
    """``torch.cuda.default_generators`` of the simulated devices."""

    def __init__(self, n: int) -> None:
        self.generators = [torch.Generator().manual_seed(CUDA_DEFAULT_SEED) for _ in range(n)]

    @contextlib.contextmanager
    def drawing_on(self, index: int) -> Iterator[None]:
        """Inside: the CPU's default generator draws device ``index``'s stream (both states kept apart)."""
        cpu = torch.default_generator
        saved = cpu.get_state()
        cpu.set_state(self.generators[index].get_state())
        try:
            yield
        finally:
            self.generators[index].set_state(cpu.get_state())
            cpu.set_state(saved)

    def stand_ins(self, which: Any, count: int) -> dict[str, Any]:
        """The ``torch.cuda`` random functions; ``which(device)`` turns a device argument into an index."""
        gens = self.generators

        def manual_seed(seed: int) -> None:
            gens[which(None)].manual_seed(int(seed))

        def manual_seed_all(seed: int) -> None:
            for g in gens:
                g.manual_seed(int(seed))

        def seed() -> None:
            gens[which(None)].seed()

        def seed_all() -> None:
            first = gens[0].seed()
            for g in gens[1:]:
                g.manual_seed(first)

        def get_rng_state(device: Any = "cuda") -> torch.Tensor:
            return gens[which(device)].get_state()

        def set_rng_state(state: torch.Tensor, device: Any = "cuda") -> None:
            gens[which(device)].set_state(state.clone())

        return {
            "manual_seed": manual_seed,
            "manual_seed_all": manual_seed_all,
            "seed": seed,
            "seed_all": seed_all,
            "initial_seed": lambda: gens[which(None)].initial_seed(),
            "get_rng_state": get_rng_state,
            "set_rng_state": set_rng_state,
            "get_rng_state_all": lambda: [g.get_state() for g in gens],
            "set_rng_state_all": lambda states: [g.set_state(s.clone()) for g, s in zip(gens, states, strict=True)],
        }
