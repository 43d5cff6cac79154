"""Durations as admins write them: `30d`, `12h`, `6w`, `6m` (30-day months), `1y` (365 days).

Also how the tool says a duration or the time left, so that every command says the same: whole
days from a day up, hours below it.
"""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"h": 1 / 24, "d": 1, "w": 7, "m": 30, "y": 365}
_PATTERN = re.compile(r"^\s*(\d+)\s*([hdwmy])\s*$", re.IGNORECASE)
# Far beyond anything an option takes, and far below what a timedelta can hold.
_LONGEST = dt.timedelta(days=100 * 365)
DAY = dt.timedelta(days=1)


def parse_duration(text: str, *, option: str, maximum: dt.timedelta | None = None,
                   maximum_text: str = "") -> dt.timedelta:
    """`maximum`: the longest the option accepts, named in the message as `maximum_text` (e.g. "2y")."""
    match = _PATTERN.match(text or "")
    if not match:
        raise ValueError(
            f"{option} {text!r} is not a duration. Write a number and a unit: 12h, 30d, 6w, 6m or 1y."
        )
    number, unit = int(match.group(1)), match.group(2).lower()
    limit = min(maximum, _LONGEST) if maximum is not None else _LONGEST
    if number * _UNITS[unit] > limit.total_seconds() / 86400:
        named = f" ({maximum_text})" if maximum_text and maximum is not None and maximum <= _LONGEST else ""
        raise ValueError(f"{option} {text.strip()!r} is too long: at most {describe(limit)}{named}.")
    return dt.timedelta(days=number * _UNITS[unit])


def describe(delta: dt.timedelta) -> str:
    """`1 day`, `365 days`, `36 hours`, `1 hour`, `less than an hour`: whole days when it is whole
    days (or more than a week), hours otherwise."""
    seconds = delta.total_seconds()
    days = seconds / 86400
    if days >= 7 or (days >= 1 and seconds % 86400 == 0):
        return _plural(round(days), "day")
    hours = round(seconds / 3600)
    if hours < 1:
        return "less than an hour"
    return _plural(hours, "hour")


def time_left(end: dt.datetime, now: dt.datetime) -> str:
    """The time until `end`, as status and rotate-secret both say it."""
    return describe(end - now) if end > now else "no time"


def short_lifetime_warning(option: str, lifetime: dt.timedelta) -> str | None:
    """A secret that expires within a day breaks Cypht's sign-in the next day unless rotated first."""
    if lifetime >= DAY:
        return None
    return (f"{option} {describe(lifetime)} is less than a day: Outlook/Office365 sign-in in Cypht stops "
            "working when the secret expires unless rotate-secret replaces it before. Use it for tests only.")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
