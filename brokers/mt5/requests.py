"""MetaTrader 5 trade requests for `order_send`, built from a planned `FollowerOrder`.

Pure: no I/O, no clock, no Django, no `MetaTrader5` import. The agent reads
`symbol_info(symbol)` (into `SymbolSpec.from_info`) and `symbol_info_tick`,
calls `build_request`, and sends the dict. Volumes and prices are `Decimal`
until the dict is built; the dict's floats are converted, last, from values
already rounded to the symbol's volume step and tick, so `float()` only
picks the nearest double of an exact decimal.

What the symbol would refuse is denied here with `OrderDenied` and a
sentence, before sending: volume under the minimum or over the maximum, a
symbol closed to trading or to this direction (`trade_mode`), a pending price
on the wrong side of the market, and SL, TP or pending prices nearer to the
price they are measured from than `trade_stops_level` points (the MQL5 book,
"Requirements and limitations in making trades": a buy's SL and TP are
measured from the Bid, a sell's from the Ask, a pending order's from its own
price; limits are measured from the Ask for buys and from the Bid for sells).

**Filling** (`filling_type`), after the terminal's fill-policy table
(metatrader5.com, Trading principles, "Fill Policy") and the standard
library's `CTrade::FillingCheck`:

- Instant and Request execution take Fill or Kill only: FOK, whatever the
  symbol's flags.
- Market and Exchange execution: FOK when the symbol has SYMBOL_FILLING_FOK,
  else IOC when it has SYMBOL_FILLING_IOC: the whole volume or nothing is
  preferred, so that the copy has the planned volume. Exchange execution
  allows Return for every order, and pending orders take it there. A
  symbol with neither flag leaves Return, the only policy without a flag:
  the documentation refuses it for market orders in Market execution, where
  the server answers INVALID_FILL (a permanent rejection naming the code).

**Deviation** (`deviation_points`), the slippage in points a market order
accepts from the request's price. The server applies it in Instant and
Request execution; Market and Exchange execution ignore it, and it is sent
anyway. A configured value is used as it is; otherwise twice the symbol's
current spread, within [`DEVIATION_MIN_POINTS`, `DEVIATION_MAX_POINTS`]: one
spread is an ordinary move between reading the tick and the server's check,
the floor keeps a zero or stale spread from turning every tick into a
requote, and the ceiling keeps a spread blown out by news from accepting any
price.

**Magic and comment.** `comment` carries the client order id itself (26
characters; MT5 keeps 31). Some brokers overwrite comments, so `magic` carries
the id too: `magic_for(coid)` is the first 16 of its 24 hex digits (64 bits)
with the top bit cleared, a positive 63-bit number that fits MT5's ulong magic
and the signed long that `positions_get` and `history_deals_get` return. The
agent finds a request's deals and positions by comment, or by magic when the
comment was overwritten. A digest whose 63 bits are all zero (one chance in
2**63) gives magic 1, because 0 is what hand trades carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Final, Protocol

from brokers.mt5 import constants as C
from brokers.venues.base import OrderDenied
from copier.core.events import OrderType, Side
from copier.core.instruments import Instrument
from copier.core.plan import FollowerOrder, OrderAction
from copier.core.sizing import fmt

__all__ = [
    "DEVIATION_MAX_POINTS",
    "DEVIATION_MIN_POINTS",
    "DEVIATION_SPREADS",
    "MAGIC_MAX",
    "Request",
    "SymbolInfoLike",
    "SymbolSpec",
    "build_request",
    "deviation_points",
    "fill_pending_requests",
    "filling_type",
    "magic_for",
    "mt5_order_type",
    "round_volume",
]

Request = dict[str, object]

DEVIATION_SPREADS: Final = 2
DEVIATION_MIN_POINTS: Final = 10
DEVIATION_MAX_POINTS: Final = 200
MAGIC_MAX: Final = 2**63 - 1

_COID = re.compile(r"TS[0-9A-F]{24}")


class SymbolInfoLike(Protocol):
    """The fields of MetaTrader5's `SymbolInfo` that requests need."""

    @property
    def name(self) -> str: ...
    @property
    def digits(self) -> int: ...
    @property
    def point(self) -> float: ...
    @property
    def spread(self) -> int: ...
    @property
    def trade_tick_size(self) -> float: ...
    @property
    def trade_tick_value(self) -> float: ...
    @property
    def trade_contract_size(self) -> float: ...
    @property
    def volume_min(self) -> float: ...
    @property
    def volume_max(self) -> float: ...
    @property
    def volume_step(self) -> float: ...
    @property
    def filling_mode(self) -> int: ...
    @property
    def trade_exemode(self) -> int: ...
    @property
    def trade_mode(self) -> int: ...
    @property
    def trade_stops_level(self) -> int: ...


