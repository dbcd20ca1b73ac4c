"""The Paper account page is a manual terminal: every master event kind by hand.

Each action is a POST with its own ticket: it changes the ledger once, writes
and publishes the master event, refuses bad input with a 400 that names the
field, and treats another user's account, position or order as not found.
"""

from __future__ import annotations

import html
import re
import uuid
from decimal import Decimal

import pytest

from brokers.forms import manual_order_id
from brokers.models import BrokerAccount, PaperOrder, PaperPosition, PaperRequest, Role
from brokers.venues import paper
from copier.core import OrderType, Side
from copier.models import MasterEventRecord
from tests.factories import make_paper, make_user

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def user(client, redis_client):
    user = make_user()
    client.force_login(user)
    return user


@pytest.fixture
def master(user):
    return make_paper(user, "Master", role=Role.MASTER)


def ticket() -> str:
    return uuid.uuid4().hex


def post(client, url: str, **fields: str):
    return client.post(url, {"ticket_id": ticket(), **fields})


def url(account: BrokerAccount, what: str = "") -> str:
    return f"/brokers/{account.pk}/{what}/" if what else f"/brokers/{account.pk}/"


def open_gold(account: BrokerAccount, volume: str = "2", **stops: Decimal) -> PaperPosition:
    """A buy of XAUUSD at 2350.5, opened straight at the venue."""
    report = paper.open_position(
        account.pk, "XAUUSD", Side.BUY, D(volume), D("2350.5"), manual_order_id(ticket()), **stops
    )
    return PaperPosition.objects.get(pk=report.ref[1:])


def place_limit(account: BrokerAccount, **stops: Decimal) -> PaperOrder:
    """A buy limit of 1 EURUSD at 1.08, placed straight at the venue."""
    report = paper.place_order(
        account.pk,
        "EURUSD",
        Side.BUY,
        OrderType.LIMIT,
        D("1"),
        D("1.08"),
        manual_order_id(ticket()),
        **stops,
    )
    return PaperOrder.objects.get(pk=report.ref[1:])


def position_url(account: BrokerAccount, position: PaperPosition, action: str) -> str:
    return url(account, f"positions/{position.pk}/{action}")


def order_url(account: BrokerAccount, order: PaperOrder, action: str) -> str:
    return url(account, f"orders/{order.pk}/{action}")


def new_events(after: int = 0) -> list[MasterEventRecord]:
    return list(MasterEventRecord.objects.filter(pk__gt=after).order_by("pk"))


def last_event_id() -> int:
    last = MasterEventRecord.objects.order_by("-pk").first()
    return last.pk if last else 0


def success(client, response) -> str:
    """What the trader reads on the account page the action redirected to."""
    assert response.status_code == 302, response.content.decode()
    page = client.get(response.url).content.decode()
    return " ".join(
        html.unescape(m)
        for m in re.findall(r'<li class="msg [^"]*" role="status">(.*?)</li>', page)
    )


def wire(event: MasterEventRecord, *names: str) -> tuple[Decimal, ...]:
    return tuple(D(event.payload[name]) for name in names)


def ledger(account: BrokerAccount) -> tuple:
    """Everything an action could change on the account."""
    account.paper.refresh_from_db()
    return (
        account.paper.balance,
        list(PaperPosition.objects.filter(account=account).order_by("pk").values()),
        list(PaperOrder.objects.filter(account=account).order_by("pk").values()),
        PaperRequest.objects.count(),
        MasterEventRecord.objects.count(),
    )


# -- the trade ticket ------------------------------------------------------------


def test_a_market_ticket_with_stops_opens_a_position(client, master):
    response = post(
        client,
        url(master, "trade"),
        symbol="XAUUSD",
        side="buy",
        order_type="market",
        volume="2",
        price="2350.5",
        sl="2340",
        tp="2370",
    )

    assert success(client, response) == "Bought 2 XAUUSD at 2350.5 (SL 2340, TP 2370)."
    position = master.paper_positions.get()
    assert (position.volume, position.sl, position.tp) == (D(2), D(2340), D(2370))
    [event] = new_events()
    assert event.kind == "position_opened"
    assert wire(event, "sl", "tp") == (D(2340), D(2370))
    assert event.published_at is not None


