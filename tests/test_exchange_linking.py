"""Linking an exchange account: the real Celery worker checks the key against the Binance peer."""

import json

import pytest
from django.db import connection

from brokers.models import BrokerAccount, LinkRequest
from tests.conftest import PYTHON, wait_for
from tests.exchange_peer.binance import BinanceSpotPeer
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

KEY, SECRET = "link-key-0000abcd", "link-secret-s3cr3t"


@pytest.fixture
def peer():
    peer = BinanceSpotPeer()
    peer.add_key(
        KEY, SECRET, {"USDT": "1000"}, enableWithdrawals=False, enableSpotAndMarginTrading=True
    )
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def worker(start_process, redis_client, peer):
    return start_process(
        "worker",
        [PYTHON, "-m", "celery", "-A", "tradosphere", "worker", "--pool=solo", "--loglevel=INFO"],
        CCXT_API_HOSTS=json.dumps({"binance": peer.base_url}),
    )


@pytest.fixture
def user(client):
    user = make_user()
    client.force_login(user)
    return user


def link(client, **fields):
    data = {
        "label": "Binance follower",
        "role": "follower",
        "exchange": "binance",
        "market_type": "spot",
        "api_key": KEY,
        "secret": SECRET,
        **fields,
    }
    return client.post("/brokers/link/exchange/", data)


def decided(client, response):
    assert response.status_code == 302, response.content.decode()[:500]
    status_url = response.url + "status/"
    state = wait_for(
        lambda: (s := client.get(status_url).json())["done"] and s,
        timeout_s=30,
        what="the worker's verdict",
    )
    return state


def test_a_good_key_is_checked_then_linked(client, user, worker, peer):
    state = decided(client, link(client))
    assert state["status"] == "succeeded", state
    account = BrokerAccount.objects.get(owner=user)
    assert (account.venue, account.exchange, account.role) == ("ccxt", "binance", "follower")
    assert account.credentials_hint == "abcd"
    assert json.loads(account.credentials)["secret"] == SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM brokers_brokeraccount WHERE id = %s", [account.pk])
        assert SECRET.encode() not in bytes(cursor.fetchone()[0])
    assert LinkRequest.objects.get().credentials == "", "the request forgets the key"
    assert peer.requests_to("/api/v3/account"), "the balance was read with the key"
    page = client.get(state["account_url"]).content.decode()
    assert "…abcd" in page and SECRET not in page and KEY not in page


def test_a_wrong_secret_links_nothing(client, user, worker):
    state = decided(client, link(client, secret="not-the-secret"))
    assert state["status"] == "failed"
    assert state["message"] == (
        "Binance refused the API key or secret. Check both, and that the key is enabled."
    )
    assert not BrokerAccount.objects.exists()
    assert LinkRequest.objects.get().credentials == ""


def test_permissions_are_checked_for_followers_and_withdrawals_warned(client, user, worker, peer):
    peer.set_permissions(KEY, enableSpotAndMarginTrading=False, enableWithdrawals=True)
    refused = decided(client, link(client))
    assert refused["status"] == "failed"
    assert "This API key cannot trade, and a follower must" in refused["message"]
    assert not BrokerAccount.objects.exists()

    master = decided(client, link(client, role="master", label="Binance master"))
    assert master["status"] == "succeeded"
    assert master["warnings"] == [
        "Withdrawals are enabled for this API key. TradoSphere never withdraws; "
        "disable withdrawals for the key on Binance to be safe."
    ]


def test_an_unreachable_exchange_is_said_plainly(client, user, worker, peer):
    peer.stop()
    state = decided(client, link(client))
    assert state["status"] == "failed"
    assert state["message"].startswith("Binance could not be reached")
    assert not BrokerAccount.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"exchange": "notanexchange"}, "Exchange: Select a valid choice."),
        ({"exchange": "okx"}, "Passphrase: okx needs the passphrase of the API key."),
        ({"secret": ""}, "Secret: This field is required."),
        ({"market_type": "moon"}, "Market type: Select a valid choice."),
    ],
)
def test_a_bad_link_form_names_the_field(client, user, fields, message):
    response = link(client, **fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not LinkRequest.objects.exists()


def test_someone_elses_link_request_is_not_found(client, user):
    other = make_user("other@example.com")
    request = LinkRequest.objects.create(
        owner=other, label="x", role="master", exchange="binance", market_type="spot"
    )
    assert client.get(f"/brokers/link/{request.pk}/").status_code == 404
    assert client.get(f"/brokers/link/{request.pk}/status/").status_code == 404


def test_the_link_form_offers_every_ccxt_exchange(client, user):
    page = client.get("/brokers/link/exchange/").content.decode()
    assert '<option value="binance">' in page and '<option value="okx">' in page
    assert "Never enable withdrawals" in page
