"""Signal webhooks end to end: HTTP POSTs to the real web server (uvicorn, as in production),
the Redis stream, the real copier daemon, Paper followers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from decimal import Decimal as D

import httpx
import pytest

from brokers.hooks import config_key, token_hash
from brokers.models import BrokerAccount, PaperPosition, SignalLog
from tests.conftest import free_port, wait_for
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

BUY = {"action": "buy", "ticker": "EURUSD", "qty": "0.10", "price": "1.08"}


def new_source(client, **options) -> tuple[BrokerAccount, str, str]:
    data = {
        "label": options.pop("label", "TV alerts"),
        "equity": "10000",
        "dedup_window_s": "60",
        "position_aware": "on",
        **options,
    }
    page = client.post("/brokers/signals/new/", data).content.decode()
    url = re.search(r'data-testid="hook-url">([^<]+)<', page).group(1)
    secret = re.search(r'data-testid="hook-secret">([^<]+)<', page)
    account = BrokerAccount.objects.get(label=data["label"])
    return account, url.split("/hooks/")[1], secret.group(1) if secret else ""


def copies(follower) -> list[tuple[str, D]]:
    return sorted(
        (p.side, p.volume) for p in PaperPosition.objects.filter(account=follower, closed_at=None)
    )


@pytest.fixture
def setup(client):
    user = make_user()
    client.force_login(user)
    source, token, _ = new_source(client)
    follower = make_paper(user, "Paper follower")
    make_link(source, follower, "1")
    return source, token, follower


def post(base: str, token: str, body, headers=None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{base}/hooks/{token}", content=content, headers=headers or {}, timeout=10)


def test_an_alert_becomes_a_copied_trade_and_a_duplicate_does_not(
    setup, web_server, copier_daemon, client
):
    source, token, follower = setup
    copier_daemon()
    answer = post(web_server, token, {**BUY, "alert_id": "tv-1"})
    assert answer.status_code == 202, answer.text
    signal_id = answer.json()["signal_id"]
    wait_for(lambda: copies(follower) == [("buy", D("0.1"))], what="the copied buy")
    again = post(web_server, token, {**BUY, "alert_id": "tv-1", "comment": "resent"})
    assert (again.status_code, again.json()) == (200, {"duplicate": True, "signal_id": signal_id})
    # Numbers as strings, unknown fields ignored, TradingView's substituted template.
    close = post(
        web_server,
        token,
        {
            "action": "close",
            "ticker": "EURUSD",
            "price": "1.081",
            "strategy": {"x": 1},
            "alert_id": "tv-2",
        },
    )
    assert close.status_code == 202
    wait_for(lambda: copies(follower) == [], what="the copied close")
    log = wait_for(lambda: SignalLog.objects.filter(signal_id=signal_id).first(), what="the log")
    assert log.outcome == "executed" and log.latency_ms is not None
    page = client.get(f"/brokers/{source.pk}/").content.decode()
    assert "tv-1" in page and "Executed" in page and token not in page


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"ticker": "EURUSD", "qty": "1"}, 400, "action"),
        ({"action": "buy", "ticker": "EURUSD"}, 400, "qty"),
        ({"action": "jump", "ticker": "EURUSD", "qty": "1"}, 400, "action"),
        ({"action": "buy", "ticker": "{{ticker}}", "qty": "1"}, 400, "ticker"),
        (b"{not json", 400, "body"),
        (b"x" * (16 * 1024 + 1), 413, "16 KB"),
    ],
)
def test_bad_alerts_get_a_clear_status(setup, web_server, body, status, message):
    _, token, _ = setup
    answer = post(web_server, token, body)
    assert answer.status_code == status
    assert message in answer.text


def test_a_wrong_or_revoked_token_is_not_found_and_says_nothing(setup, web_server, client):
    source, token, _ = setup
    assert post(web_server, "x" * 43, BUY).json() == {"error": "not found"}
    assert httpx.get(f"{web_server}/hooks/{token}").status_code == 405
    client.post(f"/brokers/{source.pk}/signals/revoke/")
    answer = post(web_server, token, BUY)
    assert (answer.status_code, answer.json()) == (404, {"error": "not found"})


def test_signed_sources_refuse_bad_or_stale_signatures(client, web_server):
    make_user_and_login = make_user("signer@example.com")
    client.force_login(make_user_and_login)
    _, token, secret = new_source(client, label="Signed", require_signature="on")
    body = json.dumps(BUY).encode()

    def signed(ts: int, key: str = secret) -> dict[str, str]:
        sig = hmac.new(key.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
        return {"X-Signature-Timestamp": str(ts), "X-Signature": sig}

    now = int(time.time())
    assert post(web_server, token, body).status_code == 401
    assert post(web_server, token, body, signed(now, "wrong-secret")).json() == {
        "error": "bad signature"
    }
    stale = post(web_server, token, body, signed(now - 301))
    assert stale.status_code == 401 and "at most 300 s" in stale.text
    assert post(web_server, token, body, signed(now)).status_code == 202


def test_rate_limits_are_per_source_and_one_user_does_not_slow_another(client, start_web):
    base = start_web(SIGNALS_PER_MINUTE_PER_SOURCE="3", SIGNALS_PER_MINUTE_PER_USER="100")
    client.force_login(make_user("flood@example.com"))
    _, flood, _ = new_source(client, label="Flood")
    client.force_login(make_user("calm@example.com"))
    _, calm, _ = new_source(client, label="Calm")
    statuses = [post(base, flood, {**BUY, "alert_id": f"f{i}"}).status_code for i in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    limited = post(base, flood, {**BUY, "alert_id": "f9"})
    assert int(limited.headers["retry-after"]) >= 1
    assert post(base, calm, {**BUY, "alert_id": "c1"}).status_code == 202


def test_with_redis_down_nothing_is_accepted(setup, start_web):
    _, token, _ = setup
    base = start_web(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    answer = post(base, token, BUY)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


def test_when_the_copier_is_behind_signals_are_refused_not_queued(client, start_web, copier_daemon):
    """A full backlog answers 503 + Retry-After; other shards, and the same one once the
    copier catches up, are served again."""
    base = start_web(SIGNALS_MAX_BACKLOG="16")  # two waiting signals per shard
    user = make_user("behind@example.com")
    client.force_login(user)
    _, token, _ = new_source(client, label="Behind", allow_pyramiding="on")
    other = make_user("other@example.com")  # the next user id: another shard
    client.force_login(other)
    _, other_token, _ = new_source(client, label="Other")
    statuses = [post(base, token, {**BUY, "alert_id": f"b{i}"}).status_code for i in range(2)]
    assert statuses == [202, 202]
    refused = post(base, token, {**BUY, "alert_id": "b2"})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "10"
    assert "copier is behind (2 signals are waiting)" in refused.json()["error"]
    assert "nothing was accepted" in refused.json()["error"]
    # A refused signal is not remembered: sent again later it is new, not a duplicate.
    assert post(base, other_token, {**BUY, "alert_id": "o1"}).status_code == 202
    copier_daemon()
    wait_for(
        lambda: SignalLog.objects.filter(source__account__owner=user).count() == 2,
        what="the backlog handled",
    )
    again = wait_for(
        lambda: (a := post(base, token, {**BUY, "alert_id": "b2"})).status_code == 202 and a,
        what="the signal accepted once the copier caught up",
    )
    assert "duplicate" not in again.json()


def test_more_requests_at_once_than_redis_connections_wait_for_one(setup, web_server):
    """The intake's pool has 100 connections; 160 concurrent alerts all get an answer."""
    _, token, _ = setup

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as c:
            answers = await asyncio.gather(
                *(
                    c.post(
                        f"{web_server}/hooks/{token}",
                        content=json.dumps({**BUY, "alert_id": f"p{i}"}).encode(),
                    )
                    for i in range(160)
                )
            )
        return [a.status_code for a in answers]

    statuses = asyncio.run(burst())
    assert set(statuses) <= {202, 429} and statuses.count(202) >= 100, statuses


