from __future__ import annotations

import datetime as dt

import pytest

from cypht_azure.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "days"),
    [("30d", 30), ("1y", 365), ("2y", 730), ("6m", 180), ("2w", 14), ("48h", 2), (" 7D ", 7)],
)
def test_durations(text: str, days: float) -> None:
    assert parse_duration(text, option="--x") == dt.timedelta(days=days)


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1.5d", "30 days", "P30D", "1x"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--x"):
        parse_duration(text, option="--x")
