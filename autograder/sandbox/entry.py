"""The child's entry point, kept light: the trusted process pickles a reference to ``serve`` from here
without importing torch-heavy ``worker`` (the warm server has it preloaded, so the import is free there)."""


def serve(*args) -> None:
    from .worker import serve as worker_serve

    worker_serve(*args)
