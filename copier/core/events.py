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

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class EventKind(enum.StrEnum):
    POSITION_OPENED = "position_opened"
    POSITION_MODIFIED = "position_modified"
    POSITION_PARTIALLY_CLOSED = "position_partially_closed"
    POSITION_CLOSED = "position_closed"
    ORDER_PLACED = "order_placed"
    ORDER_MODIFIED = "order_modified"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_FILLED = "order_filled"

    @property
    def is_order(self) -> bool:
        return self.value.startswith("order_")


class EventFormatError(ValueError):
    """A wire message that is not a valid master event."""


@dataclass(frozen=True, slots=True)
class MasterEvent:
    """One thing that happened on a master account.

    `source` names the master (for example ``acct:12``); `seq` increases by
    one per event of the source, so (source, seq) identifies an event and a
    replay is recognised. `master_ref` is the master's stable reference of the
    position or pending order the event is about.

    - `volume`: the position's or order's volume; for a partial close, the
      volume closed, with `remaining_volume` what stays open.
    - `price`: the fill price, or a pending order's price.
    - `position_ref`: for ORDER_FILLED, the position the order became.
    - `master_balance` / `master_equity`: the master account at the event,
      for ratio sizing.
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
    order_type: OrderType = OrderType.MARKET
    sl: Decimal | None = None
    tp: Decimal | None = None
    remaining_volume: Decimal | None = None
    position_ref: str | None = None
    master_balance: Decimal | None = None
    master_equity: Decimal | None = None
    # Units in one lot on the master's venue (100 oz for gold, 1 BTC, ...),
    # so a follower on another venue can size in its own units.
    contract_size: Decimal | None = None

    def to_wire(self) -> dict[str, str]:
        wire = {
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
            "order_type": self.order_type.value,
        }
        for name in _OPTIONAL_DECIMALS:
            value = getattr(self, name)
            if value is not None:
                wire[name] = str(value)
        if self.position_ref is not None:
            wire["position_ref"] = self.position_ref
        return wire

    @classmethod
    def from_wire(cls, fields: dict[str, str]) -> MasterEvent:
        if fields.get("v") != "1":
            raise EventFormatError(f"unsupported event version {fields.get('v')!r}")
        try:
            optional = {
                name: _finite(fields[name], name) for name in _OPTIONAL_DECIMALS if name in fields
            }
            return cls(
                source=fields["source"],
                seq=int(fields["seq"]),
                kind=EventKind(fields["kind"]),
                master_ref=fields["master_ref"],
                symbol=fields["symbol"],
                side=Side(fields["side"]),
                volume=_finite(fields["volume"], "volume"),
                price=_finite(fields["price"], "price"),
                ts_event_ms=int(fields["ts_event_ms"]),
                order_type=OrderType(fields.get("order_type", "market")),
                position_ref=fields.get("position_ref"),
                **optional,
            )
        except (KeyError, ValueError, InvalidOperation) as e:
            raise EventFormatError(f"bad master event: {e!r}") from e


def _finite(text: str, name: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise EventFormatError(f"{name} must be a finite number, not {text!r}")
    return value


_OPTIONAL_DECIMALS = (
    "sl",
    "tp",
    "remaining_volume",
    "master_balance",
    "master_equity",
    "contract_size",
)


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A master event without its source and sequence: what a detector or a signal
    produces; whoever stores it numbers it (`to_event`)."""

    kind: EventKind
    master_ref: str
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal
    ts_ms: int
    order_type: OrderType = OrderType.MARKET
    sl: Decimal | None = None
    tp: Decimal | None = None
    remaining_volume: Decimal | None = None
    position_ref: str | None = None

    def to_event(
        self,
        source: str,
        seq: int,
        *,
        master_balance: Decimal | None = None,
        master_equity: Decimal | None = None,
        contract_size: Decimal | None = None,
    ) -> MasterEvent:
        return MasterEvent(
            source=source,
            seq=seq,
            kind=self.kind,
            master_ref=self.master_ref,
            symbol=self.symbol,
            side=self.side,
            volume=self.volume,
            price=self.price,
            ts_event_ms=self.ts_ms,
            order_type=self.order_type,
            sl=self.sl,
            tp=self.tp,
            remaining_volume=self.remaining_volume,
            position_ref=self.position_ref,
            master_balance=master_balance,
            master_equity=master_equity,
            contract_size=contract_size,
        )
