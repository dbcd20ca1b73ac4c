"""ccxt's exceptions, translated into the project's venue errors.

Most specific first: ccxt's classes form a tree (DuplicateOrderId is an
InvalidOrder is an ExchangeError), and the first match wins. Call sites do
`raise translate(e) from e`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import ccxt

from brokers.venues.base import (
    CredentialsRejected,
    DuplicateOrder,
    InsufficientBalance,
    OrderNotFound,
    OrderRejected,
    PermissionRefused,
    RateLimited,
    TemporaryVenueError,
    VenueError,
    VenueUnavailable,
)

Translation = tuple[type[Exception], Callable[[str], VenueError]]

TRANSLATIONS: tuple[Translation, ...] = (
    (ccxt.DuplicateOrderId, DuplicateOrder),
    (ccxt.OrderNotFound, OrderNotFound),
    (ccxt.InsufficientFunds, InsufficientBalance),
    (ccxt.PermissionDenied, PermissionRefused),
    (ccxt.AccountSuspended, PermissionRefused),
    (ccxt.AuthenticationError, CredentialsRejected),
    (ccxt.InvalidOrder, OrderRejected),
    (ccxt.BadSymbol, OrderRejected),
    (ccxt.MarketClosed, OrderRejected),
    (ccxt.CancelPending, TemporaryVenueError),
    (ccxt.RateLimitExceeded, RateLimited),
    (ccxt.DDoSProtection, RateLimited),
    # A wrong clock: the exchange refused the request unread, so it can be resent.
    (ccxt.InvalidNonce, TemporaryVenueError),
    # Timeouts, maintenance, dropped connections and garbled answers: the
    # request may have been carried out (VenueUnavailable.outcome_unknown).
    (ccxt.NetworkError, VenueUnavailable),
    (ccxt.BadResponse, VenueUnavailable),
    # Binance answers a busy 503 with {"code": -1001}, which ccxt raises as a bare
    # OperationFailed: the order may or may not have been placed.
    (ccxt.OperationFailed, VenueUnavailable),
    (ccxt.BaseError, VenueError),
)


# ccxt applies Binance's futures error table only to answers from Binance's own
# hosts; behind a proxy (`CCXT_API_HOSTS`) these arrive as a bare ExchangeError.
BINANCE_CODES: dict[str, Callable[[str], VenueError]] = {
    "-2019": InsufficientBalance,  # Margin is insufficient.
    "-2022": OrderRejected,  # ReduceOnly Order is rejected.
    "-4164": OrderRejected,  # Order's notional must be no smaller than ...
    "-4116": DuplicateOrder,  # ClientOrderId is duplicated.
}
BINANCE_CODE = re.compile(r'"code":\s*(-\d+)')


def translate(error: Exception) -> VenueError:
    """The project's error for a ccxt exception, keeping the exchange's message."""
    message = str(error) or error.__class__.__name__
    if type(error) is ccxt.ExchangeError and (code := BINANCE_CODE.search(message)):
        if (known := BINANCE_CODES.get(code.group(1))) is not None:
            return known(message)
    for ccxt_class, project_error in TRANSLATIONS:
        if isinstance(error, ccxt_class):
            return project_error(message)
    return VenueError(message)
