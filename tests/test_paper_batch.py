"""One event's Paper orders on many accounts, carried out in one batch."""

from decimal import Decimal as D

import pytest

from brokers.models import PaperAccount, PaperPosition, PaperRequest, Role
from brokers.venues import paper
from brokers.venues.base import OrderRejected, Report
from brokers.venues.paper_batch import execute_batch
from copier.core import FollowerOrder, OrderAction, Side
from copier.models import MasterEventRecord
from tests.factories import make_paper, make_user

pytestmark = pytest.mark.django_db


def buy(volume="1", symbol="XAUUSD", price="2350", sl=None):
    return FollowerOrder(
        OrderAction.OPEN, symbol, Side.BUY, D(volume), D(price), sl=D(sl) if sl else None
    )


def close(ref, price="2360"):
    return FollowerOrder(OrderAction.CLOSE, "XAUUSD", Side.SELL, D("1"), D(price), ref=ref)


@pytest.fixture
def followers():
    user = make_user()
    return [make_paper(user, f"F{i}") for i in range(3)]


def test_opens_fill_on_every_account_and_refusals_stay_apart(followers):
    a, b, c = followers
    results = execute_batch(
        [(a.pk, buy(), "C1"), (b.pk, buy("0.001"), "C1"), (c.pk, buy(sl="2360"), "C1")]
    )
    assert isinstance(results[0], Report) and results[0].created
    assert results[0].price == D("2350") and results[0].ref.startswith("P")
    assert isinstance(results[1], OrderRejected)
    assert results[1].message == "0.001 lots is under XAUUSD's minimum of 0.01"
    assert results[2].message == "a buy's stop loss must be below 2350"
    assert PaperPosition.objects.filter(account=a, closed_at=None).count() == 1
    assert not PaperPosition.objects.filter(account__in=[b, c]).exists()


def test_a_repeated_client_order_id_is_answered_with_the_first_fill(followers):
    a, b, _c = followers
    first = execute_batch([(a.pk, buy(), "C1"), (b.pk, buy(), "C1")])
    again = execute_batch([(a.pk, buy(), "C1"), (b.pk, buy(), "C1")])
    assert [r.ref for r in again] == [r.ref for r in first]
    assert [r.created for r in again] == [False, False]
    assert PaperRequest.objects.count() == 2
    # The order-by-order path agrees: it is the same venue.
    assert not paper.open_position(a.pk, "XAUUSD", Side.BUY, D("1"), D("2350"), "C1").created


def test_closes_book_pnl_into_each_balance(followers):
    a, b, _c = followers
    opened = execute_batch([(a.pk, buy(), "O1"), (b.pk, buy("2"), "O1")])
    results = execute_batch(
        [
            (a.pk, close(opened[0].ref), "X1"),
            (b.pk, close(opened[1].ref, "2340"), "X1"),
            (a.pk, close(opened[1].ref), "X2"),
        ]
    )
    assert [r.created for r in results[:2]] == [True, True]
    assert isinstance(results[2], OrderRejected), "B's position is not A's to close"
    assert PaperAccount.objects.get(account=a).balance == D("11000.00")
    assert PaperAccount.objects.get(account=b).balance == D("8000.00")
    again = execute_batch([(a.pk, close(opened[0].ref), "X9")])
    assert again[0].message == f"position {opened[0].ref} is already closed"


def test_leaders_and_other_actions_go_order_by_order(followers):
    a, _b, _c = followers
    leader = make_paper(a.owner, "Both", role=Role.BOTH)
    opened = execute_batch([(a.pk, buy("2"), "O1"), (leader.pk, buy(), "O1")])
    assert opened[1].event is not None, "a leader's fill is a master event"
    assert MasterEventRecord.objects.filter(account=leader).count() == 1
    reduce = FollowerOrder(
        OrderAction.REDUCE, "XAUUSD", Side.SELL, D("0.5"), D("2355"), ref=opened[0].ref
    )
    (reduced,) = execute_batch([(a.pk, reduce, "R1")])
    assert reduced.action == "reduce" and reduced.remaining == D("1.5")
