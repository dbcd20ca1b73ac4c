"""Trade-server and terminal rules of the MetaTrader5 TEST STAND-IN (test code only).

Pure functions over the JSON state kept by `_store.py`; used by the stand-in's
API (`__init__.py`, in the agent's process) and by `tests/mt5_standin/control.py`
(in the test process). Product code never imports this.

Amounts and prices are kept exact, as Decimal strings; the API turns them into
floats, like the real package. What is reproduced, and from which page of
https://www.mql5.com/en/docs, is listed in `__init__.py`'s docstring.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fnmatch import fnmatchcase
from typing import Any

D = Decimal
ZERO = D(0)

# --- enumerations (the values of the real package and of the MQL5 enums) ---
ORDER_TYPE_BUY, ORDER_TYPE_SELL = 0, 1
ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT = 2, 3
ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP = 4, 5
ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT = 6, 7
ORDER_TYPE_CLOSE_BY = 8
PENDING_TYPES = (
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_SELL_STOP,
)
BUY_SIDE = (ORDER_TYPE_BUY, ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT)

ORDER_STATE_PLACED, ORDER_STATE_CANCELED = 1, 2
ORDER_STATE_FILLED, ORDER_STATE_REJECTED, ORDER_STATE_EXPIRED = 4, 5, 6

ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN, ORDER_FILLING_BOC = 0, 1, 2, 3
ORDER_TIME_GTC, ORDER_TIME_DAY, ORDER_TIME_SPECIFIED, ORDER_TIME_SPECIFIED_DAY = 0, 1, 2, 3

REASON_CLIENT, REASON_MOBILE, REASON_WEB, REASON_EXPERT = 0, 1, 2, 3
REASON_SL, REASON_TP = 4, 5

DEAL_TYPE_BUY, DEAL_TYPE_SELL, DEAL_TYPE_BALANCE = 0, 1, 2
DEAL_ENTRY_IN, DEAL_ENTRY_OUT = 0, 1

TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_SLTP = 1, 5, 6
TRADE_ACTION_MODIFY, TRADE_ACTION_REMOVE, TRADE_ACTION_CLOSE_BY = 7, 8, 10

SYMBOL_TRADE_MODE_DISABLED, SYMBOL_TRADE_MODE_LONGONLY = 0, 1
SYMBOL_TRADE_MODE_SHORTONLY, SYMBOL_TRADE_MODE_CLOSEONLY, SYMBOL_TRADE_MODE_FULL = 2, 3, 4
SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT = 0, 1
SYMBOL_TRADE_EXECUTION_MARKET, SYMBOL_TRADE_EXECUTION_EXCHANGE = 2, 3
SYMBOL_CALC_MODE_FOREX, SYMBOL_CALC_MODE_CFD, SYMBOL_CALC_MODE_CFDLEVERAGE = 0, 2, 4

# Terminal-side flags (MQL5 SYMBOL_FILLING_MODE, SYMBOL_ORDER_MODE, SYMBOL_EXPIRATION_MODE).
# The Python package does NOT export these names; `control.py` does, for tests.
SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC, SYMBOL_FILLING_BOC = 1, 2, 4
SYMBOL_ORDER_MARKET, SYMBOL_ORDER_LIMIT, SYMBOL_ORDER_STOP = 1, 2, 4
SYMBOL_ORDER_STOP_LIMIT, SYMBOL_ORDER_SL, SYMBOL_ORDER_TP, SYMBOL_ORDER_CLOSEBY = 8, 16, 32, 64
SYMBOL_EXPIRATION_GTC, SYMBOL_EXPIRATION_DAY = 1, 2
SYMBOL_EXPIRATION_SPECIFIED, SYMBOL_EXPIRATION_SPECIFIED_DAY = 4, 8

ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2

# Trade server return codes (https://www.mql5.com/en/docs/constants/errorswarnings/enum_trade_return_codes)
RETCODE_TEXT = {
    10004: "Requote",
    10006: "Request rejected",
    10007: "Request canceled by trader",
    10008: "Order placed",
    10009: "Request executed",
    10010: "Only part of the request was completed",
    10011: "Request processing error",
    10012: "Request canceled by timeout",
    10013: "Invalid request",
    10014: "Invalid volume in the request",
    10015: "Invalid price in the request",
    10016: "Invalid stops in the request",
    10017: "Trade is disabled",
    10018: "Market is closed",
    10019: "There is not enough money to complete the request",
    10020: "Prices changed",
    10021: "There are no quotes to process the request",
    10022: "Invalid order expiration date in the request",
    10023: "Order state changed",
    10024: "Too frequent requests",
    10025: "No changes in request",
    10026: "Autotrading disabled by server",
    10027: "Autotrading disabled by client terminal",
    10028: "Request locked for processing",
    10029: "Order or position frozen",
    10030: "Invalid order filling type",
    10031: "No connection with the trade server",
    10032: "Operation is allowed only for live accounts",
    10033: "The number of pending orders has reached the limit",
    10034: "The volume of orders and positions for the symbol has reached the limit",
    10035: "Incorrect or prohibited order type",
    10036: "Position with the specified POSITION_IDENTIFIER has already been closed",
    10038: "A close volume exceeds the current position volume",
    10039: "A close order already exists for a specified position",
    10040: "The number of open positions on the account has reached the limit",
    10041: "The pending order activation request is rejected, the order is canceled",
    10042: "The request is rejected, because the 'Only long positions are allowed' rule is set",
    10043: "The request is rejected, because the 'Only short positions are allowed' rule is set",
    10044: "The request is rejected, because the 'Only position closing is allowed' rule is set",
    10045: "The request is rejected, because 'Position closing is allowed only by FIFO rule' flag",
}
DONE = 10009


class Reject(Exception):
    """A request the trade server refuses, with its return code."""

    def __init__(self, retcode: int, why: str = "") -> None:
        super().__init__(f"{retcode} {RETCODE_TEXT.get(retcode, '')}: {why}")
        self.retcode = retcode
        self.why = why


def dec(value: Any) -> Decimal:
    """Exact Decimal of a stored string or of a float as Python prints it."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return D(value)
    if isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    return D(repr(value)) if isinstance(value, float) else D(value)


