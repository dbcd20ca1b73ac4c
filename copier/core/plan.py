"""Planning: what one follower should do about one master event.

`plan` is a pure function. Every refusal is a `Skip` whose reason a trader
can read, because the site shows it beside the execution.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from copier.core.events import EventKind, MasterEvent, Side
from copier.core.instruments import Instrument


def fmt(value: Decimal) -> str:
    """A decimal as a person writes it: 0.004, 1, 2.5 (never 4E-3)."""
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class CopyRules:
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class FollowerPosition:
    ref: str
    symbol: str
    side: Side
    volume: Decimal


@dataclass(frozen=True, slots=True)
class FollowerState:
    """What the follower already did about the event's master position.

    `linked_position` is the follower's open copy of it; `copy_closed` says a
    copy existed and has been closed, so a replayed open must not reopen it.
    """

    linked_position: FollowerPosition | None = None
    copy_closed: bool = False


class OrderAction(enum.StrEnum):
    OPEN = "open"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class FollowerOrder:
    action: OrderAction
    symbol: str
    side: Side
    volume: Decimal
    reference_price: Decimal
    position_ref: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


def plan(
    event: MasterEvent,
    rules: CopyRules,
    follower: FollowerState,
    instrument: Instrument | None,
) -> FollowerOrder | Skip:
    if event.kind is EventKind.POSITION_OPENED:
        return _plan_open(event, rules, follower, instrument)
    if event.kind is EventKind.POSITION_CLOSED:
        return _plan_close(event, follower)
    raise ValueError(f"no plan for event kind {event.kind!r}")


def _plan_open(
    event: MasterEvent,
    rules: CopyRules,
    follower: FollowerState,
    instrument: Instrument | None,
) -> FollowerOrder | Skip:
    if follower.linked_position is not None:
        return Skip("the follower already holds the copy of this master position")
    if follower.copy_closed:
        return Skip("this master position was already copied and closed")
    if instrument is None:
        return Skip(f"{event.symbol} is not tradable on the follower account")
    if rules.multiplier <= 0:
        return Skip(f"the multiplier {fmt(rules.multiplier)} is not positive")
    wanted = event.volume * rules.multiplier
    volume = instrument.round_volume_down(wanted)
    if volume < instrument.volume_min:
        return Skip(
            f"{fmt(wanted)} lots is under {instrument.symbol}'s minimum of "
            f"{fmt(instrument.volume_min)}"
        )
    note = ""
    if volume > instrument.volume_max:
        note = (
            f"reduced from {fmt(volume)} to {instrument.symbol}'s maximum of "
            f"{fmt(instrument.volume_max)} lots"
        )
        volume = instrument.volume_max
    elif volume != wanted:
        step = fmt(instrument.volume_step)
        note = f"rounded from {fmt(wanted)} to {fmt(volume)} lots (step {step})"
    return FollowerOrder(
        action=OrderAction.OPEN,
        symbol=instrument.symbol,
        side=event.side,
        volume=volume,
        reference_price=event.price,
        note=note,
    )


def _plan_close(event: MasterEvent, follower: FollowerState) -> FollowerOrder | Skip:
    position = follower.linked_position
    if position is None and follower.copy_closed:
        return Skip("the follower's copy is already closed")
    if position is None:
        return Skip("no copied position to close: the master's open was not copied")
    return FollowerOrder(
        action=OrderAction.CLOSE,
        symbol=position.symbol,
        side=position.side.opposite,
        volume=position.volume,
        reference_price=event.price,
        position_ref=position.ref,
    )
