"""Events read together are copied in waves that share no account: together where
they can be, in stream order where an account is shared."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from brokers.models import PaperPosition, Role
from copier.core import CopyRules, EventKind, MasterEvent, Side
from copier.daemon import waves
from copier.ledger import LinkInfo
from copier.models import Execution
from tests.conftest import wait_for
from tests.factories import make_link, make_paper, make_user
from tests.test_copy_daemon import close, open_positions, place


def event(master: int, seq: int) -> tuple[str, MasterEvent, int]:
    e = MasterEvent(
        source=f"acct:{master}",
        seq=seq,
        kind=EventKind.POSITION_OPENED,
        master_ref=f"P{seq}",
        symbol="EURUSD",
        side=Side.BUY,
        volume=D("1"),
        price=D("1.1"),
        ts_event_ms=0,
    )
    return f"{master}-{seq}", e, master


def link(follower: int) -> LinkInfo:
    return LinkInfo(
        id=follower, owner_id=1, follower_id=follower, currency="USD", rules=CopyRules()
    )


def test_waves_keep_each_accounts_order_and_group_the_rest():
    by_master = {1: [link(11)], 2: [link(11)], 3: [link(12)], 4: [link(13), link(14)]}
    read = [event(1, 1), event(2, 1), event(1, 2), event(3, 1), event(4, 1), event(3, 2)]
    got = [[msg_id for msg_id, _, _ in wave] for wave in waves(read, by_master)]
    # 2-1 shares follower 11 with 1-1; 1-2 comes after 2-1 for that follower.
    assert got == [["1-1", "3-1", "4-1"], ["2-1", "3-2"], ["1-2"]]
    assert waves([], by_master) == []
    # A master with no links still gets its own place in the order.
    assert [[m for m, _, _ in w] for w in waves([event(9, 1), event(9, 2)], {})] == [
        ["9-1"],
        ["9-2"],
    ]


@pytest.mark.django_db(transaction=True)
def test_events_read_together_are_all_copied_in_order(client, copier_daemon):
    user = make_user()
    client.force_login(user)
    m1, m2, m3 = (make_paper(user, f"M{i}", role=Role.MASTER) for i in (1, 2, 3))
    shared, alone = make_paper(user, "Shared"), make_paper(user, "Alone")
    make_link(m1, shared, "1")
    make_link(m2, shared, "1")
    make_link(m3, alone, "1")
    # Published before the daemon starts, so it reads them in one go.
    a = place(client, m1, symbol="EURUSD", volume="1", price="1.1")
    place(client, m2, symbol="GBPUSD", volume="2", price="1.3")
    close(client, m1, a, price="1.2")
    place(client, m3, symbol="XAUUSD", volume="3", price="2000")
    copier_daemon()
    wait_for(
        lambda: Execution.objects.filter(status="filled").count() == 4,
        what="four copies: two opens, a close, an open",
    )
    assert [(p.symbol, p.volume) for p in open_positions(shared)] == [("GBPUSD", D("2"))]
    assert [(p.symbol, p.volume) for p in open_positions(alone)] == [("XAUUSD", D("3"))]
    eurusd = PaperPosition.objects.get(account=shared, symbol="EURUSD")
    assert eurusd.closed_at is not None and eurusd.close_price == D("1.2")
    kinds = Execution.objects.filter(symbol="EURUSD").order_by("id").values_list("kind", flat=True)
    assert list(kinds) == ["position_opened", "position_closed"]
