"""The real `run_copier` process copies master trades to Paper followers."""

import json
import signal
import uuid
from decimal import Decimal as D

import pytest
from django.conf import settings

from brokers.models import PaperPosition, PaperRequest, Role
from brokers.venues import paper
from copier.core import Side, client_order_id
from copier.models import Execution, MasterEventRecord, PositionLink
from tests.conftest import wait_for
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(client):
    user = make_user()
    client.force_login(user)
    master = make_paper(user, "Master", role=Role.MASTER)
    f1 = make_paper(user, "F1")
    f2 = make_paper(user, "F2")
    links = [make_link(master, f1, "1"), make_link(master, f2, "0.5")]
    return master, [f1, f2], links


def open_positions(account):
    return list(PaperPosition.objects.filter(account=account, closed_at=None))


def place(client, master, symbol="XAUUSD", side="buy", volume="2", price="2350.5"):
    response = client.post(
        f"/brokers/{master.pk}/trade/",
        {
            "symbol": symbol,
            "side": side,
            "volume": volume,
            "price": price,
            "ticket_id": uuid.uuid4().hex,
        },
    )
    assert response.status_code == 302, response.content.decode()
    return PaperPosition.objects.filter(account=master).order_by("-id").first()


def close(client, master, position, price="2360.5"):
    response = client.post(
        f"/brokers/{master.pk}/positions/{position.pk}/close/",
        {"price": price, "ticket_id": uuid.uuid4().hex},
    )
    assert response.status_code == 302, response.content.decode()


def test_it_copies_an_open_and_a_close_to_every_follower(
    client, setup, copier_daemon, redis_client
):
    master, (f1, f2), _links = setup
    copier_daemon()
    position = place(client, master)
    wait_for(
        lambda: len(open_positions(f1)) == 1 and len(open_positions(f2)) == 1,
        what="both followers to hold a copy",
    )
    (p1,), (p2,) = open_positions(f1), open_positions(f2)
    assert (p1.symbol, p1.side, p1.volume, p1.open_price) == ("XAUUSD", "buy", D("2"), D("2350.5"))
    assert p2.volume == D("1")
    executions = wait_for(
        lambda: list(Execution.objects.filter(kind="position_opened")),
        what="executions to be recorded",
    )
    assert {e.status for e in executions} == {"filled"}
    for e in executions:
        assert e.t_detected_ns <= e.t_planned_ns <= e.t_sent_ns <= e.t_acked_ns
        assert e.total_us is not None and e.total_us >= 0

    close(client, master, position)
    wait_for(lambda: not open_positions(f1) and not open_positions(f2), what="both copies to close")
    p1.refresh_from_db()
    assert p1.close_price == D("2360.5")
    assert p1.realized_pnl == D("2000.00")  # 2 lots x 100 oz x 10 USD
    f2.paper.refresh_from_db()
    assert f2.paper.balance == D("11000.00")
    assert PositionLink.objects.filter(closed_at=None).count() == 0


def test_a_replayed_event_produces_nothing_new(client, setup, copier_daemon, redis_client):
    master, (f1, f2), _links = setup
    copier_daemon()
    place(client, master)
    wait_for(lambda: Execution.objects.count() == 2, what="the first copies")
    replay = MasterEventRecord.objects.get().payload
    redis_client.xadd(settings.COPIER_STREAM, replay)
    redis_client.xadd(settings.COPIER_STREAM, replay)
    # The daemon handles the stream in order, so once a later trade is copied
    # the replays before it have been handled too.
    place(client, master, symbol="EURUSD", volume="1", price="1.085")
    wait_for(lambda: Execution.objects.count() == 4, what="the later trade's copies")
    assert PaperRequest.objects.filter(account__in=[f1, f2]).count() == 4
    assert PaperPosition.objects.filter(account=f1, symbol="XAUUSD").count() == 1
    assert PaperPosition.objects.filter(account=f2, symbol="XAUUSD").count() == 1