def _dec(value: float | int | str | Decimal, what: str) -> Decimal:
    """A terminal number as a Decimal: floats through `repr`, their shortest exact form."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{what} is {value!r}, not a number")
    return result


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One symbol's trading terms, as `symbol_info` gives them, in Decimals.

    The field names are MetaTrader5's. `trade_stops_level` and `spread` are in
    points.
    """

    name: str
    digits: int
    point: Decimal
    trade_tick_size: Decimal
    trade_tick_value: Decimal
    trade_contract_size: Decimal
    volume_min: Decimal
    volume_max: Decimal
    volume_step: Decimal
    filling_mode: int
    trade_exemode: int
    trade_stops_level: int
    spread: int
    trade_mode: int = C.SYMBOL_TRADE_MODE_FULL

    def __post_init__(self) -> None:
        if self.point <= 0 or self.volume_step <= 0 or self.digits < 0:
            raise ValueError(
                f"{self.name}: point {self.point}, volume step {self.volume_step} and "
                f"digits {self.digits} must be positive"
            )

    @classmethod
    def from_info(cls, info: SymbolInfoLike) -> SymbolSpec:
        name = str(info.name)
        step = _dec(info.volume_step, f"{name} volume_step")
        return cls(
            name=name,
            digits=int(info.digits),
            point=_dec(info.point, f"{name} point"),
            trade_tick_size=_dec(info.trade_tick_size, f"{name} trade_tick_size"),
            trade_tick_value=_dec(info.trade_tick_value, f"{name} trade_tick_value"),
            trade_contract_size=_dec(info.trade_contract_size, f"{name} trade_contract_size"),
            # A minimum under one step would let a volume round down to zero.
            volume_min=max(_dec(info.volume_min, f"{name} volume_min"), step),
            volume_max=_dec(info.volume_max, f"{name} volume_max"),
            volume_step=step,
            filling_mode=int(info.filling_mode),
            trade_exemode=int(info.trade_exemode),
            trade_stops_level=int(info.trade_stops_level),
            spread=int(info.spread),
            trade_mode=int(info.trade_mode),
        )

    @property
    def tick(self) -> Decimal:
        """The price step: the tick size, or the point when the server gives none."""
        return self.trade_tick_size if self.trade_tick_size > 0 else self.point

    def round_price(self, price: Decimal) -> Decimal:
        """To the nearest tick (e.g. 0.25 on an index), written with `digits` decimals."""
        ticks = (price / self.tick).to_integral_value(rounding=ROUND_HALF_EVEN)
        return (ticks * self.tick).quantize(Decimal(1).scaleb(-self.digits))

    def instrument(self) -> Instrument:
        return Instrument(
            symbol=self.name,
            volume_step=self.volume_step,
            volume_min=self.volume_min,
            volume_max=self.volume_max,
            contract_size=self.trade_contract_size,
            price_digits=self.digits,
            tick_size=self.trade_tick_size if self.trade_tick_size > 0 else None,
            # The terminal gives 0 until the symbol's quotes arrive.
            tick_value=self.trade_tick_value if self.trade_tick_value > 0 else None,
        )


def filling_type(spec: SymbolSpec, pending: bool = False) -> int:
    """The request's `type_filling` for this symbol (rule in the module docstring)."""
    if spec.trade_exemode in (C.SYMBOL_TRADE_EXECUTION_REQUEST, C.SYMBOL_TRADE_EXECUTION_INSTANT):
        return C.ORDER_FILLING_FOK
    if pending and spec.trade_exemode == C.SYMBOL_TRADE_EXECUTION_EXCHANGE:
        return C.ORDER_FILLING_RETURN
    if spec.filling_mode & C.SYMBOL_FILLING_FOK:
        return C.ORDER_FILLING_FOK
    if spec.filling_mode & C.SYMBOL_FILLING_IOC:
        return C.ORDER_FILLING_IOC
    return C.ORDER_FILLING_RETURN


def deviation_points(spec: SymbolSpec, configured: int | None) -> int:
    """The request's `deviation`: `configured`, else twice the spread, bounded."""
    if configured is not None:
        if configured < 0:
            raise ValueError(f"a deviation is a number of points, not {configured}")
        return configured
    derived = DEVIATION_SPREADS * max(spec.spread, 0)
    return min(max(derived, DEVIATION_MIN_POINTS), DEVIATION_MAX_POINTS)