def test_a_ticket_without_stops_still_fills(client, master):
    response = post(
        client, url(master, "trade"), symbol="EURUSD", side="sell", volume="1", price="1.085"
    )

    assert success(client, response) == "Sold 1 EURUSD at 1.085."
    position = master.paper_positions.get()
    assert (position.side, position.sl, position.tp) == ("sell", None, None)


@pytest.mark.parametrize("order_type", ["limit", "stop"])
def test_a_limit_or_stop_ticket_places_a_pending_order(client, master, order_type):
    response = post(
        client,
        url(master, "trade"),
        symbol="EURUSD",
        side="buy",
        order_type=order_type,
        volume="1.5",
        price="1.08",
        sl="1.07",
        tp="1.1",
    )

    order = master.paper_orders.get()
    assert success(client, response) == (
        f"Placed buy {order_type} order #{order.pk}: 1.5 EURUSD at 1.08 (SL 1.07, TP 1.1)."
    )
    assert (order.order_type, order.status, order.volume, order.price) == (
        order_type,
        "open",
        D("1.5"),
        D("1.08"),
    )
    assert (order.sl, order.tp) == (D("1.07"), D("1.1"))
    assert not master.paper_positions.exists()
    [event] = new_events()
    assert (event.kind, event.payload["order_type"]) == ("order_placed", order_type)


# -- open positions ------------------------------------------------------------------


def test_modify_sets_and_removes_a_positions_stops(client, master):
    position = open_gold(master)
    before = last_event_id()

    response = post(client, position_url(master, position, "stops"), sl="2340.5", tp="2380")

    assert (
        success(client, response) == f"Position #{position.pk} XAUUSD now has SL 2340.5, TP 2380."
    )
    position.refresh_from_db()
    assert (position.sl, position.tp, position.volume) == (D("2340.5"), D(2380), D(2))
    [event] = new_events(before)
    assert event.kind == "position_modified"
    assert wire(event, "sl", "tp") == (D("2340.5"), D(2380))
    assert event.published_at is not None

    response = post(client, position_url(master, position, "stops"), sl="", tp="")

    assert success(client, response) == f"Position #{position.pk} XAUUSD now has no SL, no TP."
    position.refresh_from_db()
    assert (position.sl, position.tp) == (None, None)
    assert [e.kind for e in new_events(before)] == ["position_modified", "position_modified"]


def test_a_partial_close_leaves_the_rest_open_and_books_its_pnl(client, master):
    position = open_gold(master, sl=D("2340"))
    before = last_event_id()

    response = post(
        client, position_url(master, position, "partial-close"), volume="0.5", price="2360.5"
    )

    assert success(client, response) == "Closed 0.5 of 2 XAUUSD at 2360.5."
    position.refresh_from_db()
    master.paper.refresh_from_db()
    # (2360.5 - 2350.5) * 0.5 lots * 100 oz a lot.
    assert (position.volume, position.realized_pnl, position.closed_at) == (D("1.5"), D(500), None)
    assert master.paper.balance == D("10500.00")
    [event] = new_events(before)
    assert event.kind == "position_partially_closed"
    assert wire(event, "volume", "remaining_volume", "sl") == (D("0.5"), D("1.5"), D(2340))

    page = client.get(url(master)).content.decode()
    assert re.search(rf'data-position="{position.pk}">.*?<td class="num">1\.5</td>', page)


def test_a_partial_close_of_everything_closes_the_position(client, master):
    position = open_gold(master)
    before = last_event_id()

    response = post(
        client, position_url(master, position, "partial-close"), volume="2", price="2340.5"
    )

    assert success(client, response) == "Closed 2 of 2 XAUUSD at 2340.5."
    position.refresh_from_db()
    assert position.closed_at is not None
    assert position.realized_pnl == D(-2000)
    assert [e.kind for e in new_events(before)] == ["position_closed"]


def test_the_full_close_form_still_closes(client, master):
    position = open_gold(master)
    before = last_event_id()

    response = post(client, position_url(master, position, "close"), price="2360.5")

    assert success(client, response) == "Closed 2 XAUUSD at 2360.5."
    position.refresh_from_db()
    assert (position.closed_at is not None, position.realized_pnl) == (True, D(2000))
    assert [e.kind for e in new_events(before)] == ["position_closed"]
    page = client.get(url(master)).content.decode()
    # The recently closed table shows what was closed, not the 0 left open.
    assert re.search(rf'data-closed="{position.pk}">.*?<td class="num">2</td>', page)


