"""Durations as admins write them: `30d`, `12h`, `6w`, `6m` (30-day months), `1y` (365 days)."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"h": 1 / 24, "d": 1, "w": 7, "m": 30, "y": 365}
_PATTERN = re.compile(r"^\s*(\d{1,5})\s*([hdwmy])\s*$", re.IGNORECASE)


def parse_duration(text: str, *, option: str) -> dt.timedelta:
    match = _PATTERN.match(text or "")
    if not match:
        raise ValueError(
            f"{option} {text!r} is not a duration. Write a number and a unit: 12h, 30d, 6w, 6m or 1y."
        )
    number, unit = int(match.group(1)), match.group(2).lower()
    return dt.timedelta(days=number * _UNITS[unit])


def describe(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days >= 1:
        return f"{days:.0f} days" if days != 1 else "1 day"
    return f"{delta.total_seconds() / 3600:.0f} hours"