def round_volume(spec: SymbolSpec, volume: Decimal) -> Decimal:
    """Down to the volume step (never more than planned); deny what the symbol refuses.

    Over the maximum is denied, not clamped: planning already fits volumes to
    the maximum, so a larger one here means the symbol's terms changed, and a
    silently smaller order (or close) would leave the copy wrong.
    """
    if volume <= 0:
        raise OrderDenied(f"volume must be greater than 0, not {fmt(volume)}")
    steps = (volume / spec.volume_step).to_integral_value(rounding=ROUND_DOWN)
    rounded = (steps * spec.volume_step).quantize(spec.volume_step)
    if rounded < spec.volume_min:
        if rounded == volume:
            raise OrderDenied(
                f"{fmt(volume)} lots is under {spec.name}'s minimum of {fmt(spec.volume_min)}"
            )
        raise OrderDenied(
            f"{fmt(volume)} lots rounds down to {fmt(rounded)} at {spec.name}'s volume step "
            f"{fmt(spec.volume_step)}, under its minimum of {fmt(spec.volume_min)}"
        )
    if rounded > spec.volume_max:
        raise OrderDenied(
            f"{fmt(rounded)} lots is over {spec.name}'s maximum of {fmt(spec.volume_max)}"
        )
    return rounded


def magic_for(client_order_id: str) -> int:
    """The request's `magic` for our client order id (derivation in the module docstring)."""
    if not _COID.fullmatch(client_order_id):
        raise ValueError(f"{client_order_id!r} is not a TradoSphere client order id")
    return (int(client_order_id[2:18], 16) & MAGIC_MAX) or 1


_PENDING_TYPES = {
    (Side.BUY, OrderType.LIMIT): C.ORDER_TYPE_BUY_LIMIT,
    (Side.SELL, OrderType.LIMIT): C.ORDER_TYPE_SELL_LIMIT,
    (Side.BUY, OrderType.STOP): C.ORDER_TYPE_BUY_STOP,
    (Side.SELL, OrderType.STOP): C.ORDER_TYPE_SELL_STOP,
}
_TYPE_NAMES = {
    C.ORDER_TYPE_BUY_LIMIT: "buy limit",
    C.ORDER_TYPE_SELL_LIMIT: "sell limit",
    C.ORDER_TYPE_BUY_STOP: "buy stop",
    C.ORDER_TYPE_SELL_STOP: "sell stop",
}


def mt5_order_type(side: Side, order_type: OrderType) -> int:
    """ORDER_TYPE_* for a side and a market, limit or stop order."""
    if order_type is OrderType.MARKET:
        return C.ORDER_TYPE_BUY if side is Side.BUY else C.ORDER_TYPE_SELL
    return _PENDING_TYPES[(side, order_type)]


def _f(value: Decimal | None) -> float:
    """The request's float for an already rounded Decimal; 0.0 is MT5's "no level"."""
    return 0.0 if value is None else float(value)


def _level(spec: SymbolSpec, value: Decimal | None) -> Decimal | None:
    return None if value is None else spec.round_price(value)


def _require_quote(spec: SymbolSpec, bid: Decimal, ask: Decimal) -> None:
    if bid <= 0 or ask <= 0:
        raise OrderDenied(
            f"{spec.name} has no price now (bid {fmt(bid)}, ask {fmt(ask)}): "
            "the market may be closed"
        )


def _check_trade_mode(spec: SymbolSpec, side: Side, opening: bool) -> None:
    mode = spec.trade_mode
    if mode == C.SYMBOL_TRADE_MODE_DISABLED:
        raise OrderDenied(f"trading {spec.name} is disabled on this account")
    if not opening:
        return
    if mode == C.SYMBOL_TRADE_MODE_CLOSEONLY:
        raise OrderDenied(f"{spec.name} is close-only on this account: no new positions")
    if mode == C.SYMBOL_TRADE_MODE_LONGONLY and side is Side.SELL:
        raise OrderDenied(f"{spec.name} allows only long positions on this account")
    if mode == C.SYMBOL_TRADE_MODE_SHORTONLY and side is Side.BUY:
        raise OrderDenied(f"{spec.name} allows only short positions on this account")


def _check_distance(
    spec: SymbolSpec, what: str, distance: Decimal, where: str, reference: Decimal
) -> None:
    """`distance` from `reference` must be positive and at least the stops level."""
    if distance <= 0:
        raise OrderDenied(f"{what} must be {where} {fmt(reference)}")
    level = spec.trade_stops_level
    if level > 0 and distance < level * spec.point:
        raise OrderDenied(
            f"{what} is {fmt(distance)} from {fmt(reference)}, nearer than {spec.name}'s "
            f"stops level of {level} points ({fmt(level * spec.point)})"
        )


