"""Follower volume and stop levels for a new copy."""

from __future__ import annotations

from decimal import Decimal

from copier.core.events import MasterEvent, Side
from copier.core.instruments import Instrument
from copier.core.rules import CopyRules, Sizing


def fmt(value: Decimal) -> str:
    """A decimal as a person writes it: 0.004, 1, 2.5 (never 4E-3 or 30 digits)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        value = value.quantize(Decimal("1E-8"))
    return format(value.normalize(), "f")


def plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros or an exponent: 2340, not 2.34E+3."""
    return Decimal(fmt(value))


class Refusal(Exception):
    """A copy that cannot be made, with the reason a trader reads."""


def stops(
    event: MasterEvent, rules: CopyRules, side: Side, entry: Decimal, instrument: Instrument
) -> tuple[Decimal | None, Decimal | None]:
    """The follower's SL and TP for a copy entered at `entry` on `side`."""
    sl, tp = event.sl, event.tp
    if rules.reverse:
        # A reversed trade loses where the master wins: the master's take
        # profit is the copy's stop loss, and the other way round.
        sl, tp = tp, sl
    if not rules.copy_sl:
        sl = None
    if not rules.copy_tp:
        tp = None
    point = instrument.point
    if rules.fixed_sl_points is not None:
        sl = entry - side.sign * rules.fixed_sl_points * point
    if rules.fixed_tp_points is not None:
        tp = entry + side.sign * rules.fixed_tp_points * point
    if sl is not None and rules.sl_offset_points:
        sl -= side.sign * rules.sl_offset_points * point
    if tp is not None and rules.tp_offset_points:
        tp += side.sign * rules.tp_offset_points * point
    return (
        instrument.round_price(sl) if sl is not None else None,
        instrument.round_price(tp) if tp is not None else None,
    )


def raw_volume(
    event: MasterEvent,
    rules: CopyRules,
    instrument: Instrument,
    entry: Decimal,
    sl: Decimal | None,
    balance: Decimal | None,
    equity: Decimal | None,
) -> Decimal:
    """The volume the sizing rule asks for, before rounding and limits."""
    value = rules.sizing_value
    if value <= 0:
        raise Refusal(f"the sizing value {fmt(value)} is not greater than 0")
    # The master's volume in the follower's units: a 1-lot gold trade of
    # 100 oz is 100 lots where a lot is 1 oz.
    volume = event.volume
    if event.contract_size and event.contract_size != instrument.contract_size:
        volume = volume * event.contract_size / instrument.contract_size
    match rules.sizing:
        case Sizing.FIXED:
            return value
        case Sizing.MULTIPLIER:
            return volume * value
        case Sizing.BALANCE_RATIO:
            if not balance or not event.master_balance:
                raise Refusal("balance ratio sizing needs the master's and the follower's balance")
            return volume * balance / event.master_balance * value
        case Sizing.EQUITY_RATIO:
            if not equity or not event.master_equity:
                raise Refusal("equity ratio sizing needs the master's and the follower's equity")
            return volume * equity / event.master_equity * value
        case Sizing.RISK_PERCENT:
            if sl is None:
                raise Refusal("risk sizing needs a stop loss")
            distance = abs(entry - sl)
            if distance == 0:
                raise Refusal("risk sizing needs a stop loss away from the entry price")
            capital = equity if equity is not None else balance
            if not capital:
                raise Refusal("risk sizing needs the follower's equity")
            return capital * value / 100 / (distance * instrument.value_per_price_unit)
        case Sizing.FIXED_NOTIONAL:
            if entry <= 0:
                raise Refusal("notional sizing needs a price")
            return value / (entry * instrument.contract_size)
    raise AssertionError(f"unknown sizing {rules.sizing!r}")


def fit_volume(wanted: Decimal, rules: CopyRules, instrument: Instrument) -> tuple[Decimal, str]:
    """Round down to the step and fit the limits; return the volume and a note."""
    volume = instrument.round_volume_down(wanted)
    symbol = instrument.symbol
    if volume < instrument.volume_min:
        if not rules.force_min:
            raise Refusal(
                f"{fmt(wanted)} lots is under {symbol}'s minimum of {fmt(instrument.volume_min)}"
            )
        return instrument.volume_min, (
            f"raised from {fmt(wanted)} to {symbol}'s minimum of {fmt(instrument.volume_min)} lots"
        )
    if volume > instrument.volume_max:
        return instrument.volume_max, (
            f"reduced from {fmt(volume)} to {symbol}'s maximum of {fmt(instrument.volume_max)} lots"
        )
    if volume != wanted:
        step = fmt(instrument.volume_step)
        return volume, f"rounded from {fmt(wanted)} to {fmt(volume)} lots (step {step})"
    return volume, ""
