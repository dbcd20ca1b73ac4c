"""A Paper master copied to a Binance USDⓈ-M follower: leverage, margin mode, position mode.

Real daemon, real ccxt `binanceusdm`, the local futures peer (which checks
signatures and refuses what Binance refuses: a reduce-only order that would
grow a position, a position side that does not fit the account's mode, ...).
"""

import asyncio
import json
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, Role, Venue
from brokers.venues import paper
from copier.core import Side, client_order_id
from copier.models import Execution
from copier.outbox import publish_pending
from tests.conftest import wait_for
from tests.exchange_peer.binance_futures import BinanceUsdmPeer, binanceusdm_client
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "futures-key-5555", "futures-secret"
ORDER = "/fapi/v1/order"


@pytest.fixture
def peer():
    peer = BinanceUsdmPeer()
    peer.add_key(KEY, SECRET, "10000")
    peer.start()
    peer.set_price("BTCUSDT", "65000")
    yield peer
    peer.stop()


def hedge_mode(peer: BinanceUsdmPeer) -> None:
    async def go() -> None:
        exchange = binanceusdm_client(peer, KEY, SECRET)
        try:
            await exchange.set_position_mode(True)
        finally:
            await exchange.close()

    asyncio.run(go())
    assert peer.hedged(KEY)


def setup(user, **follower_fields):
    master = make_paper(user, "Paper master", role=Role.MASTER)
    follower = BrokerAccount.objects.create(
        owner=user,
        venue=Venue.CCXT,
        label="Binance futures",
        role=Role.FOLLOWER,
        exchange="binanceusdm",
        market_type="swap",
        credentials=json.dumps({"apiKey": KEY, "secret": SECRET}),
        **follower_fields,
    )
    link = make_link(master, follower, "1", symbol_map="BTCUSD=BTC/USDT:USDT")
    return master, link


def orders(peer):
    return [r.params for r in peer.requests_to(ORDER, "POST")]


def test_one_way_copies_set_leverage_and_margin_first_and_close_reduce_only(peer, copier_daemon):
    master, link = setup(make_user(), leverage=10, margin_mode="isolated")
    copier_daemon(CCXT_API_HOSTS=json.dumps({"binanceusdm": peer.base_url}))

    opened = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("0.04"), D("65000"), "M1")
    publish_pending(master.pk)
    wait_for(lambda: orders(peer), what="the copy's order")
    settings = peer.settings(KEY, "BTCUSDT")
    assert (settings.leverage, settings.margin_type) == (10, "ISOLATED")
    # The settings went out before the order.
    paths = [r.path for r in peer.requests if r.method == "POST"]
    assert paths.index("/fapi/v1/marginType") < paths.index(ORDER)
    assert paths.index("/fapi/v1/leverage") < paths.index(ORDER)
    first = orders(peer)[0]
    assert first["newClientOrderId"] == client_order_id(link.pk, opened.ref, opened.event.seq)
    assert (first["side"], first["quantity"]) == ("BUY", "0.04")
    assert "positionSide" not in first and "reduceOnly" not in first
    wait_for(lambda: peer.position(KEY, "BTCUSDT").amount == D("0.04"), what="the position")

    paper.close_position(master.pk, opened.ref, D("65500"), "M2", volume=D("0.01"))
    publish_pending(master.pk)
    wait_for(lambda: len(orders(peer)) == 2, what="the partial close")
    assert (orders(peer)[1]["side"], orders(peer)[1]["quantity"]) == ("SELL", "0.01")
    assert orders(peer)[1]["reduceOnly"] == "true"
    paper.close_position(master.pk, opened.ref, D("65500"), "M3")
    publish_pending(master.pk)
    wait_for(lambda: peer.position(KEY, "BTCUSDT").amount == 0, what="the close")
    assert orders(peer)[2]["reduceOnly"] == "true"
    # Leverage and margin were set once for the symbol, not per order.
    assert len(peer.requests_to("/fapi/v1/leverage", "POST")) == 1


def test_hedge_mode_orders_carry_the_position_side(peer, copier_daemon):
    hedge_mode(peer)
    master, _ = setup(make_user())
    copier_daemon(CCXT_API_HOSTS=json.dumps({"binanceusdm": peer.base_url}))

    long = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("0.02"), D("65000"), "M1")
    short = paper.open_position(master.pk, "BTCUSD", Side.SELL, D("0.03"), D("65000"), "M2")
    publish_pending(master.pk)
    wait_for(lambda: len(orders(peer)) == 2, what="both copies")
    assert peer.position(KEY, "BTCUSDT", "LONG").amount == D("0.02")
    assert peer.position(KEY, "BTCUSDT", "SHORT").amount == D("-0.03")

    paper.close_position(master.pk, short.ref, D("64000"), "M3")
    publish_pending(master.pk)
    wait_for(lambda: len(orders(peer)) == 3, what="the short's close")
    close = orders(peer)[2]
    # Hedge mode: the close names the SHORT side (Binance refuses reduceOnly here).
    assert (close["side"], close["positionSide"], close["quantity"]) == ("BUY", "SHORT", "0.03")
    assert "reduceOnly" not in close
    wait_for(lambda: peer.position(KEY, "BTCUSDT", "SHORT").amount == 0, what="short closed")
    assert peer.position(KEY, "BTCUSDT", "LONG").amount == D("0.02")
    assert long.ref


def test_a_copy_without_the_margin_is_denied_locally(peer, copier_daemon):
    peer.set_balance(KEY, "100")
    master, link = setup(make_user(), leverage=2)
    copier_daemon(CCXT_API_HOSTS=json.dumps({"binanceusdm": peer.base_url}))

    opened = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("0.04"), D("65000"), "M1")
    publish_pending(master.pk)
    coid = client_order_id(link.pk, opened.ref, opened.event.seq)
    execution = wait_for(
        lambda: Execution.objects.filter(client_order_id=coid).first(), what="the execution"
    )
    assert execution.status == "failed"
    assert "needs 1300 USDT of margin at 2x and 100 USDT is free" in execution.reason
    assert orders(peer) == []


def test_the_exchanges_margin_refusal_is_an_insufficient_balance(peer):
    """Without a leverage setting the exchange checks the margin; its -2019 is translated."""
    from brokers.venues.base import InsufficientBalance
    from brokers.venues.ccxt.venue import CcxtVenue
    from copier.core import FollowerOrder, OrderAction

    peer.set_balance(KEY, "10")

    async def go():
        venue = CcxtVenue(
            "binanceusdm", {"apiKey": KEY, "secret": SECRET}, "swap", api_host=peer.base_url
        )
        try:
            await venue.call("load_markets")
            order = FollowerOrder(OrderAction.OPEN, "BTC/USDT:USDT", Side.BUY, D("1"), D("65000"))
            await venue.execute(order, "TS00000000000000000000CD01")
        finally:
            await venue.close()

    with pytest.raises(InsufficientBalance) as refused:
        asyncio.run(go())
    assert "Margin is insufficient." in refused.value.message
    assert peer.position(KEY, "BTCUSDT").amount == 0
