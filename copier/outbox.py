"""Publishing master events from the outbox table to the Redis stream."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.models import BrokerAccount
from copier.core.events import EventDraft
from copier.models import MasterEventRecord
from tradosphere.bus import LINKS_VERSION_KEY, sync_redis

log = logging.getLogger(__name__)


def publish_pending(account_id: int | None = None, older_than_s: float = 0) -> int:
    """Publish unpublished events in sequence order; return how many went out.

    Publishing every earlier unpublished event of the account first keeps a
    master's events in order on the stream even after Redis was away.
    """
    records = MasterEventRecord.objects.filter(published_at=None).order_by("account_id", "seq")
    if account_id is not None:
        records = records.filter(account_id=account_id)
    if older_than_s:
        records = records.filter(
            created_at__lt=timezone.now() - timezone.timedelta(seconds=older_than_s)
        )
    published = 0
    client = sync_redis()
    for record in records[:500]:
        try:
            client.xadd(settings.COPIER_STREAM, record.payload)
        except redis.RedisError as e:
            log.warning(
                "event bus unavailable, %d event(s) wait in the outbox: %s", records.count(), e
            )
            break
        MasterEventRecord.objects.filter(pk=record.pk).update(published_at=timezone.now())
        published += 1
    return published


def bump_links_version() -> None:
    """Tell copier daemons that copy links changed, once the change is committed."""

    def bump() -> None:
        try:
            sync_redis().incr(LINKS_VERSION_KEY)
        except redis.RedisError as e:
            # Daemons also reload links every few seconds, so this only delays.
            log.warning("could not announce a copy link change: %s", e)

    transaction.on_commit(bump)


@dataclass(frozen=True)
class Append:
    """Events of one master account to number and store (see `append_events_many`)."""

    account_id: int
    drafts: Sequence[EventDraft]
    master_balance: Decimal | None = None
    master_equity: Decimal | None = None
    contract_sizes: Mapping[str, Decimal | None] | None = None
    external_id: str | None = None


def append_events(
    account_id: int,
    drafts: Sequence[EventDraft],
    *,
    master_balance: Decimal | None = None,
    master_equity: Decimal | None = None,
    contract_sizes: Mapping[str, Decimal | None] | None = None,
    external_id: str | None = None,
) -> list[tuple[int, dict[str, str]]]:
    """Number one master's events and store them in the outbox; call inside a transaction.

    `external_id` is a remote detector's id for a single event (an MT5 agent's
    message id), so an event delivered twice is stored once. Returns (record
    id, wire form) per event, for publishing after the commit.
    """
    return append_events_many(
        [Append(account_id, drafts, master_balance, master_equity, contract_sizes, external_id)]
    )


def append_events_many(appends: Sequence[Append]) -> list[tuple[int, dict[str, str]]]:
    """Several masters' events at once: the accounts locked and numbered together and
    every record inserted in one statement. Call inside a transaction."""
    appends = [a for a in appends if a.drafts]
    if not appends:
        return []
    # One lock order for every caller, so two writers never deadlock.
    accounts = BrokerAccount.objects.select_for_update().order_by("pk")
    by_id = accounts.in_bulk([a.account_id for a in appends])
    records = []
    for a in appends:
        account = by_id[a.account_id]
        first = account.event_seq + 1
        account.event_seq += len(a.drafts)
        sizes = a.contract_sizes or {}
        for i, draft in enumerate(a.drafts):
            event = draft.to_event(
                account.event_source,
                first + i,
                master_balance=a.master_balance,
                master_equity=a.master_equity,
                contract_size=sizes.get(draft.symbol),
            )
            records.append(
                MasterEventRecord(
                    account_id=account.pk,
                    seq=event.seq,
                    kind=event.kind.value,
                    master_ref=event.master_ref,
                    payload=event.to_wire(),
                    external_id=a.external_id,
                )
            )
    BrokerAccount.objects.bulk_update(by_id.values(), ["event_seq"])
    MasterEventRecord.objects.bulk_create(records)
    return [(r.pk, r.payload) for r in records]
