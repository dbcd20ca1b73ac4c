"""One user can neither see nor touch another user's accounts, links or executions."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from accounts.models import User
from brokers.forms import manual_order_id
from brokers.models import BrokerAccount, Role
from brokers.venues import paper
from copier.core import Side
from copier.models import CopyLink, Execution, MasterEventRecord
from tests.factories import make_link, make_paper, make_user


@dataclass
class Trader:
    user: User
    master: BrokerAccount
    follower: BrokerAccount
    link: CopyLink


def _trader(email: str, prefix: str) -> Trader:
    user = make_user(email)
    master = make_paper(user, f"{prefix} master", role=Role.MASTER)
    follower = make_paper(user, f"{prefix} follower", role=Role.FOLLOWER)
    return Trader(user, master, follower, make_link(master, follower))


def _ticket() -> str:
    return uuid.uuid4().hex


def _trade_form(symbol: str = "XAUUSD", volume: str = "2", price: str = "2350.5") -> dict:
    return {
        "symbol": symbol,
        "side": "buy",
        "volume": volume,
        "price": price,
        "ticket_id": _ticket(),
    }


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- pages -------------------------------------------------------------------


@pytest.fixture
def alice_and_bob(db):  # type: ignore[no-untyped-def]
    """Alice has accounts, a link, an open position and an execution; Bob has his own."""
    alice = _trader("alice@example.com", "Alice")
    bob = _trader("bob@example.com", "Bob")
    paper.open_position(
        alice.master.pk,
        "XAUUSD",
        Side.BUY,
        Decimal("2"),
        Decimal("2350.5"),
        manual_order_id(_ticket()),
    )
    Execution.objects.create(
        owner=alice.user,
        link=alice.link,
        client_order_id="TSALICEONLY0001",
        master_ref="acct:1:1",
        seq=1,
        kind="position_opened",
        status=Execution.Status.SKIPPED,
        reason="alice-private-note",
        symbol="XAUUSD",
        t_detected_ns=1,
        t_planned_ns=2,
    )
    return alice, bob


def test_it_hides_another_users_account_page(alice_and_bob):
    alice, bob = alice_and_bob

    assert _login(alice.user).get(f"/brokers/{alice.master.pk}/").status_code == 200
    assert _login(bob.user).get(f"/brokers/{alice.master.pk}/").status_code == 404
    assert _login(bob.user).get(f"/brokers/{alice.master.pk}/delete/").status_code == 404


def test_it_refuses_every_action_on_another_users_account(alice_and_bob):
    alice, bob = alice_and_bob
    position = alice.master.paper_positions.get()
    events_before = MasterEventRecord.objects.count()
    as_bob = _login(bob.user)

    trade = as_bob.post(f"/brokers/{alice.master.pk}/trade/", _trade_form())
    close = as_bob.post(
        f"/brokers/{alice.master.pk}/positions/{position.pk}/close/",
        {"price": "2360", "ticket_id": _ticket()},
    )
    role = as_bob.post(f"/brokers/{alice.master.pk}/role/", {"role": Role.FOLLOWER})
    delete = as_bob.post(f"/brokers/{alice.master.pk}/delete/")

    assert [r.status_code for r in (trade, close, role, delete)] == [404, 404, 404, 404]
    alice.master.refresh_from_db()
    position.refresh_from_db()
    assert alice.master.role == Role.MASTER
    assert position.closed_at is None
    assert alice.master.paper_positions.count() == 1
    assert MasterEventRecord.objects.count() == events_before
    assert CopyLink.objects.filter(pk=alice.link.pk).exists()


def test_it_refuses_another_users_link(alice_and_bob):
    alice, bob = alice_and_bob
    as_bob = _login(bob.user)

    assert as_bob.get(f"/links/{alice.link.pk}/delete/").status_code == 404
    assert as_bob.post(f"/links/{alice.link.pk}/delete/").status_code == 404
    assert CopyLink.objects.filter(pk=alice.link.pk).exists()
    links_page = as_bob.get("/links/").content.decode()
    assert "Bob master" in links_page
    assert "Alice" not in links_page


@pytest.mark.parametrize("whose", ["both of alice's", "alice's follower"])
def test_it_refuses_a_link_to_another_users_accounts(alice_and_bob, whose):
    alice, bob = alice_and_bob
    bob_spare_master = make_paper(bob.user, "Bob spare master", role=Role.MASTER)
    master = alice.master if whose == "both of alice's" else bob_spare_master
    links_before = CopyLink.objects.count()

    response = _login(bob.user).post(
        "/links/", {"master": master.pk, "follower": alice.follower.pk, "multiplier": "1"}
    )

    assert response.status_code == 400
    assert "Choose one of your own accounts." in response.content.decode()
    assert CopyLink.objects.count() == links_before


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/live/"])
def test_it_shows_only_the_users_own_dashboard(alice_and_bob, path):
    alice, bob = alice_and_bob

    alices = _login(alice.user).get(path).content.decode()
    bobs = _login(bob.user).get(path).content.decode()

    # Alice's own page proves the markers are really rendered.
    assert 'data-account="Alice master"' in alices
    assert "alice-private-note" in alices
    assert 'data-account="Bob master"' in bobs
    assert "Alice" not in bobs
    assert "alice-private-note" not in bobs
    assert 'class="position"' not in bobs


# -- the WebSocket --------------------------------------------------------------


def _socket(web_server: str, session: str | None, origin: str | None = None) -> ClientConnection:
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return connect(
        web_server.replace("http://", "ws://") + "/ws/dashboard/",
        origin=origin or web_server,
        additional_headers=headers,
        proxy=None,
        open_timeout=10,
    )


def _session(client: Client) -> str:
    return client.cookies["sessionid"].value


def _copy_update(ws: ClientConnection, timeout_s: float = 15.0) -> list[dict]:
    """The updates up to and including the copier's report of the copy's execution."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no execution update within {timeout_s} s; got {seen}")
        message = json.loads(ws.recv(timeout=remaining))
        seen.append(message)
        if message.get("executions"):
            return seen


