"""The ccxt connector against real exchange testnets.

Skipped unless testnet credentials are in the environment:

    BINANCE_TESTNET_KEY / BINANCE_TESTNET_SECRET        (https://testnet.binance.vision)
    BINANCEUSDM_TESTNET_KEY / BINANCEUSDM_TESTNET_SECRET (https://testnet.binancefuture.com)
    BYBIT_TESTNET_KEY / BYBIT_TESTNET_SECRET            (https://testnet.bybit.com)

Each test places the smallest order the market allows with our client order
id, finds it again by that id, and closes what it opened. Run them with
`.venv/bin/pytest tests/live` (they are collected, and skipped, in `make test` too).
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import ROUND_UP, Decimal

import pytest

from brokers.venues.ccxt.venue import CcxtVenue
from copier.core import FollowerOrder, OrderAction, Side

pytestmark = pytest.mark.live

CASES = [
    ("binance", "spot", "BTC/USDT", "BINANCE_TESTNET"),
    ("binanceusdm", "swap", "BTC/USDT:USDT", "BINANCEUSDM_TESTNET"),
    ("bybit", "swap", "BTC/USDT:USDT", "BYBIT_TESTNET"),
]


def credentials(prefix: str) -> dict[str, str]:
    key, secret = os.environ.get(f"{prefix}_KEY"), os.environ.get(f"{prefix}_SECRET")
    if not key or not secret:
        pytest.skip(f"set {prefix}_KEY and {prefix}_SECRET to run against the testnet")
    return {"apiKey": key, "secret": secret}


def smallest(venue: CcxtVenue, symbol: str, price: Decimal) -> Decimal:
    """The smallest amount the market takes, above its minimum order value."""
    inst = venue.instrument(symbol)
    assert inst is not None
    amount = inst.volume_min
    cost_min = Decimal(
        str((venue.exchange.markets[symbol]["limits"]["cost"] or {}).get("min") or 0)
    )
    if amount * price * inst.contract_size < cost_min * Decimal("1.1"):
        amount = (
            cost_min * Decimal("1.1") / price / inst.contract_size / inst.volume_step
        ).to_integral(ROUND_UP) * inst.volume_step
    return amount


@pytest.mark.parametrize("exchange, market_type, symbol, prefix", CASES)
def test_open_find_and_close_on_the_testnet(exchange, market_type, symbol, prefix):
    creds = credentials(prefix)

    async def go() -> None:
        venue = CcxtVenue(exchange, creds, market_type, sandbox=True)
        try:
            await venue.call("load_markets")
            ticker = await venue.call("fetch_ticker", symbol)
            price = Decimal(str(ticker["last"]))
            amount = smallest(venue, symbol, price)
            stamp = f"{int(time.time()):X}"
            open_id, close_id = f"TSLIVE{stamp}O", f"TSLIVE{stamp}C"
            opened = await venue.execute(
                FollowerOrder(OrderAction.OPEN, symbol, Side.BUY, amount, price), open_id
            )
            assert opened.client_order_id == open_id
            found = await venue.find(open_id, symbol)
            assert found is not None and found.ref == opened.ref
            closed = await venue.execute(
                FollowerOrder(OrderAction.CLOSE, symbol, Side.SELL, opened.volume, price),
                close_id,
            )
            assert closed.volume == opened.volume
        finally:
            await venue.close()

    asyncio.run(go())
