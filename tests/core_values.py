"""Values the pure-core tests share: a gold instrument and a master's gold buy."""

import dataclasses
from decimal import Decimal as D

from copier.core import EventKind, Instrument, MasterEvent, Side

XAU = Instrument("XAUUSD", D("0.01"), D("0.01"), D("50"), D("100"), 2)

GOLD_BUY = MasterEvent(
    source="acct:1",
    seq=1,
    kind=EventKind.POSITION_OPENED,
    master_ref="P7",
    symbol="XAUUSD",
    side=Side.BUY,
    volume=D("1"),
    price=D("2350.10"),
    ts_event_ms=1_700_000_000_000,
)


def master_event(**changes: object) -> MasterEvent:
    """A master buying 1 lot of XAUUSD at 2350.10, with `changes` applied."""
    return dataclasses.replace(GOLD_BUY, **changes)  # type: ignore[arg-type]
