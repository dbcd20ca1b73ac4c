"""Planning: what one follower should do about one master event.

`plan` is a pure function. Every refusal is a `Skip` whose reason a trader
can read, because the site shows it beside the execution.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal

from copier.core.events import EventKind, MasterEvent, OrderType, Side
from copier.core.instruments import Instrument
from copier.core.rules import CopyRules, DeviationUnit, RiskMode
from copier.core.sizing import Refusal, fit_volume, fmt, raw_volume, stops

__all__ = [
    "CopyState",
    "FollowerOrder",
    "FollowerState",
    "OrderAction",
    "Skip",
    "fmt",
    "plan",
]


@dataclass(frozen=True, slots=True)
class CopyState:
    """The follower's copy of one master position or pending order."""

    ref: str
    symbol: str
    side: Side
    volume: Decimal
    is_order: bool = False
    price: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    # Closed (or cancelled) by the copier; a replayed open must not reopen it.
    closed: bool = False
    # Closed by the trader on the follower account; never touched again.
    closed_by_hand: bool = False


@dataclass(frozen=True, slots=True)
class FollowerState:
    copy: CopyState | None = None
    balance: Decimal | None = None
    equity: Decimal | None = None
    open_positions: int = 0
    risk_mode: RiskMode = RiskMode.NORMAL
    risk_reason: str = ""
    # The follower venue's current price for the mapped symbol, when known.
    quote: Decimal | None = None


class OrderAction(enum.StrEnum):
    OPEN = "open"
    CLOSE = "close"
    REDUCE = "reduce"
    MODIFY = "modify"
    PLACE_PENDING = "place_pending"
    MODIFY_PENDING = "modify_pending"
    CANCEL_PENDING = "cancel_pending"
    FILL_PENDING = "fill_pending"

    @property
    def opens(self) -> bool:
        return self in (OrderAction.OPEN, OrderAction.PLACE_PENDING)


@dataclass(frozen=True, slots=True)
class FollowerOrder:
    """One command for the follower's venue.

    `ref` is the follower position or order it acts on; `link_ref` is the
    master reference the resulting follower position is linked to (a pending
    order that fills becomes a master position with a reference of its own).
    """

    action: OrderAction
    symbol: str
    side: Side
    volume: Decimal
    reference_price: Decimal
    order_type: OrderType = OrderType.MARKET
    sl: Decimal | None = None
    tp: Decimal | None = None
    ref: str | None = None
    link_ref: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


HAND_CLOSED = "the follower closed this copy by hand; later master events leave it alone"


def plan(
    event: MasterEvent,
    rules: CopyRules,
    follower: FollowerState,
    instrument: Instrument | None,
    now_ms: int | None = None,
) -> FollowerOrder | Skip:
    """Decide what the follower does about `event`.

    `instrument` is the follower's instrument for the mapped symbol (None when
    the follower cannot trade it); `now_ms` is the caller's wall clock, for
    the signal age filter.
    """
    copy = follower.copy
    if copy is not None and copy.closed_by_hand:
        return Skip(HAND_CLOSED)
    if follower.risk_mode is RiskMode.PAUSED:
        return Skip(f"copying is paused by a risk stop: {follower.risk_reason}")
    kind = event.kind
    if kind is EventKind.POSITION_OPENED:
        return _plan_open(event, rules, follower, instrument, now_ms, pending=False)
    if kind is EventKind.ORDER_PLACED:
        if not rules.copy_pending:
            return Skip("pending orders are not copied on this link")
        return _plan_open(event, rules, follower, instrument, now_ms, pending=True)
    if kind is EventKind.ORDER_FILLED:
        return _plan_fill(event, rules, follower, instrument, now_ms)
    if copy is None:
        return Skip(_NOTHING_TO[kind])
    if copy.closed:
        return Skip("the follower's copy is already closed")
    if kind is EventKind.POSITION_CLOSED:
        return _close(event, copy)
    if kind is EventKind.ORDER_CANCELLED:
        return _cancel(event, copy)
    if kind is EventKind.POSITION_PARTIALLY_CLOSED:
        return _reduce(event, copy, instrument)
    if follower.risk_mode is RiskMode.CLOSE_ONLY:
        return Skip(f"close-only after a risk stop: {follower.risk_reason}")
    if kind is EventKind.POSITION_MODIFIED:
        return _modify(event, rules, copy, instrument, OrderAction.MODIFY)
    if kind is EventKind.ORDER_MODIFIED:
        return _modify(event, rules, copy, instrument, OrderAction.MODIFY_PENDING)
    raise ValueError(f"no plan for event kind {kind!r}")


