"""Every master event kind reaches the right follower position, through the real daemon."""

from decimal import Decimal as D

import pytest

from brokers.models import PaperOrder, PaperPosition, Role
from brokers.venues import paper
from copier.core import OrderType, Side
from copier.models import Alert, CopyLink, Execution, PositionLink
from copier.outbox import bump_links_version, publish_pending
from tests.conftest import wait_for
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)

_ids = iter(range(1, 1_000_000))


def coid() -> str:
    return f"M{next(_ids)}"


@pytest.fixture
def accounts(copier_daemon, redis_client):
    user = make_user()
    master = make_paper(user, "Master", role=Role.MASTER)
    f1, f2 = make_paper(user, "F1"), make_paper(user, "F2")
    make_link(master, f1, "1")
    make_link(master, f2, "0.5")
    copier_daemon()
    return master, f1, f2


def open_of(account, symbol=None):
    qs = PaperPosition.objects.filter(account=account, closed_at=None)
    return list(qs.filter(symbol=symbol) if symbol else qs)


def executions(kind):
    return Execution.objects.filter(kind=kind)


def publish():
    publish_pending()


def test_partial_closes_and_modifications_reach_the_linked_copy(accounts):
    master, f1, f2 = accounts
    opened = paper.open_position(
        master.pk, "XAUUSD", Side.BUY, D("2"), D("2350"), coid(), sl=D("2340"), tp=D("2380")
    )
    # A second master position on the same symbol: closes must not mix them up.
    other = paper.open_position(master.pk, "XAUUSD", Side.BUY, D("1"), D("2351"), coid())
    publish()
    wait_for(lambda: len(open_of(f1)) == 2 and len(open_of(f2)) == 2, what="two copies each")
    copy1 = PositionLink.objects.get(link__follower=f1, master_ref=opened.ref)
    copy2 = PositionLink.objects.get(link__follower=f2, master_ref=opened.ref)
    p1 = PaperPosition.objects.get(pk=copy1.follower_ref[1:])
    assert (p1.volume, p1.sl, p1.tp) == (D("2"), D("2340"), D("2380"))

    paper.modify_position(master.pk, opened.ref, D("2345"), D("2390"), coid())
    publish()
    wait_for(lambda: PaperPosition.objects.get(pk=p1.pk).sl == D("2345"), what="the SL move")
    assert PaperPosition.objects.get(pk=p1.pk).tp == D("2390")

    # Two partial closes in a row: 2 → 1.5 → 0.5 on the master.
    paper.close_position(master.pk, opened.ref, D("2360"), coid(), volume=D("0.5"))
    paper.close_position(master.pk, opened.ref, D("2365"), coid(), volume=D("1"))
    publish()
    wait_for(
        lambda: executions("position_partially_closed").count() == 4,
        what="both partial closes on both followers",
    )
    assert PaperPosition.objects.get(pk=p1.pk).volume == D("0.5")
    p2 = PaperPosition.objects.get(pk=copy2.follower_ref[1:])
    assert p2.volume == D("0.25")

    paper.close_position(master.pk, opened.ref, D("2370"), coid())
    publish()
    wait_for(
        lambda: PaperPosition.objects.get(pk=p1.pk).closed_at is not None, what="the final close"
    )
    # The other master position's copies are untouched.
    other_copy = PositionLink.objects.get(link__follower=f1, master_ref=other.ref)
    assert PaperPosition.objects.get(pk=other_copy.follower_ref[1:]).is_open
    assert len(open_of(f1)) == 1 and len(open_of(f2)) == 1


def test_pending_orders_are_placed_modified_cancelled_and_filled(accounts):
    master, f1, _f2 = accounts
    kept = paper.place_order(
        master.pk, "EURUSD", Side.BUY, OrderType.LIMIT, D("1"), D("1.0800"), coid(), sl=D("1.0750")
    )
    dropped = paper.place_order(
        master.pk, "EURUSD", Side.SELL, OrderType.STOP, D("1"), D("1.0700"), coid()
    )
    publish()
    wait_for(
        lambda: PaperOrder.objects.filter(account=f1, status="open").count() == 2,
        what="both pending orders copied",
    )
    paper.modify_order(master.pk, kept.ref, D("1.0810"), D("1.0760"), None, coid())
    paper.cancel_order(master.pk, dropped.ref, coid())
    publish()
    wait_for(
        lambda: PaperOrder.objects.filter(account=f1, status="cancelled").count() == 1,
        what="the cancel",
    )
    follower_order = PaperOrder.objects.get(account=f1, status="open")
    wait_for(
        lambda: PaperOrder.objects.get(pk=follower_order.pk).price == D("1.0810"),
        what="the modification",
    )
    assert PaperOrder.objects.get(pk=follower_order.pk).sl == D("1.0760")

    filled = paper.fill_order(master.pk, kept.ref, D("1.0810"), coid())
    publish()
    wait_for(lambda: len(open_of(f1, "EURUSD")) == 1, what="the follower's order to fill")
    # Later events about the new master position reach the follower's new position.
    paper.close_position(master.pk, filled.event.position_ref, D("1.0830"), coid())
    publish()
    wait_for(lambda: not open_of(f1, "EURUSD"), what="the close of the filled copy")


