"""Every documented MT5 return code maps to the right project error, temporary or permanent."""

import subprocess
import sys
from pathlib import Path

import pytest

from brokers.mt5 import constants
from brokers.mt5.retcodes import (
    LOGIN_CODES,
    MAX_REQUOTE_ATTEMPTS,
    OUTCOME_UNKNOWN,
    RETCODES,
    RETRY_WITH_NEW_PRICE,
    SUCCESS,
    Requote,
    check_error_for,
    error_for,
    is_success,
    login_error,
)
from brokers.venues import base

# The MQL5 reference, "Trade Server Return Codes": every code and its name.
DOCUMENTED = {
    10004: "REQUOTE",
    10006: "REJECT",
    10007: "CANCEL",
    10008: "PLACED",
    10009: "DONE",
    10010: "DONE_PARTIAL",
    10011: "ERROR",
    10012: "TIMEOUT",
    10013: "INVALID",
    10014: "INVALID_VOLUME",
    10015: "INVALID_PRICE",
    10016: "INVALID_STOPS",
    10017: "TRADE_DISABLED",
    10018: "MARKET_CLOSED",
    10019: "NO_MONEY",
    10020: "PRICE_CHANGED",
    10021: "PRICE_OFF",
    10022: "INVALID_EXPIRATION",
    10023: "ORDER_CHANGED",
    10024: "TOO_MANY_REQUESTS",
    10025: "NO_CHANGES",
    10026: "SERVER_DISABLES_AT",
    10027: "CLIENT_DISABLES_AT",
    10028: "LOCKED",
    10029: "FROZEN",
    10030: "INVALID_FILL",
    10031: "CONNECTION",
    10032: "ONLY_REAL",
    10033: "LIMIT_ORDERS",
    10034: "LIMIT_VOLUME",
    10035: "INVALID_ORDER",
    10036: "POSITION_CLOSED",
    10038: "INVALID_CLOSE_VOLUME",
    10039: "CLOSE_ORDER_EXIST",
    10040: "LIMIT_POSITIONS",
    10041: "REJECT_CANCEL",
    10042: "LONG_ONLY",
    10043: "SHORT_ONLY",
    10044: "CLOSE_ONLY",
    10045: "FIFO_CLOSE",
    10046: "HEDGE_PROHIBITED",
}

OK = None  # the request was carried out
# code → (project class, permanent, outcome unknown); OK for success.
EXPECTED = {
    10004: (Requote, False, False),
    10006: (base.OrderRejected, True, False),
    10007: (base.OrderRejected, True, False),
    10008: OK,
    10009: OK,
    10010: OK,
    10011: (base.VenueUnavailable, False, True),
    10012: (base.VenueUnavailable, False, True),
    10013: (base.OrderRejected, True, False),
    10014: (base.OrderRejected, True, False),
    10015: (base.OrderRejected, True, False),
    10016: (base.OrderRejected, True, False),
    10017: (base.PermissionRefused, True, False),
    10018: (base.OrderRejected, True, False),
    10019: (base.InsufficientBalance, True, False),
    10020: (Requote, False, False),
    10021: (Requote, False, False),
    10022: (base.OrderRejected, True, False),
    10023: (base.TemporaryVenueError, False, False),
    10024: (base.RateLimited, False, False),
    10025: OK,
    10026: (base.PermissionRefused, True, False),
    10027: (base.PermissionRefused, True, False),
    10028: (base.VenueUnavailable, False, True),
    10029: (base.TemporaryVenueError, False, False),
    10030: (base.OrderRejected, True, False),
    10031: (base.VenueUnavailable, False, True),
    10032: (base.PermissionRefused, True, False),
    10033: (base.OrderRejected, True, False),
    10034: (base.OrderRejected, True, False),
    10035: (base.OrderRejected, True, False),
    10036: (base.OrderNotFound, True, False),
    10038: (base.OrderRejected, True, False),
    10039: (base.DuplicateOrder, True, False),
    10040: (base.OrderRejected, True, False),
    10041: (base.OrderRejected, True, False),
    10042: (base.OrderRejected, True, False),
    10043: (base.OrderRejected, True, False),
    10044: (base.OrderRejected, True, False),
    10045: (base.OrderRejected, True, False),
    10046: (base.OrderRejected, True, False),
}


def test_every_documented_retcode_is_in_the_table_under_its_name():
    assert set(EXPECTED) == set(DOCUMENTED)
    assert set(RETCODES) == set(DOCUMENTED), "the table lists exactly the documented codes"
    for code, name in DOCUMENTED.items():
        assert RETCODES[code].name == name
        assert getattr(constants, f"TRADE_RETCODE_{name}") == code


def test_the_constants_module_holds_no_retcode_the_docs_do_not():
    names = {n for n in vars(constants) if n.startswith("TRADE_RETCODE_")}
    assert names == {f"TRADE_RETCODE_{name}" for name in DOCUMENTED.values()}


