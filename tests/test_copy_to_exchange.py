"""A Paper master copied to a Binance follower: real daemon, real ccxt, the local Binance peer."""

import json
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, Role, Venue
from brokers.venues import paper
from copier.core import Side, client_order_id
from copier.models import Execution
from copier.outbox import publish_pending
from tests.conftest import wait_for
from tests.exchange_peer.binance import BinanceSpotPeer
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "copy-key-1234", "copy-secret"


@pytest.fixture
def peer():
    peer = BinanceSpotPeer()
    peer.add_key(KEY, SECRET, {"USDT": "10000"})
    peer.start()
    peer.set_price("BTCUSDT", "65000")
    yield peer
    peer.stop()


def test_a_paper_trade_is_copied_to_the_exchange_with_our_client_order_id(
    peer, copier_daemon, redis_client
):
    user = make_user()
    master = make_paper(user, "Paper master", role=Role.MASTER)
    follower = BrokerAccount.objects.create(
        owner=user,
        venue=Venue.CCXT,
        label="Binance",
        role=Role.FOLLOWER,
        exchange="binance",
        market_type="spot",
        credentials=json.dumps({"apiKey": KEY, "secret": SECRET}),
    )
    link = make_link(master, follower, "0.5", symbol_map="BTCUSD=BTC/USDT")
    copier_daemon(CCXT_API_HOSTS=json.dumps({"binance": peer.base_url}))

    opened = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("0.04"), D("65000"), "M1")
    publish_pending(master.pk)
    buy = wait_for(lambda: peer.requests_to("/api/v3/order", "POST"), what="the copy's order")
    coid = client_order_id(link.pk, opened.ref, opened.event.seq)
    assert buy[0].params["newClientOrderId"] == coid
    assert (buy[0].params["side"], buy[0].params["quantity"]) == ("BUY", "0.02")
    execution = wait_for(
        lambda: Execution.objects.filter(client_order_id=coid).first(), what="the execution"
    )
    assert execution.status == "filled" and execution.volume == D("0.02")
    assert peer.balance(KEY, "BTC")[0] == D("0.02")

    paper.close_position(master.pk, opened.ref, D("65500"), "M2")
    publish_pending(master.pk)
    wait_for(lambda: len(peer.requests_to("/api/v3/order", "POST")) == 2, what="the close")
    sell = peer.requests_to("/api/v3/order", "POST")[1]
    assert (sell.params["side"], sell.params["quantity"]) == ("SELL", "0.02")
    wait_for(lambda: peer.balance(KEY, "BTC")[0] == D("0"), what="the BTC to be sold")
