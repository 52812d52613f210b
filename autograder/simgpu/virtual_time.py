"""Every clock a student may read reads the simulation's virtual host time (and ``time.sleep`` only advances it).

Replaced while the simulation is active, restored exactly on exit: ``time.perf_counter/_ns``, ``time.monotonic/_ns``,
``time.time/_ns``, ``time.clock_gettime/_ns`` (every clock id), ``time.process_time/_ns`` and ``time.thread_time/_ns``
(on a GPU a synchronize spins, so CPU time runs with the wall clock there too), ``os.times``, ``time.sleep``,
``timeit.default_timer`` and the default timer of ``timeit.Timer``/``timeit.timeit``/``timeit.repeat``, and
``datetime.datetime``'s ``now``/``utcnow``/``today``. ``torch.cuda.Event.elapsed_time`` and ``torch.utils.benchmark``
(which calls ``timeit.default_timer``) follow.

Real clocks are kept for other threads, for the event loops and process machinery that a Jupyter kernel or
multiprocessing runs in this thread (their timeouts must pass in real time: ``INFRASTRUCTURE``), and for a function
bound inside the block and called after it ended.
"""

from __future__ import annotations

import datetime as _datetime
import os
import sys
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .clock import NS, PERF_ORIGIN_NS, DeviceClocks

CLOCKS = ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "clock_gettime",
          "clock_gettime_ns", "process_time", "process_time_ns", "thread_time", "thread_time_ns", "sleep")
# Callers whose clock reads and sleeps stay real: event loops, selectors and process/thread machinery time out in
# real time (on the virtual clock an asyncio.sleep(0.002) took 1.6 s of polling).
INFRASTRUCTURE = ("asyncio", "selectors", "multiprocessing", "concurrent", "threading", "queue", "subprocess",
                  "socket", "ssl", "tornado", "zmq", "ipykernel", "jupyter_client", "IPython", "traitlets", "logging")


@contextmanager
def virtual_host_clock(clocks: Callable[[], DeviceClocks]) -> Iterator[None]:
    """Route the host clocks of this thread to ``clocks()`` (called at each read: the simulation may replace its
    clocks between runs) for the duration of the block."""
    owner, active = threading.get_ident(), [True]
    real = {name: getattr(time, name) for name in CLOCKS}
    real_times, real_timer, real_datetime = os.times, timeit.default_timer, _datetime.datetime
    epoch_ns = real["time_ns"]() // NS * NS  # whole seconds: time.time() differences round the same everywhere

    def virtual_here(depth: int = 2) -> bool:
        """This thread, inside the block, called from code other than the infrastructure's."""
        if not active[0] or threading.get_ident() != owner:
            return False
        caller = sys._getframe(depth).f_globals.get("__name__", "")
        return not caller.startswith(INFRASTRUCTURE)

    def perf_ns() -> int:
        return PERF_ORIGIN_NS + clocks().read()

    def wall_ns() -> int:
        return epoch_ns + clocks().read()

    def virtual(ns: Callable[[], int], name: str, seconds: bool) -> Callable[[], Any]:
        fallback = real[name]

        def read():
            if not virtual_here():
                return fallback()
            return ns() / NS if seconds else ns()

        read.__name__ = read.__qualname__ = name
        return read

    def clock_gettime_any(seconds: bool) -> Callable[[int], Any]:
        fallback = real["clock_gettime" if seconds else "clock_gettime_ns"]
        wall = {getattr(time, n) for n in ("CLOCK_REALTIME", "CLOCK_TAI") if hasattr(time, n)}

        def read(clk_id: int):
            if not virtual_here():
                return fallback(clk_id)
            ns = wall_ns() if clk_id in wall else perf_ns()
            return ns / NS if seconds else ns

        read.__name__ = "clock_gettime" if seconds else "clock_gettime_ns"
        return read

    def sleep(seconds: float) -> None:
        if not virtual_here():
            return real["sleep"](seconds)
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        clocks().advance(seconds)

    def times() -> os.times_result:
        if not virtual_here():
            return real_times()
        now = clocks().read() / NS
        return os.times_result((now, 0.0, 0.0, 0.0, (epoch_ns / NS) + now))

    patches: list[tuple[Any, str, Any]] = [
        (time, "perf_counter", virtual(perf_ns, "perf_counter", True)),
        (time, "perf_counter_ns", virtual(perf_ns, "perf_counter_ns", False)),
        (time, "monotonic", virtual(perf_ns, "monotonic", True)),
        (time, "monotonic_ns", virtual(perf_ns, "monotonic_ns", False)),
        (time, "time", virtual(wall_ns, "time", True)),
        (time, "time_ns", virtual(wall_ns, "time_ns", False)),
        (time, "clock_gettime", clock_gettime_any(True)),
        (time, "clock_gettime_ns", clock_gettime_any(False)),
        (time, "process_time", virtual(perf_ns, "process_time", True)),
        (time, "process_time_ns", virtual(perf_ns, "process_time_ns", False)),
        (time, "thread_time", virtual(perf_ns, "thread_time", True)),
        (time, "thread_time_ns", virtual(perf_ns, "thread_time_ns", False)),
        (time, "sleep", sleep),
        (os, "times", times),
    ]
    patches.append((timeit, "default_timer", patches[0][2]))
    patches.append((_datetime, "datetime", _virtual_datetime(real_datetime, lambda: wall_ns() / NS
                                                             if virtual_here(3) else None)))
    defaults = [(f, f.__defaults__) for f in (timeit.Timer.__init__, timeit.timeit, timeit.repeat)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        for f, values in defaults:  # their `timer=default_timer` was bound when timeit was imported
            f.__defaults__ = tuple(patches[0][2] if v is real_timer else v for v in values)
        yield
    finally:
        active[0] = False  # a stand-in bound inside the block reads the real clock from now on
        for f, values in defaults:
            f.__defaults__ = values
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def _virtual_datetime(real: type, now_s: Callable[[], float | None]) -> type:
    """``datetime.datetime`` whose now/today/utcnow read ``now_s()`` (None: the real clock); its instances are
    instances of it, so ``isinstance(now, datetime.datetime)`` holds inside the simulation."""

    class datetime(real):  # noqa: N801 - it stands in for datetime.datetime
        @classmethod
        def now(cls, tz=None):
            seconds = now_s()
            return super().now(tz) if seconds is None else cls.fromtimestamp(seconds, tz)

        @classmethod
        def today(cls):
            return cls.now()

        @classmethod
        def utcnow(cls):
            seconds = now_s()
            utc = _datetime.timezone.utc
            moment = super().now(utc) if seconds is None else cls.fromtimestamp(seconds, utc)
            return moment.replace(tzinfo=None)

    datetime.__module__, datetime.__qualname__ = "datetime", "datetime"
    return datetime
