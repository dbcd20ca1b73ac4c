"""Exchange markets are cached in the database; connectors start from the cache."""

import asyncio
import datetime as dt
import json

import pytest
from django.utils import timezone

from brokers.models import BrokerAccount, ExchangeMarkets, Role, Venue
from brokers.tasks import refresh_exchange_markets
from brokers.venues.ccxt.venue import CcxtVenue
from tests.exchange_peer.binance import BinanceSpotPeer
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "cache-key", "cache-secret"


@pytest.fixture
def peer(settings):
    peer = BinanceSpotPeer()
    peer.add_key(KEY, SECRET, {"USDT": "100"})
    peer.start()
    settings.CCXT_API_HOSTS = {"binance": peer.base_url}
    yield peer
    peer.stop()


def connect(peer):
    async def main():
        venue = CcxtVenue("binance", {"apiKey": KEY, "secret": SECRET}, api_host=peer.base_url)
        try:
            await venue.connect()
            return venue.instrument("BTC/USDT")
        finally:
            await venue.close()

    return asyncio.run(main())


def test_beat_refreshes_the_markets_of_exchanges_in_use(peer):
    BrokerAccount.objects.create(
        owner=make_user(),
        venue=Venue.CCXT,
        label="B",
        role=Role.MASTER,
        exchange="binance",
        market_type="spot",
        credentials=json.dumps({"apiKey": KEY, "secret": SECRET}),
    )
    refresh_exchange_markets()
    row = ExchangeMarkets.objects.get(exchange="binance", market_type="spot", sandbox=False)
    assert "BTC/USDT" in row.markets
    assert not any(
        r.headers.get("X-MBX-APIKEY") for r in peer.requests_to("/api/v3/exchangeInfo")
    ), "markets are public: no key is sent"


def test_a_connector_starts_from_fresh_cached_markets(peer):
    refresh_exchange_markets()  # no account uses an exchange yet: nothing to do
    assert not ExchangeMarkets.objects.exists()
    downloaded = connect(peer)
    assert downloaded is not None and len(peer.requests_to("/api/v3/exchangeInfo")) == 1

    from brokers.venues.ccxt.market_cache import refresh

    refresh("binance", "spot", False)
    before = len(peer.requests_to("/api/v3/exchangeInfo"))
    cached = connect(peer)
    assert len(peer.requests_to("/api/v3/exchangeInfo")) == before, "no second download"
    assert cached == downloaded

    ExchangeMarkets.objects.update(refreshed_at=timezone.now() - dt.timedelta(days=2))
    connect(peer)
    assert len(peer.requests_to("/api/v3/exchangeInfo")) == before + 1, "stale: downloaded"
