"""What one master trade would become on a link's follower, under its saved rules.

The preview asks the same pure `plan()` the copier daemon asks, with the
follower's state read from its Paper ledger, so the answer is the copier's.
"""

from __future__ import annotations

import time
from decimal import Decimal

from brokers.instruments import paper_instrument
from brokers.models import BrokerAccount, PaperAccount, PaperPosition, Venue
from copier.core import (
    EventKind,
    FollowerOrder,
    FollowerState,
    Instrument,
    MasterEvent,
    RiskMode,
    Side,
    Skip,
    plan,
)
from copier.models import CopyLink

PREVIEW_VOLUME = Decimal("1.00")
INACTIVE = "copying is off on this link: the copier ignores its master's trades"


def _balance(account: BrokerAccount) -> Decimal | None:
    return (
        PaperAccount.objects.filter(account_id=account.pk).values_list("balance", flat=True).first()
    )


def _instrument(account: BrokerAccount, symbol: str) -> Instrument | None:
    """The follower venue's instrument for `symbol`; only Paper has a catalogue yet."""
    if account.venue == Venue.PAPER:
        return paper_instrument(symbol)
    return None


def follower_state(link: CopyLink) -> FollowerState:
    """The follower as the copier sees it before a new copy opens."""
    balance = _balance(link.follower)
    return FollowerState(
        balance=balance,
        equity=balance,
        open_positions=PaperPosition.objects.filter(
            account_id=link.follower_id, closed_at=None
        ).count(),
        risk_mode=RiskMode(link.risk_mode),
        risk_reason=link.risk_reason,
    )


def preview(
    link: CopyLink, symbol: str, side: Side | str, price: Decimal, sl: Decimal | None
) -> FollowerOrder | Skip:
    """The follower order (or the reason for none) for a 1.00-lot master open now."""
    if not link.is_active:
        return Skip(INACTIVE)
    rules = link.rules()
    master_balance = _balance(link.master)
    now_ms = time.time_ns() // 1_000_000
    event = MasterEvent(
        source=link.master.event_source,
        seq=0,
        kind=EventKind.POSITION_OPENED,
        master_ref="preview",
        symbol=symbol,
        side=Side(side),
        volume=PREVIEW_VOLUME,
        price=price,
        ts_event_ms=now_ms,
        sl=sl,
        master_balance=master_balance,
        master_equity=master_balance,
    )
    instrument = _instrument(link.follower, rules.map_symbol(symbol))
    return plan(event, rules, follower_state(link), instrument, now_ms)
