"""Copy rules of one copy link, as plain values."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from decimal import Decimal

from copier.core.events import Side


class Sizing(enum.StrEnum):
    FIXED = "fixed"  # value: lots
    MULTIPLIER = "multiplier"  # value: times master volume
    BALANCE_RATIO = "balance_ratio"  # value: times master volume x follower/master balance
    EQUITY_RATIO = "equity_ratio"  # value: times master volume x follower/master equity
    RISK_PERCENT = "risk_percent"  # value: % of follower equity lost at the stop loss
    FIXED_NOTIONAL = "fixed_notional"  # value: position value in the quote currency


class DeviationUnit(enum.StrEnum):
    POINTS = "points"
    PERCENT = "percent"


class LimitUnit(enum.StrEnum):
    AMOUNT = "amount"  # in the account currency
    PERCENT = "percent"  # of the reference balance


class RiskAction(enum.StrEnum):
    STOP_OPENING = "stop_opening"
    CLOSE_ONLY = "close_only"
    CLOSE_ALL_AND_PAUSE = "close_all_and_pause"


class RiskMode(enum.StrEnum):
    """What a follower may still do, after its risk stops."""

    NORMAL = "normal"
    STOP_OPENING = "stop_opening"  # no new positions or pending orders
    CLOSE_ONLY = "close_only"  # also no modifications: only reductions and closes
    PAUSED = "paused"  # nothing at all


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Trading allowed from `start` to `end` (which may cross midnight) on `days`.

    Days are ISO weekdays (1 = Monday) of the day the window starts.
    """

    start: dt.time
    end: dt.time
    days: frozenset[int] = frozenset(range(1, 8))

    def contains(self, moment: dt.datetime) -> bool:
        t = moment.timetz().replace(tzinfo=None)
        weekday = moment.isoweekday()
        if self.start <= self.end:
            return weekday in self.days and self.start <= t < self.end
        # Crossing midnight: the early morning belongs to the previous day's window.
        if t >= self.start:
            return weekday in self.days
        previous = 7 if weekday == 1 else weekday - 1
        return t < self.end and previous in self.days


@dataclass(frozen=True, slots=True)
class RiskLimit:
    value: Decimal
    unit: LimitUnit = LimitUnit.AMOUNT

    def amount(self, reference: Decimal) -> Decimal:
        if self.unit is LimitUnit.PERCENT:
            return reference * self.value / 100
        return self.value


@dataclass(frozen=True, slots=True)
class CopyRules:
    sizing: Sizing = Sizing.MULTIPLIER
    sizing_value: Decimal = Decimal(1)
    force_min: bool = False
    # Symbols: the explicit map wins; otherwise strip the master's prefix and
    # suffix and add the follower's.
    symbol_map: dict[str, str] = field(default_factory=dict)
    master_prefix: str = ""
    master_suffix: str = ""
    follower_prefix: str = ""
    follower_suffix: str = ""
    # Filters, on the master's symbol before mapping.
    symbols_allowed: frozenset[str] = frozenset()
    symbols_denied: frozenset[str] = frozenset()
    sides: frozenset[Side] = frozenset(Side)
    min_master_volume: Decimal | None = None
    max_master_volume: Decimal | None = None
    max_open_positions: int | None = None
    time_windows: tuple[TimeWindow, ...] = ()
    time_zone: dt.tzinfo = dt.UTC
    max_signal_age_ms: int | None = None
    max_price_deviation: Decimal | None = None
    price_deviation_unit: DeviationUnit = DeviationUnit.POINTS
    # Direction and stops.
    reverse: bool = False
    copy_sl: bool = True
    copy_tp: bool = True
    fixed_sl_points: Decimal | None = None
    fixed_tp_points: Decimal | None = None
    sl_offset_points: Decimal = Decimal(0)
    tp_offset_points: Decimal = Decimal(0)
    # Modes.
    close_only: bool = False
    copy_pending: bool = True
    # Follower risk stops.
    daily_loss_limit: RiskLimit | None = None
    max_drawdown: RiskLimit | None = None
    risk_action: RiskAction = RiskAction.STOP_OPENING

    def map_symbol(self, symbol: str) -> str:
        if symbol in self.symbol_map:
            return self.symbol_map[symbol]
        base = symbol
        if self.master_prefix and base.startswith(self.master_prefix):
            base = base[len(self.master_prefix) :]
        if self.master_suffix and base.endswith(self.master_suffix):
            base = base[: -len(self.master_suffix)]
        return f"{self.follower_prefix}{base}{self.follower_suffix}"
