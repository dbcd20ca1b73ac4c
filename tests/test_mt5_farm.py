"""Linking MetaTrader 5 accounts through the farm: `manage.py mt5_farm` runs real agent
processes against the MetaTrader5 TEST STAND-IN (tests/mt5_standin)."""

from __future__ import annotations

import os
import signal

import pytest

from brokers.models import BrokerAccount, Mt5Agent, Venue
from tests.conftest import wait_for
from tests.factories import make_user
from tests.mt5_helpers import INVESTOR, LOGIN, PASSWORD, decided, link

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_account_is_linked_once_the_terminal_has_logged_in(client, mt5_farm, mt5_terminal):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    request = link(client)
    wait_for(lambda: decided(request), timeout_s=30, what="the link to be decided")
    assert request.status == "succeeded", request.message
    assert request.credentials == ""  # wiped from the request either way
    account = BrokerAccount.objects.get(owner=user, label="My MT5")
    assert (account.venue, account.credentials_hint) == (Venue.MT5, str(LOGIN)[-4:])
    agent = Mt5Agent.objects.get(account=account)
    assert "EURUSD" in agent.symbols
    wait_for(
        lambda: Mt5Agent.objects.filter(pk=agent.pk, status="connected").exists(),
        what="the agent connected",
    )
    page = client.get(f"/brokers/link/{request.pk}/").content.decode()
    assert PASSWORD not in page
    # Staff see the slot on the operations page; traders are sent to the staff login.
    assert client.get("/ops/").status_code == 302
    staff = make_user("ops@example.com")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    ops = client.get("/ops/").content.decode()
    assert "C:/MT5/slot-1" in ops and "My MT5 (trader@example.com)" in ops
    assert "no free slot" in ops and "Connected" in ops


@pytest.mark.parametrize(
    "password, server, expected",
    [
        ("wrong-pw", "StandIn-Demo", "a wrong login or password, or a server name"),
        (PASSWORD, "NoSuch-Server", "a wrong login or password, or a server name"),
        (INVESTOR, "StandIn-Demo", "investor (read-only) password: it can only lead"),
    ],
)
def test_a_refused_login_links_nothing_and_frees_the_slot(
    client, mt5_farm, mt5_terminal, password, server, expected
):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    request = link(client, password=password, server=server)
    wait_for(lambda: decided(request), timeout_s=30, what="the link to be decided")
    assert request.status == "failed"
    assert expected in request.message
    assert not BrokerAccount.objects.filter(owner=user).exists()
    wait_for(lambda: not Mt5Agent.objects.exists(), what="the slot to be freed")


def test_without_a_free_slot_the_link_fails_at_once(client, mt5_farm, mt5_terminal):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    first = link(client)
    wait_for(lambda: decided(first), timeout_s=30, what="the first link")
    second = link(client, label="Second MT5")
    wait_for(lambda: decided(second), what="the second link")
    assert second.status == "failed"
    assert "No free terminal slot" in second.message


def test_an_agent_that_dies_is_started_again_and_logs_in(client, mt5_farm, mt5_terminal):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    request = link(client)
    wait_for(lambda: decided(request), timeout_s=30, what="the link")
    agent = Mt5Agent.objects.get(account__owner=user)
    pid = agent.pid
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            Mt5Agent.objects.filter(pk=agent.pk, restarts=1, status="connected")
            .exclude(pid=pid)
            .exists()
        ),
        timeout_s=30,
        what="the agent restarted and logged in again",
    )


def test_an_investor_password_links_a_read_only_master_and_the_site_says_so(
    client, mt5_farm, mt5_terminal
):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    request = link(client, password=INVESTOR, role="master")
    wait_for(lambda: decided(request), timeout_s=30, what="the link")
    assert request.status == "succeeded", request.message
    assert "investor (read-only) password" in request.warnings
    account = BrokerAccount.objects.get(pk=request.account_id)
    wait_for(
        lambda: Mt5Agent.objects.filter(account=account, trade_allowed=False).exists(),
        what="the agent's report",
    )
    page = client.get(f"/brokers/{account.pk}/").content.decode()
    assert "cannot place or close trades on it" in page
    assert INVESTOR not in page