def test_signals_accepted_while_the_copier_was_down_are_executed_once(
    setup, web_server, copier_daemon
):
    """Accepted with no copier running; executed by the next one; a restart repeats nothing."""
    source, token, follower = setup
    source.signal_source.allow_pyramiding = True
    source.signal_source.save()
    ids = []
    for i in range(5):
        answer = post(web_server, token, {**BUY, "alert_id": f"down-{i}", "qty": "0.01"})
        assert answer.status_code == 202
        ids.append(answer.json()["signal_id"])
    daemon = copier_daemon()
    wait_for(
        lambda: SignalLog.objects.filter(signal_id__in=ids, outcome="executed").count() == 5,
        what="five executed signals",
    )
    wait_for(lambda: len(copies(follower)) == 5, what="five copies")
    daemon.kill()
    copier_daemon()
    # A later signal on the same stream comes after anything replayed.
    last = post(web_server, token, {"action": "close_all", "price": "1.09", "alert_id": "end"})
    wait_for(
        lambda: SignalLog.objects.filter(signal_id=last.json()["signal_id"]).exists(),
        what="the last signal's outcome",
    )
    assert SignalLog.objects.filter(signal_id__in=ids).count() == 5
    wait_for(lambda: copies(follower) == [], what="all five closed, none reopened")
    assert PaperPosition.objects.filter(account=follower).count() == 5


