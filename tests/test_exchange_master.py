"""A Binance spot master copied to Paper followers: the real daemon watches the local peer.

The trader trades on the exchange with their own client (here: a real ccxt
client on the master's key, the same REST path as Binance's website); the
copier detects the fills, turns them into position events through the lot
book, and copies them to Paper. No websocket here (`EXCHANGE_WEBSOCKET=0`):
REST polling, the fallback every exchange has.
"""

import asyncio
import json
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, MasterWatch, PaperPosition, Role, Venue
from copier.models import MasterEventRecord
from tests.conftest import wait_for
from tests.exchange_peer.binance import BinanceSpotPeer, binance_client
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "master-key-9876", "master-secret"


@pytest.fixture
def peer():
    peer = BinanceSpotPeer()
    peer.add_key(KEY, SECRET, {"USDT": "100000", "BTC": "1"})
    peer.start()
    peer.set_price("BTCUSDT", "65000")
    yield peer
    peer.stop()


def trade(peer: BinanceSpotPeer, side: str, amount: str) -> dict:
    """The master trades on the exchange, as they would on its website."""

    async def go() -> dict:
        exchange = binance_client(peer, KEY, SECRET)
        try:
            return await exchange.create_order("BTC/USDT", "market", side, float(amount))
        finally:
            await exchange.close()

    return asyncio.run(go())


def exchange_master(user, **fields) -> BrokerAccount:
    return BrokerAccount.objects.create(
        owner=user,
        venue=Venue.CCXT,
        label="Binance master",
        role=Role.MASTER,
        exchange="binance",
        market_type="spot",
        credentials=json.dumps({"apiKey": KEY, "secret": SECRET}),
        watch_symbols="BTC/USDT",
        **fields,
    )


def copies(follower) -> list[tuple[str, D]]:
    return sorted(
        (p.side, p.volume) for p in PaperPosition.objects.filter(account=follower, closed_at=None)
    )


def start(copier_daemon, peer, **env):
    return copier_daemon(
        CCXT_API_HOSTS=json.dumps({"binance": peer.base_url}),
        EXCHANGE_WEBSOCKET="0",
        EXCHANGE_POLL_S="0.2",
        **env,
    )


def test_fills_on_the_exchange_are_copied_to_paper_and_history_is_not(peer, copier_daemon):
    user = make_user()
    master = exchange_master(user)
    follower = make_paper(user, "Paper follower")
    make_link(master, follower, "1", symbol_map="BTC/USDT=BTCUSD")
    half = make_paper(user, "Paper half")
    make_link(master, half, "0.5", symbol_map="BTC/USDT=BTCUSD")
    trade(peer, "buy", "0.1")  # before watching: history, never copied
    start(copier_daemon, peer)
    wait_for(
        lambda: MasterWatch.objects.filter(account=master, status="polling").exists(),
        what="the watcher to start polling",
    )

    trade(peer, "buy", "0.04")
    wait_for(lambda: copies(follower) == [("buy", D("0.04"))], what="the copied buy")
    wait_for(lambda: copies(half) == [("buy", D("0.02"))], what="the half-size copy")

    trade(peer, "sell", "0.01")
    wait_for(lambda: copies(follower) == [("buy", D("0.03"))], what="the partial close")
    # Selling more than the copied lot sells coins held before watching too.
    trade(peer, "sell", "0.05")
    wait_for(lambda: copies(follower) == [] and copies(half) == [], what="the close")

    kinds = list(
        MasterEventRecord.objects.filter(account=master)
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    assert kinds == ["position_opened", "position_partially_closed", "position_closed"]
    watch = MasterWatch.objects.get(account=master)
    assert watch.fills == 3


def test_a_restart_copies_fills_made_while_down_exactly_once(peer, copier_daemon):
    user = make_user()
    master = exchange_master(user)
    follower = make_paper(user, "Paper follower")
    make_link(master, follower, "1", symbol_map="BTC/USDT=BTCUSD")
    daemon = start(copier_daemon, peer)
    wait_for(
        lambda: MasterWatch.objects.filter(account=master, status="polling").exists(),
        what="the watcher to start polling",
    )
    trade(peer, "buy", "0.02")
    wait_for(lambda: copies(follower) == [("buy", D("0.02"))], what="the first copy")

    daemon.kill()
    trade(peer, "buy", "0.03")  # while no copier runs
    start(copier_daemon, peer)
    wait_for(
        lambda: copies(follower) == [("buy", D("0.02")), ("buy", D("0.03"))],
        what="the fill made while down",
    )
    trade(peer, "sell", "0.05")
    wait_for(lambda: copies(follower) == [], what="both copies closed")
    opened = MasterEventRecord.objects.filter(account=master, kind="position_opened").count()
    assert opened == 2
    assert MasterWatch.objects.get(account=master).fills == 3


def test_the_websocket_delivers_fills_and_a_dropped_socket_loses_none(peer, copier_daemon):
    user = make_user()
    master = exchange_master(user)
    follower = make_paper(user, "Paper follower")
    make_link(master, follower, "1", symbol_map="BTC/USDT=BTCUSD")
    copier_daemon(
        CCXT_API_HOSTS=json.dumps({"binance": peer.base_url}),
        EXCHANGE_WEBSOCKET="1",
        EXCHANGE_POLL_S="60",
    )
    wait_for(lambda: peer.ws_subscriptions(KEY), what="the user data subscription")
    wait_for(
        lambda: MasterWatch.objects.filter(account=master, status="websocket").exists(),
        what="the watcher on the websocket",
    )
    # Let the resync that follows a (re)connect pass, then count REST fill queries.
    wait_for(lambda: len(peer.requests_to("/api/v3/myTrades")) >= 2, what="the resyncs")
    rest_queries = len(peer.requests_to("/api/v3/myTrades"))

    peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.02")
    wait_for(lambda: copies(follower) == [("buy", D("0.02"))], what="the pushed fill")
    # It came through the websocket: no REST query was needed.
    assert len(peer.requests_to("/api/v3/myTrades")) == rest_queries

    # The socket drops, and the master trades before the watcher is back.
    peer.ws_disconnect_all(abort=True)
    peer.trade_on_website(KEY, "BTCUSDT", "BUY", "0.03")
    wait_for(
        lambda: copies(follower) == [("buy", D("0.02")), ("buy", D("0.03"))],
        what="the fill made while disconnected",
    )
    wait_for(lambda: peer.ws_subscriptions(KEY), what="the new subscription")
    peer.trade_on_website(KEY, "BTCUSDT", "SELL", "0.05")
    wait_for(lambda: copies(follower) == [], what="both copies closed")
    opened = MasterEventRecord.objects.filter(account=master, kind="position_opened").count()
    assert opened == 2
    assert MasterWatch.objects.get(account=master).fills == 3


def test_a_refused_key_is_shown_on_the_account_page(peer, copier_daemon, client):
    user = make_user()
    master = exchange_master(user)
    master.credentials = json.dumps({"apiKey": KEY, "secret": "not-the-secret"})
    master.save()
    make_link(master, make_paper(user, "Paper follower"), "1", symbol_map="BTC/USDT=BTCUSD")
    start(copier_daemon, peer)
    watch = wait_for(
        lambda: MasterWatch.objects.filter(account=master, status="error").first(),
        what="the watcher to report the refused key",
    )
    assert "Signature for this request is not valid." in watch.detail
    client.force_login(user)
    page = client.get(f"/brokers/{master.pk}/").content.decode()
    assert "Signature for this request is not valid." in page
    assert "not-the-secret" not in page
