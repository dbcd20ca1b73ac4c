"""Broker credentials are encrypted at rest."""

import pytest
from django.db import connection

from brokers.models import BrokerAccount
from tests.factories import make_paper, make_user

pytestmark = pytest.mark.django_db


def test_credentials_are_stored_encrypted():
    account = make_paper(make_user(), "Creds")
    account.credentials = '{"password": "hunter2-very-secret"}'
    account.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM brokers_brokeraccount WHERE id = %s", [account.pk])
        (raw,) = cursor.fetchone()
    assert b"hunter2" not in bytes(raw)
    assert BrokerAccount.objects.get(pk=account.pk).credentials == (
        '{"password": "hunter2-very-secret"}'
    )
