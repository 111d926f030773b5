"""One way to write every figure a lesson shows, chosen by the unit at the end of its name.

    one_by_one_s=2.513   -> "2.51 s"      (seconds)
    submit_ms=3.21       -> "3.2 ms"      (milliseconds)
    speedup_x=4.98       -> "5.0x"        (a ratio)
    utilisation_pct=97.4 -> "97%"         (a percentage, 0-100)
    peak_mib=12.34       -> "12.3 MiB"    (memory)

Names without a unit are shown as they are (whole numbers with thousands separators, other
numbers with three significant digits). The label drops the unit: "one by one".
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

UNITS = {
    "_s": lambda v: f"{v:.2f} s" if abs(v) < 100 else f"{v:,.0f} s",
    "_ms": lambda v: f"{v:.1f} ms",
    "_x": lambda v: f"{v:.1f}x",
    "_pct": lambda v: f"{v:.0f}%",
    "_mib": lambda v: f"{v:.1f} MiB",
}


def unit_of(name: str) -> str | None:
    return next((suffix for suffix in UNITS if name.endswith(suffix)), None)


def label(name: str) -> str:
    """"one_by_one_s" -> "one by one": the name a learner reads."""
    suffix = unit_of(name)
    if suffix:
        name = name[: -len(suffix)]
    return name.replace("_", " ").strip()


def figure(name: str, value: Any) -> str:
    """The value as the learner reads it, with the unit its name carries."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    suffix = unit_of(name)
    if isinstance(value, timedelta):
        return f"{value.total_seconds():,.0f} s"
    if isinstance(value, (list, tuple)):
        return ", ".join(figure(name, item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{label(key)} {figure(key, item)}" for key, item in value.items())
    if isinstance(value, (int, float)) and suffix:
        return UNITS[suffix](value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)