def test_the_same_body_again_is_a_duplicate_and_a_second_buy_is_rejected_with_a_reason(
    setup, web_server, copier_daemon, client
):
    source, token, follower = setup
    copier_daemon()
    first = post(web_server, token, BUY)  # no alert_id: the body identifies it
    assert first.status_code == 202
    assert post(web_server, token, BUY).json()["duplicate"] is True
    second = post(web_server, token, {**BUY, "qty": "0.2"})  # a different body: accepted...
    assert second.status_code == 202
    log = wait_for(
        lambda: SignalLog.objects.filter(signal_id=second.json()["signal_id"]).first(),
        what="the second buy's outcome",
    )
    # ...and refused by the position-aware check, saying why.
    assert log.outcome == "rejected"
    assert "already long" in log.reason and "pyramiding is off" in log.reason
    wait_for(lambda: copies(follower) == [("buy", D("0.1"))], what="only the first buy copied")
    assert "pyramiding is off" in client.get(f"/brokers/{source.pk}/").content.decode()


def test_a_new_url_replaces_the_old_one_at_once(setup, web_server, client):
    source, token, _ = setup
    # Used first, so the web process holds the source's config in memory.
    assert post(web_server, token, {**BUY, "alert_id": "before"}).status_code == 202
    page = client.post(f"/brokers/{source.pk}/signals/rotate/").content.decode()
    new_token = re.search(r'data-testid="hook-url">[^<]*/hooks/([^<]+)<', page).group(1)
    assert new_token != token
    assert post(web_server, token, BUY).status_code == 404
    assert post(web_server, new_token, BUY).status_code == 202


def test_a_revoked_source_is_refused_even_when_another_process_cached_it_first(
    setup, web_server, client, redis_client
):
    """The web process keeps a source's config for seconds; the intake script checks it
    against Redis, whatever process wrote Redis last."""
    source, token, _ = setup
    assert post(web_server, token, {**BUY, "alert_id": "warm"}).status_code == 202
    client.post(f"/brokers/{source.pk}/signals/revoke/")
    # Another web process looks the revoked token up and remembers it as unknown.
    redis_client.set(config_key(token_hash(token)), "{}", ex=60)
    answer = post(web_server, token, {**BUY, "alert_id": "after"})
    assert (answer.status_code, answer.json()) == (404, {"error": "not found"})
