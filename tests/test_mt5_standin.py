"""Tests of the MetaTrader5 TEST STAND-IN (tests/mt5_standin), not of a real terminal.

The real `MetaTrader5` package is Windows-only; the MT5 agent's protocol and
supervision tests run it against this stand-in. These tests pin what the
stand-in reproduces from the package's documentation, in-process
(`tests/mt5_standin` first on sys.path, then `import MetaTrader5`) and across
real processes sharing one terminal state file, the way the agent uses it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.mt5_standin.control import (
    STANDIN_PATH,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    Terminal,
    TradeRefused,
)

MASTER = {
    "login": 51001,
    "password": "master-pw",
    "investor_password": "master-ro",
    "server": "StandIn-Demo",
    "balance": 10_000,
}
FOLLOWER = {
    "login": 51002,
    "password": "follower-pw",
    "server": "StandIn-Demo",
    "balance": 500,
    "leverage": 100,
}
PYTHON = sys.executable
FAR_PAST = datetime(2000, 1, 1)
FAR_FUTURE = datetime.now(UTC) + timedelta(days=2)


@pytest.fixture
def term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Terminal:
    terminal = Terminal(tmp_path / "terminal.json")
    terminal.configure(accounts=[MASTER, FOLLOWER])
    monkeypatch.setenv("MT5_STANDIN_STATE", terminal.path)
    return terminal


@pytest.fixture
def mt5(term: Terminal) -> Any:
    """The stand-in imported as `MetaTrader5`, as the agent imports it; forgotten after."""
    sys.path.insert(0, STANDIN_PATH)
    try:
        module: ModuleType = importlib.import_module("MetaTrader5")
    finally:
        sys.path.remove(STANDIN_PATH)
    assert module.STANDIN and Path(module.__file__).parent.parent == Path(STANDIN_PATH)
    yield module
    module.shutdown()
    for name in [n for n in sys.modules if n == "MetaTrader5" or n.startswith("MetaTrader5.")]:
        del sys.modules[name]


def login_master(mt5: Any) -> None:
    assert mt5.initialize(
        login=MASTER["login"], password=MASTER["password"], server=MASTER["server"]
    ), mt5.last_error()


def market(mt5: Any, symbol: str, side: int, volume: float, **extra: Any) -> Any:
    request = {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": volume,
        "type": side,
        "type_filling": mt5.ORDER_FILLING_IOC,
        **extra,
    }
    return mt5.order_send(request)


# --- shapes and constants ------------------------------------------------------------


def test_standin_result_types_have_the_documented_fields_in_order(mt5: Any) -> None:
    assert mt5.TradePosition._fields == (
        "ticket",
        "time",
        "time_msc",
        "time_update",
        "time_update_msc",
        "type",
        "magic",
        "identifier",
        "reason",
        "volume",
        "price_open",
        "sl",
        "tp",
        "price_current",
        "swap",
        "profit",
        "symbol",
        "comment",
        "external_id",
    )
    assert mt5.TradeDeal._fields == (
        "ticket",
        "order",
        "time",
        "time_msc",
        "type",
        "entry",
        "magic",
        "position_id",
        "reason",
        "volume",
        "price",
        "commission",
        "swap",
        "profit",
        "fee",
        "symbol",
        "comment",
        "external_id",
    )
    assert mt5.TradeOrder._fields[:6] == (
        "ticket",
        "time_setup",
        "time_setup_msc",
        "time_done",
        "time_done_msc",
        "time_expiration",
    )
    assert mt5.OrderSendResult._fields == (
        "retcode",
        "deal",
        "order",
        "volume",
        "price",
        "bid",
        "ask",
        "comment",
        "request_id",
        "retcode_external",
        "request",
    )
    assert mt5.TradeRequest._fields == (
        "action",
        "magic",
        "order",
        "symbol",
        "volume",
        "price",
        "stoplimit",
        "sl",
        "tp",
        "deviation",
        "type",
        "type_filling",
        "type_time",
        "expiration",
        "comment",
        "position",
        "position_by",
    )
    assert mt5.SymbolInfo._fields[:4] == ("custom", "chart_mode", "select", "visible")
    assert mt5.SymbolInfo._fields[-3:] == ("name", "page", "path")
    assert mt5.AccountInfo._fields[-4:] == ("name", "server", "currency", "company")
    assert (
        mt5.TRADE_ACTION_DEAL,
        mt5.TRADE_ACTION_PENDING,
        mt5.TRADE_ACTION_SLTP,
        mt5.TRADE_ACTION_MODIFY,
        mt5.TRADE_ACTION_REMOVE,
    ) == (1, 5, 6, 7, 8)
    assert (mt5.ORDER_FILLING_FOK, mt5.ORDER_FILLING_IOC, mt5.ORDER_FILLING_RETURN) == (0, 1, 2)
    assert (
        mt5.TRADE_RETCODE_DONE,
        mt5.TRADE_RETCODE_INVALID_FILL,
        mt5.TRADE_RETCODE_CONNECTION,
        mt5.TRADE_RETCODE_POSITION_CLOSED,
    ) == (10009, 10030, 10031, 10036)
    # The real package exports ORDER_FILLING_* only: code written against these names
    # would die with AttributeError on Windows, so the stand-in does not have them.
    assert not hasattr(mt5, "SYMBOL_FILLING_FOK")
    assert not hasattr(mt5, "SYMBOL_FILLING_IOC")


# --- connection and authorization ------------------------------------------------------


def test_standin_every_call_fails_before_initialize_and_after_shutdown(mt5: Any) -> None:
    for call in (
        mt5.positions_get,
        mt5.account_info,
        mt5.terminal_info,
        mt5.version,
        mt5.positions_total,
        lambda: mt5.symbol_info("EURUSD"),
    ):
        assert call() is None
        assert mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.order_send({"action": mt5.TRADE_ACTION_DEAL}) is None
    assert mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.initialize()
    assert mt5.last_error() == (1, "Success")
    assert mt5.version()[0] == 500
    mt5.shutdown()
    assert mt5.positions_get() is None
    assert mt5.last_error() == (-10004, "No IPC connection")


def test_standin_initialize_without_a_terminal_fails(
    mt5: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MT5_STANDIN_STATE")
    assert mt5.initialize() is False
    assert mt5.last_error() == (-10003, "IPC initialize failed, MetaTrader 5 x64 not found")


def test_standin_authorization_failures(mt5: Any, term: Terminal) -> None:
    auth_failed = (-6, "Terminal: Authorization failed")
    for login, password, server in [
        (MASTER["login"], "wrong", MASTER["server"]),
        (MASTER["login"], MASTER["password"], "Unknown-Server"),
        (99999, "x", MASTER["server"]),
    ]:
        assert mt5.initialize(login=login, password=password, server=server) is False
        assert mt5.last_error() == auth_failed
    assert mt5.initialize(login=str(MASTER["login"]), password=MASTER["password"]) is False
    assert mt5.last_error() == (-2, 'Invalid "login" argument')
    assert term.logged_in() == (None, False)

    login_master(mt5)
    assert mt5.account_info().login == MASTER["login"]
    assert mt5.login(FOLLOWER["login"], password="wrong") is False
    assert mt5.last_error() == auth_failed
    assert mt5.account_info().login == MASTER["login"]  # a failed login keeps the account
    assert mt5.login(FOLLOWER["login"], password=FOLLOWER["password"], server=FOLLOWER["server"])
    assert mt5.account_info().login == FOLLOWER["login"]
    assert term.logged_in() == (FOLLOWER["login"], False)
    # The terminal remembers its account: initialize() without credentials keeps it.
    mt5.shutdown()
    assert mt5.initialize()
    assert mt5.account_info().login == FOLLOWER["login"]


def test_standin_investor_password_reads_but_cannot_trade(mt5: Any, term: Terminal) -> None:
    ticket = term.trade_by_hand(MASTER["login"], "EURUSD", "buy", "0.10")
    assert mt5.initialize(
        login=MASTER["login"], password=MASTER["investor_password"], server=MASTER["server"]
    )
    info = mt5.account_info()
    assert info.login == MASTER["login"] and info.trade_allowed is False
    assert [p.ticket for p in mt5.positions_get()] == [ticket]
    result = market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1)
    assert result.retcode == mt5.TRADE_RETCODE_TRADE_DISABLED
    assert len(term.positions(MASTER["login"])) == 1
    assert term.requests()[-1]["outcome"] == "rejected"


# --- market orders, positions, deals, history -----------------------------------------------


def test_standin_market_orders_partial_and_full_close_with_deals_and_history(
    mt5: Any, term: Terminal
) -> None:
    login_master(mt5)
    buy = market(
        mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.3, magic=77, comment="cp:1:buy", sl=1.08, tp=1.1
    )
    assert buy.retcode == mt5.TRADE_RETCODE_DONE, buy
    assert buy.comment == "Request executed"
    assert (buy.price, buy.volume) == (1.0851, 0.3)
    assert buy.request.comment == "cp:1:buy" and buy.request.magic == 77
    sell = market(mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.1, magic=77, comment="cp:2:sell")
    assert sell.retcode == mt5.TRADE_RETCODE_DONE

    # Hedging: two positions on one symbol, each with the opening order's ticket.
    positions = {p.ticket: p for p in mt5.positions_get(symbol="EURUSD")}
    assert set(positions) == {buy.order, sell.order}
    long = positions[buy.order]
    assert (long.identifier, long.type, long.magic, long.comment, long.reason) == (
        buy.order,
        mt5.POSITION_TYPE_BUY,
        77,
        "cp:1:buy",
        mt5.POSITION_REASON_EXPERT,
    )
    assert (long.sl, long.tp, long.price_open, long.volume) == (1.08, 1.1, 1.0851, 0.3)
    assert buy.deal != buy.order  # deals and orders have their own tickets

    term.set_price("EURUSD", "1.08700", "1.08710")
    long = mt5.positions_get(ticket=buy.order)[0]
    assert (long.price_current, long.profit) == (1.087, 57.0)  # 0.3 * 100000 * 0.0019
    assert mt5.positions_get(ticket=sell.order)[0].profit == -21.0  # 0.1 lot, 1.085 -> 1.0871

    part = market(
        mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.1, position=buy.order, magic=77, comment="cp:3:part"
    )
    assert part.retcode == mt5.TRADE_RETCODE_DONE and part.price == 1.087
    long = mt5.positions_get(ticket=buy.order)[0]
    assert (long.volume, long.comment, long.identifier) == (0.2, "cp:1:buy", buy.order)
    full = market(mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.2, position=buy.order)
    assert full.retcode == mt5.TRADE_RETCODE_DONE
    assert [p.ticket for p in mt5.positions_get()] == [sell.order]
    assert mt5.positions_total() == 1

    deals = mt5.history_deals_get(position=buy.order)
    assert [(d.entry, d.type, d.volume, d.profit, d.comment) for d in deals] == [
        (mt5.DEAL_ENTRY_IN, mt5.DEAL_TYPE_BUY, 0.3, 0.0, "cp:1:buy"),
        (mt5.DEAL_ENTRY_OUT, mt5.DEAL_TYPE_SELL, 0.1, 19.0, "cp:3:part"),
        (mt5.DEAL_ENTRY_OUT, mt5.DEAL_TYPE_SELL, 0.2, 38.0, ""),
    ]
    assert [d.ticket for d in mt5.history_deals_get(ticket=part.order)] == [part.deal]
    in_range = mt5.history_deals_get(FAR_PAST, FAR_FUTURE)
    assert in_range[0].type == mt5.DEAL_TYPE_BALANCE  # the deposit
    assert len(in_range) == 5
    assert mt5.history_deals_get(FAR_PAST, FAR_PAST + timedelta(days=1)) == ()
    orders = mt5.history_orders_get(position=buy.order)
    assert [(o.ticket, o.state, o.type) for o in orders] == [
        (buy.order, mt5.ORDER_STATE_FILLED, mt5.ORDER_TYPE_BUY),
        (part.order, mt5.ORDER_STATE_FILLED, mt5.ORDER_TYPE_SELL),
        (full.order, mt5.ORDER_STATE_FILLED, mt5.ORDER_TYPE_SELL),
    ]
    assert all(o.time_setup_msc >= deals[0].time_msc - 1000 for o in orders)
    assert mt5.history_orders_total(FAR_PAST, FAR_FUTURE) == 4
    assert term.account(MASTER["login"])["balance"] == Decimal("10057.00")
    assert mt5.account_info().balance == 10057.0


def test_standin_trade_by_hand_shows_up_with_magic_zero(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    by_hand = term.trade_by_hand(MASTER["login"], "XAUUSD", "sell", "0.05", sl="2400")
    from_phone = term.trade_by_hand(MASTER["login"], "EURUSD", "buy", "0.01", via="mobile")
    term.trade_by_hand(FOLLOWER["login"], "EURUSD", "buy", "0.01")  # another account
    rows = {p.ticket: p for p in mt5.positions_get()}
    assert set(rows) == {by_hand, from_phone}
    gold = rows[by_hand]
    assert (gold.magic, gold.comment, gold.reason, gold.type, gold.sl, gold.price_open) == (
        0,
        "",
        mt5.POSITION_REASON_CLIENT,
        mt5.POSITION_TYPE_SELL,
        2400.0,
        2350.0,
    )
    assert rows[from_phone].reason == mt5.POSITION_REASON_MOBILE
    term.modify_by_hand(by_hand, sl="2390", tp="2300")
    assert mt5.positions_get(ticket=by_hand)[0][11:13] == (2390.0, 2300.0)
    term.close_by_hand(by_hand, "0.02")
    assert mt5.positions_get(ticket=by_hand)[0].volume == 0.03
    with pytest.raises(TradeRefused) as refused:
        term.close_by_hand(by_hand, "0.05")
    assert refused.value.retcode == 10038


def test_standin_group_filter(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    for symbol in ("EURUSD", "GBPUSD", "XAUUSD"):
        term.trade_by_hand(MASTER["login"], symbol, "buy", "0.01")
    assert {p.symbol for p in mt5.positions_get(group="*USD*,!EUR*")} == {"GBPUSD", "XAUUSD"}
    assert {p.symbol for p in mt5.positions_get(group="EUR*")} == {"EURUSD"}
    assert [s.name for s in mt5.symbols_get(group="*JPY*")] == ["USDJPY"]


def test_standin_stop_loss_and_take_profit_close_when_reached(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    long = market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1, sl=1.08, tp=1.09, comment="l")
    short = market(mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.1, sl=1.09, tp=1.07, comment="s")
    term.set_price("EURUSD", "1.07990", "1.08000")
    assert [p.ticket for p in mt5.positions_get()] == [short.order]
    out = mt5.history_deals_get(position=long.order)[-1]
    assert (out.entry, out.reason, out.comment, out.price, out.profit) == (
        mt5.DEAL_ENTRY_OUT,
        mt5.DEAL_REASON_SL,
        "[sl 1.08000]",
        1.0799,
        -52.0,
    )
    term.set_price("EURUSD", "1.06980", "1.06990")
    out = mt5.history_deals_get(position=short.order)[-1]
    assert (out.reason, out.comment, out.price) == (mt5.DEAL_REASON_TP, "[tp 1.07000]", 1.07)
    assert mt5.positions_get() == ()


# --- pending orders ---------------------------------------------------------------------


def test_standin_pending_orders_place_modify_cancel_and_fill_on_price_cross(
    mt5: Any, term: Terminal
) -> None:
    login_master(mt5)
    pending = {
        "action": mt5.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.2,
        "type_filling": mt5.ORDER_FILLING_RETURN,
        "magic": 9,
    }
    limit = mt5.order_send(
        {
            **pending,
            "type": mt5.ORDER_TYPE_BUY_LIMIT,
            "price": 1.08,
            "sl": 1.07,
            "comment": "cp:limit",
        }
    )
    assert limit.retcode == mt5.TRADE_RETCODE_DONE and limit.order and not limit.deal
    stop = mt5.order_send(
        {**pending, "type": mt5.ORDER_TYPE_SELL_STOP, "price": 1.07, "comment": "cp:stop"}
    )
    wrong_side = mt5.order_send({**pending, "type": mt5.ORDER_TYPE_BUY_LIMIT, "price": 1.09})
    assert wrong_side.retcode == mt5.TRADE_RETCODE_INVALID_PRICE
    orders = {o.ticket: o for o in mt5.orders_get()}
    assert set(orders) == {limit.order, stop.order} and mt5.orders_total() == 2
    placed = orders[limit.order]
    assert (
        placed.state,
        placed.price_open,
        placed.sl,
        placed.volume_current,
        placed.magic,
        placed.comment,
        placed.price_current,
    ) == (mt5.ORDER_STATE_PLACED, 1.08, 1.07, 0.2, 9, "cp:limit", 1.0851)

    moved = mt5.order_send(
        {
            "action": mt5.TRADE_ACTION_MODIFY,
            "order": limit.order,
            "price": 1.082,
            "sl": 1.075,
            "tp": 0.0,
        }
    )
    assert moved.retcode == mt5.TRADE_RETCODE_DONE
    same = mt5.order_send(
        {"action": mt5.TRADE_ACTION_MODIFY, "order": limit.order, "price": 1.082, "sl": 1.075}
    )
    assert same.retcode == mt5.TRADE_RETCODE_NO_CHANGES
    assert mt5.orders_get(ticket=limit.order)[0][16:18] == (1.082, 1.075)
    removed = mt5.order_send({"action": mt5.TRADE_ACTION_REMOVE, "order": stop.order})
    assert removed.retcode == mt5.TRADE_RETCODE_DONE
    gone = mt5.order_send({"action": mt5.TRADE_ACTION_REMOVE, "order": stop.order})
    assert gone.retcode == mt5.TRADE_RETCODE_INVALID
    assert mt5.history_orders_get(ticket=stop.order)[0].state == mt5.ORDER_STATE_CANCELED

    term.set_price("EURUSD", "1.08250", "1.08260")  # not reached yet
    assert mt5.positions_get() == ()
    term.set_price("EURUSD", "1.08150", "1.08160")  # the ask crosses 1.08200
    assert mt5.orders_get() == ()
    position = mt5.positions_get()[0]
    assert (
        position.ticket,
        position.identifier,
        position.price_open,
        position.volume,
        position.sl,
        position.magic,
        position.comment,
    ) == (limit.order, limit.order, 1.082, 0.2, 1.075, 9, "cp:limit")
    filled = mt5.history_orders_get(ticket=limit.order)[0]
    assert (filled.state, filled.position_id, filled.volume_current) == (
        mt5.ORDER_STATE_FILLED,
        limit.order,
        0.0,
    )
    deal = mt5.history_deals_get(ticket=limit.order)[0]
    assert (deal.entry, deal.position_id, deal.price, deal.comment) == (
        mt5.DEAL_ENTRY_IN,
        limit.order,
        1.082,
        "cp:limit",
    )


def test_standin_pending_order_by_hand_and_expiration(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    ticket = term.place_pending_by_hand(MASTER["login"], "EURUSD", "sell_limit", "0.1", "1.09")
    order = mt5.orders_get(ticket=ticket)[0]
    assert (order.magic, order.comment, order.reason) == (0, "", mt5.ORDER_REASON_CLIENT)
    term.modify_pending_by_hand(ticket, "1.091")
    assert mt5.orders_get(ticket=ticket)[0].price_open == 1.091
    term.cancel_pending_by_hand(ticket)
    assert mt5.orders_get() == ()

    now = int(time.time())
    past = mt5.order_send(
        {
            "action": mt5.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": mt5.ORDER_TYPE_BUY_STOP,
            "price": 1.09,
            "type_filling": mt5.ORDER_FILLING_RETURN,
            "type_time": mt5.ORDER_TIME_SPECIFIED,
            "expiration": now - 10,
        }
    )
    assert past.retcode == mt5.TRADE_RETCODE_INVALID_EXPIRATION
    soon = mt5.order_send({**past.request._asdict(), "expiration": now + 1})
    assert soon.retcode == mt5.TRADE_RETCODE_DONE
    deadline = time.monotonic() + 3
    while mt5.orders_get() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mt5.orders_get() == ()
    assert mt5.history_orders_get(ticket=soon.order)[0].state == mt5.ORDER_STATE_EXPIRED


# --- what the trade server refuses ---------------------------------------------------------


def test_standin_server_validation_return_codes(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    buy = mt5.ORDER_TYPE_BUY
    for volume in (0.015, 0.001, 0.0, 101.0):
        assert market(mt5, "EURUSD", buy, volume).retcode == mt5.TRADE_RETCODE_INVALID_VOLUME
    # Filling: XAUUSD allows IOC only, EURUSD FOK|IOC (Return needs Exchange execution).
    gold = mt5.symbol_info("XAUUSD")
    assert gold.filling_mode == SYMBOL_FILLING_IOC
    assert mt5.symbol_info("EURUSD").filling_mode == SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC
    fok = market(mt5, "XAUUSD", buy, 0.01, type_filling=mt5.ORDER_FILLING_FOK)
    assert fok.retcode == mt5.TRADE_RETCODE_INVALID_FILL
    no_filling = mt5.order_send(
        {"action": mt5.TRADE_ACTION_DEAL, "symbol": "XAUUSD", "volume": 0.01, "type": buy}
    )  # 0 is FOK
    assert no_filling.retcode == mt5.TRADE_RETCODE_INVALID_FILL
    ret = market(mt5, "EURUSD", buy, 0.01, type_filling=mt5.ORDER_FILLING_RETURN)
    assert ret.retcode == mt5.TRADE_RETCODE_INVALID_FILL
    # Stops: SL must be below the bid for a buy, TP above; normalized to the tick.
    for sl, tp in ((1.0851, 0.0), (0.0, 1.0849), (1.080001, 0.0)):
        bad = market(mt5, "EURUSD", buy, 0.01, sl=sl, tp=tp)
        assert bad.retcode == mt5.TRADE_RETCODE_INVALID_STOPS, (sl, tp)
    # Instant execution (GBPUSD): a requote beyond the deviation, with the current prices.
    tick = mt5.symbol_info_tick("GBPUSD")
    requote = market(
        mt5,
        "GBPUSD",
        buy,
        0.01,
        price=tick.ask - 0.0005,
        deviation=10,
        type_filling=mt5.ORDER_FILLING_FOK,
    )
    assert requote.retcode == mt5.TRADE_RETCODE_REQUOTE
    assert (requote.bid, requote.ask) == (tick.bid, tick.ask)
    ok = market(
        mt5,
        "GBPUSD",
        buy,
        0.01,
        price=tick.ask - 0.0005,
        deviation=50,
        type_filling=mt5.ORDER_FILLING_FOK,
    )
    assert ok.retcode == mt5.TRADE_RETCODE_DONE and ok.price == tick.ask
    # Money: 500 USD at 1:100 cannot hold 1 lot of EURUSD (1000 EUR of margin).
    assert mt5.login(FOLLOWER["login"], password=FOLLOWER["password"])
    broke = market(mt5, "EURUSD", buy, 1.0)
    assert broke.retcode == mt5.TRADE_RETCODE_NO_MONEY
    assert market(mt5, "EURUSD", buy, 0.4).retcode == mt5.TRADE_RETCODE_DONE
    # Closing a position that is closed already, or more than it holds.
    position = market(mt5, "EURUSD", buy, 0.04).order
    too_much = market(mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.05, position=position)
    assert too_much.retcode == mt5.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.04, position=position).retcode == 10009
    again = market(mt5, "EURUSD", mt5.ORDER_TYPE_SELL, 0.04, position=position)
    assert again.retcode == mt5.TRADE_RETCODE_POSITION_CLOSED
    same_side = market(mt5, "EURUSD", buy, 0.01, position=mt5.positions_get()[0].ticket)
    assert same_side.retcode == mt5.TRADE_RETCODE_INVALID
    unknown = market(mt5, "NOSUCH", buy, 0.01)
    assert unknown.retcode == mt5.TRADE_RETCODE_INVALID
    term.set_symbol("EURUSD", trade_mode=mt5.SYMBOL_TRADE_MODE_CLOSEONLY)
    assert market(mt5, "EURUSD", buy, 0.01).retcode == mt5.TRADE_RETCODE_CLOSE_ONLY
    assert [r["outcome"] for r in term.requests()].count("executed") == 4


def test_standin_order_check_projects_margin_without_trading(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    check = mt5.order_check(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 1.0,
            "type": mt5.ORDER_TYPE_BUY,
            "type_filling": mt5.ORDER_FILLING_FOK,
        }
    )
    assert (check.retcode, check.comment, check.balance, check.margin) == (
        0,
        "Done",
        10000.0,
        1085.0,
    )  # 1 lot = 1000 EUR at 1:100, in USD at the bid
    assert check.margin_free == 10000.0 - 1085.0
    bad = mt5.order_check({**check.request._asdict(), "volume": 0.015})
    assert bad.retcode == mt5.TRADE_RETCODE_INVALID_VOLUME
    assert mt5.positions_get() == () and term.requests() == []


def test_standin_checks_arguments_like_the_package(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    base = {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY,
        "type_filling": mt5.ORDER_FILLING_IOC,
    }
    for field, value in (
        ("volume", None),
        ("volume", "0.1"),
        ("price", Decimal("1.1")),
        ("magic", 1.5),
        ("comment", None),
    ):
        assert mt5.order_send({**base, field: value}) is None
        assert mt5.last_error() == (-2, f'Invalid "{field}" argument')
    assert mt5.order_send({**base, "comment": "x" * 29}) is None  # longer than this build takes
    assert mt5.last_error() == (-2, 'Invalid "comment" argument')
    assert mt5.order_send({**base, "comment": "x" * 28}).retcode == mt5.TRADE_RETCODE_DONE
    assert mt5.positions_get("EURUSD") is None
    assert mt5.last_error() == (-2, "Unnamed arguments not allowed")
    assert mt5.history_deals_get() is None
    assert mt5.last_error()[0] == -2
    with pytest.raises(NotImplementedError, match="test stand-in"):
        mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 10)
    assert [r["outcome"] for r in term.requests()] == ["invalid arguments"] * 6 + ["executed"]


# --- the terminal: connection, Algo Trading, restarts, injected failures -------------------


def test_standin_lost_connection(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    before = market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1)
    term.disconnect()
    assert mt5.terminal_info().connected is False
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).retcode == (mt5.TRADE_RETCODE_CONNECTION)
    # The terminal answers from what it knew: no new prices, no new trades.
    during = term.trade_by_hand(MASTER["login"], "EURUSD", "sell", "0.02", via="mobile")
    term.set_price("EURUSD", "1.09000", "1.09010")
    assert mt5.account_info().balance == 10000.0
    assert [p.ticket for p in mt5.positions_get()] == [before.order]
    assert mt5.symbol_info_tick("EURUSD").bid == 1.085
    with pytest.raises(RuntimeError, match="disconnected"):
        term.trade_by_hand(MASTER["login"], "EURUSD", "buy", "0.01")
    term.reconnect()
    assert mt5.terminal_info().connected is True
    assert {p.ticket for p in mt5.positions_get()} == {before.order, during}
    assert mt5.symbol_info_tick("EURUSD").bid == 1.09


def test_standin_algo_trading_off_refuses_requests(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    term.set_algo_trading(False)
    assert mt5.terminal_info().trade_allowed is False
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).retcode == (
        mt5.TRADE_RETCODE_CLIENT_DISABLES_AT
    )
    term.set_algo_trading(True)
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).retcode == mt5.TRADE_RETCODE_DONE


def test_standin_terminal_restart_drops_sessions_and_keeps_positions(
    mt5: Any, term: Terminal
) -> None:
    login_master(mt5)
    ticket = market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).order
    term.stop_terminal()
    assert mt5.positions_get() is None
    assert mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.initialize() is False
    term.start_terminal()
    assert mt5.positions_get() is None  # the old session is gone
    assert mt5.initialize()
    assert [p.ticket for p in mt5.positions_get()] == [ticket]
    assert mt5.account_info().login == MASTER["login"]


def test_standin_injected_failures(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    term.fail_next_order_send(mt5.TRADE_RETCODE_REQUOTE)
    requote = market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1)
    assert (requote.retcode, requote.order, requote.bid, requote.ask) == (10004, 0, 1.085, 1.0851)
    term.fail_next_order_send(None)
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1) is None
    assert mt5.last_error() == (-10005, "IPC timeout")
    assert mt5.positions_get() == ()
    term.fail_next_order_send(mt5.TRADE_RETCODE_CONNECTION, count=2)
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).retcode == 10031
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).retcode == 10031
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1).retcode == 10009
    assert len(mt5.positions_get()) == 1
    term.fail_next_order_send(executed=True)  # refused by the server, and the reply is lost
    assert market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.015) is None
    assert mt5.last_error() == (-10005, "IPC timeout")
    assert term.requests()[-1]["outcome"] == "rejected, reply lost"
    assert len(mt5.positions_get()) == 1


def test_standin_lost_reply_is_executed_exactly_once(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    term.fail_next_order_send(executed=True)
    result = market(mt5, "EURUSD", mt5.ORDER_TYPE_BUY, 0.1, magic=5, comment="cp:9:lost")
    assert result is None
    assert mt5.last_error() == (-10005, "IPC timeout")
    # The order exists: only reconciliation by comment tells the caller.
    mine = [p for p in mt5.positions_get() if p.comment == "cp:9:lost"]
    assert len(mine) == 1 and mine[0].magic == 5
    assert [o.comment for o in mt5.history_orders_get(FAR_PAST, FAR_FUTURE)] == ["cp:9:lost"]
    log = term.requests()
    assert [r["outcome"] for r in log] == ["executed, reply lost"]
    assert log[0]["request"]["comment"] == "cp:9:lost" and log[0]["order"] == mine[0].ticket


# --- across processes -------------------------------------------------------------------------

AGENT_SCRIPT = """
import json, sys
import MetaTrader5 as mt5
assert getattr(mt5, "STANDIN", False), mt5.__file__
login, password, count, tag = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
if not mt5.initialize(login=login, password=password, server="StandIn-Demo"):
    print(json.dumps({"error": mt5.last_error()})); sys.exit(1)
