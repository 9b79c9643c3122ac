"""GpuReading on the wire and on spans: the one shape NVML, the allocator and the twin share.

Twins live inside replica processes, so a reading crosses a process boundary as JSON
(``GET /gpu`` on a replica's control port). Decoding is strict, because a half-parsed reading
that lost ``simulated`` could pass a twin off as hardware: a bad payload raises
:class:`BadGpuPayload` naming the field, and callers count it as a rejection.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from warden.records import GpuReading

__all__ = [
    "BadGpuPayload",
    "CLOCK_EVENT_REASONS",
    "decode_clock_reasons",
    "reading_from_dict",
    "reading_to_dict",
    "span_attributes",
]

# NVML's nvmlClocksEventReason* bits (nvml.h), named as Warden reports them.
CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "GPU_IDLE"),
    (0x002, "APPLICATIONS_CLOCKS_SETTING"),
    (0x004, "SW_POWER_CAP"),
    (0x008, "HW_SLOWDOWN"),
    (0x010, "SYNC_BOOST"),
    (0x020, "SW_THERMAL_SLOWDOWN"),
    (0x040, "HW_THERMAL_SLOWDOWN"),
    (0x080, "HW_POWER_BRAKE_SLOWDOWN"),
    (0x100, "DISPLAY_CLOCK_SETTING"),
)

_FIELDS = {f.name: f for f in dataclasses.fields(GpuReading)}
_REQUIRED = [f.name for f in dataclasses.fields(GpuReading)
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
_INT_FIELDS = {"xid_errors", "ecc_errors", "alloc_retries", "alloc_ooms"}
_STR_FIELDS = {"device", "replica"}


class BadGpuPayload(ValueError):
    """A GPU reading payload that cannot be trusted; the message names the field."""


def decode_clock_reasons(mask: int) -> tuple[str, ...]:
    """Names of the set bits of an NVML clocks-event mask; unknown bits as ``BIT_0x...``."""
    names = [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]
    known = 0
    for bit, _ in CLOCK_EVENT_REASONS:
        known |= bit
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"BIT_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return tuple(names)


def reading_to_dict(reading: GpuReading) -> dict[str, Any]:
    """A JSON-able dict with every field of ``reading`` (tuples become lists)."""
    out = dataclasses.asdict(reading)
    out["throttle_reasons"] = list(reading.throttle_reasons)
    return out


def reading_from_dict(data: Mapping[str, Any]) -> GpuReading:
    """Rebuild a reading from :func:`reading_to_dict`'s shape; unknown keys are ignored.

    Raises :class:`BadGpuPayload` for a missing required field, a wrong type, a non-finite
    number, or a ``simulated`` that is not a JSON boolean.
    """
    if not isinstance(data, Mapping):
        raise BadGpuPayload(f"GPU reading must be an object, got {type(data).__name__}")
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise BadGpuPayload(f"GPU reading lacks {', '.join(missing)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _FIELDS:
            continue
        if name == "simulated":
            if not isinstance(value, bool):
                raise BadGpuPayload(f"simulated must be a boolean, got {value!r}")
            kwargs[name] = value
        elif name in _STR_FIELDS:
            if not isinstance(value, str):
                raise BadGpuPayload(f"{name} must be a string, got {value!r}")
            kwargs[name] = value
        elif name == "throttle_reasons":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise BadGpuPayload(f"throttle_reasons must be a list of strings, got {value!r}")
            kwargs[name] = tuple(value)
        elif value is None and name.startswith("alloc_"):
            kwargs[name] = None
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise BadGpuPayload(f"{name} must be a finite number, got {value!r}")
            kwargs[name] = int(value) if name in _INT_FIELDS else float(value)
    return GpuReading(**kwargs)


def span_attributes(reading: GpuReading) -> dict[str, Any]:
    """Attributes for the ``warden.model`` span: ``warden.device``, ``warden.simulated`` and
    ``gpu.<field>`` for each numeric field that has a value (the shared naming contract)."""
    attrs: dict[str, Any] = {"warden.device": reading.device,
                             "warden.simulated": reading.simulated}
    for name in _FIELDS:
        if name in ("ts", "device", "simulated", "replica", "throttle_reasons"):
            continue
        value = getattr(reading, name)
        if value is not None:
            attrs[f"gpu.{name}"] = value
    if reading.throttle_reasons:
        attrs["gpu.throttle_reasons"] = ",".join(reading.throttle_reasons)
    return attrs
