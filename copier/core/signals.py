"""Webhook signals: a JSON alert becomes a signal, and a signal becomes master events.

A *signal source* is a master whose trades arrive as alerts (TradingView or
anything that can POST JSON). `parse_signal` reads the decoded JSON value and
raises `SignalError` naming the field at fault; `events_for` turns a signal and
the source's open positions into event drafts the caller numbers and records,
or a `Rejection` that says why nothing happens.

The payload
-----------
- ``action`` (required, any case; ``-`` and spaces read as ``_``): ``buy`` or
  ``long``; ``sell`` or ``short``; ``close`` or ``exit``; ``close_all``;
  ``flat``. ``buy``/``sell`` are what ``{{strategy.order.action}}`` gives;
  ``long``/``short``/``flat`` are what ``{{strategy.market_position}}`` gives;
  ``exit`` is the common bot word for closing one symbol.
- ``symbol`` or ``ticker`` (both may be sent; if they differ after the prefix
  rule below, that is a contradiction). A TradingView exchange prefix
  (``BINANCE:BTCUSDT``) is dropped: text before the first ``:`` that is a bare
  word (letters, digits, ``_``) is removed. ccxt's ``BTC/USDT:USDT`` keeps its
  settle suffix because ``BTC/USDT`` is not a bare word. Case is kept.
- size, for buy and sell exactly one of: ``qty`` (``quantity`` and
  ``contracts`` are accepted as the same field; if several are sent they must
  agree), ``qty_pct`` (percent of equity as notional), ``risk_pct`` (percent
  of equity lost at the stop loss; needs a stop loss, at most 100).
- ``order_type``: ``market`` (default), ``limit`` or ``stop``; limit and stop
  need ``price``. A market order's optional ``price`` is the alert's reference
  price (e.g. ``{{close}}``).
- stops: ``sl``/``tp`` are prices; ``sl_distance``/``tp_distance`` are
  distances from the entry price in price units (not points or pips, which
  depend on a venue's digits; not percent). A level and its distance together
  are a contradiction. Distances are resolved to prices as soon as the price is
  known: at parsing when the alert has a price, otherwise in `events_for`
  against the market price. Levels on the wrong side of the price (a buy's stop
  loss at or above it, its take profit at or below it) are refused. Fields that
  look like stops in another scheme (``sl_pips``, ``stop_loss``, ...) are
  refused rather than ignored: a trader who wrote one must not trade without
  the stop they think they set.
- ``alert_id`` (text or number, at most 100 characters) and ``comment`` (text,
  at most 200 characters) are optional; empty text is the same as absent.

Numbers may be JSON numbers or text (``"0.5"``, ``" 1e-2 "``: surrounding
space and an exponent are fine; ``NaN``, ``Infinity``, ``1,5``, ``1_000``,
booleans and empty text are not). Every amount and price must be greater than
0; values are kept as exact `Decimal`. ``null`` is the same as an absent field.
Any value still containing ``{{`` is a placeholder TradingView did not fill in
and is refused. Unknown fields are ignored.

Closing
-------
``close`` needs a symbol and closes every position of it, oldest first; with
``qty`` it closes that quantity, oldest first (whole positions, then part of
the next; more than is open closes everything). ``close_all`` and ``flat``
close every position of the given symbol, or of every symbol when none is
given; they take no ``qty``. Closes take no ``qty_pct``/``risk_pct`` and only
``order_type`` market; stop levels are ignored. A close's price is the alert's
price, else the market price, else the position's own price (a close never
waits for a quote).

Opening (one-way, like a TradingView strategy)
----------------------------------------------
The source holds one net direction per symbol. With ``qty``, the quantity is an
order quantity as ``{{strategy.order.contracts}}`` reports it: a buy first
closes short positions on the symbol (oldest first, partly if the quantity runs
out) and what is left opens a long. So a strategy's exit (sell 1 when long 1)
closes, and its reversal (sell 2 when long 1) closes 1 and opens a short of 1.
With ``qty_pct`` or ``risk_pct`` the size is the new position's: opposite
positions are closed in full, then the computed volume opens. Limit and stop
orders close nothing now: they are placed as pending orders.

The position-aware check (optional per source) refuses a buy when the source is
already long on the symbol (a sell when short) unless pyramiding is allowed.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from copier.core.events import EventDraft, EventKind, OrderType, Side

__all__ = [
    "EventDraft",
    "Rejection",
    "Signal",
    "SignalAction",
    "SignalError",
    "SourcePosition",
    "events_for",
    "parse_signal",
    "resolve_levels",
]

ZERO = Decimal(0)
MAX_ALERT_ID = 100
MAX_COMMENT = 200
MAX_RISK_PCT = Decimal(100)
# Volumes computed from a percentage are cut (down) to this many decimals.
VOLUME_QUANTUM = Decimal("1E-8")
# Parsed numbers must lie within [1E-12, 1E15): far beyond any real amount or price.
_MIN_ADJUSTED, _MAX_ADJUSTED = -12, 14
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_SYMBOL = re.compile(r"^[A-Za-z0-9._/#!:-]{1,40}$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_QTY_FIELDS = ("qty", "quantity", "contracts")
# Stop fields of other schemes: refused, never silently ignored.
_FOREIGN_STOPS = {
    name: "sl" if name.startswith(("sl", "stop")) else "tp"
    for name in (
        "sl_pips",
        "sl_points",
        "sl_pct",
        "sl_percent",
        "stop_loss",
        "stoploss",
        "tp_pips",
        "tp_points",
        "tp_pct",
        "tp_percent",
        "take_profit",
        "takeprofit",
    )
}


class SignalError(ValueError):
    """A payload that is not a valid signal; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SignalAction(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"
    CLOSE = "close"
    CLOSE_ALL = "close_all"
    FLAT = "flat"

    @property
    def side(self) -> Side | None:
        return _SIDES.get(self)

    @property
    def closes(self) -> bool:
        return self.side is None


_SIDES = {SignalAction.BUY: Side.BUY, SignalAction.SELL: Side.SELL}
_ACTIONS = {
    "buy": SignalAction.BUY,
    "long": SignalAction.BUY,
    "sell": SignalAction.SELL,
    "short": SignalAction.SELL,
    "close": SignalAction.CLOSE,
    "exit": SignalAction.CLOSE,
    "close_all": SignalAction.CLOSE_ALL,
    "closeall": SignalAction.CLOSE_ALL,
    "flat": SignalAction.FLAT,
}
_ACTION_LIST = "buy, sell, close, close_all or flat"


@dataclass(frozen=True, slots=True)
class Signal:
    """One parsed alert.

    `sl`/`tp` are prices; `sl_distance`/`tp_distance` are set only when the
    alert gave a distance and no price to resolve it against.
    """

    action: SignalAction
    symbol: str | None = None
    qty: Decimal | None = None
    qty_pct: Decimal | None = None
    risk_pct: Decimal | None = None
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    sl_distance: Decimal | None = None
    tp_distance: Decimal | None = None
    alert_id: str | None = None
    comment: str | None = None

    @property
    def side(self) -> Side | None:
        return self.action.side


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """An open position of the signal source (its own book, not a venue's)."""

    ref: str
    symbol: str
    side: Side
    volume: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Rejection:
    """A valid signal that leads to no event, with the reason a trader reads."""

    reason: str


# -- parsing ------------------------------------------------------------------------


def parse_signal(data: object) -> Signal:
    """The signal in a decoded JSON value; `SignalError` names the field at fault."""
    if not isinstance(data, dict):
        raise SignalError(
            "body", f'send a JSON object such as {{"action": "buy", ...}}, not {_describe(data)}'
        )
    fields: Mapping[object, object] = data
    action = _action(fields)
    symbol = _symbol(fields)
    alert_id = _alert_id(fields)
    comment = _text(fields, "comment")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise SignalError("comment", f"at most {MAX_COMMENT} characters, not {len(comment)}")
    order_type = _order_type(fields)
    price = _number(fields, "price")
    qty = _qty(fields)
    qty_pct = _number(fields, "qty_pct")
    risk_pct = _number(fields, "risk_pct")
    side = action.side

    if side is None:
        if symbol is None and action is SignalAction.CLOSE:
            raise SignalError(
                "symbol",
                f"{action.value} needs a symbol (or ticker); close_all and flat close every symbol",
            )
        if qty is not None and action is not SignalAction.CLOSE:
            raise SignalError(
                "qty",
                f"{action.value} closes whole positions; use close with qty for a partial close",
            )
        for name, value in (("qty_pct", qty_pct), ("risk_pct", risk_pct)):
            if value is not None:
                raise SignalError(
                    name, f"{action.value} takes qty (the quantity to close), not {name}"
                )
        if order_type is not OrderType.MARKET:
            raise SignalError(
                "order_type",
                f"{action.value} closes at market; limit and stop orders are for buy and sell",
            )
        return Signal(action, symbol, qty=qty, price=price, alert_id=alert_id, comment=comment)

    if symbol is None:
        raise SignalError("symbol", "missing; give symbol or ticker")
    sizes = [
        (n, v)
        for n, v in (("qty", qty), ("qty_pct", qty_pct), ("risk_pct", risk_pct))
        if v is not None
    ]
    if not sizes:
        raise SignalError("qty", "give qty, qty_pct or risk_pct")
    if len(sizes) > 1:
        (first, _), (second, _) = sizes[:2]
        raise SignalError(
            second, f"{first} and {second} both given; give only one of qty, qty_pct or risk_pct"
        )
    if risk_pct is not None and risk_pct > MAX_RISK_PCT:
        raise SignalError(
            "risk_pct", f"at most {MAX_RISK_PCT} (percent of equity), not {_show(risk_pct)}"
        )
    if order_type is not OrderType.MARKET and price is None:
        raise SignalError("price", f"a {order_type.value} order needs a price")

    for name, instead in _FOREIGN_STOPS.items():
        if fields.get(name) is not None:
            raise SignalError(
                name,
                f"not supported; give {instead} (a price) or {instead}_distance "
                "(a distance from the price, in price units)",
            )
    sl, tp = _number(fields, "sl"), _number(fields, "tp")
    sl_distance, tp_distance = _number(fields, "sl_distance"), _number(fields, "tp_distance")
    for level, distance, name in ((sl, sl_distance, "sl"), (tp, tp_distance, "tp")):
        if level is not None and distance is not None:
            raise SignalError(
                f"{name}_distance",
                f"give {name} (a price) or {name}_distance (a distance from the price), not both",
            )
    if risk_pct is not None and sl is None and sl_distance is None:
        raise SignalError("sl", "risk_pct needs a stop loss: give sl or sl_distance")
    if price is not None:
        sl, tp = resolve_levels(side, price, sl, tp, sl_distance, tp_distance)
        sl_distance = tp_distance = None
    elif sl is not None and tp is not None and (tp - sl) * side.sign <= 0:
        where = "above" if side is Side.BUY else "below"
        raise SignalError(
            "tp",
            f"a {side.value}'s take profit must be {where} its stop loss {_show(sl)}, "
            f"not {_show(tp)}",
        )
    return Signal(
        action,
        symbol,
        qty=qty,
        qty_pct=qty_pct,
        risk_pct=risk_pct,
        order_type=order_type,
        price=price,
        sl=sl,
        tp=tp,
        sl_distance=sl_distance,
        tp_distance=tp_distance,
        alert_id=alert_id,
        comment=comment,
    )


def resolve_levels(
    side: Side,
    price: Decimal,
    sl: Decimal | None,
    tp: Decimal | None,
    sl_distance: Decimal | None,
    tp_distance: Decimal | None,
    *,
    price_name: str = "the price",
) -> tuple[Decimal | None, Decimal | None]:
    """Stop loss and take profit as prices for an entry at `price`, checked for side."""
    if sl_distance is not None:
        sl = price - side.sign * sl_distance
        if sl <= 0:
            raise SignalError(
                "sl_distance",
                f"a stop loss {_show(sl_distance)} below {price_name} {_show(price)} "
                "would be at or below 0",
            )
    if tp_distance is not None:
        tp = price + side.sign * tp_distance
        if tp <= 0:
            raise SignalError(
                "tp_distance",
                f"a take profit {_show(tp_distance)} below {price_name} {_show(price)} "
                "would be at or below 0",
            )
    loss, gain = ("below", "above") if side is Side.BUY else ("above", "below")
    if sl is not None and (price - sl) * side.sign <= 0:
        raise SignalError(
            "sl",
            f"a {side.value}'s stop loss must be {loss} {price_name} {_show(price)}, "
            f"not {_show(sl)}",
        )
    if tp is not None and (tp - price) * side.sign <= 0:
        raise SignalError(
            "tp",
            f"a {side.value}'s take profit must be {gain} {price_name} {_show(price)}, "
            f"not {_show(tp)}",
        )
    return sl, tp


def _action(fields: Mapping[object, object]) -> SignalAction:
    text = _text(fields, "action")
    if text is None:
        raise SignalError("action", f"missing; give {_ACTION_LIST}")
    key = re.sub(r"[\s-]+", "_", text.lower())
    action = _ACTIONS.get(key)
    if action is None:
        raise SignalError("action", f"{_describe(text)} is not an action; give {_ACTION_LIST}")
    return action


def _symbol(fields: Mapping[object, object]) -> str | None:
    found: list[tuple[str, str]] = []
    for name in ("symbol", "ticker"):
        text = _text(fields, name)
        if text is None:
            continue
        prefix, sep, rest = text.partition(":")
        if sep and rest and _PREFIX.match(prefix):
            text = rest
        if not _SYMBOL.match(text):
            raise SignalError(name, f"{_describe(text)} is not a symbol")
        found.append((name, text))
    if len(found) == 2 and found[0][1] != found[1][1]:
        raise SignalError(
            "symbol",
            f"symbol {_describe(found[0][1])} and ticker {_describe(found[1][1])} disagree",
        )
    return found[0][1] if found else None


def _qty(fields: Mapping[object, object]) -> Decimal | None:
    found = [(n, v) for n in _QTY_FIELDS if (v := _number(fields, n)) is not None]
    for name, value in found[1:]:
        first, first_value = found[0]
        if value != first_value:
            raise SignalError(
                name,
                f"{first} {_show(first_value)} and {name} {_show(value)} disagree; "
                "give the quantity once",
            )
    return found[0][1] if found else None


def _order_type(fields: Mapping[object, object]) -> OrderType:
    text = _text(fields, "order_type")
    if text is None:
        return OrderType.MARKET
    try:
        return OrderType(text.lower())
    except ValueError:
        raise SignalError(
            "order_type", f"must be market, limit or stop, not {_describe(text)}"
        ) from None


def _alert_id(fields: Mapping[object, object]) -> str | None:
    value = fields.get("alert_id")
    if isinstance(value, bool):
        raise SignalError("alert_id", f"must be text or a number, not {_describe(value)}")
    if isinstance(value, int):
        text: str | None = str(value)
    elif isinstance(value, float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise SignalError("alert_id", f"must be text or a finite number, not {value}")
        text = _show(number)
    else:
        text = _text(fields, "alert_id", what="text or a number")
    if text is not None and len(text) > MAX_ALERT_ID:
        raise SignalError("alert_id", f"at most {MAX_ALERT_ID} characters, not {len(text)}")
    return text


def _text(fields: Mapping[object, object], name: str, what: str = "text") -> str | None:
    """A text field, stripped; absent, null and empty are None."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SignalError(name, f"must be {what}, not {_describe(value)}")
    _check_filled(name, value)
    return value.strip() or None


def _number(fields: Mapping[object, object], name: str) -> Decimal | None:
    """A number greater than 0, from a JSON number or text; absent and null are None."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise SignalError(name, f"must be a number, not {_describe(value)}")
    if isinstance(value, str):
        _check_filled(name, value)
        text = value.strip()
        if not _NUMBER.match(text):
            if text.lower().lstrip("+-") in {"nan", "inf", "infinity", "snan"}:
                raise SignalError(name, f"must be a finite number, not {_describe(value)}")
            raise SignalError(name, f"must be a number, not {_describe(value)}")
        number = Decimal(text)
    elif isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SignalError(name, f"must be a finite number, not {_describe(value)}")
        number = Decimal(repr(value))
    else:
        raise SignalError(name, f"must be a number, not {_describe(value)}")
    if not number.is_finite():
        raise SignalError(name, f"must be a finite number, not {_describe(value)}")
    if number <= 0:
        raise SignalError(name, f"must be greater than 0, not {_show(number)}")
    if not _MIN_ADJUSTED <= number.adjusted() <= _MAX_ADJUSTED:
        raise SignalError(name, f"{_describe(value)} is out of range")
    return Decimal(_show(number))


def _check_filled(name: str, text: str) -> None:
    if "{{" in text:
        raise SignalError(
            name,
            f"the alert template was not filled in: {_describe(text)} is still a placeholder",
        )


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Decimal):
        return _show(value) if value.is_finite() else str(value)
    return str(value)


def _show(value: Decimal) -> str:
    """A decimal as a person writes it, every digit kept: 0.00001, 2340, 1.5."""
    return format(value.normalize(), "f")


# -- events -------------------------------------------------------------------------


def events_for(
    signal: Signal,
    positions: Sequence[SourcePosition],
    *,
    equity: Decimal,
    contract_size: Decimal,
    allow_pyramiding: bool,
    position_aware: bool,
    new_ref: str,
    ts_ms: int,
    price: Decimal | None,
) -> list[EventDraft] | Rejection:
    """The master events a signal causes on a source holding `positions`.

    `positions` are the source's open positions, oldest first. `price` is the
    last known market price of the signal's symbol (None when unknown); a new
    position or order gets `new_ref` as its master reference.
    """
    if signal.side is None:
        return _close(signal, positions, ts_ms, price)
    return _open(
        signal,
        signal.side,
        positions,
        equity=equity,
        contract_size=contract_size,
        allow_pyramiding=allow_pyramiding,
        position_aware=position_aware,
        new_ref=new_ref,
        ts_ms=ts_ms,
        price=price,
    )


def _close(
    signal: Signal, positions: Sequence[SourcePosition], ts_ms: int, price: Decimal | None
) -> list[EventDraft] | Rejection:
    symbol = signal.symbol
    if symbol is None and signal.action is SignalAction.CLOSE:
        return Rejection("symbol: close needs a symbol")
    mine = [p for p in positions if p.volume > 0 and (symbol is None or p.symbol == symbol)]
    if not mine:
        what = f"no {symbol} position" if symbol is not None else "no open position"
        return Rejection(f"nothing to close: the source has {what}")
    wanted = signal.qty if signal.action is SignalAction.CLOSE else None
    at = signal.price if signal.price is not None else price
    drafts: list[EventDraft] = []
    left = wanted
    for position in mine:
        if left is not None and left <= 0:
            break
        fill = at if at is not None else position.price
        if left is None or position.volume <= left:
            drafts.append(_closed(position, fill, ts_ms))
            if left is not None:
                left -= position.volume
        else:
            drafts.append(_partly_closed(position, left, fill, ts_ms))
            left = ZERO
    return drafts


def _open(
    signal: Signal,
    side: Side,
    positions: Sequence[SourcePosition],
    *,
    equity: Decimal,
    contract_size: Decimal,
    allow_pyramiding: bool,
    position_aware: bool,
    new_ref: str,
    ts_ms: int,
    price: Decimal | None,
) -> list[EventDraft] | Rejection:
    symbol = signal.symbol
    if symbol is None:
        return Rejection("symbol: a buy or sell needs a symbol")
    mine = [p for p in positions if p.symbol == symbol and p.volume > 0]
    same = [p for p in mine if p.side is side]
    opposite = [p for p in mine if p.side is side.opposite]
    if position_aware and not allow_pyramiding and same:
        held = sum((p.volume for p in same), ZERO)
        direction = "long" if side is Side.BUY else "short"
        return Rejection(
            f"already {direction} {_show(held)} {symbol}; pyramiding is off for this source"
        )

    pending = signal.order_type is not OrderType.MARKET
    entry = signal.price if signal.price is not None else price
    if entry is None:
        what = "an order price" if pending else "a price"
        return Rejection(
            f"price: no price is known for {symbol}; send {what} with the alert, "
            'e.g. "price": "{{close}}"'
        )
    if entry <= 0:
        return Rejection(f"price: the price must be greater than 0, not {_show(entry)}")
    try:
        sl, tp = resolve_levels(
            side,
            entry,
            signal.sl,
            signal.tp,
            signal.sl_distance,
            signal.tp_distance,
            price_name="the price" if signal.price is not None else "the market price",
        )
    except SignalError as e:
        return Rejection(str(e))

    volume = _volume(signal, entry, sl, equity, contract_size)
    if isinstance(volume, Rejection):
        return volume

    if pending:
        # A pending order changes nothing until it fills.
        return [
            EventDraft(
                EventKind.ORDER_PLACED,
                new_ref,
                symbol,
                side,
                volume,
                entry,
                ts_ms,
                order_type=signal.order_type,
                sl=sl,
                tp=tp,
            )
        ]

    drafts: list[EventDraft] = []
    to_open = volume
    if signal.qty is not None:
        # An order quantity: it reduces the opposite side first, oldest first.
        for position in opposite:
            if to_open <= 0:
                break
            if position.volume <= to_open:
                drafts.append(_closed(position, entry, ts_ms))
                to_open -= position.volume
            else:
                drafts.append(_partly_closed(position, to_open, entry, ts_ms))
                to_open = ZERO
    else:
        # The size of the new position: the opposite side goes first, in full.
        drafts.extend(_closed(position, entry, ts_ms) for position in opposite)
    if to_open > 0:
        drafts.append(
            EventDraft(
                EventKind.POSITION_OPENED,
                new_ref,
                symbol,
                side,
                to_open,
                entry,
                ts_ms,
                sl=sl,
                tp=tp,
            )
        )
    return drafts


def _volume(
    signal: Signal,
    entry: Decimal,
    sl: Decimal | None,
    equity: Decimal,
    contract_size: Decimal,
) -> Decimal | Rejection:
    if signal.qty is not None:
        return signal.qty
    if signal.qty_pct is not None:
        name, pct, per_lot = "qty_pct", signal.qty_pct, entry
    elif signal.risk_pct is not None:
        if sl is None:
            return Rejection("sl: risk_pct needs a stop loss: give sl or sl_distance")
        name, pct, per_lot = "risk_pct", signal.risk_pct, abs(entry - sl)
    else:
        return Rejection("qty: give qty, qty_pct or risk_pct")
    if contract_size <= 0:
        return Rejection(
            f"contract_size: must be greater than 0 to size by {name}, not {_show(contract_size)}"
        )
    if equity <= 0:
        return Rejection(
            f"{name}: the source's equity is {_show(equity)}, so there is nothing to size"
        )
    raw = equity * pct / 100 / (per_lot * contract_size)
    try:
        volume = raw.quantize(VOLUME_QUANTUM, rounding=ROUND_DOWN)
    except InvalidOperation:
        return Rejection(f"{name}: {_show(pct)}% of equity {_show(equity)} is too large a volume")
    if volume <= 0:
        return Rejection(
            f"{name}: {_show(pct)}% of equity {_show(equity)} at {_show(entry)} "
            f"comes to less than {_show(VOLUME_QUANTUM)} lots"
        )
    return Decimal(_show(volume))


def _closed(position: SourcePosition, price: Decimal, ts_ms: int) -> EventDraft:
    return EventDraft(
        EventKind.POSITION_CLOSED,
        position.ref,
        position.symbol,
        position.side,
        position.volume,
        price,
        ts_ms,
    )


def _partly_closed(
    position: SourcePosition, volume: Decimal, price: Decimal, ts_ms: int
) -> EventDraft:
    return EventDraft(
        EventKind.POSITION_PARTIALLY_CLOSED,
        position.ref,
        position.symbol,
        position.side,
        volume,
        price,
        ts_ms,
        remaining_volume=position.volume - volume,
    )
