"""Exchange fills as position events: the lot book of one master account.

An exchange reports trades (fills), not positions with tickets. The lot book
turns them into the canonical events the planner understands:

- a fill that adds to a side opens a new *lot*, a position with its own
  master reference (the exchange order id; a later fill of the same order
  gets ``<order id>.2``, ``.3``, ...), so every follower copies it as one
  position and closes it when the master reduces;
- a fill that reduces a side closes lots first in, first out: a lot taken
  whole is POSITION_CLOSED, a lot taken in part is POSITION_PARTIALLY_CLOSED;
- what the master held before the copier started watching (the *baseline*)
  was never copied, so reductions use up copied lots first and the baseline
  last: whenever the master reduces, followers reduce;
- on spot, a sell beyond the copied lots and the baseline sells coins bought
  before watching and is ignored; on a derivatives account in one-way
  (netting) mode, the excess reverses the position and opens a lot on the
  other side; in hedge mode each position side has its own lots.

Fills are deduplicated by trade id, so a REST resync after a websocket
reconnect can replay an overlap without counting a fill twice. The state is
a plain value (`to_dict` / `from_dict`) saved with the events it produced, in
one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from copier.core.events import EventDraft, EventKind, Side

ZERO = Decimal(0)
# Trade ids are remembered this long behind the newest fill: a resync asks the
# exchange for fills since the cursor minus this overlap.
SEEN_WINDOW_MS = 10 * 60 * 1000
# A resync asks for fills from this long before the newest one it has: fills
# can be reported late, and the seen set makes the overlap free.
RESYNC_OVERLAP_MS = 2 * 60 * 1000


class PositionSide:
    """Which position a fill belongs to: one-way accounts have one per symbol."""

    NET = "net"
    LONG = "long"
    SHORT = "short"


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: str
    order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    ts_ms: int
    # NET for spot and one-way derivatives; LONG/SHORT in hedge mode.
    position_side: str = PositionSide.NET


@dataclass(slots=True)
class Lot:
    ref: str
    side: Side
    volume: Decimal
    price: Decimal

    def to_list(self) -> list[str]:
        return [self.ref, self.side.value, str(self.volume), str(self.price)]


@dataclass(slots=True)
class Book:
    """Lots per (symbol, position side), oldest first."""

    spot: bool
    lots: dict[str, list[Lot]] = field(default_factory=dict)
    # Held before watching, signed (+ long / - short), per (symbol, side) key.
    baseline: dict[str, Decimal] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # trade id -> ts
    cursor_ms: int = 0  # newest fill applied
    start_ms: int = 0  # fills before watching started are history, not copied
    order_fills: dict[str, int] = field(default_factory=dict)  # order id -> lots opened

    # -- state as a value ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "spot": self.spot,
            "lots": {k: [lot.to_list() for lot in v] for k, v in self.lots.items() if v},
            "baseline": {k: str(v) for k, v in self.baseline.items() if v},
            "seen": dict(self.seen),
            "cursor_ms": self.cursor_ms,
            "start_ms": self.start_ms,
            "order_fills": dict(self.order_fills),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Book:
        return cls(
            spot=bool(data.get("spot", True)),
            lots={
                k: [Lot(r, Side(s), Decimal(v), Decimal(p)) for r, s, v, p in rows]
                for k, rows in (data.get("lots") or {}).items()
            },
            baseline={k: Decimal(v) for k, v in (data.get("baseline") or {}).items()},
            seen={str(k): int(v) for k, v in (data.get("seen") or {}).items()},
            cursor_ms=int(data.get("cursor_ms") or 0),
            start_ms=int(data.get("start_ms") or 0),
            order_fills={str(k): int(v) for k, v in (data.get("order_fills") or {}).items()},
        )

    # -- reading --------------------------------------------------------------------

    @staticmethod
    def key(symbol: str, position_side: str = PositionSide.NET) -> str:
        return f"{symbol}|{position_side}"

    def open_lots(self, symbol: str, position_side: str = PositionSide.NET) -> list[Lot]:
        return list(self.lots.get(self.key(symbol, position_side), []))

    def copied(self, symbol: str, position_side: str = PositionSide.NET) -> Decimal:
        """The signed volume of copied lots (+ long, - short)."""
        return sum(
            (
                lot.volume * lot.side.sign
                for lot in self.lots.get(self.key(symbol, position_side), [])
            ),
            ZERO,
        )

    def symbols(self) -> set[str]:
        keys = [k for k, v in self.lots.items() if v] + [k for k, v in self.baseline.items() if v]
        return {k.rsplit("|", 1)[0] for k in keys}

    # -- applying fills -----------------------------------------------------------

    def set_baseline(self, symbol: str, signed_volume: Decimal, position_side: str) -> None:
        self.baseline[self.key(symbol, position_side)] = signed_volume

    def resync_since(self) -> int:
        """Where a REST resync starts: an overlap behind the newest fill, never before start."""
        return max(self.start_ms, self.cursor_ms - RESYNC_OVERLAP_MS)

    def apply_all(self, fills: Iterable[Fill]) -> list[EventDraft]:
        """Apply new fills in time order; fills seen before are skipped."""
        events: list[EventDraft] = []
        for fill in sorted(fills, key=lambda f: (f.ts_ms, f.trade_id)):
            events.extend(self.apply(fill))
        return events

    def apply(self, fill: Fill) -> list[EventDraft]:
        if fill.trade_id in self.seen or fill.amount <= 0 or fill.ts_ms < self.start_ms:
            return []
        self.seen[fill.trade_id] = fill.ts_ms
        self.cursor_ms = max(self.cursor_ms, fill.ts_ms)
        horizon = self.cursor_ms - SEEN_WINDOW_MS
        if len(self.seen) > 64:
            self.seen = {t: ts for t, ts in self.seen.items() if ts >= horizon}

        key = self.key(fill.symbol, fill.position_side)
        lots = self.lots.setdefault(key, [])
        if fill.position_side == PositionSide.LONG:
            adds = fill.side is Side.BUY
        elif fill.position_side == PositionSide.SHORT:
            adds = fill.side is Side.SELL
        elif self.spot:
            adds = fill.side is Side.BUY
        else:
            net = self.copied(fill.symbol) + self.baseline.get(key, ZERO)
            adds = net == 0 or (net > 0) == (fill.side is Side.BUY)
        if adds:
            return [self._open(lots, fill, fill.amount)]
        events, left = self._reduce(lots, key, fill)
        if left > 0 and fill.position_side == PositionSide.NET and not self.spot:
            # One-way derivatives: the fill went through zero and reversed.
            events.append(self._open(lots, fill, left))
        return events

    def _open(self, lots: list[Lot], fill: Fill, amount: Decimal) -> EventDraft:
        n = self.order_fills.get(fill.order_id, 0) + 1
        self.order_fills[fill.order_id] = n
        if len(self.order_fills) > 4096:
            for old in list(self.order_fills)[:1024]:
                del self.order_fills[old]
        ref = fill.order_id if n == 1 else f"{fill.order_id}.{n}"
        side = fill.side
        if fill.position_side == PositionSide.LONG:
            side = Side.BUY
        elif fill.position_side == PositionSide.SHORT:
            side = Side.SELL
        lots.append(Lot(ref, side, amount, fill.price))
        return EventDraft(
            EventKind.POSITION_OPENED, ref, fill.symbol, side, amount, fill.price, fill.ts_ms
        )

    def _reduce(self, lots: list[Lot], key: str, fill: Fill) -> tuple[list[EventDraft], Decimal]:
        events: list[EventDraft] = []
        left = fill.amount
        while left > 0 and lots:
            lot = lots[0]
            if lot.volume <= left:
                left -= lot.volume
                lots.pop(0)
                events.append(
                    EventDraft(
                        EventKind.POSITION_CLOSED,
                        lot.ref,
                        fill.symbol,
                        lot.side,
                        lot.volume,
                        fill.price,
                        fill.ts_ms,
                    )
                )
            else:
                lot.volume -= left
                events.append(
                    EventDraft(
                        EventKind.POSITION_PARTIALLY_CLOSED,
                        lot.ref,
                        fill.symbol,
                        lot.side,
                        left,
                        fill.price,
                        fill.ts_ms,
                        remaining_volume=lot.volume,
                    )
                )
                left = ZERO
        base = self.baseline.get(key, ZERO)
        if left > 0 and base:
            used = min(left, abs(base))
            self.baseline[key] = base - used * (1 if base > 0 else -1)
            left -= used
        return events, left
