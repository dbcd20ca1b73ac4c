"""The ccxt connector against the local Binance spot peer: real ccxt, real HTTP."""

import asyncio
from decimal import Decimal as D

import pytest

from brokers.venues.base import CredentialsRejected, OrderDenied, VenueUnavailable
from brokers.venues.ccxt.venue import CcxtVenue
from copier.core import FollowerOrder, OrderAction, OrderType, Side, client_order_id
from tests.exchange_peer.binance import BinanceSpotPeer

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "venue-key", "venue-secret"


@pytest.fixture
def peer():
    peer = BinanceSpotPeer()
    peer.add_key(KEY, SECRET, {"USDT": "10000", "BTC": "0.5"})
    peer.start()
    peer.set_price("BTCUSDT", "65000")
    yield peer
    peer.stop()


def run(peer, scenario, secret=SECRET):
    async def main():
        venue = CcxtVenue("binance", {"apiKey": KEY, "secret": secret}, api_host=peer.base_url)
        try:
            await venue.connect()
            return await scenario(venue)
        finally:
            await venue.close()

    return asyncio.run(main())


def buy(volume="0.01", price="65000"):
    return FollowerOrder(OrderAction.OPEN, "BTC/USDT", Side.BUY, D(volume), D(price))


COID = client_order_id(7, "P1", 1)


def test_a_copy_is_sent_with_our_client_order_id(peer):
    report = run(peer, lambda v: v.execute(buy(), COID))
    (sent,) = peer.requests_to("/api/v3/order", "POST")
    assert sent.params["newClientOrderId"] == COID
    assert sent.params["type"] == "MARKET" and sent.params["side"] == "BUY"
    assert report.client_order_id == COID and report.created
    assert (report.volume, report.price, report.side) == (D("0.01"), D("65000"), Side.BUY)
    assert peer.balance(KEY, "BTC")[0] == D("0.51")


def test_an_order_is_found_by_its_client_order_id(peer):
    async def scenario(venue):
        await venue.execute(buy(), COID)
        return await venue.find(COID, "BTC/USDT"), await venue.find("TSNEVERSENT", "BTC/USDT")

    found, missing = run(peer, scenario)
    assert found.client_order_id == COID and not found.created and found.volume == D("0.01")
    assert missing is None


def test_closing_a_spot_copy_sells_the_copied_amount(peer):
    async def scenario(venue):
        await venue.execute(buy("0.02"), COID)
        close = FollowerOrder(OrderAction.CLOSE, "BTC/USDT", Side.SELL, D("0.02"), D("65500"))
        return await venue.execute(close, client_order_id(7, "P1", 2))

    report = run(peer, scenario)
    assert report.side is Side.SELL and report.volume == D("0.02")
    assert peer.balance(KEY, "BTC")[0] == D("0.5")
    sell = peer.requests_to("/api/v3/order", "POST")[-1]
    assert "reduceOnly" not in sell.params, "spot has no reduce-only"


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (buy("0.000001"), "0.000001 BTC is under BTC/USDT's minimum of"),
        (buy("0.2"), "the order needs 13000 USDT and 10000 USDT is free"),
        (
            FollowerOrder(OrderAction.OPEN, "DOGE/XYZ", Side.BUY, D("1"), D("1")),
            "DOGE/XYZ is not traded on binance",
        ),
        (
            FollowerOrder(
                OrderAction.PLACE_PENDING,
                "BTC/USDT",
                Side.BUY,
                D("0.01"),
                D("60000"),
                order_type=OrderType.STOP,
            ),
            "only limit orders are copied to exchanges as pending orders",
        ),
    ],
)
def test_orders_the_exchange_would_refuse_are_denied_before_sending(peer, order, message):
    with pytest.raises(OrderDenied) as denied:
        run(peer, lambda v: v.execute(order, COID))
    assert message in denied.value.message
    assert not peer.requests_to("/api/v3/order", "POST"), "nothing was sent"


def test_a_wrong_secret_is_a_credentials_error(peer):
    with pytest.raises(CredentialsRejected):
        run(peer, lambda v: v.free_balance(refresh=True), secret="not-the-secret")


def test_a_busy_exchange_is_an_unknown_outcome_and_the_order_can_be_looked_up(peer):
    async def scenario(venue):
        await venue.free_balance()
        peer.fail_next(1, status=503, path_prefix="/api/v3/order")
        try:
            await venue.execute(buy(), COID)
        except VenueUnavailable as e:
            return e, await venue.find(COID, "BTC/USDT")
        raise AssertionError("the 503 was not raised")

    error, found = run(peer, scenario)
    assert error.outcome_unknown and not error.permanent
    assert found is None, "the refused request placed nothing, so a resend is safe"
