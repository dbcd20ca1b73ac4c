"""Copy rules written as text by traders, parsed into values.

Each parser raises ValueError with a message that names what is wrong, for
the rules form to show next to the field.
"""

from __future__ import annotations

import datetime as dt
import re

from copier.core.rules import TimeWindow

_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_SYMBOL = re.compile(r"^[A-Za-z0-9._:/#-]{1,32}$")
_WINDOW = re.compile(
    r"^(?:(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$"
)


def parse_symbols(text: str) -> frozenset[str]:
    """`EURUSD, XAUUSD` or one per line."""
    symbols = frozenset(s for s in re.split(r"[\s,;]+", text.strip()) if s)
    for symbol in symbols:
        if not _SYMBOL.match(symbol):
            raise ValueError(f"“{symbol}” is not a symbol")
    return symbols


def parse_symbol_map(text: str) -> dict[str, str]:
    """One `MASTER=FOLLOWER` pair per line, e.g. `EURUSD.m=EURUSDpro`."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        master, sep, follower = (part.strip() for part in line.partition("="))
        if not sep or not master or not follower:
            raise ValueError(f"line {number}: write MASTER=FOLLOWER, e.g. EURUSD.m=EURUSDpro")
        for symbol in (master, follower):
            if not _SYMBOL.match(symbol):
                raise ValueError(f"line {number}: “{symbol}” is not a symbol")
        if master in mapping:
            raise ValueError(f"line {number}: {master} is mapped twice")
        mapping[master] = follower
    return mapping


def _time(text: str, number: int) -> dt.time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return dt.time.max
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"line {number}: {text} is not a time of day")
    return dt.time(hours, minutes)


def parse_time_windows(text: str) -> tuple[TimeWindow, ...]:
    """One window per line: `Mon-Fri 08:00-17:00`, `Sun 22:00-23:59`, or `09:30-16:00`."""
    windows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip().lower()
        if not line:
            continue
        match = _WINDOW.match(line)
        if match is None:
            raise ValueError(f"line {number}: write e.g. “Mon-Fri 08:00-17:00” or “22:00-06:00”")
        d1, d2 = match["d1"], match["d2"]
        if d1 is None:
            days = frozenset(range(1, 8))
        else:
            if d1 not in _DAYS or (d2 is not None and d2 not in _DAYS):
                raise ValueError(f"line {number}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
            first, last = _DAYS[d1], _DAYS[d2 or d1]
            span = (
                range(first, last + 1) if first <= last else [*range(first, 8), *range(1, last + 1)]
            )
            days = frozenset(span)
        start, end = _time(match["start"], number), _time(match["end"], number)
        if start == end:
            raise ValueError(f"line {number}: the window starts and ends at the same time")
        windows.append(TimeWindow(start, end, days))
    return tuple(windows)
