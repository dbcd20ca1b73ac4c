"""MetaTrader 5 answers, translated into the project's venue errors.

`error_for(retcode, comment)` reads `order_send`'s `MqlTradeResult`: None when
the request was carried out, else the `VenueError` to raise, whose message
names the code ("MT5 10019 NO_MONEY: not enough money (No money)"). Every
documented return code is in `RETCODES`, classed as

- success: DONE, PLACED, DONE_PARTIAL, and NO_CHANGES (the position or order
  already has the requested levels, which is what a resent modification
  finds). DONE_PARTIAL (only with IOC or Return filling) means `result.volume`
  lots were filled, not the requested volume: the Report carries
  `result.volume`, and the rest was cancelled (IOC) or stays as an order
  (Return);
- retry with a fresh price (`RETRY_WITH_NEW_PRICE`, raised as `Requote`):
  REQUOTE, PRICE_CHANGED, PRICE_OFF. Nothing was done; read the tick again
  and rebuild the request, at most `MAX_REQUOTE_ATTEMPTS` times in all;
- outcome unknown (`VenueUnavailable`): ERROR, TIMEOUT, LOCKED, CONNECTION,
  and any code not documented: the request may have been carried out, so
  look the client order id up before sending it again;
- temporary, not carried out: TOO_MANY_REQUESTS (`RateLimited`),
  ORDER_CHANGED and FROZEN (`TemporaryVenueError`);
- permanent: everything else (`OrderRejected` and its kin).

`login_error(code, message)` reads `last_error()` after a failed
`initialize()` or `login()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from brokers.mt5 import constants as C
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

__all__ = [
    "LOGIN_CODES",
    "MAX_REQUOTE_ATTEMPTS",
    "OUTCOME_UNKNOWN",
    "RETCODES",
    "RETRY_WITH_NEW_PRICE",
    "SUCCESS",
    "LoginCode",
    "Requote",
    "Retcode",
    "check_error_for",
    "error_for",
    "is_success",
    "login_error",
]

# Sends of one request in all, the first included, while the server requotes.
MAX_REQUOTE_ATTEMPTS: Final = 3


class Requote(TemporaryVenueError):
    """The price moved or is missing: nothing was done; send again with a fresh tick.

    The agent re-reads the tick and rebuilds the request, with the same client
    order id, up to `MAX_REQUOTE_ATTEMPTS` sends in all.
    """

    retry_with_new_price = True


@dataclass(frozen=True, slots=True)
class Retcode:
    """One documented trade server return code.

    `error` is None when the request was carried out.
    """

    code: int
    name: str
    text: str
    error: type[VenueError] | None

    def message(self, comment: str) -> str:
        return _message(self.code, self.name, self.text, comment)


def _message(code: int, name: str, text: str, comment: str) -> str:
    comment = comment.strip()
    return f"MT5 {code} {name}: {text}" + (f" ({comment})" if comment else "")


_ROWS = (
    Retcode(C.TRADE_RETCODE_REQUOTE, "REQUOTE", "requote: the price moved", Requote),
    Retcode(C.TRADE_RETCODE_REJECT, "REJECT", "the request was rejected", OrderRejected),
    Retcode(
        C.TRADE_RETCODE_CANCEL, "CANCEL", "the request was cancelled on the terminal", OrderRejected
    ),
    Retcode(C.TRADE_RETCODE_PLACED, "PLACED", "order placed", None),
    Retcode(C.TRADE_RETCODE_DONE, "DONE", "request completed", None),
    Retcode(
        C.TRADE_RETCODE_DONE_PARTIAL, "DONE_PARTIAL", "only part of the volume was filled", None
    ),
    Retcode(
        C.TRADE_RETCODE_ERROR,
        "ERROR",
        "request processing error; the request may have been carried out",
        VenueUnavailable,
    ),
    Retcode(
        C.TRADE_RETCODE_TIMEOUT,
        "TIMEOUT",
        "the request timed out; it may have been carried out",
        VenueUnavailable,
    ),
    Retcode(C.TRADE_RETCODE_INVALID, "INVALID", "invalid request", OrderRejected),
    Retcode(C.TRADE_RETCODE_INVALID_VOLUME, "INVALID_VOLUME", "invalid volume", OrderRejected),
    Retcode(C.TRADE_RETCODE_INVALID_PRICE, "INVALID_PRICE", "invalid price", OrderRejected),
    Retcode(
        C.TRADE_RETCODE_INVALID_STOPS,
        "INVALID_STOPS",
        "invalid stop loss or take profit",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_TRADE_DISABLED,
        "TRADE_DISABLED",
        "trading is disabled for this account or symbol (an investor password is read-only)",
        PermissionRefused,
    ),
    Retcode(C.TRADE_RETCODE_MARKET_CLOSED, "MARKET_CLOSED", "the market is closed", OrderRejected),
    Retcode(C.TRADE_RETCODE_NO_MONEY, "NO_MONEY", "not enough money", InsufficientBalance),
    Retcode(C.TRADE_RETCODE_PRICE_CHANGED, "PRICE_CHANGED", "the price changed", Requote),
    Retcode(C.TRADE_RETCODE_PRICE_OFF, "PRICE_OFF", "no quotes to process the request", Requote),
    Retcode(
        C.TRADE_RETCODE_INVALID_EXPIRATION,
        "INVALID_EXPIRATION",
        "invalid order expiration",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_ORDER_CHANGED,
        "ORDER_CHANGED",
        "the order's state changed meanwhile",
        TemporaryVenueError,
    ),
    Retcode(
        C.TRADE_RETCODE_TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", "too many requests", RateLimited
    ),
    Retcode(C.TRADE_RETCODE_NO_CHANGES, "NO_CHANGES", "already as requested", None),
    Retcode(
        C.TRADE_RETCODE_SERVER_DISABLES_AT,
        "SERVER_DISABLES_AT",
        "algorithmic trading is disabled by the server",
        PermissionRefused,
    ),
    Retcode(
        C.TRADE_RETCODE_CLIENT_DISABLES_AT,
        "CLIENT_DISABLES_AT",
        "algorithmic trading is disabled in the terminal",
        PermissionRefused,
    ),
    Retcode(
        C.TRADE_RETCODE_LOCKED,
        "LOCKED",
        "the request is locked for processing; it may be carried out",
        VenueUnavailable,
    ),
    Retcode(
        C.TRADE_RETCODE_FROZEN,
        "FROZEN",
        "the order or position is frozen: the price is too close",
        TemporaryVenueError,
    ),
    Retcode(
        C.TRADE_RETCODE_INVALID_FILL,
        "INVALID_FILL",
        "the symbol does not allow this filling type",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_CONNECTION,
        "CONNECTION",
        "no connection with the trade server; the request may have been carried out",
        VenueUnavailable,
    ),
    Retcode(
        C.TRADE_RETCODE_ONLY_REAL,
        "ONLY_REAL",
        "the operation is allowed only on live accounts",
        PermissionRefused,
    ),
    Retcode(
        C.TRADE_RETCODE_LIMIT_ORDERS,
        "LIMIT_ORDERS",
        "the account's limit of pending orders is reached",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_LIMIT_VOLUME,
        "LIMIT_VOLUME",
        "the symbol's limit of order and position volume is reached",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_INVALID_ORDER,
        "INVALID_ORDER",
        "incorrect or prohibited order type",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_POSITION_CLOSED,
        "POSITION_CLOSED",
        "the position is already closed",
        OrderNotFound,
    ),
    Retcode(
        C.TRADE_RETCODE_INVALID_CLOSE_VOLUME,
        "INVALID_CLOSE_VOLUME",
        "the close volume exceeds the position's volume",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_CLOSE_ORDER_EXIST,
        "CLOSE_ORDER_EXIST",
        "a close order already exists for this position",
        DuplicateOrder,
    ),
    Retcode(
        C.TRADE_RETCODE_LIMIT_POSITIONS,
        "LIMIT_POSITIONS",
        "the account's limit of open positions is reached",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_REJECT_CANCEL,
        "REJECT_CANCEL",
        "the pending order's activation was rejected and the order cancelled",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_LONG_ONLY,
        "LONG_ONLY",
        "only long positions are allowed on this symbol",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_SHORT_ONLY,
        "SHORT_ONLY",
        "only short positions are allowed on this symbol",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_CLOSE_ONLY,
        "CLOSE_ONLY",
        "only closing positions is allowed on this symbol",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_FIFO_CLOSE,
        "FIFO_CLOSE",
        "positions on this account may only be closed first in, first out",
        OrderRejected,
    ),
    Retcode(
        C.TRADE_RETCODE_HEDGE_PROHIBITED,
        "HEDGE_PROHIBITED",
        "opposite positions on one symbol are not allowed on this account",
        OrderRejected,
    ),
)

RETCODES: Final[Mapping[int, Retcode]] = {row.code: row for row in _ROWS}

SUCCESS: Final = frozenset(row.code for row in _ROWS if row.error is None)
RETRY_WITH_NEW_PRICE: Final = frozenset(row.code for row in _ROWS if row.error is Requote)
OUTCOME_UNKNOWN: Final = frozenset(
    row.code for row in _ROWS if row.error is not None and row.error.outcome_unknown
)


def is_success(retcode: int) -> bool:
    return retcode in SUCCESS


def error_for(retcode: int, comment: str) -> VenueError | None:
    """The error for `order_send`'s answer, or None when the request was carried out.

    `comment` is `MqlTradeResult.comment`, the broker's own words, kept in the
    message. A code the documentation does not list is an unknown outcome.
    """
    row = RETCODES.get(retcode)
    if row is None:
        return VenueUnavailable(
            _message(
                retcode,
                "UNKNOWN",
                "an undocumented return code; the request may have been carried out",
                comment,
            )
        )
    if row.error is None:
        return None
    return row.error(row.message(comment))


def check_error_for(retcode: int, comment: str) -> VenueError | None:
    """The error for `order_check`'s answer, whose success code is 0."""
    return None if retcode == 0 else error_for(retcode, comment)


