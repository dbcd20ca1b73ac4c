"""Follower risk stops: daily loss and total drawdown."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from copier.core.rules import CopyRules, RiskAction, RiskMode
from copier.core.sizing import fmt

MODE_AFTER = {
    RiskAction.STOP_OPENING: RiskMode.STOP_OPENING,
    RiskAction.CLOSE_ONLY: RiskMode.CLOSE_ONLY,
    RiskAction.CLOSE_ALL_AND_PAUSE: RiskMode.PAUSED,
}


@dataclass(frozen=True, slots=True)
class RiskBreach:
    action: RiskAction
    mode: RiskMode
    reason: str


def check_risk(
    rules: CopyRules,
    equity: Decimal,
    day_start_equity: Decimal,
    initial_balance: Decimal,
    currency: str = "",
) -> RiskBreach | None:
    """The first risk stop the follower's equity has reached, if any."""
    unit = f" {currency}" if currency else ""
    if rules.daily_loss_limit is not None:
        loss = day_start_equity - equity
        limit = rules.daily_loss_limit.amount(day_start_equity)
        if loss > 0 and loss >= limit:
            return RiskBreach(
                rules.risk_action,
                MODE_AFTER[rules.risk_action],
                f"today's loss of {fmt(loss)}{unit} reached the daily limit of "
                f"{fmt(limit.quantize(Decimal('0.01')))}{unit}",
            )
    if rules.max_drawdown is not None:
        drawdown = initial_balance - equity
        limit = rules.max_drawdown.amount(initial_balance)
        if drawdown > 0 and drawdown >= limit:
            return RiskBreach(
                rules.risk_action,
                MODE_AFTER[rules.risk_action],
                f"the drawdown of {fmt(drawdown)}{unit} reached the limit of "
                f"{fmt(limit.quantize(Decimal('0.01')))}{unit}",
            )
    return None
