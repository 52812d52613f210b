"""A STAND-IN GPU layer for end-to-end runs of the real-GPU tools on a machine without a GPU: when
PRACTICAL8_STAND_IN_GPUS=N (and, optionally, PRACTICAL8_STAND_IN_PROFILE=h200) are set and this folder is on
PYTHONPATH, every Python process starts with N simulated CUDA devices active in its main thread, so torch.cuda says
it has N GPUs. Nothing here is a real GPU: it proves that the tools run through and report, not that a GPU works."""

import os

if os.environ.get("PRACTICAL8_STAND_IN_GPUS"):
    from autograder.simgpu import simulated_gpus

    _STAND_IN = simulated_gpus(int(os.environ["PRACTICAL8_STAND_IN_GPUS"]),
                               gpu=os.environ.get("PRACTICAL8_STAND_IN_PROFILE", "h200"))
    _STAND_IN.__enter__()