def _check_stops(
    spec: SymbolSpec,
    side: Side,
    reference: Decimal,
    sl: Decimal | None,
    tp: Decimal | None,
    measured_from: str,
) -> None:
    """A long's SL below and TP above `reference`; a short's the other way round."""
    below, above = f"below {measured_from}", f"above {measured_from}"
    if sl is not None:
        what = f"the stop loss {fmt(sl)}"
        if side is Side.BUY:
            _check_distance(spec, what, reference - sl, below, reference)
        else:
            _check_distance(spec, what, sl - reference, above, reference)
    if tp is not None:
        what = f"the take profit {fmt(tp)}"
        if side is Side.BUY:
            _check_distance(spec, what, tp - reference, above, reference)
        else:
            _check_distance(spec, what, reference - tp, below, reference)


def _check_pending_price(
    spec: SymbolSpec, mt5_type: int, price: Decimal, bid: Decimal, ask: Decimal
) -> None:
    what = f"a {_TYPE_NAMES[mt5_type]} at {fmt(price)}"
    if mt5_type == C.ORDER_TYPE_BUY_LIMIT:
        _check_distance(spec, what, ask - price, "below the ask", ask)
    elif mt5_type == C.ORDER_TYPE_SELL_LIMIT:
        _check_distance(spec, what, price - bid, "above the bid", bid)
    elif mt5_type == C.ORDER_TYPE_BUY_STOP:
        _check_distance(spec, what, price - ask, "above the ask", ask)
    else:
        _check_distance(spec, what, bid - price, "below the bid", bid)


def _identity(coid: str) -> Request:
    return {"magic": magic_for(coid), "comment": coid}


def _deal(
    order: FollowerOrder,
    coid: str,
    spec: SymbolSpec,
    bid: Decimal,
    ask: Decimal,
    deviation: int | None,
    position_ticket: int | None,
) -> Request:
    """A market deal: opening (no ticket) or closing `position_ticket`, on `order.side`."""
    opening = position_ticket is None
    _check_trade_mode(spec, order.side, opening)
    volume = round_volume(spec, order.volume)
    _require_quote(spec, bid, ask)
    price = spec.round_price(ask if order.side is Side.BUY else bid)
    request: Request = {
        "action": C.TRADE_ACTION_DEAL,
        "symbol": spec.name,
        "volume": _f(volume),
        "type": mt5_order_type(order.side, OrderType.MARKET),
        "price": _f(price),
    }
    if opening:
        sl, tp = _level(spec, order.sl), _level(spec, order.tp)
        # A long closes at the Bid, a short at the Ask: its SL and TP are measured there.
        reference, name = (bid, "the bid") if order.side is Side.BUY else (ask, "the ask")
        _check_stops(spec, order.side, reference, sl, tp, name)
        request |= {"sl": _f(sl), "tp": _f(tp)}
    else:
        request["position"] = position_ticket
    return request | {
        "deviation": deviation_points(spec, deviation),
        **_identity(coid),
        "type_time": C.ORDER_TIME_GTC,
        "type_filling": filling_type(spec),
    }


def _pending_type(order: FollowerOrder) -> int:
    if order.order_type is OrderType.MARKET:
        raise ValueError(f"{order.action.value} needs a limit or stop order, not a market order")
    return mt5_order_type(order.side, order.order_type)


def _pending_levels(
    order: FollowerOrder, spec: SymbolSpec, bid: Decimal, ask: Decimal
) -> tuple[int, Decimal, Decimal | None, Decimal | None]:
    mt5_type = _pending_type(order)
    _require_quote(spec, bid, ask)
    price = spec.round_price(order.reference_price)
    _check_pending_price(spec, mt5_type, price, bid, ask)
    sl, tp = _level(spec, order.sl), _level(spec, order.tp)
    _check_stops(spec, order.side, price, sl, tp, "the order's price")
    return mt5_type, price, sl, tp


def _ticket(order: FollowerOrder, ticket: int | None, what: str) -> int:
    if ticket is None or ticket <= 0:
        raise ValueError(f"{order.action.value} needs the follower's {what} ticket")
    return ticket