_NOTHING_TO = {
    EventKind.POSITION_CLOSED: "no copied position to close: the master's open was not copied",
    EventKind.POSITION_PARTIALLY_CLOSED: "no copied position to reduce",
    EventKind.POSITION_MODIFIED: "no copied position to modify",
    EventKind.ORDER_MODIFIED: "no copied pending order to modify",
    EventKind.ORDER_CANCELLED: "no copied pending order to cancel",
}


def _plan_fill(
    event: MasterEvent,
    rules: CopyRules,
    follower: FollowerState,
    instrument: Instrument | None,
    now_ms: int | None,
) -> FollowerOrder | Skip:
    copy = follower.copy
    if copy is None:
        # The pending order was not copied: copy its fill as a market order.
        opened = _plan_open(event, rules, follower, instrument, now_ms, pending=False)
        if isinstance(opened, FollowerOrder):
            return dataclasses.replace(opened, link_ref=event.position_ref)
        return opened
    if copy.closed:
        return Skip("this master position was already copied and closed")
    if not copy.is_order:
        return Skip("the follower already holds the copy of this master position")
    stopped = _stopped_opening(rules, follower)
    if stopped is not None:
        # The fill would open a position the rules no longer allow: withdraw the copy.
        return _cancel(event, copy, stopped)
    return FollowerOrder(
        OrderAction.FILL_PENDING,
        copy.symbol,
        copy.side,
        copy.volume,
        event.price,
        order_type=copy.order_type,
        sl=copy.sl,
        tp=copy.tp,
        ref=copy.ref,
        link_ref=event.position_ref,
    )


def _stopped_opening(rules: CopyRules, follower: FollowerState) -> str | None:
    if rules.close_only:
        return "close-only mode: new positions are not opened"
    if follower.risk_mode is not RiskMode.NORMAL:
        return f"new positions are stopped by a risk stop: {follower.risk_reason}"
    return None


def _filter_open(
    event: MasterEvent, rules: CopyRules, follower: FollowerState, now_ms: int | None
) -> str | None:
    """Why a new copy must not be opened, or None."""
    if (stopped := _stopped_opening(rules, follower)) is not None:
        return stopped
    symbol = event.symbol
    if rules.symbols_allowed and symbol not in rules.symbols_allowed:
        return f"{symbol} is not in this link's allowed symbols"
    if symbol in rules.symbols_denied:
        return f"{symbol} is in this link's denied symbols"
    if event.side not in rules.sides:
        return f"{event.side.value} trades are not copied on this link"
    if rules.min_master_volume is not None and event.volume < rules.min_master_volume:
        return (
            f"the master's {fmt(event.volume)} lots is under this link's minimum of "
            f"{fmt(rules.min_master_volume)}"
        )
    if rules.max_master_volume is not None and event.volume > rules.max_master_volume:
        return (
            f"the master's {fmt(event.volume)} lots is over this link's maximum of "
            f"{fmt(rules.max_master_volume)}"
        )
    if rules.time_windows:
        moment = dt.datetime.fromtimestamp(event.ts_event_ms / 1000, tz=rules.time_zone)
        if not any(w.contains(moment) for w in rules.time_windows):
            return f"{moment:%a %H:%M} {moment.tzname()} is outside this link's trading hours"
    if rules.max_signal_age_ms is not None and now_ms is not None:
        age = now_ms - event.ts_event_ms
        if age > rules.max_signal_age_ms:
            limit = rules.max_signal_age_ms
            return f"the signal is {age} ms old, over this link's limit of {limit} ms"
    if rules.max_open_positions is not None and follower.open_positions >= rules.max_open_positions:
        return (
            f"the follower already has {follower.open_positions} open positions "
            f"(limit {rules.max_open_positions})"
        )
    return None


def _deviation(
    event: MasterEvent, rules: CopyRules, quote: Decimal | None, instrument: Instrument
) -> str | None:
    """Only fills are compared with the follower's price; pending prices are the master's."""
    if rules.max_price_deviation is None or quote is None:
        return None
    gap = abs(quote - event.price)
    if rules.price_deviation_unit is DeviationUnit.PERCENT:
        percent = gap / event.price * 100
        if percent > rules.max_price_deviation:
            return (
                f"the follower's price {fmt(quote)} is {fmt(percent.quantize(Decimal('0.01')))}% "
                f"from the master's {fmt(event.price)} (limit {fmt(rules.max_price_deviation)}%)"
            )
        return None
    points = gap / instrument.point
    if points > rules.max_price_deviation:
        return (
            f"the follower's price {fmt(quote)} is {fmt(points)} points from the master's "
            f"{fmt(event.price)} (limit {fmt(rules.max_price_deviation)})"
        )
    return None


_REVERSED_TYPE = {
    OrderType.MARKET: OrderType.MARKET,
    OrderType.LIMIT: OrderType.STOP,
    OrderType.STOP: OrderType.LIMIT,
}


