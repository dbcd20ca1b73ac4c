"""The Paper venue: fills, P&L, idempotent client order ids, master events."""

from decimal import Decimal as D

import pytest

from brokers.models import PaperRequest, Role
from brokers.venues import paper
from brokers.venues.base import OrderRejected
from copier.core import EventKind, Side
from copier.models import MasterEventRecord
from tests.factories import make_paper, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def master():
    return make_paper(make_user(), "Master", role=Role.MASTER, balance="10000.00")


def test_it_fills_at_the_reference_price(master):
    report = paper.open_position(master.pk, "EURUSD", Side.BUY, D("1.00"), D("1.08500"), "C1")
    assert (report.symbol, report.side, report.volume, report.price) == (
        "EURUSD",
        Side.BUY,
        D("1"),
        D("1.085"),
    )
    assert report.created


def test_a_repeated_client_order_id_fills_once(master):
    first = paper.open_position(master.pk, "EURUSD", Side.BUY, D("1"), D("1.085"), "C1")
    again = paper.open_position(master.pk, "EURUSD", Side.BUY, D("1"), D("1.085"), "C1")
    assert not again.created
    assert again.ref == first.ref
    assert PaperRequest.objects.filter(account=master).count() == 1
    assert master.paper_positions.count() == 1


def test_closing_books_the_pnl_into_the_balance(master):
    opened = paper.open_position(master.pk, "XAUUSD", Side.SELL, D("0.5"), D("2350.00"), "C1")
    paper.close_position(master.pk, opened.ref, D("2340.00"), "C2")
    master.paper.refresh_from_db()
    # A short of 0.5 lot x 100 oz gains 10 USD per oz.
    assert master.paper.balance == D("10500.00")
    position = master.paper_positions.get()
    assert position.realized_pnl == D("500.00") and not position.is_open


def test_slippage_makes_fills_worse(master):
    master.paper.slippage_points = D("20")
    master.paper.save()
    buy = paper.open_position(master.pk, "EURUSD", Side.BUY, D("1"), D("1.08500"), "C1")
    assert buy.price == D("1.0852")
    close = paper.close_position(master.pk, buy.ref, D("1.08500"), "C2")
    assert close.price == D("1.0848")


def test_fills_on_a_master_append_sequenced_events(master):
    opened = paper.open_position(master.pk, "BTCUSD", Side.BUY, D("0.10"), D("65000"), "C1")
    closed = paper.close_position(master.pk, opened.ref, D("66000"), "C2")
    assert opened.event and closed.event
    assert (opened.event.seq, closed.event.seq) == (1, 2)
    assert opened.event.kind is EventKind.POSITION_OPENED
    assert closed.event.kind is EventKind.POSITION_CLOSED
    assert opened.event.master_ref == closed.event.master_ref == opened.ref
    assert list(MasterEventRecord.objects.values_list("seq", flat=True).order_by("seq")) == [1, 2]


def test_fills_on_a_follower_append_no_events():
    follower = make_paper(make_user(), "Follower", role=Role.FOLLOWER)
    report = paper.open_position(follower.pk, "BTCUSD", Side.BUY, D("0.10"), D("65000"), "C1")
    assert report.event is None
    assert not MasterEventRecord.objects.exists()


@pytest.mark.parametrize(
    ("symbol", "volume", "message"),
    [
        ("NOPE", "1", "NOPE is not a Paper instrument"),
        ("EURUSD", "0", "volume must be greater than 0, not 0"),
        ("EURUSD", "0.001", "0.001 lots is under EURUSD's minimum of 0.01"),
        ("EURUSD", "101", "101 lots is over EURUSD's maximum of 100"),
        ("US500", "0.15", "0.15 lots is not a multiple of US500's volume step 0.1"),
    ],
)
def test_it_rejects_orders_a_broker_would_reject(master, symbol, volume, message):
    with pytest.raises(OrderRejected) as e:
        paper.open_position(master.pk, symbol, Side.BUY, D(volume), D("1"), "C1")
    assert e.value.message == message and e.value.permanent
    assert not PaperRequest.objects.exists()


def test_a_closed_position_cannot_be_closed_again(master):
    opened = paper.open_position(master.pk, "EURUSD", Side.BUY, D("1"), D("1.085"), "C1")
    paper.close_position(master.pk, opened.ref, D("1.086"), "C2")
    with pytest.raises(OrderRejected, match="already closed"):
        paper.close_position(master.pk, opened.ref, D("1.086"), "C3")