# -- pending orders ------------------------------------------------------------------


def test_modify_moves_a_pending_order(client, master):
    order = place_limit(master)
    before = last_event_id()

    response = post(client, order_url(master, order, "modify"), price="1.075", sl="1.07", tp="1.09")

    assert success(client, response) == (
        f"Order #{order.pk} (buy limit 1 EURUSD) now waits at 1.075 with SL 1.07, TP 1.09."
    )
    order.refresh_from_db()
    assert (order.price, order.sl, order.tp, order.status) == (
        D("1.075"),
        D("1.07"),
        D("1.09"),
        "open",
    )
    [event] = new_events(before)
    assert event.kind == "order_modified"
    assert wire(event, "price", "sl", "tp") == (D("1.075"), D("1.07"), D("1.09"))


def test_cancel_cancels_a_pending_order(client, master):
    order = place_limit(master)
    before = last_event_id()

    response = post(client, order_url(master, order, "cancel"))

    assert success(client, response) == f"Cancelled order #{order.pk}: buy limit 1 EURUSD at 1.08."
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert [e.kind for e in new_events(before)] == ["order_cancelled"]
    assert "No pending orders." in client.get(url(master)).content.decode()


def test_fill_now_turns_a_pending_order_into_a_position(client, master):
    order = place_limit(master, sl=D("1.07"), tp=D("1.1"))
    before = last_event_id()

    response = post(client, order_url(master, order, "fill"), price="1.0795")

    order.refresh_from_db()
    position = order.position
    assert success(client, response) == (
        f"Filled order #{order.pk}: buy limit 1 EURUSD at 1.0795, now position #{position.pk}."
    )
    assert order.status == "filled"
    assert (position.open_price, position.volume, position.sl, position.tp) == (
        D("1.0795"),
        D(1),
        D("1.07"),
        D("1.1"),
    )
    [event] = new_events(before)
    assert event.kind == "order_filled"
    assert event.payload["position_ref"] == f"P{position.pk}"


def test_every_master_event_kind_can_be_made_by_hand(client, master):
    trade = {"symbol": "XAUUSD", "side": "buy", "volume": "2", "price": "2350.5"}
    success(client, post(client, url(master, "trade"), **trade))
    position = master.paper_positions.get()
    success(client, post(client, position_url(master, position, "stops"), sl="2340"))
    success(
        client,
        post(client, position_url(master, position, "partial-close"), volume="1", price="2355"),
    )
    success(client, post(client, position_url(master, position, "close"), price="2356"))
    for order_type, price in (("limit", "2300"), ("stop", "2400")):
        pending = {**trade, "order_type": order_type, "price": price}
        success(client, post(client, url(master, "trade"), **pending))
    limit, stop = master.paper_orders.order_by("pk")
    success(client, post(client, order_url(master, limit, "modify"), price="2310"))
    success(client, post(client, order_url(master, limit, "cancel")))
    success(client, post(client, order_url(master, stop, "fill"), price="2401"))

    assert [e.kind for e in new_events()] == [
        "position_opened",
        "position_modified",
        "position_partially_closed",
        "position_closed",
        "order_placed",
        "order_placed",
        "order_modified",
        "order_cancelled",
        "order_filled",
    ]
    assert [e.seq for e in new_events()] == list(range(1, 10))
    assert not MasterEventRecord.objects.filter(published_at=None).exists()


def test_a_follower_account_trades_without_master_events(client, user):
    follower = make_paper(user, "Follower")
    position = open_gold(follower)

    response = post(
        client, position_url(follower, position, "partial-close"), volume="1", price="2351.5"
    )

    assert success(client, response) == "Closed 1 of 2 XAUUSD at 2351.5."
    assert not MasterEventRecord.objects.exists()


# -- the page ------------------------------------------------------------------------