def build_request(
    order: FollowerOrder,
    coid: str,
    spec: SymbolSpec,
    tick_bid: Decimal,
    tick_ask: Decimal,
    position_ticket: int | None,
    order_ticket: int | None,
    deviation: int | None,
) -> Request:
    """The `order_send` request for one planned order.

    - OPEN: TRADE_ACTION_DEAL, BUY at the Ask or SELL at the Bid, with SL/TP.
    - CLOSE, REDUCE: TRADE_ACTION_DEAL of `order.side` (the planner already gives
      the opposite of the position's side) with `position` = `position_ticket`
      and the volume to close: all of it, or part.
    - MODIFY: TRADE_ACTION_SLTP on `position_ticket`; a None level is 0.0, none.
    - PLACE_PENDING: TRADE_ACTION_PENDING, BUY/SELL LIMIT/STOP at the rounded
      `reference_price`.
    - MODIFY_PENDING: TRADE_ACTION_MODIFY of `order_ticket`: price, SL, TP.
    - CANCEL_PENDING: TRADE_ACTION_REMOVE of `order_ticket`.
    - FILL_PENDING takes two requests: `fill_pending_requests`.

    Raises `OrderDenied` (a sentence) for what the symbol would refuse and
    ValueError for a request the caller got wrong (another symbol, no ticket,
    not our client order id).
    """
    if order.symbol != spec.name:
        raise ValueError(f"the order is for {order.symbol}, the symbol data for {spec.name}")
    magic_for(coid)
    bid, ask = tick_bid, tick_ask
    match order.action:
        case OrderAction.OPEN:
            return _deal(order, coid, spec, bid, ask, deviation, None)
        case OrderAction.CLOSE | OrderAction.REDUCE:
            ticket = _ticket(order, position_ticket, "position")
            return _deal(order, coid, spec, bid, ask, deviation, ticket)
        case OrderAction.MODIFY:
            ticket = _ticket(order, position_ticket, "position")
            _check_trade_mode(spec, order.side, opening=False)
            sl, tp = _level(spec, order.sl), _level(spec, order.tp)
            if sl is not None or tp is not None:
                _require_quote(spec, bid, ask)
                reference, name = (bid, "the bid") if order.side is Side.BUY else (ask, "the ask")
                _check_stops(spec, order.side, reference, sl, tp, name)
            return {
                "action": C.TRADE_ACTION_SLTP,
                "symbol": spec.name,
                "position": ticket,
                "sl": _f(sl),
                "tp": _f(tp),
                "magic": magic_for(coid),
            }
        case OrderAction.PLACE_PENDING:
            _check_trade_mode(spec, order.side, opening=True)
            volume = round_volume(spec, order.volume)
            mt5_type, price, sl, tp = _pending_levels(order, spec, bid, ask)
            return {
                "action": C.TRADE_ACTION_PENDING,
                "symbol": spec.name,
                "volume": _f(volume),
                "type": mt5_type,
                "price": _f(price),
                "sl": _f(sl),
                "tp": _f(tp),
                **_identity(coid),
                "type_time": C.ORDER_TIME_GTC,
                "type_filling": filling_type(spec, pending=True),
            }
        case OrderAction.MODIFY_PENDING:
            ticket = _ticket(order, order_ticket, "pending order")
            _check_trade_mode(spec, order.side, opening=False)
            _, price, sl, tp = _pending_levels(order, spec, bid, ask)
            return {
                "action": C.TRADE_ACTION_MODIFY,
                "order": ticket,
                "symbol": spec.name,
                "price": _f(price),
                "sl": _f(sl),
                "tp": _f(tp),
                "type_time": C.ORDER_TIME_GTC,
            }
        case OrderAction.CANCEL_PENDING:
            ticket = _ticket(order, order_ticket, "pending order")
            return {"action": C.TRADE_ACTION_REMOVE, "order": ticket}
        case OrderAction.FILL_PENDING:
            raise ValueError("fill_pending needs two requests: use fill_pending_requests")
    raise AssertionError(f"unknown action {order.action!r}")


def fill_pending_requests(
    order: FollowerOrder,
    coid: str,
    spec: SymbolSpec,
    tick_bid: Decimal,
    tick_ask: Decimal,
    order_ticket: int,
    deviation: int | None,
) -> tuple[Request, Request]:
    """FILL_PENDING: remove the follower's pending order, then deal its volume at market.

    The master's order filled before the follower's: the copy follows at the
    market price. Send the removal first and the deal, which carries the
    client order id, only when the removal succeeded: a removal refused
    because the order is gone means it filled (or was cancelled) on its own,
    which the agent looks up instead of dealing a second position.
    """
    if order.action is not OrderAction.FILL_PENDING:
        raise ValueError(f"{order.action.value} is not fill_pending")
    if order.symbol != spec.name:
        raise ValueError(f"the order is for {order.symbol}, the symbol data for {spec.name}")
    ticket = _ticket(order, order_ticket, "pending order")
    deal = _deal(order, coid, spec, tick_bid, tick_ask, deviation, None)
    return {"action": C.TRADE_ACTION_REMOVE, "order": ticket}, deal
