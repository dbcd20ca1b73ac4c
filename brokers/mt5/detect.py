"""MetaTrader 5 master detection: poll-and-diff of `positions_get()` and `orders_get()`.

The terminal agent calls `positions_get()` and `orders_get()` every few
milliseconds (10 ms by default) and hands both answers to `Detector.poll`,
which compares them with the previous answers and returns what changed as
`Change` values. A change is everything a `MasterEvent` needs except `source`
and `seq`, which the caller assigns (`Change.to_event`). Pure: no I/O, no
clock, no Django, and no `MetaTrader5` import; the rows are the package's
named tuples (`TradePosition`, `TradeOrder`), or anything with those fields.

`Detector.start` takes the first snapshot: positions and pending orders open
before watching are not reported as new, but their later changes are.

Master references: a position is ``P<ticket>``, a pending order ``O<ticket>``,
as Paper does it. MT5 sets a position's `identifier` to the ticket of the
order that opened it.

The rules:

- **Opened**: a new position ticket is POSITION_OPENED (`price_open`,
  `time_msc`). If a pending order whose ticket equals the position's
  `identifier` disappeared in the same poll, the order became the position:
  one ORDER_FILLED (``O<order>``, `position_ref` ``P<ticket>``) instead of
  ORDER_CANCELLED + POSITION_OPENED.
- **Modified**: SL or TP changed: POSITION_MODIFIED (0.0, MT5's "none", is
  None).
- **Partially closed**: the volume decreased: POSITION_PARTIALLY_CLOSED with
  `volume` the decrease and `remaining_volume` the new volume, at
  `price_current`. Two partial closes between two polls are seen as one
  decrease and reported as one event: the diff sees states, not deals.
- **Closed**: the ticket disappeared: POSITION_CLOSED at the exit price and
  time of the closing deal, asked through the caller's `exit_price(ticket)`
  (`history_deals_get(position=ticket)`, see `closing_deal`). The terminal
  writes history a little after it removes the position; when no closing
  deal is found yet, the position's last seen `price_current` is the exit
  price, and the time is the poll's `now_ms`.
- **Close and re-open within one poll**: the old ticket's POSITION_CLOSED
  comes before the new ticket's POSITION_OPENED, even on the same symbol.
- **Netting accounts** can grow a position or reverse it under one ticket
  (hedging accounts, the common case for copiers, never do). They are handled
  like the exchange lot book (`copier.core.lots`): a volume increase opens a
  new *lot*, POSITION_OPENED of the increase with reference
  ``P<ticket>.<n>`` (n = 2, 3, ...) at `price_current`, so followers copy it
  as a position of its own; a later decrease closes lots first in, first out
  (a lot taken whole is POSITION_CLOSED, a lot taken in part
  POSITION_PARTIALLY_CLOSED); an SL/TP change modifies every open lot; the
  ticket's disappearance closes every open lot. A reversal (the position's
  type changes) closes every lot and opens one lot of the new side and
  volume, at the new `price_open`.
- **Pending orders** (types BUY/SELL LIMIT, STOP, STOP LIMIT) are
  ORDER_PLACED, ORDER_MODIFIED (price, SL, TP, volume, stop-limit price or
  type changed) or ORDER_CANCELLED (gone and no new position came from it:
  cancelled, expired, or filled into an existing netting position). Market
  orders in flight (BUY, SELL, CLOSE_BY), which `orders_get()` can show for a
  moment, are ignored. A stop-limit order is reported as a stop at its
  trigger price, because the planner knows limit and stop orders only;
  when it triggers, MT5's limit order is reported by the same rules
  (ORDER_MODIFIED if the ticket stays, else cancelled and placed).

Order of the changes in one poll: positions gone (closed), by ticket; then
positions still open, by ticket (for one ticket, reductions before the SL/TP
modification); pending
orders cancelled, by ticket; modified, by ticket; new positions (ORDER_FILLED
or POSITION_OPENED) and netting increases, by ticket; orders placed, by ticket.
Reductions come before openings so that a follower's position limit is freed
before it is used.

Times: MT5's `time_msc` fields are the trade server's wall clock written as
if it were UTC; `server_offset_ms` (the server's UTC offset) is subtracted
from them. Pending order changes carry no time in MT5: they take `now_ms`,
the caller's UTC clock, or without it the newest terminal time in the poll.

Prices and volumes: the terminal gives floats; they become `Decimal` through
`repr` (`dec`), only for rows that changed. The steady state (only
`price_current`, `profit`, `swap` or times changed) compares one small tuple
per row and builds no Decimal.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from brokers.venues.base import VenueUnavailable
from copier.core.events import EventDraft, EventKind, OrderType, Side

__all__ = [
    "DEFAULT_INTERVAL_S",
    "Change",
    "DealRow",
    "Detector",
    "ExitPrice",
    "OrderRow",
    "PositionRow",
    "closing_deal",
    "dec",
]

DEFAULT_INTERVAL_S = 0.010

# MetaTrader5 constants, as the package documents them.
POSITION_TYPE_BUY, POSITION_TYPE_SELL = 0, 1
DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT, DEAL_ENTRY_OUT_BY = 0, 1, 2, 3

_POSITION_SIDE = {POSITION_TYPE_BUY: Side.BUY, POSITION_TYPE_SELL: Side.SELL}
# Pending order types only: ORDER_TYPE_BUY_LIMIT (2) ... SELL_STOP_LIMIT (7).
_PENDING = {
    2: (Side.BUY, OrderType.LIMIT),
    3: (Side.SELL, OrderType.LIMIT),
    4: (Side.BUY, OrderType.STOP),
    5: (Side.SELL, OrderType.STOP),
    6: (Side.BUY, OrderType.STOP),
    7: (Side.SELL, OrderType.STOP),
}

# What the steady state compares, per row: built in C, no Decimal.
_TICKET = operator.attrgetter("ticket")
# The ticket comes first; the answers' order is compared too, which costs
# nothing when the terminal keeps it (it lists in opening order), and a
# reordered answer only takes the slower path to find no change.
_POSITION_KEY = operator.attrgetter("ticket", "type", "volume", "sl", "tp")
_ORDER_KEY = operator.attrgetter(
    "ticket", "type", "volume_current", "price_open", "sl", "tp", "price_stoplimit"
)


class PositionRow(Protocol):
    """The fields of MetaTrader5's `TradePosition` the detector reads."""

    @property
    def ticket(self) -> int: ...
    @property
    def time_msc(self) -> int: ...
    @property
    def time_update_msc(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def identifier(self) -> int: ...
    @property
    def volume(self) -> float: ...
    @property
    def price_open(self) -> float: ...
    @property
    def sl(self) -> float: ...
    @property
    def tp(self) -> float: ...
    @property
    def price_current(self) -> float: ...
    @property
    def symbol(self) -> str: ...


class OrderRow(Protocol):
    """The fields of MetaTrader5's `TradeOrder` the detector reads."""

    @property
    def ticket(self) -> int: ...
    @property
    def time_setup_msc(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def volume_current(self) -> float: ...
    @property
    def price_open(self) -> float: ...
    @property
    def sl(self) -> float: ...
    @property
    def tp(self) -> float: ...
    @property
    def price_stoplimit(self) -> float: ...
    @property
    def symbol(self) -> str: ...


class DealRow(Protocol):
    """The fields of MetaTrader5's `TradeDeal` that `closing_deal` reads."""

    @property
    def ticket(self) -> int: ...
    @property
    def time_msc(self) -> int: ...
    @property
    def entry(self) -> int: ...
    @property
    def volume(self) -> float: ...
    @property
    def price(self) -> float: ...


# exit_price(position_ticket) -> (price, deal time_msc in server time) or None.
ExitPrice = Callable[[int], tuple[Decimal, int] | None]


def dec(value: float) -> Decimal:
    """A terminal float as the decimal the terminal meant.

    `Decimal(0.1)` is the double's exact binary value,
    0.1000000000000000055511151231257827..., so volumes would not subtract
    cleanly (1.0 - 0.7 lots) nor compare equal to the follower's step.
    `repr` gives the shortest text that reads back as the same double, which
    for a price or volume the terminal rounded to the symbol's digits is that
    rounded value: `dec(0.1) == Decimal("0.1")`. A whole number loses its
    ".0", so 1 lot reads "1" on the wire, as Paper writes it.
    """
    text = repr(value)
    return Decimal(text[:-2] if text.endswith(".0") else text)


def _level(value: float) -> Decimal | None:
    """SL, TP: MT5 writes 0.0 for "not set"."""
    return dec(value) if value else None


# Everything a `MasterEvent` needs except its source and sequence number.
Change = EventDraft


@dataclass(slots=True)
class _Lot:
    ref: str
    side: Side
    volume: Decimal


@dataclass(slots=True)
class _Lots:
    """A netting position that grew or reversed: its lots, oldest first."""

    lots: list[_Lot]
    opened: int  # lots opened so far under this ticket, for numbering


@dataclass(slots=True)
class _Poll:
    """The changes of one poll, in their groups (see the module's order)."""

    closed: list[Change] = field(default_factory=list)
    still_open: list[tuple[int, Change]] = field(default_factory=list)
    cancelled: list[Change] = field(default_factory=list)
    modified: list[Change] = field(default_factory=list)
    opened: list[tuple[int, Change]] = field(default_factory=list)
    placed: list[Change] = field(default_factory=list)

    def ordered(self) -> list[Change]:
        self.still_open.sort(key=_first)
        self.opened.sort(key=_first)
        return [
            *self.closed,
            *(c for _, c in self.still_open),
            *self.cancelled,
            *self.modified,
            *(c for _, c in self.opened),
            *self.placed,
        ]


def _first(pair: tuple[int, Change]) -> int:
    return pair[0]


class Detector:
    """Poll-and-diff of one MT5 account's positions and pending orders.

    `start(positions, orders)` takes the snapshot; then each
    `poll(positions, orders, exit_price)` returns the changes since the
    previous call. The rows passed are kept until the next call (the last
    `price_current` of a position that disappears is its fallback exit
    price), so pass the terminal's tuples, not a list you reuse.
    """

    def __init__(
        self, *, server_offset_ms: int = 0, interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the poll interval must be positive")
        self.server_offset_ms = server_offset_ms
        self.interval_s = interval_s
        self.started = False
        self._positions: Sequence[PositionRow] = ()
        self._orders: Sequence[OrderRow] = ()
        self._position_keys: list[Any] = []
        self._order_keys: list[Any] = []
        self._lots: dict[int, _Lots] = {}
        self._latest_ms = 0

    # -- the steady state ---------------------------------------------------------

    def start(
        self, positions: Sequence[PositionRow] | None, orders: Sequence[OrderRow] | None
    ) -> None:
        """Take the snapshot: what is open now is known, not new. No changes."""
        positions, orders = _answered(positions, orders)
        self._positions, self._orders = positions, orders
        self._position_keys = list(map(_POSITION_KEY, positions))
        self._order_keys = list(map(_ORDER_KEY, orders))
        self._lots = {}
        self._latest_ms = self._newest_ms(positions, orders)
        self.started = True

    def poll(
        self,
        positions: Sequence[PositionRow] | None,
        orders: Sequence[OrderRow] | None,
        exit_price: ExitPrice,
        now_ms: int | None = None,
    ) -> list[Change]:
        """The changes since the previous poll (or `start`), in a deterministic order.

        `positions` and `orders` are `positions_get()` and `orders_get()`.
        `None`, the package's answer when the terminal fails, raises
        `VenueUnavailable` and leaves the snapshot as it was: an empty answer
        would otherwise read as "everything closed". `exit_price(ticket)` is
        called once per disappeared position, for its closing deal's price
        and time (`closing_deal`); an exception from it goes to the caller and
        also leaves the snapshot as it was. `now_ms` is the caller's UTC wall clock,
        the time of changes MT5 gives no time for.
        """
        if not self.started:
            raise RuntimeError("Detector.start() takes the snapshot before the first poll")
        positions, orders = _answered(positions, orders)
        position_keys = list(map(_POSITION_KEY, positions))
        order_keys = list(map(_ORDER_KEY, orders))
        if position_keys == self._position_keys and order_keys == self._order_keys:
            self._positions, self._orders = positions, orders
            return []
        changes = self._diff(positions, orders, position_keys, order_keys, exit_price, now_ms)
        self._positions, self._orders = positions, orders
        self._position_keys, self._order_keys = position_keys, order_keys
        return changes

    # -- what changed ---------------------------------------------------------------

    def _diff(
        self,
        positions: Sequence[PositionRow],
        orders: Sequence[OrderRow],
        position_key_list: list[Any],
        order_key_list: list[Any],
        exit_price: ExitPrice,
        now_ms: int | None,
    ) -> list[Change]:
        out = _Poll()
        now = self._now(positions, orders, now_ms)

        old_tickets = set(map(_FIRST, self._position_keys))
        new_tickets = set(map(_FIRST, position_key_list))
        gone = old_tickets - new_tickets
        born = new_tickets - old_tickets
        # The key tuples not seen last time: positions that changed, and new ones.
        fresh = set(position_key_list).difference(self._position_keys)
        changed = {key[0] for key in fresh} - born
        old_rows = _rows(self._positions) if gone or changed else {}
        new_rows = _rows(positions) if born or changed else {}
        # Asked before anything changes: if the caller's history call raises,
        # the detector is as it was and the next poll finds the same closes.
        exits = [(ticket, exit_price(ticket)) for ticket in sorted(gone)]
        for ticket, deal in exits:
            self._closed(old_rows[ticket], deal, now, out)
        for ticket in sorted(changed):
            self._changed(old_rows[ticket], new_rows[ticket], out)

        if order_key_list == self._order_keys:
            old_orders = new_orders = old_order_keys = {}
        else:
            old_orders = {o.ticket: o for o in self._orders if o.type in _PENDING}
            new_orders = {o.ticket: o for o in orders if o.type in _PENDING}
            old_order_keys = _by_ticket(self._order_keys)
        gone_orders = old_orders.keys() - new_orders.keys()
        filled: set[int] = set()
        for ticket in sorted(born):
            row = new_rows[ticket]
            order = old_orders.get(row.identifier) if row.identifier in gone_orders else None
            if order is not None:
                filled.add(order.ticket)
            out.opened.append((ticket, self._opened(row, order)))

        for ticket in sorted(gone_orders - filled):
            gone_order = old_orders[ticket]
            out.cancelled.append(self._order_change(EventKind.ORDER_CANCELLED, gone_order, now()))
        for ticket in sorted(new_orders.keys() & old_orders.keys()):
            if _ORDER_KEY(new_orders[ticket]) != old_order_keys[ticket]:
                change = self._order_change(EventKind.ORDER_MODIFIED, new_orders[ticket], now())
                out.modified.append(change)
        for ticket in sorted(new_orders.keys() - old_orders.keys()):
            order = new_orders[ticket]
            placed_ms = self._server_to_utc(order.time_setup_msc)
            out.placed.append(self._order_change(EventKind.ORDER_PLACED, order, placed_ms))
        return out.ordered()

    def _now(
        self, positions: Sequence[PositionRow], orders: Sequence[OrderRow], now_ms: int | None
    ) -> Callable[[], int]:
        """The time of a change MT5 gives no time for: `now_ms`, else the newest
        terminal time seen, looked up only when such a change happens."""
        found: list[int] = []

        def now() -> int:
            if now_ms is not None:
                return now_ms
            if not found:
                self._latest_ms = max(self._latest_ms, self._newest_ms(positions, orders))
                found.append(self._latest_ms)
            return found[0]

        return now

    def _closed(
        self,
        row: PositionRow,
        deal: tuple[Decimal, int] | None,
        now: Callable[[], int],
        out: _Poll,
    ) -> None:
        if deal is not None:
            price, ts = deal[0], self._server_to_utc(deal[1])
        else:  # the terminal's history has not caught up: the last price seen
            price, ts = dec(row.price_current), now()
        sl, tp = _level(row.sl), _level(row.tp)
        lots = self._lots.pop(row.ticket, None)
        if lots is None:
            side = _POSITION_SIDE[row.type]
            out.closed.append(
                Change(
                    EventKind.POSITION_CLOSED,
                    f"P{row.ticket}",
                    row.symbol,
                    side,
                    dec(row.volume),
                    price,
                    ts,
                    sl=sl,
                    tp=tp,
                )
            )
            return
        for lot in lots.lots:
            out.closed.append(
                Change(
                    EventKind.POSITION_CLOSED,
                    lot.ref,
                    row.symbol,
                    lot.side,
                    lot.volume,
                    price,
                    ts,
                    sl=sl,
                    tp=tp,
                )
            )

    def _opened(self, row: PositionRow, order: OrderRow | None) -> Change:
        side = _POSITION_SIDE[row.type]
        ts = self._server_to_utc(row.time_msc)
        volume, price = dec(row.volume), dec(row.price_open)
        sl, tp = _level(row.sl), _level(row.tp)
        if order is None:
            kind, ref, order_type, position_ref = (
                EventKind.POSITION_OPENED,
                f"P{row.ticket}",
                OrderType.MARKET,
                None,
            )
        else:
            kind, ref, order_type, position_ref = (
                EventKind.ORDER_FILLED,
                f"O{order.ticket}",
                _PENDING[order.type][1],
                f"P{row.ticket}",
            )
        return Change(
            kind,
            ref,
            row.symbol,
            side,
            volume,
            price,
            ts,
            order_type=order_type,
            sl=sl,
            tp=tp,
            position_ref=position_ref,
        )

    def _changed(self, old: PositionRow, new: PositionRow, out: _Poll) -> None:
        """A position still open whose type, volume, SL or TP changed."""
        ticket = new.ticket
        ts = self._server_to_utc(new.time_update_msc)
        sl, tp = _level(new.sl), _level(new.tp)
        if new.type != old.type:  # a netting position reversed
            price = dec(new.price_open)
            for lot in self._lots_of(old).lots:
                change = Change(
                    EventKind.POSITION_CLOSED, lot.ref, new.symbol, lot.side, lot.volume, price, ts
                )
                out.still_open.append((ticket, change))
            lots = self._lots[ticket]
            lots.lots = []
            out.opened.append((ticket, self._add_lot(new, lots, dec(new.volume), price, ts)))
            return
        if new.volume != old.volume:
            before, after = dec(old.volume), dec(new.volume)
            if after < before:
                self._reduce(new, before - after, ts, out)
            else:
                lots = self._lots_of(old)
                change = self._add_lot(new, lots, after - before, dec(new.price_current), ts)
                out.opened.append((ticket, change))
        if new.sl != old.sl or new.tp != old.tp:
            price = dec(new.price_open)
            held = self._lots.get(ticket)
            if held is None:
                pairs = [(f"P{ticket}", dec(new.volume))]
            else:
                pairs = [(lot.ref, lot.volume) for lot in held.lots]
            side = _POSITION_SIDE[new.type]
            for ref, volume in pairs:
                change = Change(
                    EventKind.POSITION_MODIFIED,
                    ref,
                    new.symbol,
                    side,
                    volume,
                    price,
                    ts,
                    sl=sl,
                    tp=tp,
                )
                out.still_open.append((ticket, change))

    def _reduce(self, row: PositionRow, taken: Decimal, ts: int, out: _Poll) -> None:
        """A volume decrease: the lots closed first in, first out."""
        price, sl, tp = dec(row.price_current), _level(row.sl), _level(row.tp)
        held = self._lots.get(row.ticket)
        if held is None:
            change = Change(
                EventKind.POSITION_PARTIALLY_CLOSED,
                f"P{row.ticket}",
                row.symbol,
                _POSITION_SIDE[row.type],
                taken,
                price,
                ts,
                sl=sl,
                tp=tp,
                remaining_volume=dec(row.volume),
            )
            out.still_open.append((row.ticket, change))
            return
        lots = held.lots
        while taken > 0 and lots:
            lot = lots[0]
            if lot.volume <= taken:
                taken -= lot.volume
                lots.pop(0)
                kind, volume, remaining = EventKind.POSITION_CLOSED, lot.volume, None
            else:
                lot.volume -= taken
                kind, volume, remaining = EventKind.POSITION_PARTIALLY_CLOSED, taken, lot.volume
                taken = Decimal(0)
            change = Change(
                kind,
                lot.ref,
                row.symbol,
                lot.side,
                volume,
                price,
                ts,
                sl=sl,
                tp=tp,
                remaining_volume=remaining,
            )
            out.still_open.append((row.ticket, change))

    def _lots_of(self, row: PositionRow) -> _Lots:
        """The ticket's lots, made explicit the first time a netting position grows."""
        held = self._lots.get(row.ticket)
        if held is None:
            lot = _Lot(f"P{row.ticket}", _POSITION_SIDE[row.type], dec(row.volume))
            held = self._lots[row.ticket] = _Lots([lot], 1)
        return held

    def _add_lot(
        self, row: PositionRow, lots: _Lots, volume: Decimal, price: Decimal, ts: int
    ) -> Change:
        lots.opened += 1
        side = _POSITION_SIDE[row.type]
        lot = _Lot(f"P{row.ticket}.{lots.opened}", side, volume)
        lots.lots.append(lot)
        return Change(
            EventKind.POSITION_OPENED,
            lot.ref,
            row.symbol,
            side,
            volume,
            price,
            ts,
            sl=_level(row.sl),
            tp=_level(row.tp),
        )

    def _order_change(self, kind: EventKind, order: OrderRow, ts: int) -> Change:
        side, order_type = _PENDING[order.type]
        return Change(
            kind,
            f"O{order.ticket}",
            order.symbol,
            side,
            dec(order.volume_current),
            dec(order.price_open),
            ts,
            order_type=order_type,
            sl=_level(order.sl),
            tp=_level(order.tp),
        )

    # -- time ---------------------------------------------------------------------------

    def _server_to_utc(self, server_ms: int) -> int:
        return server_ms - self.server_offset_ms

    def _newest_ms(self, positions: Sequence[PositionRow], orders: Sequence[OrderRow]) -> int:
        """The newest terminal time in an answer, in UTC (0 when empty)."""
        newest = max(
            (max(p.time_msc, p.time_update_msc) for p in positions),
            default=0,
        )
        newest = max(newest, max((o.time_setup_msc for o in orders), default=0))
        return self._server_to_utc(newest) if newest else 0


_FIRST = operator.itemgetter(0)


def _by_ticket(keys: list[Any]) -> dict[int, Any]:
    """ticket -> key, from the keys (each starts with its ticket)."""
    return dict(zip(map(_FIRST, keys), keys, strict=True))


def _rows(rows: Sequence[Any]) -> dict[int, Any]:
    return dict(zip(map(_TICKET, rows), rows, strict=True))


def _answered(
    positions: Sequence[PositionRow] | None, orders: Sequence[OrderRow] | None
) -> tuple[Sequence[PositionRow], Sequence[OrderRow]]:
    if positions is None or orders is None:
        which = "positions_get()" if positions is None else "orders_get()"
        raise VenueUnavailable(f"the terminal answered None to {which}")
    return positions, orders


def closing_deal(deals: Sequence[DealRow] | None) -> tuple[Decimal, int] | None:
    """The exit price and time (`time_msc`, server time) of a closed position.

    `deals` is `history_deals_get(position=ticket)`. The position's deals are
    replayed in time order (IN adds, OUT and OUT_BY take away, INOUT reverses)
    and the last exit deal counts only if nothing is left open after it: while
    the terminal's history still lacks the final deal, an earlier partial
    close must not pass for the close. None when there is no such deal yet.
    """
    if not deals:
        return None
    ordered = sorted(deals, key=lambda d: (d.time_msc, d.ticket))
    left = Decimal(0)
    last: DealRow | None = None
    for deal in ordered:
        volume = dec(deal.volume)
        if deal.entry == DEAL_ENTRY_IN:
            left += volume
        elif deal.entry in (DEAL_ENTRY_OUT, DEAL_ENTRY_OUT_BY):
            left -= volume
            last = deal
        elif deal.entry == DEAL_ENTRY_INOUT:
            left = volume - left
            last = deal
    if last is None or left > 0 or last.entry == DEAL_ENTRY_INOUT:
        return None
    return dec(last.price), last.time_msc