tickets = []
for i in range(count):
    r = mt5.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.01,
                        "type": mt5.ORDER_TYPE_BUY, "type_filling": mt5.ORDER_FILLING_IOC,
                        "magic": 1, "comment": f"{tag}:{i}"})
    assert r.retcode == mt5.TRADE_RETCODE_DONE, r
    tickets.append(r.order)
print(json.dumps({"tickets": tickets,
                  "seen": sorted(p.ticket for p in mt5.positions_get()),
                  "module": mt5.__file__}))
"""


def run_agent(term: Terminal, *args: str) -> dict[str, Any]:
    env = {**os.environ, **term.env}
    done = subprocess.run(
        [PYTHON, "-c", AGENT_SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_standin_state_is_shared_across_processes_and_survives_them(
    mt5: Any, term: Terminal
) -> None:
    first = run_agent(term, str(MASTER["login"]), MASTER["password"], "3", "a")
    assert Path(first["module"]).parent.parent == Path(STANDIN_PATH)
    assert first["seen"] == sorted(first["tickets"])
    # A second agent process (a restart) finds the same terminal and positions.
    second = run_agent(term, str(MASTER["login"]), MASTER["password"], "1", "b")
    assert second["seen"] == sorted(first["tickets"] + second["tickets"])
    # The test process sees them too, through the API and through control.
    login_master(mt5)
    assert sorted(p.ticket for p in mt5.positions_get()) == second["seen"]
    assert sorted(p["ticket"] for p in term.positions(MASTER["login"])) == second["seen"]
    # And what the test does is seen by the next process.
    term.close_by_hand(first["tickets"][0])
    third = run_agent(term, str(MASTER["login"]), MASTER["password"], "0", "c")
    assert first["tickets"][0] not in third["seen"] and len(third["seen"]) == 3


def test_standin_concurrent_processes_never_interleave(term: Terminal) -> None:
    env = {**os.environ, **term.env}
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", AGENT_SCRIPT, str(MASTER["login"]), MASTER["password"], "25", f"p{n}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for _ in range(25):  # the "broker" moves prices meanwhile
        term.set_price("EURUSD", "1.08500", "1.08510")
    tickets: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        tickets += json.loads(out)["tickets"]
    assert len(set(tickets)) == 50
    assert sorted(p["ticket"] for p in term.positions(MASTER["login"])) == sorted(tickets)
    assert len(term.requests()) == 50
    assert len([d for d in term.deals(MASTER["login"]) if d["entry"] == 0 and d["order"]]) == 50


def test_standin_polling_is_cheap(mt5: Any, term: Terminal) -> None:
    login_master(mt5)
    for _ in range(5):
        term.trade_by_hand(MASTER["login"], "EURUSD", "buy", "0.01")
    mt5.positions_get()
    started = time.perf_counter()
    for _ in range(200):
        assert len(mt5.positions_get()) == 5
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.002, per_call  # far below a 10 ms poll interval
