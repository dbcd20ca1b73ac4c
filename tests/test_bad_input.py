"""Bad input gets a 4xx that names the field and the problem; nothing changes."""

import uuid

import pytest

from brokers.models import BrokerAccount, PaperPosition, PaperRequest, Role
from copier.models import CopyLink, MasterEventRecord
from tests.factories import make_link, make_paper, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(client):
    user = make_user()
    client.force_login(user)
    return user


@pytest.fixture
def master(user):
    return make_paper(user, "Master", role=Role.MASTER)


def trade(client, account, **fields):
    data = {
        "symbol": "EURUSD",
        "side": "buy",
        "volume": "1",
        "price": "1.085",
        "ticket_id": uuid.uuid4().hex,
        **fields,
    }
    return client.post(f"/brokers/{account.pk}/trade/", data)


def assert_nothing_traded():
    assert not PaperRequest.objects.exists()
    assert not PaperPosition.objects.exists()
    assert not MasterEventRecord.objects.exists()


def test_a_valid_ticket_fills(client, master, redis_client):
    response = trade(client, master)
    assert response.status_code == 302
    assert PaperPosition.objects.filter(account=master, symbol="EURUSD").count() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"volume": "-1"}, "Volume: Volume must be greater than 0."),
        ({"volume": "0"}, "Volume: Volume must be greater than 0."),
        ({"volume": "lots"}, "Volume: Enter a number."),
        ({"price": "abc"}, "Price: Enter a number."),
        ({"price": "-2"}, "Price: Price must be greater than 0."),
        ({"symbol": "FOOBAR"}, "Symbol: Unknown symbol “FOOBAR”. Paper trades EURUSD"),
        (
            {"side": "long"},
            "Side: Select a valid choice. long is not one of the available choices.",
        ),
        ({"volume": "0.001"}, "Volume: 0.001 lots is under EURUSD&#x27;s minimum of 0.01"),
        ({"volume": "1.005"}, "not a multiple of EURUSD&#x27;s volume step 0.01"),
    ],
)
def test_a_bad_ticket_names_the_field(client, master, fields, message):
    response = trade(client, master, **fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert_nothing_traded()


def test_a_double_submitted_ticket_fills_once(client, master, redis_client):
    ticket = uuid.uuid4().hex
    trade(client, master, ticket_id=ticket)
    response = trade(client, master, ticket_id=ticket)
    assert response.status_code == 302
    assert PaperRequest.objects.count() == 1
    assert MasterEventRecord.objects.count() == 1


def test_someone_elses_account_in_the_url_is_not_found(client, user):
    other = make_paper(make_user("other@example.com"), "Theirs", role=Role.MASTER)
    assert client.get(f"/brokers/{other.pk}/").status_code == 404
    assert trade(client, other).status_code == 404
    assert_nothing_traded()


def link(client, master, follower, multiplier="1"):
    return client.post(
        "/links/", {"master": master.pk, "follower": follower.pk, "multiplier": multiplier}
    )


def test_a_follower_cannot_follow_itself(client, user):
    both = make_paper(user, "Both", role=Role.BOTH)
    response = link(client, both, both)
    assert response.status_code == 400
    assert "Follower: An account cannot follow itself." in response.content.decode()
    assert not CopyLink.objects.exists()


def test_a_cycle_of_links_is_refused(client, user):
    a = make_paper(user, "A", role=Role.BOTH)
    b = make_paper(user, "B", role=Role.BOTH)
    c = make_paper(user, "C", role=Role.BOTH)
    assert link(client, a, b).status_code == 302
    response = link(client, b, a)
    assert response.status_code == 400
    assert "copy in a circle" in response.content.decode()
    assert link(client, b, c).status_code == 302
    response = link(client, c, a)
    assert response.status_code == 400
    assert "C already copies A through a chain of links" in response.content.decode()
    assert CopyLink.objects.count() == 2


@pytest.mark.parametrize(
    ("multiplier", "message"),
    [
        ("0", "Multiplier: The multiplier must be greater than 0."),
        ("-1", "Multiplier: The multiplier must be greater than 0."),
        ("two", "Multiplier: Enter a number."),
    ],
)
def test_a_bad_multiplier_names_the_field(client, master, user, multiplier, message):
    follower = make_paper(user, "F")
    response = link(client, master, follower, multiplier)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not CopyLink.objects.exists()


def test_roles_are_respected(client, user):
    follower = make_paper(user, "F1")
    other = make_paper(user, "F2")
    response = link(client, follower, other)
    assert response.status_code == 400
    assert "F1 is a follower account; make it a master to lead." in response.content.decode()


def test_a_duplicate_link_is_refused(client, master, user):
    follower = make_paper(user, "F")
    make_link(master, follower)
    response = link(client, master, follower)
    assert response.status_code == 400
    assert "F already copies Master." in response.content.decode()
    assert CopyLink.objects.count() == 1


def test_a_role_change_that_would_break_links_is_refused(client, master, user):
    make_link(master, make_paper(user, "F"))
    response = client.post(f"/brokers/{master.pk}/role/", {"role": "follower"})
    assert response.status_code == 400
    assert "Master leads 1 follower(s); delete those links first." in response.content.decode()
    master.refresh_from_db()
    assert master.role == Role.MASTER


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"starting_balance": "-5"},
            "Starting balance: Ensure this value is greater than or equal",
        ),
        ({"starting_balance": "lots"}, "Starting balance: Enter a number."),
        ({"label": ""}, "Label: This field is required."),
        ({"role": "boss"}, "Role: Select a valid choice."),
        ({"currency": "DOGE"}, "Currency: Select a valid choice."),
    ],
)
def test_a_bad_account_form_names_the_field(client, user, fields, message):
    data = {
        "label": "New",
        "role": "master",
        "currency": "USD",
        "starting_balance": "1000",
        **fields,
    }
    response = client.post("/brokers/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not BrokerAccount.objects.exists()


def test_a_duplicate_label_is_refused(client, master):
    response = client.post(
        "/brokers/new/",
        {"label": "master", "role": "follower", "currency": "USD", "starting_balance": "1000"},
    )
    assert response.status_code == 400
    assert "You already have an account labelled “master”." in response.content.decode()
    assert BrokerAccount.objects.count() == 1
