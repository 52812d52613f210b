"""What each probe's reply may hold, checked in the trusted process before any grader reads it.

The reply was made inside the student's process, where code can reach the probes and the serializer; JSON parsing
already leaves only plain values, and this fixes their shape: exactly the keys the probe sends, each of the declared
type (an ``int`` where a ``float`` is declared becomes a ``float``; ``bool`` is never a number). A reply that does not
fit fails the check with ``MalformedReply`` instead of reaching a grader as something it does not expect.
"""

from __future__ import annotations

from typing import Any


class MalformedReply(ValueError):
    """A probe's reply that does not have the declared shape; ``str(self)`` says where."""


class Maybe:
    """A value of ``spec``, or None; as a dict entry, the key may also be absent."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


class Either:
    """A value that fits one of ``specs`` (tried in order)."""

    def __init__(self, *specs: Any) -> None:
        self.specs = specs


NAMES = {str: str}  # a mapping from names to names (devices, descriptions)
TRANSFER = {"seq": int, "src": str, "dst": str, "nbytes": int, "via_host": bool}
LAYERS = {"layers": NAMES, "not_loaded": [str]}
SCHEMAS: dict[str, dict] = {
    "import": {},
    "build": {"params": {str: {"device": str, "shape": [int]}}, **LAYERS, "device0": str, "device1": str,
              "output_device": Maybe(str)},
    "forward": {"runs": [{"batch": int, "output_device": str, "dtype": Maybe(str), "transfers": [TRANSFER],
                          "printed": str}],
                "outputs": str, **LAYERS},
    "train": {**LAYERS, "losses": Either([Either(float, str)], str), "tensor_losses": int, "final": str,
              "outputs": str, "forwards": int, "grad_devices": NAMES, "steps": int, "held": [str],
              "grads_at_step": bool},
    "time_forward": {"seconds": Either(float, str), "true_seconds": Maybe(float), "forwards": int,
                     "waited_for": [str]},
    "pipeline": {"params": NAMES, "output_device": str, "output": Maybe(str), **LAYERS, "overlap_s": float,
                 "span_s": float},
}


def validated(probe: str, reply: Any) -> dict:
    """``reply`` rebuilt from plain values along ``SCHEMAS[probe]``, or ``MalformedReply``."""
    if probe not in SCHEMAS:
        raise MalformedReply(f"no reply shape is declared for the probe {probe!r}")
    return _fit(reply, SCHEMAS[probe], probe)


def _fit(value: Any, spec: Any, where: str) -> Any:
    kind = type(value)  # exact types: JSON gives nothing else, and nothing else may pass
    if spec is float:
        if kind is float or kind is int:
            return float(value)
    elif spec in (int, str, bool):
        if kind is spec:
            return value
    elif isinstance(spec, Maybe):
        return None if value is None else _fit(value, spec.spec, where)
    elif isinstance(spec, Either):
        for option in spec.specs:
            try:
                return _fit(value, option, where)
            except MalformedReply:
                continue
    elif isinstance(spec, list):
        if kind is list:
            return [_fit(item, spec[0], f"{where}[{i}]") for i, item in enumerate(value)]
    elif isinstance(spec, dict) and kind is dict:
        if list(spec) == [str]:  # a mapping with any (string) keys
            return {_fit(k, str, where): _fit(v, spec[str], f"{where}[{k!r}]") for k, v in value.items()}
        unknown = [k for k in value if k not in spec]
        missing = [k for k, s in spec.items() if k not in value and not isinstance(s, Maybe)]
        if unknown or missing:
            raise MalformedReply(f"{where} has keys {sorted(map(str, value))}; expected {sorted(spec)}")
        return {k: _fit(v, spec[k], f"{where}[{k!r}]") for k, v in value.items()}
    raise MalformedReply(f"{where} is a {kind.__name__}; expected {_name(spec)}")


def _name(spec: Any) -> str:
    if isinstance(spec, type):
        return spec.__name__
    if isinstance(spec, Maybe):
        return f"{_name(spec.spec)} or None"
    if isinstance(spec, Either):
        return " or ".join(_name(s) for s in spec.specs)
    return "a list" if isinstance(spec, list) else "a dict"
