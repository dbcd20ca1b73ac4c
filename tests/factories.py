"""Real rows for tests: users, Paper accounts and copy links."""

from __future__ import annotations

from decimal import Decimal

from allauth.account.models import EmailAddress

from accounts.models import User
from brokers.models import BrokerAccount, PaperAccount, Role, Venue
from copier.models import CopyLink

PASSWORD = "correct-horse-battery-staple"


def make_user(email: str = "trader@example.com") -> User:
    user = User.objects.create_user(email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def make_paper(
    owner: User, label: str, role: str = Role.FOLLOWER, balance: str = "10000.00"
) -> BrokerAccount:
    account = BrokerAccount.objects.create(owner=owner, venue=Venue.PAPER, label=label, role=role)
    PaperAccount.objects.create(
        account=account, starting_balance=Decimal(balance), balance=Decimal(balance)
    )
    return account


def make_link(
    master: BrokerAccount, follower: BrokerAccount, multiplier: str = "1", **rules: object
) -> CopyLink:
    return CopyLink.objects.create(
        owner=master.owner,
        master=master,
        follower=follower,
        sizing_value=Decimal(multiplier),
        **rules,
    )
