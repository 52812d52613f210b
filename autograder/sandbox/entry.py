"""The child's entry point, kept light: the trusted process pickles a reference to ``serve`` from here
without importing torch-heavy ``worker`` (the warm server has it preloaded, so the import is free there)."""


def serve(*args) -> None:
    from .worker import serve as worker_serve

    worker_serve(*args)


def count_gpus(send) -> None:
    """``client.gpu_count``'s child: torch's count of the real GPUs, as JSON (torch is preloaded here)."""
    import json

    from ..devices import torch_gpu_count

    send.send_bytes(json.dumps(torch_gpu_count()).encode())
