"""The canonical master event every venue connector produces."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class EventKind(enum.StrEnum):
    POSITION_OPENED = "position_opened"
    POSITION_CLOSED = "position_closed"


class EventFormatError(ValueError):
    """A wire message that is not a valid master event."""


@dataclass(frozen=True, slots=True)
class MasterEvent:
    """One thing that happened on a master account.

    `source` names the master (for example ``acct:12``); `master_ref` is the
    master's stable position reference; `seq` increases by one per event of
    the source. (source, seq) identifies an event, so a replay is recognised.
    """

    source: str
    seq: int
    kind: EventKind
    master_ref: str
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal
    ts_event_ms: int

    def to_wire(self) -> dict[str, str]:
        return {
            "v": "1",
            "source": self.source,
            "seq": str(self.seq),
            "kind": self.kind.value,
            "master_ref": self.master_ref,
            "symbol": self.symbol,
            "side": self.side.value,
            "volume": str(self.volume),
            "price": str(self.price),
            "ts_event_ms": str(self.ts_event_ms),
        }

    @classmethod
    def from_wire(cls, fields: dict[str, str]) -> MasterEvent:
        try:
            if fields.get("v") != "1":
                raise EventFormatError(f"unsupported event version {fields.get('v')!r}")
            return cls(
                source=fields["source"],
                seq=int(fields["seq"]),
                kind=EventKind(fields["kind"]),
                master_ref=fields["master_ref"],
                symbol=fields["symbol"],
                side=Side(fields["side"]),
                volume=Decimal(fields["volume"]),
                price=Decimal(fields["price"]),
                ts_event_ms=int(fields["ts_event_ms"]),
            )
        except (KeyError, ValueError, InvalidOperation) as e:
            if isinstance(e, EventFormatError):
                raise
            raise EventFormatError(f"bad master event: {e!r}") from e