@pytest.mark.parametrize(
    "code", sorted(DOCUMENTED), ids=[DOCUMENTED[c] for c in sorted(DOCUMENTED)]
)
def test_each_retcode_maps_to_its_project_error(code):
    error = error_for(code, "  broker says so ")
    expected = EXPECTED[code]
    if expected is OK:
        assert error is None
        assert is_success(code)
        return
    project_error, permanent, unknown = expected
    assert type(error) is project_error
    assert error.permanent is permanent
    assert error.outcome_unknown is unknown
    assert error.message.startswith(f"MT5 {code} {DOCUMENTED[code]}: ")
    assert error.message.endswith(" (broker says so)")
    assert not is_success(code)


def test_the_message_reads_as_a_sentence_and_drops_an_empty_comment():
    assert error_for(10019, "No money").message == "MT5 10019 NO_MONEY: not enough money (No money)"
    assert error_for(10019, "").message == "MT5 10019 NO_MONEY: not enough money"


def test_requotes_ask_for_a_fresh_price_a_bounded_number_of_times():
    assert RETRY_WITH_NEW_PRICE == {10004, 10020, 10021}
    for code in RETRY_WITH_NEW_PRICE:
        error = error_for(code, "")
        assert isinstance(error, Requote) and error.retry_with_new_price
        assert isinstance(error, base.TemporaryVenueError) and not error.outcome_unknown
    assert MAX_REQUOTE_ATTEMPTS == 3


def test_the_derived_sets_agree_with_the_table():
    assert {10008, 10009, 10010, 10025} == SUCCESS
    assert {10011, 10012, 10028, 10031} == OUTCOME_UNKNOWN


@pytest.mark.parametrize("code", [0, 1, 10005, 10037, 10047, 99999, -1])
def test_an_undocumented_retcode_is_an_unknown_outcome(code):
    error = error_for(code, "odd")
    assert type(error) is base.VenueUnavailable
    assert error.outcome_unknown and not error.permanent
    assert error.message.startswith(f"MT5 {code} UNKNOWN: ") and error.message.endswith("(odd)")


def test_order_check_succeeds_with_zero_and_fails_like_order_send():
    assert check_error_for(0, "Done") is None
    assert type(check_error_for(10019, "No money")) is base.InsufficientBalance
    assert type(check_error_for(10014, "Invalid volume")) is base.OrderRejected


# last_error() after a failed initialize()/login(): code → (class, permanent, site sentence)
LOGIN_EXPECTED = {
    -6: (base.CredentialsRejected, True, "wrong login or password"),
    -4: (base.CredentialsRejected, True, "the server name is not known to the terminal"),
    -8: (base.PermissionRefused, True, "algorithmic trading is disabled in the terminal"),
    -2: (base.VenueError, True, "the terminal refused the connection parameters"),
    -5: (base.VenueError, True, "the terminal and the MetaTrader5 package are different"),
    -7: (base.VenueError, True, "the terminal does not support this call"),
    -3: (base.TemporaryVenueError, False, "the terminal is out of memory"),
    -1: (base.VenueUnavailable, False, "the terminal could not connect"),
    1: (base.VenueUnavailable, False, "the terminal refused without saying why"),
    -10000: (base.VenueUnavailable, False, "the terminal did not answer"),
    -10001: (base.VenueUnavailable, False, "the request could not be sent to the terminal"),
    -10002: (base.VenueUnavailable, False, "the terminal's answer was lost"),
    -10003: (base.VenueUnavailable, False, "the terminal could not be started or found"),
    -10004: (base.VenueUnavailable, False, "no connection to the terminal"),
    -10005: (base.VenueUnavailable, False, "the terminal did not answer in time"),
}


def test_every_last_error_code_is_covered():
    documented = {
        v for n, v in vars(constants).items() if n.startswith("RES_") and isinstance(v, int)
    }
    assert len(documented) == 15
    assert set(LOGIN_CODES) == documented == set(LOGIN_EXPECTED)
    for code, row in LOGIN_CODES.items():
        assert getattr(constants, row.name) == code


@pytest.mark.parametrize("code", sorted(LOGIN_EXPECTED))
def test_each_login_failure_has_a_sentence_for_the_site(code):
    project_error, permanent, sentence = LOGIN_EXPECTED[code]
    error = login_error(code, "Terminal: said so")
    assert type(error) is project_error
    assert error.permanent is permanent
    assert error.message.startswith(sentence)
    assert f"(MT5 {code} {LOGIN_CODES[code].name}: Terminal: said so)" in error.message


def test_an_unknown_login_code_is_temporary_and_keeps_the_terminals_words():
    error = login_error(-42, "")
    assert type(error) is base.VenueUnavailable
    assert error.message == "the terminal could not log in (MT5 -42)"
    assert login_error(-6, "").message == "wrong login or password (MT5 -6 RES_E_AUTH_FAILED)"


def test_the_agent_modules_import_neither_django_nor_metatrader5():
    code = (
        "import sys\n"
        "import brokers.mt5.constants, brokers.mt5.retcodes, brokers.mt5.requests\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'MetaTrader5', 'ccxt', 'redis', 'celery'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
