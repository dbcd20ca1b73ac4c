"""The agent's terminal code against a real MetaTrader 5 terminal (a demo account).

Runs only where the real `MetaTrader5` package imports (Windows, or a Windows
Python under Wine) and these are set: MT5_TEST_LOGIN, MT5_TEST_PASSWORD,
MT5_TEST_SERVER, and optionally MT5_TEST_TERMINAL (the terminal's path) and
MT5_TEST_SYMBOL (EURUSD). It places the smallest market order with our id,
finds it by that id, and closes it.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

pytestmark = pytest.mark.live


def _mt5():
    if not all(os.environ.get(f"MT5_TEST_{n}") for n in ("LOGIN", "PASSWORD", "SERVER")):
        pytest.skip("set MT5_TEST_LOGIN, MT5_TEST_PASSWORD and MT5_TEST_SERVER for a demo account")
    module = pytest.importorskip("MetaTrader5", reason="the MetaTrader5 package is Windows-only")
    if getattr(module, "STANDIN", False):
        pytest.skip("this is the test stand-in, not the real package")
    return module


def test_open_find_and_close_on_a_demo_account():
    mt5 = _mt5()
    from brokers.mt5.agent import Agent
    from copier.core import FollowerOrder, OrderAction, Side

    agent = Agent("live", "live-token", None, os.environ.get("MT5_TEST_TERMINAL", ""), mt5)  # type: ignore[arg-type]
    agent.account = {
        "login": int(os.environ["MT5_TEST_LOGIN"]),
        "password": os.environ["MT5_TEST_PASSWORD"],
        "server": os.environ["MT5_TEST_SERVER"],
        "role": "follower",
        "baseline": None,
    }
    agent._connect()
    symbol = os.environ.get("MT5_TEST_SYMBOL", "EURUSD")
    spec = agent._spec(symbol)
    coid = "TS" + os.urandom(12).hex().upper()
    opened = agent.execute(
        FollowerOrder(OrderAction.OPEN, symbol, Side.BUY, spec.volume_min, Decimal(0)), coid
    )
    found = agent.find(coid, symbol)
    assert found is not None and found["ref"] == opened["ref"]
    closed = agent.execute(
        FollowerOrder(
            OrderAction.CLOSE, symbol, Side.SELL, spec.volume_min, Decimal(0), ref=opened["ref"]
        ),
        "TS" + os.urandom(12).hex().upper(),
    )
    assert Decimal(closed["volume"]) == spec.volume_min
    mt5.shutdown()
