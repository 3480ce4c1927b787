"""Monthly periods ("YYYY-MM") and their bounds. Time comes only from the period, never from a clock."""

from __future__ import annotations

from datetime import date, datetime


def is_period(text: str) -> bool:
    """Whether ``text`` is a month "YYYY-MM" (month 01..12): the one check the config and the CLI share."""
    return (
        len(text) == 7
        and text[4] == "-"
        and text[:4].isdigit()
        and text[5:].isdigit()
        and 1 <= int(text[5:]) <= 12
    )


def bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a month as naive datetimes."""
    year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1)
    end = datetime(year + month // 12, month % 12 + 1, 1)
    return start, end


def as_of(period: str) -> date:
    """The as-of date of a period: the first day after its month."""
    return bounds(period)[1].date()


def shift(period: str, months: int) -> str:
    index = int(period[:4]) * 12 + int(period[5:7]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(first: str, last: str) -> list[str]:
    """Every period from ``first`` to ``last`` inclusive."""
    out, current = [], first
    while current <= last:
        out.append(current)
        current = shift(current, 1)
    return out
