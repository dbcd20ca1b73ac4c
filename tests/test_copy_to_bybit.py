"""A Paper master copied to a Bybit linear follower, and looking orders up by our id on Bybit.

Real daemon, real ccxt `bybit`, the local Bybit v5 peer (Bybit's signature,
envelope and retCodes).
"""

import asyncio
import json
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, Role, Venue
from brokers.venues import paper
from brokers.venues.ccxt.venue import CcxtVenue
from copier.core import FollowerOrder, OrderAction, Side, client_order_id
from copier.outbox import publish_pending
from tests.conftest import wait_for
from tests.exchange_peer.bybit import BybitPeer
from tests.factories import make_link, make_paper, make_user

KEY, SECRET = "bybit-key-7777", "bybit-secret"
CREATE = "/v5/order/create"


@pytest.fixture
def peer():
    peer = BybitPeer()
    peer.add_key(KEY, SECRET, "10000")
    peer.start()
    peer.set_price("BTCUSDT", "65000")
    yield peer
    peer.stop()


def creates(peer):
    return [json.loads(r.body) for r in peer.requests_to(CREATE)]


def long_btc(peer) -> D:
    return sum((p.size for p in peer.positions(KEY) if p.side == "Buy"), D(0))


@pytest.mark.django_db(transaction=True)
def test_a_paper_trade_is_copied_to_bybit_and_closed_reduce_only(peer, copier_daemon):
    user = make_user()
    master = make_paper(user, "Paper master", role=Role.MASTER)
    follower = BrokerAccount.objects.create(
        owner=user,
        venue=Venue.CCXT,
        label="Bybit",
        role=Role.FOLLOWER,
        exchange="bybit",
        market_type="swap",
        credentials=json.dumps({"apiKey": KEY, "secret": SECRET}),
        leverage=5,
    )
    link = make_link(master, follower, "1", symbol_map="BTCUSD=BTC/USDT:USDT")
    copier_daemon(CCXT_API_HOSTS=json.dumps({"bybit": peer.base_url}))

    opened = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("0.05"), D("65000"), "M1")
    publish_pending(master.pk)
    wait_for(lambda: creates(peer), what="the copy's order")
    first = creates(peer)[0]
    assert first["orderLinkId"] == client_order_id(link.pk, opened.ref, opened.event.seq)
    assert (first["side"], first["qty"], first["category"]) == ("Buy", "0.05", "linear")
    assert peer.requests_to("/v5/position/set-leverage")
    wait_for(lambda: long_btc(peer) == D("0.05"), what="the position")

    paper.close_position(master.pk, opened.ref, D("65500"), "M2")
    publish_pending(master.pk)
    wait_for(lambda: long_btc(peer) == 0, what="the close")
    close = creates(peer)[1]
    assert (close["side"], close["qty"], close["reduceOnly"]) == ("Sell", "0.05", True)


def test_an_order_is_found_by_our_id_whatever_its_state(peer):
    """The daemon looks an order up by client order id before any retry."""

    async def go():
        venue = CcxtVenue(
            "bybit", {"apiKey": KEY, "secret": SECRET}, "swap", api_host=peer.base_url
        )
        try:
            await venue.call("load_markets")
            order = FollowerOrder(
                OrderAction.OPEN, "BTC/USDT:USDT", Side.BUY, D("0.01"), D("65000")
            )
            placed = await venue.execute(order, "TS00000000000000000000AB01")
            found = await venue.find("TS00000000000000000000AB01", "BTC/USDT:USDT")
            missing = await venue.find("TS00000000000000000000AB02", "BTC/USDT:USDT")
            return placed, found, missing
        finally:
            await venue.close()

    placed, found, missing = asyncio.run(go())
    assert found is not None and missing is None
    assert (found.ref, found.volume, found.created) == (placed.ref, D("0.01"), False)
    assert found.client_order_id == "TS00000000000000000000AB01"
