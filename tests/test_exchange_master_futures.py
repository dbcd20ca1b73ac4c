"""A Binance USDⓈ-M master copied to Paper: one-way reversal, hedge sides, what was held before.

The master trades on the exchange's website (`open_position_directly`); the
daemon polls REST `userTrades` for the watched symbol and the lot book turns
the fills into position events.
"""

import asyncio
import json
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, MasterWatch, PaperPosition, Role, Venue
from copier.models import MasterEventRecord
from tests.conftest import wait_for
from tests.exchange_peer.binance_futures import BinanceUsdmPeer, binanceusdm_client
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "usdm-master-key", "usdm-master-secret"


@pytest.fixture
def peer():
    peer = BinanceUsdmPeer()
    peer.add_key(KEY, SECRET, "100000")
    peer.start()
    peer.set_price("BTCUSDT", "65000")
    yield peer
    peer.stop()


def copies(follower) -> list[tuple[str, D]]:
    return sorted(
        (p.side, p.volume) for p in PaperPosition.objects.filter(account=follower, closed_at=None)
    )


def watched(user, peer, copier_daemon):
    master = BrokerAccount.objects.create(
        owner=user,
        venue=Venue.CCXT,
        label="Binance futures master",
        role=Role.MASTER,
        exchange="binanceusdm",
        market_type="swap",
        credentials=json.dumps({"apiKey": KEY, "secret": SECRET}),
        watch_symbols="BTC/USDT:USDT",
    )
    follower = make_paper(user, "Paper follower")
    make_link(master, follower, "1", symbol_map="BTC/USDT:USDT=BTCUSD")
    copier_daemon(
        CCXT_API_HOSTS=json.dumps({"binanceusdm": peer.base_url}),
        EXCHANGE_WEBSOCKET="0",
        EXCHANGE_POLL_S="0.2",
    )
    wait_for(
        lambda: MasterWatch.objects.filter(account=master, status="polling").exists(),
        what="the watcher to start polling",
    )
    return master, follower


def test_one_way_fills_open_reduce_and_reverse_and_the_old_position_is_not_copied(
    peer, copier_daemon
):
    peer.open_position_directly(KEY, "BTCUSDT", "BUY", "0.5")  # held before linking
    master, follower = watched(make_user(), peer, copier_daemon)
    book = MasterWatch.objects.get(account=master).book
    assert book["baseline"] == {"BTC/USDT:USDT|net": "0.5"}

    peer.open_position_directly(KEY, "BTCUSDT", "BUY", "0.04")
    wait_for(lambda: copies(follower) == [("buy", D("0.04"))], what="the copied buy")
    # Selling 0.6 closes the copy, uses up what was held before, and goes short 0.06.
    peer.open_position_directly(KEY, "BTCUSDT", "SELL", "0.6")
    wait_for(lambda: copies(follower) == [("sell", D("0.06"))], what="the reversal")
    kinds = list(
        MasterEventRecord.objects.filter(account=master)
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    assert kinds == ["position_opened", "position_closed", "position_opened"]


def test_hedge_mode_sides_are_copied_as_separate_positions(peer, copier_daemon):
    async def hedge() -> None:
        exchange = binanceusdm_client(peer, KEY, SECRET)
        try:
            await exchange.set_position_mode(True)
        finally:
            await exchange.close()

    asyncio.run(hedge())
    _, follower = watched(make_user(), peer, copier_daemon)
    peer.open_position_directly(KEY, "BTCUSDT", "BUY", "0.02", position_side="LONG")
    peer.open_position_directly(KEY, "BTCUSDT", "SELL", "0.03", position_side="SHORT")
    wait_for(
        lambda: copies(follower) == [("buy", D("0.02")), ("sell", D("0.03"))],
        what="both sides copied",
    )
    # Closing the long side (a SELL on LONG) leaves the short copy alone.
    peer.open_position_directly(KEY, "BTCUSDT", "SELL", "0.02", position_side="LONG")
    wait_for(lambda: copies(follower) == [("sell", D("0.03"))], what="the long side closed")
