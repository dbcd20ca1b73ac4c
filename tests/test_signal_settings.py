"""A signal source's settings change on its page and the intake follows at once."""

from __future__ import annotations

import re
import time
from decimal import Decimal as D

import pytest

from brokers.hooks import signature
from brokers.models import SignalSource
from tests.factories import make_user
from tests.test_signal_webhooks import BUY, new_source, post

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = {
    "equity": "25000",
    "dedup_window_s": "30",
    "position_aware": "on",
    "allow_pyramiding": "on",
}


def test_turning_signatures_on_shows_a_secret_once_and_the_intake_requires_it(
    client, web_server, redis_client
):
    client.force_login(make_user())
    account, token, _ = new_source(client)
    assert post(web_server, token, {**BUY, "alert_id": "plain"}).status_code == 202
    url = f"/brokers/{account.pk}/signals/settings/"
    page = client.post(url, {**SETTINGS, "require_signature": "on"})
    secret = re.search(r'data-testid="hook-secret">([^<]+)<', page.content.decode()).group(1)
    source = SignalSource.objects.get(pk=account.pk)
    assert (source.equity, source.dedup_window_s, source.allow_pyramiding) == (D("25000"), 30, True)
    assert source.require_signature and source.hmac_secret == secret
    assert secret not in client.get(f"/brokers/{account.pk}/").content.decode()
    # The web process had this source's config in memory: it must not accept unsigned now.
    unsigned = post(web_server, token, {**BUY, "alert_id": "unsigned"})
    assert unsigned.status_code == 401 and "X-Signature" in unsigned.text
    body = b'{"action": "buy", "ticker": "EURUSD", "qty": "0.1", "alert_id": "signed"}'
    ts = str(int(time.time()))
    headers = {"X-Signature-Timestamp": ts, "X-Signature": signature(secret, ts, body)}
    assert post(web_server, token, body, headers).status_code == 202
    # Off again: the secret is forgotten and plain alerts are accepted.
    assert client.post(url, SETTINGS).status_code == 302
    assert SignalSource.objects.get(pk=account.pk).hmac_secret == ""
    assert post(web_server, token, {**BUY, "alert_id": "plain-2"}).status_code == 202


def test_bad_settings_name_the_field_and_change_nothing(client):
    client.force_login(make_user())
    account, _, _ = new_source(client)
    before = SignalSource.objects.get(pk=account.pk)
    page = client.post(
        f"/brokers/{account.pk}/signals/settings/", {**SETTINGS, "dedup_window_s": "-5"}
    )
    assert page.status_code == 400
    assert "Duplicate window" in page.content.decode()
    assert "greater than or equal to 0" in page.content.decode()
    after = SignalSource.objects.get(pk=account.pk)
    assert (after.equity, after.dedup_window_s) == (before.equity, before.dedup_window_s)


def test_only_the_owner_changes_a_sources_settings(client):
    client.force_login(make_user("owner@example.com"))
    account, _, _ = new_source(client)
    client.force_login(make_user("other@example.com"))
    answer = client.post(f"/brokers/{account.pk}/signals/settings/", SETTINGS)
    assert answer.status_code == 404
    assert SignalSource.objects.get(pk=account.pk).equity == D("10000")