def _plan_open(
    event: MasterEvent,
    rules: CopyRules,
    follower: FollowerState,
    instrument: Instrument | None,
    now_ms: int | None,
    pending: bool,
) -> FollowerOrder | Skip:
    copy = follower.copy
    if copy is not None:
        if copy.closed:
            return Skip("this master position was already copied and closed")
        return Skip("the follower already holds the copy of this master position")
    if (reason := _filter_open(event, rules, follower, now_ms)) is not None:
        return Skip(reason)
    if instrument is None:
        return Skip(f"{rules.map_symbol(event.symbol)} is not tradable on the follower account")
    if not pending and (reason := _deviation(event, rules, follower.quote, instrument)):
        return Skip(reason)
    side = event.side.opposite if rules.reverse else event.side
    order_type = _REVERSED_TYPE[event.order_type] if rules.reverse else event.order_type
    entry = event.price
    sl, tp = stops(event, rules, side, entry, instrument)
    try:
        wanted = raw_volume(event, rules, instrument, entry, sl, follower.balance, follower.equity)
        volume, note = fit_volume(wanted, rules, instrument)
    except Refusal as e:
        return Skip(str(e))
    return FollowerOrder(
        action=OrderAction.PLACE_PENDING if pending else OrderAction.OPEN,
        symbol=instrument.symbol,
        side=side,
        volume=volume,
        reference_price=entry,
        order_type=order_type if pending else OrderType.MARKET,
        sl=sl,
        tp=tp,
        note=note,
        link_ref=event.master_ref,
    )


def _close(event: MasterEvent, copy: CopyState, note: str = "") -> FollowerOrder:
    return FollowerOrder(
        OrderAction.CLOSE,
        copy.symbol,
        copy.side.opposite,
        copy.volume,
        event.price,
        ref=copy.ref,
        note=note,
    )


def _cancel(event: MasterEvent, copy: CopyState, note: str = "") -> FollowerOrder:
    return FollowerOrder(
        OrderAction.CANCEL_PENDING,
        copy.symbol,
        copy.side,
        copy.volume,
        event.price,
        order_type=copy.order_type,
        ref=copy.ref,
        note=note,
    )


def _reduce(
    event: MasterEvent, copy: CopyState, instrument: Instrument | None
) -> FollowerOrder | Skip:
    if instrument is None:
        return Skip(f"{copy.symbol} is not tradable on the follower account")
    remaining = event.remaining_volume
    if remaining is None:
        return Skip("the master's partial close did not say what volume remains")
    before = event.volume + remaining
    if remaining <= 0 or before <= 0:
        return _close(event, copy)
    wanted = copy.volume * event.volume / before
    volume = instrument.round_volume(wanted)
    left = copy.volume - volume
    if volume >= copy.volume or left < instrument.volume_min:
        note = (
            (
                f"closed in full: {fmt(left)} lots would stay open, under {copy.symbol}'s "
                f"minimum of {fmt(instrument.volume_min)}"
            )
            if volume < copy.volume
            else ""
        )
        return _close(event, copy, note)
    if volume < instrument.volume_min:
        return Skip(
            f"{fmt(wanted)} lots to close is under {copy.symbol}'s minimum of "
            f"{fmt(instrument.volume_min)}; the copy stays at {fmt(copy.volume)} lots"
        )
    note = (
        f"closing {fmt(volume)} of {fmt(copy.volume)} lots, "
        f"as the master closed {fmt(event.volume)} of {fmt(before)}"
    )
    return FollowerOrder(
        OrderAction.REDUCE,
        copy.symbol,
        copy.side.opposite,
        volume,
        event.price,
        ref=copy.ref,
        note=note,
    )


def _modify(
    event: MasterEvent,
    rules: CopyRules,
    copy: CopyState,
    instrument: Instrument | None,
    action: OrderAction,
) -> FollowerOrder | Skip:
    if instrument is None:
        return Skip(f"{copy.symbol} is not tradable on the follower account")
    pending = action is OrderAction.MODIFY_PENDING
    if pending:
        entry = event.price
    else:
        entry = copy.price if copy.price is not None else event.price
    sl, tp = stops(event, rules, copy.side, entry, instrument)
    # Fixed distances are set when the copy opens and do not follow the master.
    if rules.fixed_sl_points is not None and not pending:
        sl = copy.sl
    if rules.fixed_tp_points is not None and not pending:
        tp = copy.tp
    price = instrument.round_price(event.price) if pending else None
    if (sl, tp) == (copy.sl, copy.tp) and (not pending or price == copy.price):
        return Skip("nothing to change: the copy already has these levels")
    return FollowerOrder(
        action,
        copy.symbol,
        copy.side,
        copy.volume,
        price if price is not None else entry,
        order_type=copy.order_type,
        sl=sl,
        tp=tp,
        ref=copy.ref,
    )
