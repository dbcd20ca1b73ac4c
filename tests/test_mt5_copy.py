"""Copying to and from MetaTrader 5 through the farm's real agents, the real copier
daemon and the MetaTrader5 TEST STAND-IN (tests/mt5_standin)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, Mt5Agent, PaperPosition, Role
from brokers.venues import paper
from copier.core import Side, client_order_id
from copier.models import Execution
from copier.outbox import publish_pending
from tests.conftest import wait_for
from tests.factories import make_link, make_paper, make_user
from tests.mt5_helpers import LOGIN, decided, link

pytestmark = pytest.mark.django_db(transaction=True)


def linked(client, role: str) -> BrokerAccount:
    request = link(client, role=role)
    wait_for(lambda: decided(request), timeout_s=30, what="the MT5 link")
    assert request.status == "succeeded", request.message
    account = BrokerAccount.objects.get(pk=request.account_id)
    wait_for(
        lambda: Mt5Agent.objects.filter(account=account, status="connected").exists(),
        what="the agent connected",
    )
    return account


def test_a_paper_trade_is_copied_to_an_mt5_follower_and_closed(
    client, mt5_farm, mt5_terminal, copier_daemon
):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    follower = linked(client, Role.FOLLOWER)
    master = make_paper(user, "Paper master", role=Role.MASTER)
    link_row = make_link(master, follower, "2")
    copier_daemon()

    opened = paper.open_position(master.pk, "EURUSD", Side.BUY, D("0.05"), D("1.08"), "M1")
    publish_pending(master.pk)
    coid = client_order_id(link_row.pk, opened.ref, opened.event.seq)
    wait_for(lambda: mt5_terminal.positions(LOGIN), timeout_s=20, what="the copy in the terminal")
    position = mt5_terminal.positions(LOGIN)[0]
    assert (position["comment"], position["volume"]) == (coid, D("0.1"))
    execution = wait_for(
        lambda: Execution.objects.filter(client_order_id=coid, status="filled").first(),
        what="the execution",
    )
    assert execution.volume == D("0.1")

    paper.close_position(master.pk, opened.ref, D("1.081"), "M2")
    publish_pending(master.pk)
    wait_for(lambda: mt5_terminal.positions(LOGIN) == [], what="the copy closed in the terminal")
    sent = [r for r in mt5_terminal.requests() if r["request"].get("comment") == coid]
    assert len(sent) == 1  # the open went out once


def test_trades_by_hand_on_an_mt5_master_are_copied_to_paper(
    client, mt5_farm, mt5_terminal, copier_daemon
):
    user = make_user()
    client.force_login(user)
    mt5_farm()
    master = linked(client, Role.MASTER)
    follower = make_paper(user, "Paper follower")
    make_link(master, follower, "1")
    copier_daemon()

    ticket = mt5_terminal.trade_by_hand(LOGIN, "EURUSD", "buy", "0.30")

    def copies():
        return sorted(
            (p.side, p.volume)
            for p in PaperPosition.objects.filter(account=follower, closed_at=None)
        )

    wait_for(lambda: copies() == [("buy", D("0.3"))], timeout_s=20, what="the copied open")
    mt5_terminal.close_by_hand(ticket, "0.10")
    wait_for(lambda: copies() == [("buy", D("0.2"))], what="the copied partial close")
    mt5_terminal.close_by_hand(ticket)
    wait_for(lambda: copies() == [], what="the copied close")


def test_a_farm_restart_leaves_one_agent_per_terminal_and_copies_once(
    client, mt5_farm, mt5_terminal, copier_daemon
):
    import os
    import signal

    from copier.models import MasterEventRecord

    user = make_user()
    client.force_login(user)
    farm_proc = mt5_farm()
    master = linked(client, Role.MASTER)
    follower = make_paper(user, "Paper follower")
    make_link(master, follower, "1")
    copier_daemon()
    old_pid = Mt5Agent.objects.get(account=master).pid

    os.kill(farm_proc.popen.pid, signal.SIGKILL)  # the farm dies; its agent is orphaned
    farm_proc.popen.wait(5)
    ticket = mt5_terminal.trade_by_hand(LOGIN, "EURUSD", "sell", "0.20")
    mt5_farm()
    wait_for(
        lambda: (
            not os.path.exists(f"/proc/{old_pid}")
            or b"zombie" in open(f"/proc/{old_pid}/status", "rb").read().lower()
        ),
        what="the orphaned agent to stop",
    )

    def copies():
        return [
            (p.side, p.volume)
            for p in PaperPosition.objects.filter(account=follower, closed_at=None)
        ]

    wait_for(lambda: copies() == [("sell", D("0.2"))], timeout_s=20, what="one copy")
    mt5_terminal.close_by_hand(ticket)
    wait_for(lambda: copies() == [], what="the copy closed")
    kinds = list(
        MasterEventRecord.objects.filter(account=master)
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    assert kinds == ["position_opened", "position_closed"]