@dataclass(frozen=True, slots=True)
class LoginCode:
    """One documented `last_error()` code and what a failed login with it means."""

    code: int
    name: str
    text: str
    error: type[VenueError]


_LOGIN_ROWS = (
    LoginCode(C.RES_S_OK, "RES_S_OK", "the terminal refused without saying why", VenueUnavailable),
    LoginCode(C.RES_E_FAIL, "RES_E_FAIL", "the terminal could not connect", VenueUnavailable),
    LoginCode(
        C.RES_E_INVALID_PARAMS,
        "RES_E_INVALID_PARAMS",
        "the terminal refused the connection parameters (terminal path, login or server)",
        VenueError,
    ),
    LoginCode(
        C.RES_E_NO_MEMORY, "RES_E_NO_MEMORY", "the terminal is out of memory", TemporaryVenueError
    ),
    LoginCode(
        C.RES_E_NOT_FOUND,
        "RES_E_NOT_FOUND",
        "the server name is not known to the terminal",
        CredentialsRejected,
    ),
    LoginCode(
        C.RES_E_INVALID_VERSION,
        "RES_E_INVALID_VERSION",
        "the terminal and the MetaTrader5 package are different versions",
        VenueError,
    ),
    LoginCode(
        C.RES_E_AUTH_FAILED,
        "RES_E_AUTH_FAILED",
        "wrong login or password",
        CredentialsRejected,
    ),
    LoginCode(
        C.RES_E_UNSUPPORTED,
        "RES_E_UNSUPPORTED",
        "the terminal does not support this call",
        VenueError,
    ),
    LoginCode(
        C.RES_E_AUTO_TRADING_DISABLED,
        "RES_E_AUTO_TRADING_DISABLED",
        "algorithmic trading is disabled in the terminal",
        PermissionRefused,
    ),
    LoginCode(
        C.RES_E_INTERNAL_FAIL,
        "RES_E_INTERNAL_FAIL",
        "the terminal did not answer",
        VenueUnavailable,
    ),
    LoginCode(
        C.RES_E_INTERNAL_FAIL_SEND,
        "RES_E_INTERNAL_FAIL_SEND",
        "the request could not be sent to the terminal",
        VenueUnavailable,
    ),
    LoginCode(
        C.RES_E_INTERNAL_FAIL_RECEIVE,
        "RES_E_INTERNAL_FAIL_RECEIVE",
        "the terminal's answer was lost",
        VenueUnavailable,
    ),
    LoginCode(
        C.RES_E_INTERNAL_FAIL_INIT,
        "RES_E_INTERNAL_FAIL_INIT",
        "the terminal could not be started or found",
        VenueUnavailable,
    ),
    LoginCode(
        C.RES_E_INTERNAL_FAIL_CONNECT,
        "RES_E_INTERNAL_FAIL_CONNECT",
        "no connection to the terminal",
        VenueUnavailable,
    ),
    LoginCode(
        C.RES_E_INTERNAL_FAIL_TIMEOUT,
        "RES_E_INTERNAL_FAIL_TIMEOUT",
        "the terminal did not answer in time",
        VenueUnavailable,
    ),
)

LOGIN_CODES: Final[Mapping[int, LoginCode]] = {row.code: row for row in _LOGIN_ROWS}


def login_error(code: int, message: str) -> VenueError:
    """The error for `last_error()` after `initialize()` or `login()` returned False.

    The message starts with a sentence the site can show ("wrong login or
    password") and ends with the code and the terminal's own words.
    """
    row = LOGIN_CODES.get(code)
    if row is None:
        return VenueUnavailable(_login_message("the terminal could not log in", code, "", message))
    return row.error(_login_message(row.text, code, row.name, message))


def _login_message(text: str, code: int, name: str, message: str) -> str:
    detail = " ".join(part for part in (str(code), name) if part)
    message = message.strip()
    return f"{text} (MT5 {detail}" + (f": {message})" if message else ")")
