"""Every clock a student may read reads the simulation's virtual host time (and ``time.sleep`` only advances it).

Replaced while the simulation is active, restored exactly on exit: ``time.perf_counter/_ns``, ``time.monotonic/_ns``,
``time.time/_ns``, ``time.clock_gettime/_ns`` (wall and monotonic clocks), ``time.sleep``, ``timeit.default_timer``
and the default timer of ``timeit.Timer``/``timeit.timeit``/``timeit.repeat``, and ``datetime.datetime``'s
``now``/``utcnow``/``today``. ``torch.cuda.Event.elapsed_time`` and ``torch.utils.benchmark`` (which calls
``timeit.default_timer``) follow. Threads other than the simulation's keep the real clocks.
"""

from __future__ import annotations

import datetime as _datetime
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .clock import NS, PERF_ORIGIN_NS, DeviceClocks


@contextmanager
def virtual_host_clock(clocks: Callable[[], DeviceClocks]) -> Iterator[None]:
    """Route the host clocks of this thread to ``clocks()`` (called at each read: the simulation may replace its
    clocks between runs) for the duration of the block."""
    owner = threading.get_ident()
    real = {name: getattr(time, name) for name in ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns",
                                                   "time", "time_ns", "clock_gettime", "clock_gettime_ns", "sleep")}
    epoch_ns = real["time_ns"]() // NS * NS  # whole seconds: time.time() differences round the same everywhere
    mine = lambda: threading.get_ident() == owner

    def perf_ns() -> int:
        return PERF_ORIGIN_NS + clocks().read()

    def wall_ns() -> int:
        return epoch_ns + clocks().read()

    def virtual(ns: Callable[[], int], name: str, seconds: bool) -> Callable[[], Any]:
        fallback = real[name]

        def read():
            if not mine():
                return fallback()
            return ns() / NS if seconds else ns()

        read.__name__ = read.__qualname__ = name
        return read

    def clock_gettime_any(seconds: bool) -> Callable[[int], Any]:
        fallback = real["clock_gettime" if seconds else "clock_gettime_ns"]
        wall = {getattr(time, n) for n in ("CLOCK_REALTIME", "CLOCK_TAI") if hasattr(time, n)}
        steady = {getattr(time, n) for n in ("CLOCK_MONOTONIC", "CLOCK_MONOTONIC_RAW", "CLOCK_BOOTTIME")
                  if hasattr(time, n)}

        def read(clk_id: int):
            if not mine() or clk_id not in wall | steady:
                return fallback(clk_id)  # process and thread CPU clocks stay real
            ns = wall_ns() if clk_id in wall else perf_ns()
            return ns / NS if seconds else ns

        read.__name__ = "clock_gettime" if seconds else "clock_gettime_ns"
        return read

    def sleep(seconds: float) -> None:
        if not mine():
            return real["sleep"](seconds)
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        clocks().advance(seconds)

    patches: list[tuple[Any, str, Any]] = [
        (time, "perf_counter", virtual(perf_ns, "perf_counter", True)),
        (time, "perf_counter_ns", virtual(perf_ns, "perf_counter_ns", False)),
        (time, "monotonic", virtual(perf_ns, "monotonic", True)),
        (time, "monotonic_ns", virtual(perf_ns, "monotonic_ns", False)),
        (time, "time", virtual(wall_ns, "time", True)),
        (time, "time_ns", virtual(wall_ns, "time_ns", False)),
        (time, "clock_gettime", clock_gettime_any(True)),
        (time, "clock_gettime_ns", clock_gettime_any(False)),
        (time, "sleep", sleep),
    ]
    patches.append((timeit, "default_timer", patches[0][2]))
    patches.append((_datetime, "datetime", _virtual_datetime(lambda: wall_ns() / NS if mine() else None)))
    real_timer = timeit.default_timer
    defaults = [(f, f.__defaults__) for f in (timeit.Timer.__init__, timeit.timeit, timeit.repeat)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        for f, values in defaults:  # their `timer=default_timer` was bound when timeit was imported
            f.__defaults__ = tuple(patches[0][2] if v is real_timer else v for v in values)
        yield
    finally:
        for f, values in defaults:
            f.__defaults__ = values
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def _virtual_datetime(now_s: Callable[[], float | None]) -> type:
    real = _datetime.datetime

    class datetime(real):  # noqa: N801 - it stands in for datetime.datetime
        @classmethod
        def now(cls, tz=None):
            seconds = now_s()
            return real.now(tz) if seconds is None else real.fromtimestamp(seconds, tz)

        @classmethod
        def today(cls):
            return cls.now()

        @classmethod
        def utcnow(cls):
            seconds = now_s()
            if seconds is None:
                return real.now(_datetime.timezone.utc).replace(tzinfo=None)
            return real.fromtimestamp(seconds, _datetime.timezone.utc).replace(tzinfo=None)

    datetime.__module__, datetime.__qualname__ = "datetime", "datetime"
    return datetime