def test_after_a_crash_it_reconciles_before_sending(client, setup, copier_daemon, redis_client):
    master, (f1, f2), (link1, _link2) = setup
    # The state a crash leaves: the event was delivered to the daemon and the
    # order for F1 reached the venue, but nothing was recorded or acknowledged.
    redis_client.xgroup_create(settings.COPIER_STREAM, settings.COPIER_GROUP, id="0", mkstream=True)
    position = place(client, master)
    event = MasterEventRecord.objects.get()
    delivered = redis_client.xreadgroup(
        settings.COPIER_GROUP, "copier-1", {settings.COPIER_STREAM: ">"}, count=10
    )
    assert len(delivered[0][1]) == 1
    coid = client_order_id(link1.pk, event.master_ref, event.seq)
    # The daemon had noted both intents before sending.
    for link in (link1, _link2):
        redis_client.hset(
            "copier:intents",
            client_order_id(link.pk, event.master_ref, event.seq),
            json.dumps({"follower_id": link.follower_id, "link_id": link.pk}),
        )
    paper.open_position(f1.pk, "XAUUSD", Side.BUY, D("2"), D("2350.5"), coid)

    copier_daemon()
    wait_for(lambda: len(open_positions(f2)) == 1, what="F2's copy after the restart")
    wait_for(lambda: Execution.objects.count() == 2, what="both executions")
    assert len(open_positions(f1)) == 1, "F1's order must not be sent twice"
    assert PaperRequest.objects.filter(account=f1).count() == 1
    group = (settings.COPIER_STREAM, settings.COPIER_GROUP)
    wait_for(
        lambda: redis_client.xpending(*group)["pending"] == 0,
        what="the recovered event to be acknowledged",
    )
    assert not redis_client.hgetall("copier:intents"), "reconciled intents are cleared"

    close(client, master, position)
    wait_for(
        lambda: not open_positions(f1) and not open_positions(f2),
        what="the recovered copies to close with the master",
    )


def test_events_left_in_the_outbox_are_published_later(setup, copier_daemon, redis_client):
    master, (f1, _f2), _links = setup
    # A fill whose event never reached Redis (as when Redis was down).
    paper.open_position(master.pk, "BTCUSD", Side.SELL, D("0.5"), D("65000"), "MANUAL1")
    assert MasterEventRecord.objects.get().published_at is None
    copier_daemon()
    wait_for(lambda: len(open_positions(f1)) == 1, timeout_s=45, what="the outbox sweep")
    assert MasterEventRecord.objects.get().published_at is not None


def test_skips_are_recorded_with_their_reason(client, setup, copier_daemon, redis_client):
    master, (_f1, f2), _links = setup
    copier_daemon()
    place(client, master, symbol="EURUSD", volume="0.01", price="1.085")
    skipped = wait_for(
        lambda: Execution.objects.filter(link__follower=f2).first(), what="F2's execution"
    )
    assert skipped.status == "skipped"
    assert skipped.reason == "0.005 lots is under EURUSD's minimum of 0.01"
    assert not open_positions(f2)


def test_it_stops_cleanly_on_sigterm(copier_daemon):
    proc = copier_daemon()
    assert proc.kill(signal.SIGTERM) == 0
    assert "stopped" in proc.output()


def test_trades_copy_through_a_chain(client, copier_daemon, redis_client):
    user = make_user()
    client.force_login(user)
    a = make_paper(user, "A", role=Role.MASTER)
    b = make_paper(user, "B", role=Role.BOTH)
    c = make_paper(user, "C")
    make_link(a, b, "2")
    make_link(b, c, "0.5")
    copier_daemon()
    position = place(client, a, symbol="EURUSD", volume="1", price="1.085")
    wait_for(lambda: len(open_positions(c)) == 1, what="the copy of the copy")
    assert open_positions(b)[0].volume == D("2")
    assert open_positions(c)[0].volume == D("1")
    close(client, a, position, price="1.086")
    wait_for(lambda: not open_positions(b) and not open_positions(c), what="the chain to close")
