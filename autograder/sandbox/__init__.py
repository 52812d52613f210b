"""Running a submission in its own process and bringing back plain observations.

The student's code runs in ``worker.py`` (a separate process); trusted ``probes.py`` functions call it
there and reply with JSON (numbers, strings) plus tensors saved as .npz for ``numpy.load(allow_pickle=False)``.
Nothing the student's process sends is ever unpickled. ``client.py`` is the trusted side.
"""

from .client import ProbeFailed, SubmissionProcess, gpu_count, start_warm_server

__all__ = ["ProbeFailed", "SubmissionProcess", "gpu_count", "start_warm_server"]