def s(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


# --- defaults ---------------------------------------------------------------


def default_symbols() -> list[dict[str, Any]]:
    """EURUSD, GBPUSD (instant execution), USDJPY, XAUUSD (IOC only), BTCUSD."""
    return [
        {
            "name": "EURUSD",
            "digits": 5,
            "contract_size": "100000",
            "bid": "1.08500",
            "ask": "1.08510",
            "currency_base": "EUR",
            "currency_profit": "USD",
            "currency_margin": "EUR",
            "description": "Euro vs US Dollar",
            "path": "Forex\\EURUSD",
        },
        {
            "name": "GBPUSD",
            "digits": 5,
            "contract_size": "100000",
            "bid": "1.27000",
            "ask": "1.27015",
            "currency_base": "GBP",
            "currency_profit": "USD",
            "currency_margin": "GBP",
            "trade_exemode": SYMBOL_TRADE_EXECUTION_INSTANT,
            "trade_stops_level": 10,
            "filling_mode": SYMBOL_FILLING_FOK,
            "description": "Great Britain Pound vs US Dollar",
            "path": "Forex\\GBPUSD",
        },
        {
            "name": "USDJPY",
            "digits": 3,
            "contract_size": "100000",
            "bid": "155.000",
            "ask": "155.012",
            "currency_base": "USD",
            "currency_profit": "JPY",
            "currency_margin": "USD",
            "description": "US Dollar vs Japanese Yen",
            "path": "Forex\\USDJPY",
        },
        {
            "name": "XAUUSD",
            "digits": 2,
            "contract_size": "100",
            "bid": "2350.00",
            "ask": "2350.30",
            "volume_max": "50",
            "currency_base": "XAU",
            "currency_profit": "USD",
            "currency_margin": "USD",
            "trade_calc_mode": SYMBOL_CALC_MODE_CFDLEVERAGE,
            "filling_mode": SYMBOL_FILLING_IOC,
            "description": "Gold vs US Dollar",
            "path": "Metals\\XAUUSD",
        },
        {
            "name": "BTCUSD",
            "digits": 2,
            "contract_size": "1",
            "bid": "65000.00",
            "ask": "65015.00",
            "volume_max": "10",
            "currency_base": "BTC",
            "currency_profit": "USD",
            "currency_margin": "USD",
            "trade_calc_mode": SYMBOL_CALC_MODE_CFDLEVERAGE,
            "description": "Bitcoin vs US Dollar",
            "path": "Crypto\\BTCUSD",
        },
    ]


SYMBOL_DEFAULTS: dict[str, Any] = {
    "volume_min": "0.01",
    "volume_max": "100",
    "volume_step": "0.01",
    "volume_limit": "0",
    "filling_mode": SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC,
    "trade_exemode": SYMBOL_TRADE_EXECUTION_MARKET,
    "trade_mode": SYMBOL_TRADE_MODE_FULL,
    "trade_calc_mode": SYMBOL_CALC_MODE_FOREX,
    "trade_stops_level": 0,
    "trade_freeze_level": 0,
    # market, limit, stop, SL, TP; no stop-limit and no close-by (not reproduced)
    "order_mode": SYMBOL_ORDER_MARKET
    | SYMBOL_ORDER_LIMIT
    | SYMBOL_ORDER_STOP
    | SYMBOL_ORDER_SL
    | SYMBOL_ORDER_TP,
    "expiration_mode": SYMBOL_EXPIRATION_GTC
    | SYMBOL_EXPIRATION_DAY
    | SYMBOL_EXPIRATION_SPECIFIED
    | SYMBOL_EXPIRATION_SPECIFIED_DAY,
    "select": True,
    "description": "",
    "path": "",
}

ACCOUNT_DEFAULTS: dict[str, Any] = {
    "investor_password": None,
    "server": "StandIn-Demo",
    "balance": "10000",
    "currency": "USD",
    "leverage": 100,
    "name": "Stand-in Trader",
    "trade_mode": 0,  # ACCOUNT_TRADE_MODE_DEMO
    "limit_orders": 200,
    "margin_so_call": "50",
    "margin_so_so": "30",
    "company": "Stand-in Broker Ltd",
    "trade_expert": True,
}


def normalize_symbol(spec: dict[str, Any]) -> dict[str, Any]:
    sym = {**SYMBOL_DEFAULTS, **spec}
    digits = int(sym["digits"])
    point = D(1).scaleb(-digits)
    sym["point"] = s(point)
    sym.setdefault("trade_tick_size", s(point))
    for key in (
        "contract_size",
        "volume_min",
        "volume_max",
        "volume_step",
        "volume_limit",
        "bid",
        "ask",
        "trade_tick_size",
    ):
        sym[key] = s(dec(sym[key]))
    if sym["order_mode"] & (SYMBOL_ORDER_STOP_LIMIT | SYMBOL_ORDER_CLOSEBY):
        raise ValueError("stop-limit orders and close-by are not reproduced by the stand-in")
    if dec(sym["bid"]) > dec(sym["ask"]):
        raise ValueError(f"{sym['name']}: bid above ask")
    sym.update(bidhigh=sym["bid"], bidlow=sym["bid"], askhigh=sym["ask"], asklow=sym["ask"])
    sym["time_msc"] = 0
    return sym


def normalize_account(spec: dict[str, Any]) -> dict[str, Any]:
    acc = {**ACCOUNT_DEFAULTS, **spec}
    if "login" not in acc or "password" not in acc:
        raise ValueError("an account needs login and password")
    if acc.get("margin_mode", ACCOUNT_MARGIN_MODE_RETAIL_HEDGING) != (
        ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    ):
        raise ValueError("only hedging accounts are reproduced by the stand-in")
    acc["margin_mode"] = ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    acc["login"] = int(acc["login"])
    for key in ("balance", "margin_so_call", "margin_so_so"):
        acc[key] = s(dec(acc[key]))
    acc["credit"] = "0"
    return acc


def new_state(
    accounts: list[dict[str, Any]],
    symbols: list[dict[str, Any]] | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    syms = [normalize_symbol(x) for x in (symbols if symbols is not None else default_symbols())]
    accs = [normalize_account(a) for a in accounts]
    server: dict[str, Any] = {
        "accounts": {str(a["login"]): a for a in accs},
        "symbols": {x["name"]: x for x in syms},
        "positions": [],
        "orders": [],
        "history_orders": [],
        "deals": [],
        "next_order": 50_000_001,
        "next_deal": 30_000_001,
    }
    state: dict[str, Any] = {
        "format": 1,
        "options": {
            "comment_max": 28,
            "server_time_offset_s": 0,
            "build": 4755,
            "build_date": "1 Jan 2025",
            **options,
        },
        "terminal": {
            "running": True,
            "epoch": 1,
            "connected": True,
            "algo_trading": True,
            "login": None,
            "investor": False,
            "request_id": 0,
            "selected": {x["name"]: bool(x["select"]) for x in syms},
        },
        "server": server,
        "view": None,
        "failures": [],
        "requests": [],
    }
    now = now_msc(state)
    for sym in syms:
        sym["time_msc"] = now
    for acc in accs:  # every account's history starts with its deposit, as on a real server
        for sym in syms:
            convert(server, D(1), sym["currency_profit"], acc["currency"])
            convert(server, D(1), sym["currency_margin"], acc["currency"])
        if dec(acc["balance"]):
            server["deals"].append(
                new_deal(
                    server,
                    acc["login"],
                    order=0,
                    now=now,
                    type_=DEAL_TYPE_BALANCE,
                    entry=DEAL_ENTRY_IN,
                    magic=0,
                    position_id=0,
                    reason=REASON_CLIENT,
                    volume=ZERO,
                    price=ZERO,
                    profit=dec(acc["balance"]),
                    symbol="",
                    comment="Deposit",
                )
            )
    return state


# --- time, prices, money ----------------------------------------------------


def now_msc(state: dict[str, Any]) -> int:
    """Trade server time in ms (MT5 reports server time, as if it were UTC)."""
    return int(time.time() * 1000) + int(state["options"]["server_time_offset_s"]) * 1000


def view(state: dict[str, Any]) -> dict[str, Any]:
    """What the terminal knows: the server, or its last copy while disconnected."""
    return state["view"] if state["view"] is not None else state["server"]


def point(sym: dict[str, Any]) -> Decimal:
    return dec(sym["point"])


def market_price(sym: dict[str, Any], buy: bool) -> Decimal:
    """Buys execute at the ask, sells at the bid."""
    return dec(sym["ask"] if buy else sym["bid"])


def close_price(sym: dict[str, Any], position_type: int) -> Decimal:
    """A buy position is closed (and valued) at the bid, a sell one at the ask."""
    return dec(sym["bid"] if position_type == ORDER_TYPE_BUY else sym["ask"])


def convert(server: dict[str, Any], amount: Decimal, ccy_from: str, ccy_to: str) -> Decimal:
    if ccy_from == ccy_to or not amount:
        return amount
    symbols = server["symbols"]
    direct = symbols.get(ccy_from + ccy_to)
    if direct is not None:
        return amount * dec(direct["bid"])
    inverse = symbols.get(ccy_to + ccy_from)
    if inverse is not None:
        return amount / dec(inverse["ask"])
    raise ValueError(f"no symbol converts {ccy_from} to {ccy_to}")


def money(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def raw_profit(
    sym: dict[str, Any], ptype: int, volume: Decimal, open_: Decimal, close: Decimal
) -> Decimal:
    move = close - open_ if ptype == ORDER_TYPE_BUY else open_ - close
    return move * volume * dec(sym["contract_size"])


def position_profit(server: dict[str, Any], pos: dict[str, Any]) -> Decimal:
    sym = server["symbols"][pos["symbol"]]
    acc = server["accounts"][str(pos["login"])]
    amount = raw_profit(
        sym, pos["type"], dec(pos["volume"]), dec(pos["price_open"]), close_price(sym, pos["type"])
    )
    return money(convert(server, amount, sym["currency_profit"], acc["currency"]))


def margin_for(
    server: dict[str, Any], login: int, sym: dict[str, Any], volume: Decimal, price: Decimal
) -> Decimal:
    """Initial margin: Forex = lots*contract/leverage in the margin currency;
    CFD-leverage = lots*contract*price/leverage (MQL5 'Margin requirements')."""
    acc = server["accounts"][str(login)]
    lots = volume * dec(sym["contract_size"])
    if sym["trade_calc_mode"] == SYMBOL_CALC_MODE_FOREX:
        amount = lots / acc["leverage"]
    else:
        amount = lots * price / acc["leverage"]
    return money(convert(server, amount, sym["currency_margin"], acc["currency"]))


def account_figures(server: dict[str, Any], login: int) -> dict[str, Decimal]:
    acc = server["accounts"][str(login)]
    balance = dec(acc["balance"])
    profit = ZERO
    margin = ZERO
    for pos in server["positions"]:
        if pos["login"] == login:
            profit += position_profit(server, pos)
            margin += margin_for(
                server,
                login,
                server["symbols"][pos["symbol"]],
                dec(pos["volume"]),
                dec(pos["price_open"]),
            )
    equity = balance + dec(acc["credit"]) + profit
    level = (equity / margin * 100) if margin else ZERO
    return {
        "balance": balance,
        "credit": dec(acc["credit"]),
        "profit": profit,
        "equity": equity,
        "margin": margin,
        "margin_free": equity - margin,
        "margin_level": level,
    }


# --- records ----------------------------------------------------------------


def _next(server: dict[str, Any], key: str) -> int:
    ticket = int(server[key])
    server[key] = ticket + 1
    return ticket


def new_deal(
    server: dict[str, Any],
    login: int,
    *,
    order: int,
    now: int,
    type_: int,
    entry: int,
    magic: int,
    position_id: int,
    reason: int,
    volume: Decimal,
    price: Decimal,
    profit: Decimal,
    symbol: str,
    comment: str,
) -> dict[str, Any]:
    return {
        "ticket": _next(server, "next_deal"),
        "login": login,
        "order": order,
        "time_msc": now,
        "type": type_,
        "entry": entry,
        "magic": magic,
        "position_id": position_id,
        "reason": reason,
        "volume": s(volume),
        "price": s(price),
        "commission": "0",
        "swap": "0",
        "profit": s(profit),
        "fee": "0",
        "symbol": symbol,
        "comment": comment,
        "external_id": "",
    }


def _history_market_order(
    server: dict[str, Any],
    login: int,
    *,
    ticket: int,
    now: int,
    type_: int,
    filling: int,
    magic: int,
    position_id: int,
    reason: int,
    volume: Decimal,
    price: Decimal,
    sl: Decimal,
    tp: Decimal,
    symbol: str,
    comment: str,
) -> dict[str, Any]:
    order = {
        "ticket": ticket,
        "login": login,
        "time_setup_msc": now,
        "time_done_msc": now,
        "time_expiration": 0,
        "type": type_,
        "type_time": ORDER_TIME_GTC,
        "type_filling": filling,
        "state": ORDER_STATE_FILLED,
        "magic": magic,
        "position_id": position_id,
        "position_by_id": 0,
        "reason": reason,
        "volume_initial": s(volume),
        "volume_current": "0",
        "price_open": s(price),
        "sl": s(sl),
        "tp": s(tp),
        "price_current": s(price),
        "price_stoplimit": "0",
        "symbol": symbol,
        "comment": comment,
        "external_id": "",
        "expires_msc": 0,
    }
    server["history_orders"].append(order)
    return order


def open_position(
    server: dict[str, Any],
    login: int,
    sym: dict[str, Any],
    type_: int,
    volume: Decimal,
    price: Decimal,
    sl: Decimal,
    tp: Decimal,
    magic: int,
    comment: str,
    reason: int,
    filling: int,
    now: int,
) -> tuple[int, int]:
    """A market order filled in full: history order, IN deal, new position."""
    ticket = _next(server, "next_order")
    _history_market_order(
        server,
        login,
        ticket=ticket,
        now=now,
        type_=type_,
        filling=filling,
        magic=magic,
        position_id=ticket,
        reason=reason,
        volume=volume,
        price=price,
        sl=sl,
        tp=tp,
        symbol=sym["name"],
        comment=comment,
    )
    deal = new_deal(
        server,
        login,
        order=ticket,
        now=now,
        type_=type_,
        entry=DEAL_ENTRY_IN,
        magic=magic,
        position_id=ticket,
        reason=reason,
        volume=volume,
        price=price,
        profit=ZERO,
        symbol=sym["name"],
        comment=comment,
    )
    server["deals"].append(deal)
    server["positions"].append(
        _position(
            login, ticket, sym["name"], type_, volume, price, sl, tp, magic, reason, comment, now
        )
    )
    return ticket, deal["ticket"]


def _position(
    login: int,
    ticket: int,
    symbol: str,
    type_: int,
    volume: Decimal,
    price: Decimal,
    sl: Decimal,
    tp: Decimal,
    magic: int,
    reason: int,
    comment: str,
    now: int,
) -> dict[str, Any]:
    return {
        "ticket": ticket,
        "login": login,
        "time_msc": now,
        "time_update_msc": now,
        "type": type_,
        "magic": magic,
        "identifier": ticket,
        "reason": reason,
        "volume": s(volume),
        "price_open": s(price),
        "sl": s(sl),
        "tp": s(tp),
        "swap": "0",
        "symbol": symbol,
        "comment": comment,
        "external_id": "",
    }


def close_position(
    server: dict[str, Any],
    pos: dict[str, Any],
    volume: Decimal,
    price: Decimal,
    magic: int,
    comment: str,
    reason: int,
    filling: int,
    now: int,
) -> tuple[int, int]:
    """An opposite market order on `pos`: history order, OUT deal, profit to balance."""
    sym = server["symbols"][pos["symbol"]]
    acc = server["accounts"][str(pos["login"])]
    side = ORDER_TYPE_SELL if pos["type"] == ORDER_TYPE_BUY else ORDER_TYPE_BUY
    ticket = _next(server, "next_order")
    _history_market_order(
        server,
        pos["login"],
        ticket=ticket,
        now=now,
        type_=side,
        filling=filling,
        magic=magic,
        position_id=pos["ticket"],
        reason=reason,
        volume=volume,
        price=price,
        sl=ZERO,
        tp=ZERO,
        symbol=pos["symbol"],
        comment=comment,
    )
    profit = money(
        convert(
            server,
            raw_profit(sym, pos["type"], volume, dec(pos["price_open"]), price),
            sym["currency_profit"],
            acc["currency"],
        )
    )
    deal = new_deal(
        server,
        pos["login"],
        order=ticket,
        now=now,
        type_=side,
        entry=DEAL_ENTRY_OUT,
        magic=magic,
        position_id=pos["identifier"],
        reason=reason,
        volume=volume,
        price=price,
        profit=profit,
        symbol=pos["symbol"],
        comment=comment,
    )
    server["deals"].append(deal)
    acc["balance"] = s(dec(acc["balance"]) + profit)
    left = dec(pos["volume"]) - volume
    if left > 0:
        pos["volume"] = s(left)
        pos["time_update_msc"] = now
    else:
        server["positions"].remove(pos)
    return ticket, deal["ticket"]


def place_pending(
    server: dict[str, Any],
    login: int,
    sym: dict[str, Any],
    type_: int,
    volume: Decimal,
    price: Decimal,
    sl: Decimal,
    tp: Decimal,
    magic: int,
    comment: str,
    reason: int,
    filling: int,
    type_time: int,
    expiration: int,
    now: int,
) -> int:
    ticket = _next(server, "next_order")
    server["orders"].append(
        {
            "ticket": ticket,
            "login": login,
            "time_setup_msc": now,
            "time_done_msc": 0,
            "time_expiration": expiration,
            "type": type_,
            "type_time": type_time,
            "type_filling": filling,
            "state": ORDER_STATE_PLACED,
            "magic": magic,
            "position_id": 0,
            "position_by_id": 0,
            "reason": reason,
            "volume_initial": s(volume),
            "volume_current": s(volume),
            "price_open": s(price),
            "sl": s(sl),
            "tp": s(tp),
            "price_current": "0",
            "price_stoplimit": "0",
            "symbol": sym["name"],
            "comment": comment,
            "external_id": "",
            "expires_msc": expiry_msc(type_time, expiration, now),
        }
    )
    return ticket


def expiry_msc(type_time: int, expiration: int, now: int) -> int:
    """When a pending order stops being valid (0: never), in server time ms."""
    day_end = (now // 86_400_000 + 1) * 86_400_000
    if type_time == ORDER_TIME_DAY:
        return day_end
    if type_time == ORDER_TIME_SPECIFIED:
        return expiration * 1000
    if type_time == ORDER_TIME_SPECIFIED_DAY:
        return (expiration // 86_400 + 1) * 86_400_000
    return 0


def finish_order(server: dict[str, Any], order: dict[str, Any], state_: int, now: int) -> None:
    server["orders"].remove(order)
    order["state"] = state_
    order["time_done_msc"] = now
    server["history_orders"].append(order)


def fill_pending(server: dict[str, Any], order: dict[str, Any], price: Decimal, now: int) -> None:
    """A pending order reached by the price: it becomes a position with its ticket."""
    sym = server["symbols"][order["symbol"]]
    buy = order["type"] in BUY_SIDE
    volume = dec(order["volume_current"])
    need = margin_for(server, order["login"], sym, volume, price)
    if account_figures(server, order["login"])["margin_free"] < need:
        finish_order(server, order, ORDER_STATE_REJECTED, now)
        return
    side = ORDER_TYPE_BUY if buy else ORDER_TYPE_SELL
    finish_order(server, order, ORDER_STATE_FILLED, now)
    order.update(volume_current="0", price_current=s(price), position_id=order["ticket"])
    server["deals"].append(
        new_deal(
            server,
            order["login"],
            order=order["ticket"],
            now=now,
            type_=side,
            entry=DEAL_ENTRY_IN,
            magic=order["magic"],
            position_id=order["ticket"],
            reason=order["reason"],
            volume=volume,
            price=price,
            profit=ZERO,
            symbol=order["symbol"],
            comment=order["comment"],
        )
    )
    server["positions"].append(
        _position(
            order["login"],
            order["ticket"],
            order["symbol"],
            side,
            volume,
            price,
            dec(order["sl"]),
            dec(order["tp"]),
            order["magic"],
            order["reason"],
            order["comment"],
            now,
        )
    )


def pending_triggered(order: dict[str, Any], sym: dict[str, Any]) -> Decimal | None:
    """The fill price if the market has reached the order, else None.

    Limit orders fill at their price, stop orders become market orders and fill
    at the market price."""
    price = dec(order["price_open"])
    ask, bid = dec(sym["ask"]), dec(sym["bid"])
    t = order["type"]
    if t == ORDER_TYPE_BUY_LIMIT and ask <= price:
        return price
    if t == ORDER_TYPE_SELL_LIMIT and bid >= price:
        return price
    if t == ORDER_TYPE_BUY_STOP and ask >= price:
        return ask
    if t == ORDER_TYPE_SELL_STOP and bid <= price:
        return bid
    return None


def stop_triggered(pos: dict[str, Any], sym: dict[str, Any]) -> tuple[int, Decimal] | None:
    """(reason, price) when the position's stop loss or take profit is reached."""
    sl, tp = dec(pos["sl"]), dec(pos["tp"])
    price = close_price(sym, pos["type"])
    if pos["type"] == ORDER_TYPE_BUY:
        if sl and price <= sl:
            return REASON_SL, price
        if tp and price >= tp:
            return REASON_TP, tp
    else:
        if sl and price >= sl:
            return REASON_SL, price
        if tp and price <= tp:
            return REASON_TP, tp
    return None


def apply_market(server: dict[str, Any], now: int) -> bool:
    """Fill reached pending orders, close positions whose SL/TP is reached, expire orders."""
    changed = False
    for order in list(server["orders"]):
        if order["expires_msc"] and order["expires_msc"] <= now:
            finish_order(server, order, ORDER_STATE_EXPIRED, now)
            changed = True
            continue
        price = pending_triggered(order, server["symbols"][order["symbol"]])
        if price is not None:
            fill_pending(server, order, price, now)
            changed = True
    for pos in list(server["positions"]):
        sym = server["symbols"][pos["symbol"]]
        hit = stop_triggered(pos, sym)
        if hit is not None:
            reason, price = hit
            level = pos["sl"] if reason == REASON_SL else pos["tp"]
            tag = "sl" if reason == REASON_SL else "tp"
            comment = f"[{tag} {dec(level):.{sym['digits']}f}]"
            close_position(
                server,
                pos,
                dec(pos["volume"]),
                price,
                pos["magic"],
                comment,
                reason,
                ORDER_FILLING_FOK,
                now,
            )
            changed = True
    return changed


def housekeep(state: dict[str, Any]) -> bool:
    """Run at the start of every transaction: expirations (and anything reached)."""
    return apply_market(state["server"], now_msc(state))


def set_price(state: dict[str, Any], symbol: str, bid: Decimal, ask: Decimal) -> None:
    server = state["server"]
    sym = server["symbols"].get(symbol)
    if sym is None:
        raise KeyError(f"unknown symbol {symbol}")
    if bid > ask:
        raise ValueError("bid above ask")
    now = now_msc(state)
    sym.update(bid=s(bid), ask=s(ask), time_msc=now)
    sym["bidhigh"] = s(max(bid, dec(sym["bidhigh"])))
    sym["bidlow"] = s(min(bid, dec(sym["bidlow"])))
    sym["askhigh"] = s(max(ask, dec(sym["askhigh"])))
    sym["asklow"] = s(min(ask, dec(sym["asklow"])))
    apply_market(server, now)


def snapshot(state: dict[str, Any]) -> None:
    """The terminal loses the trade server: it keeps showing what it last knew."""
    if state["view"] is None:
        state["view"] = copy.deepcopy(state["server"])


# --- requests ----------------------------------------------------------------

REQUEST_FIELDS: dict[str, type] = {
    "action": int,
    "magic": int,
    "order": int,
    "symbol": str,
    "volume": float,
    "price": float,
    "stoplimit": float,
    "sl": float,
    "tp": float,
    "deviation": int,
    "type": int,
    "type_filling": int,
    "type_time": int,
    "expiration": int,
    "comment": str,
    "position": int,
    "position_by": int,
}


def _normalized(value: Decimal, sym: dict[str, Any]) -> Decimal | None:
    """The price if it is a whole number of ticks (MQL5: prices must be normalized)."""
    tick = dec(sym["trade_tick_size"])
    q = (value / tick).to_integral_value() * tick
    return q if abs(value - q) <= tick * D("0.000001") else None


def check_volume(sym: dict[str, Any], volume: Decimal) -> None:
    vmin, vmax, step = dec(sym["volume_min"]), dec(sym["volume_max"]), dec(sym["volume_step"])
    if volume <= 0 or volume < vmin or volume > vmax:
        raise Reject(10014, f"volume {volume} outside [{vmin}, {vmax}]")
    if volume % step:
        raise Reject(10014, f"volume {volume} is not a multiple of the step {step}")


def check_filling(sym: dict[str, Any], filling: int, *, pending: bool, limit: bool) -> None:
    """MetaTrader 5 Help, 'Fill Policy': market orders are FOK only under Request and
    Instant execution; under Market execution FOK/IOC as the symbol's flags allow and
    Return only under Exchange execution; limit orders may always use Return."""
    flags = sym["filling_mode"]
    exemode = sym["trade_exemode"]
    if pending:
        ok = (
            filling == ORDER_FILLING_RETURN
            or (filling == ORDER_FILLING_FOK and flags & SYMBOL_FILLING_FOK)
            or (filling == ORDER_FILLING_IOC and flags & SYMBOL_FILLING_IOC)
            or (filling == ORDER_FILLING_BOC and limit and flags & SYMBOL_FILLING_BOC)
        )
    elif exemode in (SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT):
        ok = filling == ORDER_FILLING_FOK
    else:
        ok = (
            (filling == ORDER_FILLING_FOK and flags & SYMBOL_FILLING_FOK)
            or (filling == ORDER_FILLING_IOC and flags & SYMBOL_FILLING_IOC)
            or (filling == ORDER_FILLING_RETURN and exemode == SYMBOL_TRADE_EXECUTION_EXCHANGE)
        )
    if not ok:
        raise Reject(10030, f"filling {filling} with symbol filling_mode {flags}")


def execution_price(sym: dict[str, Any], buy: bool, req: dict[str, Any]) -> Decimal:
    """Market/Exchange execution fill at the market; Instant/Request execution need the
    price the client saw, and requote beyond `deviation` points."""
    market = market_price(sym, buy)
    if sym["trade_exemode"] in (SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT):
        asked = dec(req["price"])
        if not asked or _normalized(asked, sym) is None:
            raise Reject(10015, "instant execution needs the price")
        if abs(asked - market) > req["deviation"] * point(sym):
            raise Reject(10004, f"asked {asked}, market {market}")
    return market


def check_stops(sym: dict[str, Any], buy: bool, ref: Decimal, sl: Decimal, tp: Decimal) -> None:
    """SL below / TP above the reference for buys (the reverse for sells), at least
    trade_stops_level points away; both normalized to the tick size."""
    gap = sym["trade_stops_level"] * point(sym)
    for value in (sl, tp):
        if value and _normalized(value, sym) is None:
            raise Reject(10016, f"{value} is not a whole number of ticks")
    if buy:
        bad = (sl and sl > ref - gap) or (tp and tp < ref + gap)
    else:
        bad = (sl and sl < ref + gap) or (tp and tp > ref - gap)
    if bad:
        raise Reject(10016, f"sl {sl} tp {tp} against {ref} (stops level {gap})")


def _symbol(state: dict[str, Any], name: str, *, api: bool) -> dict[str, Any]:
    """The request's symbol; through the API it must be selected in Market Watch."""
    sym = state["server"]["symbols"].get(name)
    if sym is None or (api and not state["terminal"]["selected"].get(name)):
        raise Reject(10013, f"symbol {name!r} unknown or not selected in Market Watch")
    return sym


def _find_position(server: dict[str, Any], login: int, ticket: int) -> dict[str, Any]:
    for pos in server["positions"]:
        if pos["ticket"] == ticket and pos["login"] == login:
            return pos
    if any(d["position_id"] == ticket and d["login"] == login for d in server["deals"]):
        raise Reject(10036, f"position {ticket} is closed")
    raise Reject(10013, f"no position {ticket}")


def _find_order(server: dict[str, Any], login: int, ticket: int) -> dict[str, Any]:
    for order in server["orders"]:
        if order["ticket"] == ticket and order["login"] == login:
            return order
    raise Reject(10013, f"no pending order {ticket}")


def _check_pending_price(sym: dict[str, Any], type_: int, price: Decimal) -> Decimal:
    """Limits below (buy) / above (sell) the market, stops beyond it, by at least
    trade_stops_level points; a price at the market is refused too."""
    norm = _normalized(price, sym) if price else None
    if norm is None:
        raise Reject(10015, f"price {price} missing or not normalized")
    gap = sym["trade_stops_level"] * point(sym)
    ask, bid = dec(sym["ask"]), dec(sym["bid"])
    ok = {
        ORDER_TYPE_BUY_LIMIT: norm < ask and norm <= ask - gap,
        ORDER_TYPE_SELL_LIMIT: norm > bid and norm >= bid + gap,
        ORDER_TYPE_BUY_STOP: norm > ask and norm >= ask + gap,
        ORDER_TYPE_SELL_STOP: norm < bid and norm <= bid - gap,
    }[type_]
    if not ok:
        raise Reject(10015, f"{norm} on the wrong side of bid {bid} / ask {ask}")
    return norm


def _check_expiration(sym: dict[str, Any], type_time: int, expiration: int, now: int) -> None:
    flag = {
        ORDER_TIME_GTC: SYMBOL_EXPIRATION_GTC,
        ORDER_TIME_DAY: SYMBOL_EXPIRATION_DAY,
        ORDER_TIME_SPECIFIED: SYMBOL_EXPIRATION_SPECIFIED,
        ORDER_TIME_SPECIFIED_DAY: SYMBOL_EXPIRATION_SPECIFIED_DAY,
    }.get(type_time)
    if flag is None or not sym["expiration_mode"] & flag:
        raise Reject(10022, f"type_time {type_time} not allowed")
    if type_time in (ORDER_TIME_SPECIFIED, ORDER_TIME_SPECIFIED_DAY) and (
        expiry_msc(type_time, expiration, now) <= now
    ):
        raise Reject(10022, "expiration in the past")


def _trade_mode(sym: dict[str, Any], buy: bool, opening: bool) -> None:
    mode = sym["trade_mode"]
    if mode == SYMBOL_TRADE_MODE_DISABLED:
        raise Reject(10017, f"trading {sym['name']} is disabled")
    if opening and mode == SYMBOL_TRADE_MODE_CLOSEONLY:
        raise Reject(10044)
    if opening and mode == SYMBOL_TRADE_MODE_LONGONLY and not buy:
        raise Reject(10042)
    if opening and mode == SYMBOL_TRADE_MODE_SHORTONLY and buy:
        raise Reject(10043)


def process(
    state: dict[str, Any],
    req: dict[str, Any],
    *,
    check_only: bool,
    reason: int = REASON_EXPERT,
    login: int | None = None,
) -> dict[str, Any]:
    """Validate a request like a trade server and (unless `check_only`) carry it out.

    Returns the result fields; raises `Reject` for a refused request. `login`
    defaults to the terminal's account (the API); `control.py` passes it for
    trades by hand."""
    term = state["terminal"]
    server = state["server"]
    api = login is None
    if login is None:
        if not term["connected"]:
            raise Reject(10031, "the terminal is not connected to the trade server")
        if term["login"] is None:
            raise Reject(10031, "no account is logged in")
        if not term["algo_trading"]:
            raise Reject(10027, "Algo Trading is off in the terminal")
        if term["investor"]:
            raise Reject(10017, "logged in with the investor (read-only) password")
        login = int(term["login"])
    now = now_msc(state)
    action = req["action"]
    comment, magic = req["comment"], req["magic"]
    out: dict[str, Any] = {
        "deal": 0,
        "order": 0,
        "volume": ZERO,
        "price": ZERO,
        "bid": ZERO,
        "ask": ZERO,
        "margin_needed": ZERO,
    }

    if action == TRADE_ACTION_DEAL and req["position"]:
        pos = _find_position(server, login, req["position"])
        sym = server["symbols"][pos["symbol"]]
        out.update(bid=dec(sym["bid"]), ask=dec(sym["ask"]))
        if req["symbol"] and req["symbol"] != pos["symbol"]:
            raise Reject(10013, "symbol differs from the position's")
        closing_side = ORDER_TYPE_SELL if pos["type"] == ORDER_TYPE_BUY else ORDER_TYPE_BUY
        if req["type"] != closing_side:
            raise Reject(10013, "a close must be the opposite type of the position")
        _trade_mode(sym, closing_side == ORDER_TYPE_BUY, opening=False)
        volume = dec(req["volume"])
        check_volume(sym, volume)
        if volume > dec(pos["volume"]):
            raise Reject(10038, f"{volume} > {pos['volume']}")
        check_filling(sym, req["type_filling"], pending=False, limit=False)
        price = execution_price(sym, closing_side == ORDER_TYPE_BUY, req)
        out.update(volume=volume, price=price)
        if not check_only:
            out["order"], out["deal"] = close_position(
                server, pos, volume, price, magic, comment, reason, req["type_filling"], now
            )
        return out

    if action == TRADE_ACTION_DEAL:
        sym = _symbol(state, req["symbol"], api=api)
        out.update(bid=dec(sym["bid"]), ask=dec(sym["ask"]))
        if req["type"] not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            raise Reject(10035, "a deal is a buy or a sell")
        buy = req["type"] == ORDER_TYPE_BUY
        _trade_mode(sym, buy, opening=True)
        if not sym["order_mode"] & SYMBOL_ORDER_MARKET:
            raise Reject(10035, "market orders not allowed on the symbol")
        volume = dec(req["volume"])
        check_volume(sym, volume)
        check_filling(sym, req["type_filling"], pending=False, limit=False)
        price = execution_price(sym, buy, req)
        sl, tp = dec(req["sl"]), dec(req["tp"])
        check_stops(sym, buy, close_price(sym, ORDER_TYPE_BUY if buy else ORDER_TYPE_SELL), sl, tp)
        need = margin_for(server, login, sym, volume, price)
        out.update(volume=volume, price=price, margin_needed=need)
        if account_figures(server, login)["margin_free"] < need:
            raise Reject(10019, f"margin {need} needed")
        if not check_only:
            out["order"], out["deal"] = open_position(
                server,
                login,
                sym,
                req["type"],
                volume,
                price,
                sl,
                tp,
                magic,
                comment,
                reason,
                req["type_filling"],
                now,
            )
        return out

    if action == TRADE_ACTION_PENDING:
        sym = _symbol(state, req["symbol"], api=api)
        out.update(bid=dec(sym["bid"]), ask=dec(sym["ask"]))
        type_ = req["type"]
        if type_ not in PENDING_TYPES:
            raise Reject(10035, f"order type {type_} is not a reproduced pending type")
        flag = (
            SYMBOL_ORDER_LIMIT
            if type_ in (ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT)
            else SYMBOL_ORDER_STOP
        )
        if not sym["order_mode"] & flag:
            raise Reject(10035, "order type not allowed on the symbol")
        buy = type_ in BUY_SIDE
        _trade_mode(sym, buy, opening=True)
        volume = dec(req["volume"])
        check_volume(sym, volume)
        price = _check_pending_price(sym, type_, dec(req["price"]))
        check_filling(sym, req["type_filling"], pending=True, limit=flag == SYMBOL_ORDER_LIMIT)
        _check_expiration(sym, req["type_time"], req["expiration"], now)
        sl, tp = dec(req["sl"]), dec(req["tp"])
        check_stops(sym, buy, price, sl, tp)
        acc = server["accounts"][str(login)]
        active = sum(1 for o in server["orders"] if o["login"] == login)
        if acc["limit_orders"] and active >= acc["limit_orders"]:
            raise Reject(10033)
        out.update(volume=volume, price=price)
        if not check_only:
            out["order"] = place_pending(
                server,
                login,
                sym,
                type_,
                volume,
                price,
                sl,
                tp,
                magic,
                comment,
                reason,
                req["type_filling"],
                req["type_time"],
                req["expiration"],
                now,
            )
        return out

    if action == TRADE_ACTION_SLTP:
        pos = _find_position(server, login, req["position"])
        sym = server["symbols"][pos["symbol"]]
        out.update(bid=dec(sym["bid"]), ask=dec(sym["ask"]))
        sl, tp = dec(req["sl"]), dec(req["tp"])
        if sl == dec(pos["sl"]) and tp == dec(pos["tp"]):
            raise Reject(10025)
        buy = pos["type"] == ORDER_TYPE_BUY
        check_stops(sym, buy, close_price(sym, pos["type"]), sl, tp)
        if not check_only:
            pos.update(sl=s(sl), tp=s(tp), time_update_msc=now)
        return out

    if action == TRADE_ACTION_MODIFY:
        order = _find_order(server, login, req["order"])
        sym = server["symbols"][order["symbol"]]
        out.update(bid=dec(sym["bid"]), ask=dec(sym["ask"]))
        price = _check_pending_price(sym, order["type"], dec(req["price"]))
        sl, tp = dec(req["sl"]), dec(req["tp"])
        check_stops(sym, order["type"] in BUY_SIDE, price, sl, tp)
        _check_expiration(sym, req["type_time"], req["expiration"], now)
        same = (
            price == dec(order["price_open"])
            and sl == dec(order["sl"])
            and tp == dec(order["tp"])
            and req["type_time"] == order["type_time"]
            and req["expiration"] == order["time_expiration"]
        )
        if same:
            raise Reject(10025)
        out["order"] = order["ticket"]
        if not check_only:
            order.update(
                price_open=s(price),
                sl=s(sl),
                tp=s(tp),
                type_time=req["type_time"],
                time_expiration=req["expiration"],
                expires_msc=expiry_msc(req["type_time"], req["expiration"], now),
            )
        return out

    if action == TRADE_ACTION_REMOVE:
        order = _find_order(server, login, req["order"])
        out["order"] = order["ticket"]
        if not check_only:
            finish_order(server, order, ORDER_STATE_CANCELED, now)
        return out

    if action == TRADE_ACTION_CLOSE_BY:
        raise Reject(10035, "close-by is not allowed on the stand-in's symbols")
    raise Reject(10013, f"unknown action {action}")


# --- selections for the API ---------------------------------------------------


def group_match(group: str | None, symbol: str) -> bool:
    """MT5 `group` filter: comma-separated masks with '*', '!' excludes."""
    if group is None:
        return True
    includes = [m for m in group.split(",") if m and not m.startswith("!")]
    excludes = [m[1:] for m in group.split(",") if m.startswith("!")]
    if any(fnmatchcase(symbol, m) for m in excludes):
        return False
    return any(fnmatchcase(symbol, m) for m in includes)


def to_seconds(value: Any) -> int:
    """A history bound: datetime (naive = UTC, as the MT5 docs advise) or seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("date must be datetime or seconds")
    return int(value)