def test_the_page_shows_stops_pending_orders_and_an_action_per_row(client, master):
    position = open_gold(master, sl=D("2340"), tp=D("2370"))
    order = place_limit(master)

    page = client.get(url(master)).content.decode()

    assert '<th class="num">Stop loss</th>' in page
    row = re.search(rf'<tr data-position="{position.pk}">.*?</tr>', page, re.S).group(0)
    assert '<td class="num">2340</td><td class="num">2370</td>' in row
    assert f'<tr data-order="{order.pk}">' in page
    for testid in (
        f"close-{position.pk}",
        f"stops-{position.pk}",
        f"reduce-{position.pk}",
        f"modify-{order.pk}",
        f"fill-{order.pk}",
        f"cancel-{order.pk}",
    ):
        assert f'data-testid="{testid}"' in page
    assert "Paper has no market feed" in page
    # Every form has its own ticket, and no element id is used twice.
    tickets = re.findall(r'name="ticket_id" value="([0-9a-f]{32})"', page)
    assert len(tickets) == 7
    assert len(set(tickets)) == len(tickets)
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(set(ids)) == len(ids)
    # The partial close offers half of the position.
    assert f'id="reduce-{position.pk}-volume"' in page
    assert re.search(rf'name="volume" value="1" [^>]*id="reduce-{position.pk}-volume"', page)


# -- bad input -----------------------------------------------------------------------

GOLD_TICKET = {"symbol": "XAUUSD", "side": "buy", "volume": "2", "price": "2350.5"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sl": "-1"}, "Stop loss: Stop loss must be greater than 0."),
        ({"tp": "0"}, "Take profit: Take profit must be greater than 0."),
        ({"sl": "abc"}, "Stop loss: Enter a number."),
        ({"tp": "high"}, "Take profit: Enter a number."),
        ({"sl": "2360"}, "Stop loss: a buy&#x27;s stop loss must be below 2350.5"),
        ({"tp": "2340"}, "Take profit: a buy&#x27;s take profit must be above 2350.5"),
        (
            {"side": "sell", "sl": "2340"},
            "Stop loss: a sell&#x27;s stop loss must be above 2350.5",
        ),
        (
            {"order_type": "limit", "price": "2300", "sl": "2310"},
            "Stop loss: a buy&#x27;s stop loss must be below 2300",
        ),
        ({"order_type": "iceberg"}, "Order type: Select a valid choice. iceberg is not one"),
        ({"order_type": "stop", "price": "x"}, "Price: Enter a number."),
        ({"order_type": "limit", "volume": "0.001"}, "Volume: 0.001 lots is under XAUUSD"),
    ],
)
def test_a_bad_ticket_names_the_field(client, master, fields, message):
    before = ledger(master)

    response = post(client, url(master, "trade"), **{**GOLD_TICKET, **fields})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert ledger(master) == before


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("stops", {"sl": "-5"}, "Stop loss: Stop loss must be greater than 0."),
        ("stops", {"tp": "abc"}, "Take profit: Enter a number."),
        (
            "partial-close",
            {"volume": "3", "price": "2360"},
            "Volume: cannot close 3 lots of a 2-lot position",
        ),
        (
            "partial-close",
            {"volume": "1.995", "price": "2360"},
            "Volume: 1.995 lots is not a multiple of XAUUSD&#x27;s volume step 0.01",
        ),
        ("partial-close", {"volume": "half", "price": "2360"}, "Volume: Enter a number."),
        ("partial-close", {"volume": "-1", "price": "2360"}, "Volume: Volume must be greater"),
        ("partial-close", {"volume": "1", "price": "abc"}, "Price: Enter a number."),
        ("partial-close", {"price": "2360"}, "Volume: This field is required."),
        ("close", {"price": "-1"}, "Price: Price must be greater than 0."),
        ("close", {"price": "abc"}, "Price: Enter a number."),
    ],
)
def test_a_bad_position_action_names_the_field(client, master, action, fields, message):
    position = open_gold(master)
    before = ledger(master)

    response = post(client, position_url(master, position, action), **fields)

    assert response.status_code == 400
    page = response.content.decode()
    # Once in the alert at the top, once under the form in the position's row.
    assert page.count(message) == 2, page
    assert ledger(master) == before


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("modify", {"price": "-1"}, "Price: Price must be greater than 0."),
        ("modify", {"price": "cheap"}, "Price: Enter a number."),
        ("modify", {"price": "1.08", "sl": "1.09"}, "Stop loss: a buy&#x27;s stop loss must be"),
        ("modify", {"price": "1.08", "tp": "1.07"}, "Take profit: a buy&#x27;s take profit must"),
        ("modify", {"price": "1.08", "sl": "x"}, "Stop loss: Enter a number."),
        ("fill", {"price": "abc"}, "Price: Enter a number."),
        ("fill", {"price": "0"}, "Price: Price must be greater than 0."),
        ("cancel", {"ticket_id": "not-a-ticket"}, "Ticket: Enter a valid value."),
    ],
)
def test_a_bad_order_action_names_the_field(client, master, action, fields, message):
    order = place_limit(master)
    before = ledger(master)

    response = post(client, order_url(master, order, action), **fields)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert ledger(master) == before


