"""What differs between exchanges, as data: one generic connector reads it.

Only exchanges with a row here are offered for linking until their behaviour
has been checked; every other ccxt exchange falls back to `DEFAULT`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from brokers.venues.base import OrderDenied


@dataclass(frozen=True, slots=True)
class Capabilities:
    # ccxt's unified `clientOrderId` param is renamed per exchange by ccxt
    # itself; these are the exchange's own limits on the value.
    client_order_id_max: int = 32
    client_order_id_pattern: str = r"^[A-Za-z0-9]+$"
    needs_passphrase: bool = False
    # Reports API-key permissions (trading, withdrawals) through an endpoint.
    reports_permissions: bool = False
    supports_reduce_only: bool = True
    # `fetch_my_trades` needs a symbol, so a REST resync asks symbol by symbol.
    my_trades_need_symbol: bool = False
    # ccxt's fetch_order cannot take our id; look it up by orderLinkId instead.
    find_by_order_link_id: bool = False


DEFAULT = Capabilities()

CAPABILITIES: dict[str, Capabilities] = {
    # newClientOrderId: ^[\.A-Z\:/a-z0-9_-]{1,36}$
    "binance": Capabilities(
        36,
        r"^[.A-Z:/a-z0-9_-]{1,36}$",
        reports_permissions=True,
        supports_reduce_only=False,
        my_trades_need_symbol=True,
    ),
    "binanceusdm": Capabilities(
        36, r"^[.A-Z:/a-z0-9_-]{1,36}$", reports_permissions=True, my_trades_need_symbol=True
    ),
    "binancecoinm": Capabilities(
        36, r"^[.A-Z:/a-z0-9_-]{1,36}$", reports_permissions=True, my_trades_need_symbol=True
    ),
    # orderLinkId: up to 36 characters, letters, digits, - and _.
    "bybit": Capabilities(36, r"^[A-Za-z0-9_-]{1,36}$", find_by_order_link_id=True),
    # clOrdId: 1 to 32 letters and digits.
    "okx": Capabilities(32, r"^[A-Za-z0-9]{1,32}$", needs_passphrase=True),
}


def capabilities(exchange_id: str) -> Capabilities:
    return CAPABILITIES.get(exchange_id, DEFAULT)


def checked_client_order_id(exchange_id: str, client_order_id: str) -> str:
    """Our id, if this exchange accepts it; refuse locally otherwise."""
    caps = capabilities(exchange_id)
    if len(client_order_id) > caps.client_order_id_max or not re.match(
        caps.client_order_id_pattern, client_order_id
    ):
        raise OrderDenied(
            f"client order id {client_order_id} does not fit {exchange_id}'s rules "
            f"({caps.client_order_id_max} characters at most)"
        )
    return client_order_id
