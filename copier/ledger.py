"""The copier's database side: what it reads before planning, writes after sending.

Every function here is synchronous Django code that the daemon runs in a
thread; none of them sits between "planned" and "sent".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from brokers.models import (
    BrokerAccount,
    Mt5Agent,
    PaperAccount,
    PaperOrder,
    PaperPosition,
    PaperRequest,
)
from brokers.models import Venue as VenueKind
from brokers.venues.base import Report, Venue, VenueError
from brokers.venues.ccxt.venue import CcxtVenue
from brokers.venues.paper import PaperVenue
from copier.core import (
    CopyRules,
    CopyState,
    FollowerOrder,
    FollowerState,
    MasterEvent,
    OrderAction,
    OrderType,
    RiskBreach,
    RiskMode,
    Side,
    check_risk,
)
from copier.models import Alert, CopyLink, Execution, MasterEventRecord, PositionLink
from tradosphere.db import drop_broken_connection

log = logging.getLogger("copier")


@dataclass(frozen=True, slots=True)
class LinkInfo:
    id: int
    owner_id: int
    follower_id: int
    currency: str
    rules: CopyRules


@dataclass(slots=True)
class Outcome:
    """One follower's part of one event, from planning to the venue's answer."""

    link: LinkInfo
    coid: str
    event: MasterEvent
    t_detected_ns: int
    t_planned_ns: int
    status: str
    reason: str = ""
    order: FollowerOrder | None = None
    report: Report | None = None
    t_sent_ns: int | None = None
    t_acked_ns: int | None = None
    signal_age_ms: int | None = None
    kind: str = ""


@dataclass
class LinkCache:
    by_master: dict[int, list[LinkInfo]] = field(default_factory=dict)
    venues: dict[int, Venue] = field(default_factory=dict)
    venue_keys: dict[int, str] = field(default_factory=dict)
    # Exchange accounts that lead an active link: the daemon watches their fills.
    exchange_masters: dict[int, str] = field(default_factory=dict)
    version: str | None = None
    loaded_at: float = 0.0


def venue_key(account: BrokerAccount) -> str:
    """What a connector depends on: a change means a new connector."""
    secret = hashlib.sha256(account.credentials.encode()).hexdigest()[:16]
    key = (
        f"{account.venue}:{account.exchange}:{account.market_type}:{account.sandbox}:{secret}"
        f":{account.leverage}:{account.margin_mode}"
    )
    if account.venue == VenueKind.MT5:
        # A new agent (a new slot or token) means a new connector.
        agent = Mt5Agent.objects.filter(account=account).values_list("agent_id", "server")
        key += f":{list(agent)}"
    return key


def venue_for(account: BrokerAccount) -> Venue:
    if account.venue == VenueKind.PAPER:
        return PaperVenue(account.pk)
    if account.venue == VenueKind.CCXT:
        return CcxtVenue(
            account.exchange,
            json.loads(account.credentials or "{}"),
            account.market_type,
            account.sandbox,
            api_host=settings.CCXT_API_HOSTS.get(account.exchange),
            leverage=account.leverage,
            margin_mode=account.margin_mode,
        )
    if account.venue == VenueKind.MT5:
        from brokers.venues.mt5 import Mt5Venue

        agent = Mt5Agent.objects.filter(account=account).first()
        if agent is None:
            raise VenueError(f"{account.label} has no MetaTrader 5 terminal running yet")
        return Mt5Venue(account.pk, agent.agent_id, agent.token, agent.symbols)
    raise VenueError(f"{account.get_venue_display()} accounts cannot follow yet")


@drop_broken_connection
def load_links(previous: LinkCache | None = None) -> LinkCache:
    """Active links by master, with a connector per follower (kept from `previous`
    while the follower's venue settings and credentials are unchanged)."""
    cache = LinkCache()
    links = CopyLink.objects.filter(is_active=True).select_related("follower", "master")
    for link in links:
        if link.master.venue == VenueKind.CCXT:
            cache.exchange_masters[link.master_id] = venue_key(link.master) + (
                f":{link.master.watch_symbols}"
            )
        try:
            rules = link.rules()
        except ValueError as e:  # rules are validated on save; this guards old rows
            log.error("link %s has invalid rules, not copying: %s", link.pk, e)
            continue
        cache.by_master.setdefault(link.master_id, []).append(
            LinkInfo(
                link.pk,
                link.owner_id,
                link.follower_id,
                link.follower.currency,
                rules,
            )
        )
        follower = link.follower
        if follower.pk in cache.venues:
            continue
        key = venue_key(follower)
        if previous is not None and previous.venue_keys.get(follower.pk) == key:
            cache.venues[follower.pk] = previous.venues[follower.pk]
        else:
            try:
                cache.venues[follower.pk] = venue_for(follower)
            except VenueError as e:
                log.warning("link %s: %s", link.pk, e.message)
                continue
        cache.venue_keys[follower.pk] = key
    return cache


def _copy_state(pl: PositionLink, hand_closed: set[int]) -> CopyState:
    return CopyState(
        ref=pl.follower_ref,
        symbol=pl.symbol,
        side=Side(pl.side),
        volume=Decimal(pl.volume),
        is_order=pl.is_order,
        price=pl.price,
        sl=pl.sl,
        tp=pl.tp,
        order_type=OrderType(pl.order_type),
        closed=pl.closed_at is not None,
        closed_by_hand=pl.closed_by_hand or pl.pk in hand_closed,
    )


def load_states(links: list[LinkInfo], master_ref: str) -> dict[int, FollowerState]:
    """Each link's follower state for one master reference."""
    return load_states_many([(links, master_ref)])[0]


@drop_broken_connection
def load_states_many(
    wanted: list[tuple[list[LinkInfo], str]],
) -> list[dict[int, FollowerState]]:
    """Follower states for several events at once (links, master reference), in a few
    queries whatever their number."""
    which = Q()
    for links, master_ref in wanted:
        which |= Q(link_id__in=[li.id for li in links], master_ref=master_ref)
    copies = list(PositionLink.objects.filter(which)) if wanted else []
    hand_closed = _find_hand_closed([pl for pl in copies if pl.closed_at is None])
    all_links = [li for links, _ in wanted for li in links]
    follower_ids = {li.follower_id for li in all_links}
    balances = dict(
        PaperAccount.objects.filter(account_id__in=follower_ids).values_list(
            "account_id", "balance"
        )
    )
    counts = dict(
        PaperPosition.objects.filter(account_id__in=follower_ids, closed_at=None)
        .values("account_id")
        .annotate(n=Count("id"))
        .values_list("account_id", "n")
    )
    risk = {
        pk: (mode, reason)
        for pk, mode, reason in CopyLink.objects.filter(
            pk__in=[li.id for li in all_links]
        ).values_list("pk", "risk_mode", "risk_reason")
    }
    by_copy = {(pl.link_id, pl.master_ref): _copy_state(pl, hand_closed) for pl in copies}
    result = []
    for links, master_ref in wanted:
        states = {}
        for li in links:
            balance = balances.get(li.follower_id)
            mode, reason = risk.get(li.id, (RiskMode.NORMAL, ""))
            states[li.id] = FollowerState(
                copy=by_copy.get((li.id, master_ref)),
                balance=balance,
                equity=balance,
                open_positions=counts.get(li.follower_id, 0),
                risk_mode=RiskMode(mode),
                risk_reason=reason,
            )
        result.append(states)
    return result


def _find_hand_closed(open_copies: list[PositionLink]) -> set[int]:
    """Open copies whose follower position or order is gone without the copier."""
    if not open_copies:
        return set()
    position_ids = {
        int(pl.follower_ref[1:]): pl
        for pl in open_copies
        if pl.follower_ref.startswith("P") and not pl.is_order
    }
    order_ids = {
        int(pl.follower_ref[1:]): pl
        for pl in open_copies
        if pl.follower_ref.startswith("O") and pl.is_order
    }
    gone = set(
        PaperPosition.objects.filter(pk__in=position_ids)
        .exclude(closed_at=None)
        .values_list("pk", flat=True)
    )
    cancelled = set(
        PaperOrder.objects.filter(pk__in=order_ids)
        .exclude(status=PaperOrder.Status.OPEN)
        .values_list("pk", flat=True)
    )
    hand = {position_ids[pk].pk for pk in gone} | {order_ids[pk].pk for pk in cancelled}
    if hand:
        PositionLink.objects.filter(pk__in=hand).update(closed_by_hand=True)
    return hand


def _execution(o: Outcome) -> Execution:
    order, report = o.order, o.report
    return Execution(
        owner_id=o.link.owner_id,
        link_id=o.link.id,
        client_order_id=o.coid,
        action=order.action.value if order else "",
        master_ref=o.event.master_ref,
        seq=o.event.seq,
        kind=o.kind or o.event.kind.value,
        status=o.status,
        reason=o.reason[:300],
        symbol=order.symbol if order else o.event.symbol,
        side=order.side.value if order else "",
        volume=report.volume if report else (order.volume if order else None),
        price=report.price if report else None,
        sl=report.sl if report else (order.sl if order else None),
        tp=report.tp if report else (order.tp if order else None),
        follower_ref=report.ref if report else "",
        signal_age_ms=o.signal_age_ms,
        t_detected_ns=o.t_detected_ns,
        t_planned_ns=o.t_planned_ns,
        t_sent_ns=o.t_sent_ns,
        t_acked_ns=o.t_acked_ns,
    )


_ENDS = (OrderAction.CLOSE, OrderAction.CANCEL_PENDING)


def _new_copy(o: Outcome) -> PositionLink:
    order, report = o.order, o.report
    assert order is not None and report is not None
    return PositionLink(
        link_id=o.link.id,
        master_ref=order.link_ref or o.event.master_ref,
        follower_ref=report.ref,
        symbol=report.symbol,
        side=report.side.value,
        volume=report.volume,
        price=report.price,
        sl=report.sl,
        tp=report.tp,
        is_order=order.action is OrderAction.PLACE_PENDING,
        order_type=order.order_type.value,
    )


def _apply_to_ledger(o: Outcome, first_time: bool) -> None:
    """Reductions, modifications and fills of pending copies, one copy at a time."""
    order, report = o.order, o.report
    assert order is not None and report is not None
    copies = PositionLink.objects.filter(link_id=o.link.id, master_ref=o.event.master_ref)
    match order.action:
        case OrderAction.FILL_PENDING:
            # The copy now follows the master's new position, not its order.
            copies.update(
                master_ref=order.link_ref or o.event.master_ref,
                follower_ref=report.ref,
                is_order=False,
                price=report.price,
                order_type=OrderType.MARKET.value,
            )
        case OrderAction.REDUCE:
            if report.remaining is not None:
                copies.update(volume=report.remaining)
            elif first_time:  # the venue says what it filled, not what is left
                copies.update(volume=F("volume") - report.volume)
        case OrderAction.MODIFY:
            copies.update(sl=report.sl, tp=report.tp)
        case OrderAction.MODIFY_PENDING:
            copies.update(sl=report.sl, tp=report.tp, price=report.price)


@drop_broken_connection
def record(outcomes: list[Outcome]) -> list[Execution]:
    """Write executions, copy ledger changes and failure alerts; return new executions."""
    rows = [_execution(o) for o in outcomes]
    with transaction.atomic():
        existing = set(
            Execution.objects.filter(
                client_order_id__in=[r.client_order_id for r in rows]
            ).values_list("client_order_id", flat=True)
        )
        new = [r for r in rows if r.client_order_id not in existing]
        Execution.objects.bulk_create(new, ignore_conflicts=True)
        filled = [
            o for o in outcomes if o.status == Execution.Status.FILLED and o.report and o.order
        ]
        # The common fan-out cases, in one statement each: new copies, closed copies.
        opened = [o for o in filled if o.order and o.order.action.opens]
        PositionLink.objects.bulk_create([_new_copy(o) for o in opened], ignore_conflicts=True)
        ended: dict[str, list[int]] = {}
        for o in filled:
            if o.order and o.order.action in _ENDS:
                ref = o.order.link_ref or o.event.master_ref
                ended.setdefault(ref, []).append(o.link.id)
        for master_ref, link_ids in ended.items():
            PositionLink.objects.filter(
                link_id__in=link_ids, master_ref=master_ref, closed_at=None
            ).update(closed_at=timezone.now())
        for o in filled:
            if o.order and not o.order.action.opens and o.order.action not in _ENDS:
                _apply_to_ledger(o, first_time=o.coid not in existing)
        for o in outcomes:
            if o.status == Execution.Status.FAILED and o.coid not in existing:
                Alert.objects.create(
                    owner_id=o.link.owner_id,
                    link_id=o.link.id,
                    level=Alert.Level.ERROR,
                    kind="order_failed",
                    message=f"{o.event.symbol} {o.event.kind.value} not copied: {o.reason}"[:500],
                )
    return new


def _day_start() -> dt.datetime:
    now = timezone.now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Tripped:
    link: LinkInfo
    breach: RiskBreach
    # Open copies to close, when the action is "close all and pause".
    to_close: list[FollowerOrder]


@drop_broken_connection
def check_risk_stops(links: list[LinkInfo]) -> list[Tripped]:
    """Trip the risk stops of links whose follower reached a limit."""
    watched = [
        li
        for li in links
        if li.rules.daily_loss_limit is not None or li.rules.max_drawdown is not None
    ]
    if not watched:
        return []
    normal = set(
        CopyLink.objects.filter(
            pk__in=[li.id for li in watched], risk_mode=RiskMode.NORMAL
        ).values_list("pk", flat=True)
    )
    follower_ids = {li.follower_id for li in watched if li.id in normal}
    ledgers = {p.account_id: p for p in PaperAccount.objects.filter(account_id__in=follower_ids)}
    realized = dict(
        PaperRequest.objects.filter(account_id__in=follower_ids, created_at__gte=_day_start())
        .values("account_id")
        .annotate(total=Sum("realized_pnl"))
        .values_list("account_id", "total")
    )
    tripped = []
    for li in watched:
        ledger = ledgers.get(li.follower_id)
        if li.id not in normal or ledger is None:
            continue
        equity = ledger.balance
        breach = check_risk(
            li.rules,
            equity=equity,
            day_start_equity=equity - (realized.get(li.follower_id) or 0),
            initial_balance=ledger.starting_balance,
            currency=li.currency,
        )
        if breach is None:
            continue
        with transaction.atomic():
            changed = CopyLink.objects.filter(pk=li.id, risk_mode=RiskMode.NORMAL).update(
                risk_mode=breach.mode,
                risk_reason=breach.reason[:300],
                risk_tripped_at=timezone.now(),
            )
            if not changed:  # another daemon tripped it first
                continue
            Alert.objects.create(
                owner_id=li.owner_id,
                link_id=li.id,
                level=Alert.Level.WARNING,
                kind="risk_stop",
                message=f"Risk stop ({breach.action.value.replace('_', ' ')}): {breach.reason}",
            )
        to_close = []
        if breach.mode is RiskMode.PAUSED:
            for pl in PositionLink.objects.filter(
                link_id=li.id, closed_at=None, closed_by_hand=False
            ):
                action = OrderAction.CANCEL_PENDING if pl.is_order else OrderAction.CLOSE
                to_close.append(
                    FollowerOrder(
                        action,
                        pl.symbol,
                        Side(pl.side).opposite,
                        pl.volume,
                        pl.price or Decimal(0),
                        ref=pl.follower_ref,
                        link_ref=pl.master_ref,
                    )
                )
        tripped.append(Tripped(li, breach, to_close))
    return tripped


@drop_broken_connection
def mark_published(record_ids: list[int]) -> None:
    MasterEventRecord.objects.filter(pk__in=record_ids).update(published_at=timezone.now())


@drop_broken_connection
def publish_unpublished() -> int:
    from copier.outbox import publish_pending

    # Long enough that an event whose publisher is still marking it (behind a
    # busy database thread) is not put on the stream again; a repeat would be
    # harmless (events are deduplicated by source and sequence) but costs work.
    return publish_pending(older_than_s=15)


@drop_broken_connection
def last_price(account_id: int, symbol: str) -> Decimal | None:
    """The latest price the Paper account traded `symbol` at, for closing without a quote."""
    return (
        PaperRequest.objects.filter(account_id=account_id, symbol=symbol)
        .order_by("-id")
        .values_list("price", flat=True)
        .first()
    )