def test_acting_on_a_closed_position_or_a_cancelled_order_is_refused(client, master):
    position = open_gold(master)
    order = place_limit(master)
    success(client, post(client, position_url(master, position, "close"), price="2351"))
    success(client, post(client, order_url(master, order, "cancel")))
    before = ledger(master)

    stops = post(client, position_url(master, position, "stops"), sl="2300")
    fill = post(client, order_url(master, order, "fill"), price="1.08")

    assert (stops.status_code, fill.status_code) == (400, 400)
    assert f"position P{position.pk} is already closed" in stops.content.decode()
    assert f"pending order O{order.pk} is already cancelled" in fill.content.decode()
    assert ledger(master) == before


# -- ownership -----------------------------------------------------------------------


@pytest.fixture
def theirs(db):
    """Another user's master with an open position and a pending order."""
    other = make_paper(make_user("other@example.com"), "Theirs", role=Role.MASTER)
    return other, open_gold(other), place_limit(other)


def test_another_users_account_position_and_order_are_not_found(client, master, theirs):
    other, position, order = theirs
    mine_position, mine_order = open_gold(master), place_limit(master)
    before = ledger(other), ledger(master)
    requests = [
        (position_url(other, position, "stops"), {"sl": "2300"}),
        (position_url(other, position, "partial-close"), {"volume": "1", "price": "2360"}),
        (position_url(other, position, "close"), {"price": "2360"}),
        (order_url(other, order, "modify"), {"price": "1.07"}),
        (order_url(other, order, "cancel"), {}),
        (order_url(other, order, "fill"), {"price": "1.08"}),
        # Their position or order under my own account is not found either.
        (position_url(master, position, "stops"), {"sl": "2300"}),
        (position_url(master, position, "partial-close"), {"volume": "1", "price": "2360"}),
        (position_url(master, position, "close"), {"price": "2360"}),
        (order_url(master, order, "modify"), {"price": "1.07"}),
        (order_url(master, order, "cancel"), {}),
        (order_url(master, order, "fill"), {"price": "1.08"}),
        # And mine under their account.
        (position_url(other, mine_position, "close"), {"price": "2360"}),
        (order_url(other, mine_order, "cancel"), {}),
    ]

    statuses = [post(client, path, **fields).status_code for path, fields in requests]

    assert statuses == [404] * len(requests)
    assert (ledger(other), ledger(master)) == before


def test_the_actions_only_accept_post(client, master):
    position, order = open_gold(master), place_limit(master)
    for path in (
        position_url(master, position, "stops"),
        position_url(master, position, "partial-close"),
        order_url(master, order, "modify"),
        order_url(master, order, "cancel"),
        order_url(master, order, "fill"),
    ):
        assert client.get(path).status_code == 405


# -- double submits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "action", "fields"),
    [
        ("position", "stops", {"sl": "2300"}),
        ("position", "partial-close", {"volume": "0.5", "price": "2360"}),
        ("position", "close", {"price": "2360"}),
        ("order", "modify", {"price": "1.07"}),
        ("order", "cancel", {}),
        ("order", "fill", {"price": "1.08"}),
        ("ticket", "limit", {"price": "2300"}),
    ],
)
def test_a_double_submitted_action_acts_once(client, master, target, action, fields):
    position, order = open_gold(master), place_limit(master)
    if target == "position":
        path = position_url(master, position, action)
    elif target == "order":
        path = order_url(master, order, action)
    else:
        path, fields = url(master, "trade"), {**GOLD_TICKET, "order_type": action, **fields}
    requests, events = PaperRequest.objects.count(), last_event_id()
    same = ticket()

    first = post(client, path, **fields, ticket_id=same)
    assert "already" not in success(client, first)
    after_first = ledger(master)
    second = post(client, path, **fields, ticket_id=same)

    assert success(client, second) == "That ticket was already carried out; nothing new was sent."
    assert PaperRequest.objects.count() == requests + 1
    assert len(new_events(events)) == 1
    assert ledger(master) == after_first