def test_a_follower_position_closed_by_hand_is_left_alone(accounts):
    master, f1, f2 = accounts
    opened = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("1"), D("65000"), coid())
    publish()
    wait_for(lambda: open_of(f1) and open_of(f2), what="the copies")
    (by_hand,) = open_of(f1)
    paper.close_position(f1.pk, f"P{by_hand.pk}", D("65100"), "HAND1")
    paper.close_position(master.pk, opened.ref, D("65500"), coid(), volume=D("0.5"))
    paper.modify_position(master.pk, opened.ref, D("64000"), None, coid())
    paper.close_position(master.pk, opened.ref, D("65600"), coid())
    publish()
    wait_for(lambda: not open_of(f2), what="F2 to follow the close")
    skipped = Execution.objects.filter(link__follower=f1, status="skipped")
    wait_for(lambda: skipped.count() == 3, what="F1's three skips")
    assert {e.reason for e in skipped} == {
        "the follower closed this copy by hand; later master events leave it alone"
    }
    assert not open_of(f1), "nothing was reopened on F1"
    assert PositionLink.objects.get(link__follower=f1).closed_by_hand


def test_a_risk_stop_closes_all_pauses_and_alerts(accounts):
    master, f1, _f2 = accounts
    CopyLink.objects.filter(follower=f1).update(
        max_drawdown=D("5"), max_drawdown_unit="percent", risk_action="close_all_and_pause"
    )
    bump_links_version()
    losing = paper.open_position(master.pk, "XAUUSD", Side.BUY, D("1"), D("2400"), coid())
    running = paper.open_position(master.pk, "EURUSD", Side.BUY, D("1"), D("1.08"), coid())
    publish()
    wait_for(lambda: len(open_of(f1)) == 2, what="the copies")
    # 1 lot x 100 oz x -6 USD = -600 USD: 6% of F1's 10000 starting balance.
    paper.close_position(master.pk, losing.ref, D("2394"), coid())
    publish()
    link = CopyLink.objects.get(follower=f1)
    wait_for(lambda: CopyLink.objects.get(pk=link.pk).risk_mode == "paused", what="the pause")
    wait_for(lambda: not open_of(f1), what="F1's remaining copy to be closed by the stop")
    alert = Alert.objects.get(link=link, kind="risk_stop")
    assert "the drawdown of 600 USD reached the limit of 500 USD" in alert.message
    # Paused: the next master trade is not copied to F1, but still to F2.
    paper.close_position(master.pk, running.ref, D("1.081"), coid())
    paper.open_position(master.pk, "EURUSD", Side.SELL, D("1"), D("1.08"), coid())
    publish()
    wait_for(
        lambda: Execution.objects.filter(
            link=link, kind="position_opened", status="skipped"
        ).exists(),
        what="the skip while paused",
    )
    assert not open_of(f1)


def test_a_rejected_order_fails_with_the_venues_message_and_an_alert(accounts):
    master, f1, f2 = accounts
    # A negative SL offset of 20.00 moves F1's stop above a buy's entry: Paper refuses it.
    CopyLink.objects.filter(follower=f1).update(sl_offset_points=D("-2000"))
    bump_links_version()
    paper.open_position(master.pk, "XAUUSD", Side.BUY, D("1"), D("2350"), coid(), sl=D("2340"))
    publish()
    failed = wait_for(
        lambda: Execution.objects.filter(link__follower=f1).first(), what="F1's execution"
    )
    assert failed.status == "failed"
    assert failed.reason == "a buy's stop loss must be below 2350"
    assert failed.t_sent_ns is not None and failed.t_acked_ns is not None
    alert = Alert.objects.get(kind="order_failed")
    assert alert.level == "error" and "a buy's stop loss must be below 2350" in alert.message
    assert not open_of(f1)
    wait_for(lambda: open_of(f2), what="F2's copy, unaffected")
    # Permanent: one attempt, never retried in a loop.
    assert Execution.objects.filter(link__follower=f1).count() == 1
