"""The copier handles signals read together in one transaction and a few statements;
the outcome must be exactly what handling them one at a time gives."""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, Role, SignalLog, SignalPosition, SignalSource, Venue
from copier.models import MasterEventRecord
from copier.signals import handle_signals
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def make_source(user, label: str, **options) -> BrokerAccount:
    account = BrokerAccount.objects.create(
        owner=user, venue=Venue.WEBHOOK, label=label, role=Role.MASTER, currency="USD"
    )
    SignalSource.objects.create(
        account=account, token_hash=label.ljust(64, "0"), equity=D("10000"), **options
    )
    return account


def entry(sid: str, source: BrokerAccount, **body) -> dict[str, str]:
    return {
        "sid": sid,
        "source": str(source.pk),
        "user": str(source.owner_id),
        "received_ms": str(time.time_ns() // 1_000_000),
        "body": json.dumps(body),
    }


def state(*sources: BrokerAccount) -> dict[str, object]:
    """Everything the handling leaves behind, without ids and clocks."""
    return {
        "log": [
            (s.signal_id, s.source_id, s.outcome, s.reason, s.action, s.symbol, s.alert_id)
            for s in SignalLog.objects.order_by("signal_id")
        ],
        "positions": [
            (p.source_id, p.ref, p.symbol, p.side, p.volume, p.price, p.is_order)
            for p in SignalPosition.objects.order_by("source_id", "ref")
        ],
        "events": [
            (r.account_id, r.seq, r.kind, r.master_ref, D(r.payload["volume"]))
            for r in MasterEventRecord.objects.order_by("account_id", "seq")
        ],
        "seqs": [BrokerAccount.objects.get(pk=s.pk).event_seq for s in sources],
    }


def forget(*sources: BrokerAccount) -> None:
    SignalLog.objects.all().delete()
    SignalPosition.objects.all().delete()
    MasterEventRecord.objects.all().delete()
    BrokerAccount.objects.filter(pk__in=[s.pk for s in sources]).update(event_seq=0)


def test_a_batch_ends_as_one_signal_at_a_time_would():
    user = make_user()
    strict = make_source(user, "strict", position_aware=True, allow_pyramiding=False)
    adds = make_source(user, "adds", position_aware=True, allow_pyramiding=True)

    def held_before():  # a short the source held before these signals
        return SignalPosition.objects.create(
            source=SignalSource.objects.get(pk=adds.pk),
            ref="Sbefore",
            symbol="XAUUSD",
            side="sell",
            volume=D("1"),
            price=D("2000"),
        )

    kept = held_before()
    batch = [
        entry("a1", strict, action="buy", ticker="EURUSD", qty="0.3", price="1.08"),
        entry("b1", adds, action="buy", ticker="EURUSD", qty="0.1", price="1.08"),
        entry("a2", strict, action="buy", ticker="EURUSD", qty="0.1", price="1.08"),
        entry("b2", adds, action="buy", ticker="EURUSD", qty="0.2", price="1.09"),
        entry("a3", strict, action="close", ticker="EURUSD", qty="0.1", price="1.09"),
        entry("b3", adds, action="close", ticker="XAUUSD", qty="0.4", price="1990"),
        entry("a4", strict, action="close", ticker="EURUSD", price="1.1"),
        entry("a5", strict, action="close", ticker="EURUSD", price="1.1"),
        entry(
            "a6", strict, action="buy", ticker="GBPUSD", qty="1", order_type="limit", price="1.2"
        ),
        entry("b4", adds, action="close", ticker="EURUSD", qty="0.15", price="1.1"),
        entry("b5", adds, action="close_all"),
    ]
    records = handle_signals(batch)
    together = state(strict, adds)
    assert [r[2] for r in together["log"]] == [
        "executed",  # a1: buy 0.3
        "rejected",  # a2: already long, no pyramiding
        "executed",  # a3: 0.1 of 0.3 closed
        "executed",  # a4: the rest closed
        "rejected",  # a5: nothing left to close
        "executed",  # a6: a limit order placed
        "executed",  # b1
        "executed",  # b2: pyramiding allowed
        "executed",  # b3: 0.4 of the older XAUUSD short
        "executed",  # b4: 0.1 of b1 closed, then 0.05 of b2
        "executed",  # b5: everything
    ]
    assert "pyramiding" in together["log"][1][3] and "nothing to close" in together["log"][4][3]
    # Only the pending order is left; the older short was closed by close_all.
    assert [(p[2], p[6]) for p in together["positions"]] == [("GBPUSD", True)]
    assert not SignalPosition.objects.filter(pk=kept.pk).exists()
    assert len(records) == len(together["events"]) == together["seqs"][0] + together["seqs"][1]

    forget(strict, adds)
    held_before()
    for fields in batch:
        handle_signals([fields])
    assert state(strict, adds) == together


def test_a_redelivered_batch_changes_nothing_and_new_signals_in_it_still_count():
    user = make_user()
    source = make_source(user, "src", position_aware=True)
    first = [entry("s1", source, action="buy", ticker="EURUSD", qty="1", price="1.1")]
    assert len(handle_signals(first)) == 1
    before = state(source)
    assert handle_signals(first) == []
    assert state(source) == before
    again = [*first, entry("s2", source, action="close", ticker="EURUSD", price="1.2")]
    [(_, wire)] = handle_signals(again)
    assert wire["kind"] == "position_closed" and wire["seq"] == "2"
    assert SignalPosition.objects.count() == 0


def test_a_signal_of_a_deleted_source_is_dropped_with_the_rest_handled():
    user = make_user()
    gone = make_source(user, "gone")
    here = make_source(user, "here")
    batch = [
        entry("g1", gone, action="buy", ticker="EURUSD", qty="1", price="1.1"),
        entry("h1", here, action="buy", ticker="EURUSD", qty="1", price="1.1"),
    ]
    gone.delete()
    assert len(handle_signals(batch)) == 1
    assert list(SignalLog.objects.values_list("signal_id", flat=True)) == ["h1"]
