from decimal import Decimal

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from brokers.models import BrokerAccount, PaperAccount, Role, Venue
from copier.models import CopyLink

DEMO_EMAIL = "demo@tradosphere.local"
DEMO_PASSWORD = "demo-copier"  # noqa: S105 - the published demo login

ACCOUNTS = [
    # label, role, starting balance, multiplier when following the master
    ("Demo master", Role.MASTER, Decimal("10000.00"), None),
    ("Demo follower 1×", Role.FOLLOWER, Decimal("10000.00"), Decimal("1")),
    ("Demo follower 0.5×", Role.FOLLOWER, Decimal("5000.00"), Decimal("0.5")),
]


class Command(BaseCommand):
    help = "Create the demo user with a Paper master and Paper followers (idempotent)."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_EMAIL, password=DEMO_PASSWORD)
        EmailAddress.objects.update_or_create(
            user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
        )
        master = None
        for label, role, balance, multiplier in ACCOUNTS:
            account, created = BrokerAccount.objects.get_or_create(
                owner=user,
                label=label,
                defaults={"venue": Venue.PAPER, "role": role},
            )
            if created:
                PaperAccount.objects.create(
                    account=account, starting_balance=balance, balance=balance
                )
            if multiplier is None:
                master = account
            elif master is not None:
                CopyLink.objects.get_or_create(
                    owner=user,
                    master=master,
                    follower=account,
                    defaults={"sizing_value": multiplier},
                )
        self.stdout.write(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
