"""Running a submission in its own process and bringing back plain observations.

The student's code runs in ``worker.py`` (a separate process); trusted ``probes.py`` functions call it
there and reply with JSON (numbers, strings) plus tensors saved for ``torch.load(weights_only=True)``.
Nothing the student's process sends is ever unpickled. ``client.py`` is the trusted side.
"""

from .client import ProbeFailed, SubmissionProcess

__all__ = ["ProbeFailed", "SubmissionProcess"]
