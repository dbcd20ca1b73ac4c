"""ccxt markets as instruments, and the checks that deny an order locally.

A follower order that the exchange would reject is denied here, with a
sentence for the trader, instead of being sent: amount step, minimum and
maximum amount, minimum notional, price tick, and the free balance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt

from brokers.venues.base import OrderDenied
from copier.core import Instrument, Side
from copier.core.sizing import fmt

Market = dict[str, Any]
NO_MAXIMUM = Decimal("1E12")


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _step(precision: object, precision_mode: int) -> Decimal:
    """A precision as a step: ccxt gives either the step or a number of digits."""
    value = _decimal(precision)
    if value is None:
        raise OrderDenied("the exchange gives no precision for this market")
    if precision_mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value))
    return value


def instrument(market: Market, precision_mode: int) -> Instrument:
    amount_step = _step(market["precision"]["amount"], precision_mode)
    price_tick = _step(market["precision"]["price"], precision_mode)
    limits = market.get("limits") or {}
    amount = limits.get("amount") or {}
    contract_size = _decimal(market.get("contractSize")) or Decimal(1)
    return Instrument(
        symbol=market["symbol"],
        volume_step=amount_step,
        volume_min=max(_decimal(amount.get("min")) or amount_step, amount_step),
        volume_max=_decimal(amount.get("max")) or NO_MAXIMUM,
        contract_size=contract_size,
        price_digits=max(0, -int(price_tick.normalize().as_tuple().exponent)),
        tick_size=price_tick,
        # Linear markets: one tick on one contract is worth tick x contract size
        # in the quote currency.
        tick_value=price_tick * contract_size,
    )


def check_order(
    market: Market,
    precision_mode: int,
    side: Side,
    amount: Decimal,
    price: Decimal,
    free: dict[str, Decimal],
    limit_price: bool = False,
    leverage: int | None = None,
    reduce_only: bool = False,
) -> None:
    """Deny locally what the exchange would reject; `free` is the free balance by currency.

    Derivatives: a reduce-only order needs no margin; an opening order needs
    notional / leverage of the settlement currency, checked when the account's
    leverage is known (the copier set it); otherwise the exchange checks it.
    """
    inst = instrument(market, precision_mode)
    symbol = market["symbol"]
    if (problem := inst.volume_problem(amount)) is not None:
        raise OrderDenied(problem.replace(" lots", f" {market.get('base', '')}".rstrip()))
    tick = inst.tick_size or inst.point
    if limit_price and (price / tick) % 1 != 0:
        raise OrderDenied(f"price {fmt(price)} is not a multiple of {symbol}'s tick {fmt(tick)}")
    quote = market.get("quote", "")
    notional = amount * price * inst.contract_size
    cost = (market.get("limits") or {}).get("cost") or {}
    minimum = _decimal(cost.get("min"))
    if minimum is not None and notional < minimum:
        raise OrderDenied(
            f"{fmt(notional)} {quote} is under {symbol}'s minimum order value of "
            f"{fmt(minimum)} {quote}"
        )
    if market.get("spot", market.get("type") == "spot"):
        currency, needed = (quote, notional) if side is Side.BUY else (market["base"], amount)
    elif reduce_only or not leverage:
        return
    else:
        currency = market.get("settle") or quote
        if market.get("inverse"):
            # Inverse contracts are worth contract size in the quote currency
            # and margined in the base currency.
            notional = amount * inst.contract_size / price
        needed = (notional / leverage).quantize(Decimal("0.00000001"))
    available = free.get(currency, Decimal(0))
    if needed > available:
        what = f"the order needs {fmt(needed)} {currency}"
        if leverage and not market.get("spot", market.get("type") == "spot"):
            what += f" of margin at {leverage}x"
        raise OrderDenied(f"{what} and {fmt(available)} {currency} is free")