def _assert_silent(ws: ClientConnection, timeout_s: float = 3.0) -> None:
    with pytest.raises(TimeoutError):
        message = ws.recv(timeout=timeout_s)
        pytest.fail(f"this socket must not receive anything, got {message}")


def test_it_pushes_updates_only_to_the_owners_socket(transactional_db, web_server, copier_daemon):
    alice = _trader("alice@example.com", "Alice")
    bob = _trader("bob@example.com", "Bob")
    copier_daemon()
    as_alice, as_bob = _login(alice.user), _login(bob.user)

    with (
        _socket(web_server, _session(as_alice)) as alice_ws,
        _socket(web_server, _session(as_bob)) as bob_ws,
    ):
        # Bob's socket works: his own trade reaches it, and not Alice's socket.
        assert as_bob.post(f"/brokers/{bob.master.pk}/trade/", _trade_form()).status_code == 302
        bobs = _copy_update(bob_ws)
        assert bobs[0] == {"type": "update", "reason": "trade"}
        assert [e["status"] for e in bobs[-1]["executions"]] == ["filled"]
        _assert_silent(alice_ws)

        assert as_alice.post(f"/brokers/{alice.master.pk}/trade/", _trade_form()).status_code == 302
        alices = _copy_update(alice_ws)
        assert [e["status"] for e in alices[-1]["executions"]] == ["filled"]
        _assert_silent(bob_ws)

    alice_coid = alices[-1]["executions"][0]["client_order_id"]
    assert Execution.objects.get(client_order_id=alice_coid).owner_id == alice.user.pk
    # The real copies are on each owner's live fragment, and only there.
    alices_live = as_alice.get("/dashboard/live/").content.decode()
    bobs_live = as_bob.get("/dashboard/live/").content.decode()
    assert alices_live.count('class="execution status-filled"') == 1
    assert "Alice master → Alice follower" in alices_live
    assert bobs_live.count('class="execution status-filled"') == 1
    assert "Alice" not in bobs_live


def test_it_refuses_a_socket_without_a_session(transactional_db, web_server):
    # The consumer closes before accepting, so the server refuses the handshake.
    with pytest.raises(InvalidStatus) as refused:
        with _socket(web_server, None) as ws:
            ws.recv(timeout=5)
    assert refused.value.response.status_code == 403


def test_it_refuses_a_socket_from_a_foreign_origin(transactional_db, web_server):
    user = make_user("alice@example.com")
    session = _session(_login(user))
    # The same session from the site's own origin is accepted…
    with _socket(web_server, session) as ws:
        _assert_silent(ws, timeout_s=0.5)
    # …and from another site's page it is not.
    with pytest.raises(InvalidStatus) as refused:
        with _socket(web_server, session, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
