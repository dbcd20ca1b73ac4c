"""The copy settings of an exchange account: watched symbols, leverage, margin mode."""

import json

import pytest
from django.utils import timezone

from brokers.models import BrokerAccount, ExchangeMarkets, Role, Venue
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def exchange_account(user, market_type="spot", role=Role.BOTH) -> BrokerAccount:
    ExchangeMarkets.objects.get_or_create(
        exchange="binance",
        market_type=market_type,
        sandbox=False,
        defaults={"markets": {"BTC/USDT": {}, "ETH/USDT": {}}, "refreshed_at": timezone.now()},
    )
    return BrokerAccount.objects.create(
        owner=user,
        venue=Venue.CCXT,
        label=f"Binance {market_type}",
        role=role,
        exchange="binance",
        market_type=market_type,
        credentials=json.dumps({"apiKey": "k", "secret": "s"}),
        watch_symbols="BTC/USDT",
    )


def test_symbols_are_saved_once_each_and_the_page_shows_them(client):
    user = make_user()
    account = exchange_account(user)
    client.force_login(user)
    url = f"/brokers/{account.pk}/exchange-settings/"
    response = client.post(url, {"watch_symbols": "ETH/USDT, BTC/USDT ETH/USDT"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.watch_symbols == "ETH/USDT BTC/USDT"
    page = client.get(f"/brokers/{account.pk}/").content.decode()
    assert "ETH/USDT BTC/USDT" in page and "not yet" in page


def test_an_unknown_symbol_is_named_and_nothing_changes(client):
    user = make_user()
    account = exchange_account(user)
    client.force_login(user)
    response = client.post(
        f"/brokers/{account.pk}/exchange-settings/", {"watch_symbols": "BTC/USDT DOGE/EUR"}
    )
    assert response.status_code == 400
    assert "DOGE/EUR: not a spot market on binance" in response.content.decode()
    account.refresh_from_db()
    assert account.watch_symbols == "BTC/USDT"


def test_leverage_is_for_derivatives_and_bounded(client):
    user = make_user()
    spot = exchange_account(user)
    futures = exchange_account(user, "swap")
    client.force_login(user)
    response = client.post(f"/brokers/{spot.pk}/exchange-settings/", {"leverage": "5"})
    assert response.status_code == 400
    assert "derivatives accounts only" in response.content.decode()
    response = client.post(f"/brokers/{futures.pk}/exchange-settings/", {"leverage": "500"})
    assert response.status_code == 400
    assert "less than or equal to 125" in response.content.decode()
    response = client.post(
        f"/brokers/{futures.pk}/exchange-settings/", {"leverage": "10", "margin_mode": "isolated"}
    )
    assert response.status_code == 302
    futures.refresh_from_db()
    assert (futures.leverage, futures.margin_mode) == (10, "isolated")


def test_someone_elses_account_is_not_found(client):
    account = exchange_account(make_user("owner@example.com"))
    client.force_login(make_user("other@example.com"))
    response = client.post(f"/brokers/{account.pk}/exchange-settings/", {"leverage": "3"})
    assert response.status_code == 404
    account.refresh_from_db()
    assert account.leverage is None
