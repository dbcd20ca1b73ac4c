"""TEST STAND-IN for the Windows-only `MetaTrader5` Python package.

This is NOT MetaQuotes' package and NOT an emulator for product use. The real
package ships Windows wheels only and talks to a running MetaTrader 5 terminal,
so neither can exist on our Linux machines and CI. Tests put
`tests/mt5_standin` first on a process's `PYTHONPATH`; the product's MT5 agent
then does `import MetaTrader5` as it would on Windows and gets this module.
Product code never imports it by any other name, and nothing outside `tests/`
imports it at all.

The terminal it stands for is a JSON state file named by `MT5_STANDIN_STATE`
(see `_store.py`), so the terminal outlives the agent process like a real one,
and tests drive the other side (the broker's server, the account owner's own
trades, connection losses, injected failures) through
`tests/mt5_standin/control.py`.

Reproduced from the documentation (https://www.mql5.com/en/docs/python_metatrader5,
pages mt5initialize_py, mt5login_py, mt5shutdown_py, mt5version_py,
mt5lasterror_py, mt5terminalinfo_py, mt5accountinfo_py, mt5symbolinfo_py,
mt5symbolinfotick_py, mt5symbolselect_py, mt5symbolsget_py, mt5positionsget_py,
mt5ordersget_py, mt5historyordersget_py, mt5historydealsget_py,
mt5ordercheck_py, mt5ordersend_py; and the MQL5 reference pages for
MqlTradeRequest, MqlTradeResult, MqlTradeCheckResult, ENUM_TRADE_RETURN_CODES,
ENUM_ORDER_TYPE_FILLING and the MetaTrader 5 Help page 'Fill Policy'):
- the functions below, with the documented parameters; result types are named
  tuples with the documented fields in the documented order; constants with
  the package's names and values (the package does not export
  SYMBOL_FILLING_*: `dir(MetaTrader5)` has only ORDER_FILLING_*, so neither do we;
  `control.py` has the terminal's flag values);
- every call fails (None / False, `last_error()` = (-10004, 'No IPC
  connection')) before a successful `initialize()` and after `shutdown()` or a
  terminal restart; `initialize(login=..., password=..., server=...)` and
  `login()` check the credentials: wrong password, unknown login or server give
  False and (-6, 'Terminal: Authorization failed'); the investor (read-only)
  password logs in with `account_info().trade_allowed` False and trade
  requests refused with 10017 TRADE_DISABLED;
- `order_send` / `order_check` validate like a trade server: symbol known and
  selected, trade mode, volume (min, max, step: 10014), filling mode against the
  symbol's `filling_mode` flags and execution mode (10030), requotes beyond
  `deviation` under Instant execution (10004), normalized prices and stops on the
  right side at `trade_stops_level` (10015, 10016), free margin (10019), closing
  a closed position (10036) or more than it holds (10038), no changes (10025),
  Algo Trading off (10027), no connection (10031);
- hedging accounts: every deal opens its own position whose ticket and
  `identifier` are the opening order's ticket; closes name the position;
  partial closes reduce its volume; deals IN/OUT; history orders and deals
  with times (trade server time, ms); pending orders placed, modified, removed,
  expired and filled when the price reaches them (limit at its price, stop at
  the market), the position keeping the order's ticket; SL/TP reached closes
  with a '[sl 1.08000]' / '[tp ...]' comment; `magic` and `comment` kept on
  orders, deals and positions; `price_current` and `profit` follow the price;
- request arguments checked before anything is sent, as the package does:
  a field of the wrong type (None, str for a number, Decimal...) or a comment
  longer than the terminal accepts returns None with (-2, 'Invalid "<field>"
  argument'); positional filters to positions_get / orders_get return None
  with (-2, 'Unnamed arguments not allowed').

Not reproduced: netting and exchange accounts, stop-limit orders, close-by,
partial fills and liquidity, swaps, commissions, stop-outs, trading sessions,
bars and ticks history (copy_rates_* / copy_ticks_*), market depth; calling one
of those raises NotImplementedError rather than pretending.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

from . import _server as S
from ._store import Txn, store_for

__version__ = "5.0.5735+standin"
__author__ = "TradoSphere tests: a stand-in for MetaQuotes' package"
STANDIN = True  # not in the real package: lets a test assert which module it got

# timeframes
TIMEFRAME_M1, TIMEFRAME_M5, TIMEFRAME_M15, TIMEFRAME_M30 = 1, 5, 15, 30
TIMEFRAME_H1, TIMEFRAME_H4, TIMEFRAME_D1 = 1 | 0x4000, 4 | 0x4000, 24 | 0x4000
TIMEFRAME_W1, TIMEFRAME_MN1 = 1 | 0x8000, 1 | 0xC000
# tick flags
TICK_FLAG_BID, TICK_FLAG_ASK, TICK_FLAG_LAST = 0x02, 0x04, 0x08
TICK_FLAG_VOLUME, TICK_FLAG_BUY, TICK_FLAG_SELL = 0x10, 0x20, 0x40
# ENUM_POSITION_TYPE, ENUM_POSITION_REASON
POSITION_TYPE_BUY, POSITION_TYPE_SELL = 0, 1
POSITION_REASON_CLIENT, POSITION_REASON_MOBILE = 0, 1
POSITION_REASON_WEB, POSITION_REASON_EXPERT = 2, 3
# ENUM_ORDER_TYPE
ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1
ORDER_TYPE_BUY_LIMIT = 2
ORDER_TYPE_SELL_LIMIT = 3
ORDER_TYPE_BUY_STOP = 4
ORDER_TYPE_SELL_STOP = 5
ORDER_TYPE_BUY_STOP_LIMIT = 6
ORDER_TYPE_SELL_STOP_LIMIT = 7
ORDER_TYPE_CLOSE_BY = 8
# ENUM_ORDER_STATE
ORDER_STATE_STARTED = 0
ORDER_STATE_PLACED = 1
ORDER_STATE_CANCELED = 2
ORDER_STATE_PARTIAL = 3
ORDER_STATE_FILLED = 4
ORDER_STATE_REJECTED = 5
ORDER_STATE_EXPIRED = 6
ORDER_STATE_REQUEST_ADD = 7
ORDER_STATE_REQUEST_MODIFY = 8
ORDER_STATE_REQUEST_CANCEL = 9
# ENUM_ORDER_TYPE_FILLING
ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
ORDER_FILLING_BOC = 3
# ENUM_ORDER_TYPE_TIME
ORDER_TIME_GTC = 0
ORDER_TIME_DAY = 1
ORDER_TIME_SPECIFIED = 2
ORDER_TIME_SPECIFIED_DAY = 3
# ENUM_ORDER_REASON
ORDER_REASON_CLIENT = 0
ORDER_REASON_MOBILE = 1
ORDER_REASON_WEB = 2
ORDER_REASON_EXPERT = 3
ORDER_REASON_SL = 4
ORDER_REASON_TP = 5
ORDER_REASON_SO = 6
# ENUM_DEAL_TYPE
DEAL_TYPE_BUY = 0
DEAL_TYPE_SELL = 1
DEAL_TYPE_BALANCE = 2
DEAL_TYPE_CREDIT = 3
DEAL_TYPE_CHARGE = 4
DEAL_TYPE_CORRECTION = 5
DEAL_TYPE_BONUS = 6
DEAL_TYPE_COMMISSION = 7
DEAL_TYPE_COMMISSION_DAILY = 8
DEAL_TYPE_COMMISSION_MONTHLY = 9
DEAL_TYPE_COMMISSION_AGENT_DAILY = 10
DEAL_TYPE_COMMISSION_AGENT_MONTHLY = 11
DEAL_TYPE_INTEREST = 12
DEAL_TYPE_BUY_CANCELED = 13
DEAL_TYPE_SELL_CANCELED = 14
DEAL_DIVIDEND = 15
DEAL_DIVIDEND_FRANKED = 16
DEAL_TAX = 17
# ENUM_DEAL_ENTRY
DEAL_ENTRY_IN = 0
DEAL_ENTRY_OUT = 1
DEAL_ENTRY_INOUT = 2
DEAL_ENTRY_OUT_BY = 3
# ENUM_DEAL_REASON
DEAL_REASON_CLIENT = 0
DEAL_REASON_MOBILE = 1
DEAL_REASON_WEB = 2
DEAL_REASON_EXPERT = 3
DEAL_REASON_SL = 4
DEAL_REASON_TP = 5
DEAL_REASON_SO = 6
DEAL_REASON_ROLLOVER = 7
DEAL_REASON_VMARGIN = 8
DEAL_REASON_SPLIT = 9
# ENUM_TRADE_REQUEST_ACTIONS
TRADE_ACTION_DEAL = 1
TRADE_ACTION_PENDING = 5
TRADE_ACTION_SLTP = 6
TRADE_ACTION_MODIFY = 7
TRADE_ACTION_REMOVE = 8
TRADE_ACTION_CLOSE_BY = 10
# ENUM_SYMBOL_CHART_MODE, ENUM_SYMBOL_CALC_MODE
SYMBOL_CHART_MODE_BID = 0
SYMBOL_CHART_MODE_LAST = 1
SYMBOL_CALC_MODE_FOREX = 0
SYMBOL_CALC_MODE_FUTURES = 1
SYMBOL_CALC_MODE_CFD = 2
SYMBOL_CALC_MODE_CFDINDEX = 3
SYMBOL_CALC_MODE_CFDLEVERAGE = 4
SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE = 5
SYMBOL_CALC_MODE_EXCH_STOCKS = 32
SYMBOL_CALC_MODE_EXCH_FUTURES = 33
SYMBOL_CALC_MODE_EXCH_OPTIONS = 34
SYMBOL_CALC_MODE_EXCH_OPTIONS_MARGIN = 36
SYMBOL_CALC_MODE_EXCH_BONDS = 37
SYMBOL_CALC_MODE_EXCH_STOCKS_MOEX = 38
SYMBOL_CALC_MODE_EXCH_BONDS_MOEX = 39
SYMBOL_CALC_MODE_SERV_COLLATERAL = 64
# ENUM_SYMBOL_TRADE_MODE
SYMBOL_TRADE_MODE_DISABLED = 0
SYMBOL_TRADE_MODE_LONGONLY = 1
SYMBOL_TRADE_MODE_SHORTONLY = 2
SYMBOL_TRADE_MODE_CLOSEONLY = 3
SYMBOL_TRADE_MODE_FULL = 4
# ENUM_SYMBOL_TRADE_EXECUTION
SYMBOL_TRADE_EXECUTION_REQUEST = 0
SYMBOL_TRADE_EXECUTION_INSTANT = 1
SYMBOL_TRADE_EXECUTION_MARKET = 2
SYMBOL_TRADE_EXECUTION_EXCHANGE = 3
# ENUM_SYMBOL_SWAP_MODE
SYMBOL_SWAP_MODE_DISABLED = 0
SYMBOL_SWAP_MODE_POINTS = 1
SYMBOL_SWAP_MODE_CURRENCY_SYMBOL = 2
SYMBOL_SWAP_MODE_CURRENCY_MARGIN = 3
SYMBOL_SWAP_MODE_CURRENCY_DEPOSIT = 4
SYMBOL_SWAP_MODE_INTEREST_CURRENT = 5
SYMBOL_SWAP_MODE_INTEREST_OPEN = 6
SYMBOL_SWAP_MODE_REOPEN_CURRENT = 7
SYMBOL_SWAP_MODE_REOPEN_BID = 8
# ENUM_DAY_OF_WEEK
DAY_OF_WEEK_SUNDAY = 0
DAY_OF_WEEK_MONDAY = 1
DAY_OF_WEEK_TUESDAY = 2
DAY_OF_WEEK_WEDNESDAY = 3
DAY_OF_WEEK_THURSDAY = 4
DAY_OF_WEEK_FRIDAY = 5
DAY_OF_WEEK_SATURDAY = 6
# ENUM_SYMBOL_ORDER_GTC_MODE, ENUM_SYMBOL_OPTION_RIGHT, ENUM_SYMBOL_OPTION_MODE
SYMBOL_ORDERS_GTC = 0
SYMBOL_ORDERS_DAILY = 1
SYMBOL_ORDERS_DAILY_NO_STOPS = 2
SYMBOL_OPTION_RIGHT_CALL = 0
SYMBOL_OPTION_RIGHT_PUT = 1
SYMBOL_OPTION_MODE_EUROPEAN = 0
SYMBOL_OPTION_MODE_AMERICAN = 1
# ENUM_ACCOUNT_TRADE_MODE, ENUM_ACCOUNT_STOPOUT_MODE, ENUM_ACCOUNT_MARGIN_MODE
ACCOUNT_TRADE_MODE_DEMO = 0
ACCOUNT_TRADE_MODE_CONTEST = 1
ACCOUNT_TRADE_MODE_REAL = 2
ACCOUNT_STOPOUT_MODE_PERCENT = 0
ACCOUNT_STOPOUT_MODE_MONEY = 1
ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0
ACCOUNT_MARGIN_MODE_EXCHANGE = 1
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2
# ENUM_BOOK_TYPE
BOOK_TYPE_SELL = 1
BOOK_TYPE_BUY = 2
BOOK_TYPE_SELL_MARKET = 3
BOOK_TYPE_BUY_MARKET = 4
# order_send / order_check return codes (ENUM_TRADE_RETURN_CODES)
TRADE_RETCODE_REQUOTE = 10004
TRADE_RETCODE_REJECT = 10006
TRADE_RETCODE_CANCEL = 10007
TRADE_RETCODE_PLACED = 10008
TRADE_RETCODE_DONE = 10009
TRADE_RETCODE_DONE_PARTIAL = 10010
TRADE_RETCODE_ERROR = 10011
TRADE_RETCODE_TIMEOUT = 10012
TRADE_RETCODE_INVALID = 10013
TRADE_RETCODE_INVALID_VOLUME = 10014
TRADE_RETCODE_INVALID_PRICE = 10015
TRADE_RETCODE_INVALID_STOPS = 10016
TRADE_RETCODE_TRADE_DISABLED = 10017
TRADE_RETCODE_MARKET_CLOSED = 10018
TRADE_RETCODE_NO_MONEY = 10019
TRADE_RETCODE_PRICE_CHANGED = 10020
TRADE_RETCODE_PRICE_OFF = 10021
TRADE_RETCODE_INVALID_EXPIRATION = 10022
TRADE_RETCODE_ORDER_CHANGED = 10023
TRADE_RETCODE_TOO_MANY_REQUESTS = 10024
TRADE_RETCODE_NO_CHANGES = 10025
TRADE_RETCODE_SERVER_DISABLES_AT = 10026
TRADE_RETCODE_CLIENT_DISABLES_AT = 10027
TRADE_RETCODE_LOCKED = 10028
TRADE_RETCODE_FROZEN = 10029
TRADE_RETCODE_INVALID_FILL = 10030
TRADE_RETCODE_CONNECTION = 10031
TRADE_RETCODE_ONLY_REAL = 10032
TRADE_RETCODE_LIMIT_ORDERS = 10033
TRADE_RETCODE_LIMIT_VOLUME = 10034
TRADE_RETCODE_INVALID_ORDER = 10035
TRADE_RETCODE_POSITION_CLOSED = 10036
TRADE_RETCODE_INVALID_CLOSE_VOLUME = 10038
TRADE_RETCODE_CLOSE_ORDER_EXIST = 10039
TRADE_RETCODE_LIMIT_POSITIONS = 10040
TRADE_RETCODE_REJECT_CANCEL = 10041
TRADE_RETCODE_LONG_ONLY = 10042
TRADE_RETCODE_SHORT_ONLY = 10043
TRADE_RETCODE_CLOSE_ONLY = 10044
TRADE_RETCODE_FIFO_CLOSE = 10045
# last_error() codes
RES_S_OK = 1
RES_E_FAIL = -1
RES_E_INVALID_PARAMS = -2
RES_E_NO_MEMORY = -3
RES_E_NOT_FOUND = -4
RES_E_INVALID_VERSION = -5
RES_E_AUTH_FAILED = -6
RES_E_UNSUPPORTED = -7
RES_E_AUTO_TRADING_DISABLED = -8
RES_E_INTERNAL_FAIL = -10000
RES_E_INTERNAL_FAIL_SEND = -10001
RES_E_INTERNAL_FAIL_RECEIVE = -10002
RES_E_INTERNAL_FAIL_INIT = -10003
RES_E_INTERNAL_FAIL_CONNECT = -10004
RES_E_INTERNAL_FAIL_TIMEOUT = -10005


# --- result types: the documented fields, in the documented order -------------


class TerminalInfo(NamedTuple):
    community_account: bool
    community_connection: bool
    connected: bool
    dlls_allowed: bool
    trade_allowed: bool
    tradeapi_disabled: bool
    email_enabled: bool
    ftp_enabled: bool
    notifications_enabled: bool
    mqid: bool
    build: int
    maxbars: int
    codepage: int
    ping_last: int
    community_balance: float
    retransmission: float
    company: str
    name: str
    language: str
    path: str
    data_path: str
    commondata_path: str


class AccountInfo(NamedTuple):
    login: int
    trade_mode: int
    leverage: int
    limit_orders: int
    margin_so_mode: int
    trade_allowed: bool
    trade_expert: bool
    margin_mode: int
    currency_digits: int
    fifo_close: bool
    balance: float
    credit: float
    profit: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float
    margin_so_call: float
    margin_so_so: float
    margin_initial: float
    margin_maintenance: float
    assets: float
    liabilities: float
    commission_blocked: float
    name: str
    server: str
    currency: str
    company: str


class SymbolInfo(NamedTuple):
    custom: bool
    chart_mode: int
    select: bool
    visible: bool
    session_deals: int
    session_buy_orders: int
    session_sell_orders: int
    volume: int
    volumehigh: int
    volumelow: int
    time: int
    digits: int
    spread: int
    spread_float: bool
    ticks_bookdepth: int
    trade_calc_mode: int
    trade_mode: int
    start_time: int
    expiration_time: int
    trade_stops_level: int
    trade_freeze_level: int
    trade_exemode: int
    swap_mode: int
    swap_rollover3days: int
    margin_hedged_use_leg: bool
    expiration_mode: int
    filling_mode: int
    order_mode: int
    order_gtc_mode: int
    option_mode: int
    option_right: int
    bid: float
    bidhigh: float
    bidlow: float
    ask: float
    askhigh: float
    asklow: float
    last: float
    lasthigh: float
    lastlow: float
    volume_real: float
    volumehigh_real: float
    volumelow_real: float
    option_strike: float
    point: float
    trade_tick_value: float
    trade_tick_value_profit: float
    trade_tick_value_loss: float
    trade_tick_size: float
    trade_contract_size: float
    trade_accrued_interest: float
    trade_face_value: float
    trade_liquidity_rate: float
    volume_min: float
    volume_max: float
    volume_step: float
    volume_limit: float
    swap_long: float
    swap_short: float
    margin_initial: float
    margin_maintenance: float
    session_volume: float
    session_turnover: float
    session_interest: float
    session_buy_orders_volume: float
    session_sell_orders_volume: float
    session_open: float
    session_close: float
    session_aw: float
    session_price_settlement: float
    session_price_limit_min: float
    session_price_limit_max: float
    margin_hedged: float
    price_change: float
    price_volatility: float
    price_theoretical: float
    price_greeks_delta: float
    price_greeks_theta: float
    price_greeks_gamma: float
    price_greeks_vega: float
    price_greeks_rho: float
    price_greeks_omega: float
    price_sensitivity: float
    basis: str
    category: str
    currency_base: str
    currency_profit: str
    currency_margin: str
    bank: str
    description: str
    exchange: str
    formula: str
    isin: str
    name: str
    page: str
    path: str


class Tick(NamedTuple):
    time: int
    bid: float
    ask: float
    last: float
    volume: int
    time_msc: int
    flags: int
    volume_real: float


class TradePosition(NamedTuple):
    ticket: int
    time: int
    time_msc: int
    time_update: int
    time_update_msc: int
    type: int
    magic: int
    identifier: int
    reason: int
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    swap: float
    profit: float
    symbol: str
    comment: str
    external_id: str


class TradeOrder(NamedTuple):
    ticket: int
    time_setup: int
    time_setup_msc: int
    time_done: int
    time_done_msc: int
    time_expiration: int
    type: int
    type_time: int
    type_filling: int
    state: int
    magic: int
    position_id: int
    position_by_id: int
    reason: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    price_stoplimit: float
    symbol: str
    comment: str
    external_id: str


class TradeDeal(NamedTuple):
    ticket: int
    order: int
    time: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str


class TradeRequest(NamedTuple):
    action: int
    magic: int
    order: int
    symbol: str
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type: int
    type_filling: int
    type_time: int
    expiration: int
    comment: str
    position: int
    position_by: int


class OrderSendResult(NamedTuple):
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    retcode_external: int
    request: TradeRequest


class OrderCheckResult(NamedTuple):
    retcode: int
    balance: float
    equity: float
    profit: float
    margin: float
    margin_free: float
    margin_level: float
    comment: str
    request: TradeRequest


# --- the connection of this process to the terminal ----------------------------

_NO_IPC = (RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
_NOT_FOUND_TERMINAL = (
    RES_E_INTERNAL_FAIL_INIT,
    "IPC initialize failed, MetaTrader 5 x64 not found",
)
_AUTH_FAILED = (RES_E_AUTH_FAILED, "Terminal: Authorization failed")
_TIMEOUT = (RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
_UNNAMED = (RES_E_INVALID_PARAMS, "Unnamed arguments not allowed")
_CALL_FAILED = (RES_E_FAIL, "Terminal: Call failed")
_NOT_FOUND = (RES_E_NOT_FOUND, "Terminal: Not found")

_session: dict[str, Any] = {"path": None, "epoch": None}
_last_error: tuple[int, str] = (RES_S_OK, "Success")


class _Err:
    """A failed call: what last_error() says and what the function returns."""

    def __init__(self, error: tuple[int, str], value: Any = None) -> None:
        self.error = error
        self.value = value


def _run(fn: Callable[[Txn], Any], failed: Any = None) -> Any:
    """Run `fn` in one locked transaction of the connected terminal."""
    global _last_error
    path, epoch = _session["path"], _session["epoch"]
    if path is None:
        _last_error = _NO_IPC
        return failed
    try:
        with store_for(path).transaction() as txn:
            term = txn.state["terminal"]
            if not term["running"] or term["epoch"] != epoch:
                out: Any = _Err(_NO_IPC, failed)
            else:
                if S.housekeep(txn.state):
                    txn.dirty = True
                out = fn(txn)
    except FileNotFoundError:
        out = _Err(_NO_IPC, failed)
    if isinstance(out, _Err):
        if out.error == _NO_IPC:
            _session.update(path=None, epoch=None)
        _last_error = out.error
        return out.value
    _last_error = (RES_S_OK, "Success")
    return out


def _f(value: Any) -> float:
    return float(S.dec(value))


def _account(state: dict[str, Any]) -> dict[str, Any] | None:
    login = state["terminal"]["login"]
    return None if login is None else S.view(state)["accounts"][str(login)]


def _authorize(txn: Txn, login: Any, password: Any, server: Any) -> tuple[int, str] | None:
    if not isinstance(login, int) or isinstance(login, bool):
        return (RES_E_INVALID_PARAMS, 'Invalid "login" argument')
    state = txn.state
    term = state["terminal"]
    acc = state["server"]["accounts"].get(str(login))
    if acc is None or (server is not None and server != acc["server"]):
        return _AUTH_FAILED
    if password is None:  # the terminal may remember the account it is logged in to
        if term["login"] != login:
            return _AUTH_FAILED
        investor = term["investor"]
    elif password == acc["password"]:
        investor = False
    elif acc["investor_password"] is not None and password == acc["investor_password"]:
        investor = True
    else:
        return _AUTH_FAILED
    if not term["connected"] and term["login"] != login:
        return _AUTH_FAILED  # authorizing needs the trade server
    if (term["login"], term["investor"]) != (login, investor):
        term.update(login=login, investor=investor)
        txn.dirty = True
    return None


def initialize(
    path: str | None = None,
    *,
    login: int | None = None,
    password: str | None = None,
    server: str | None = None,
    timeout: int | None = None,
    portable: bool = False,
) -> bool:
    """Connect to the terminal named by MT5_STANDIN_STATE; optionally log in."""
    global _last_error
    state_path = os.environ.get("MT5_STANDIN_STATE")
    if not state_path or not os.path.exists(state_path):
        _last_error = _NOT_FOUND_TERMINAL
        return False
    store = store_for(state_path)
    with store.transaction() as txn:
        term = txn.state["terminal"]
        if not term["running"]:
            error: tuple[int, str] | None = _NOT_FOUND_TERMINAL
        else:
            error = None if login is None else _authorize(txn, login, password, server)
        epoch = term["epoch"]
    if error is not None:
        _last_error = error
        return False
    _session.update(path=store.path, epoch=epoch)
    _last_error = (RES_S_OK, "Success")
    return True


def login(
    login: int,
    password: str | None = None,
    server: str | None = None,
    timeout: int = 60_000,
) -> bool:
    """Log the terminal in to another trading account (or the same one again)."""

    def go(txn: Txn) -> Any:
        error = _authorize(txn, login, password, server)
        return True if error is None else _Err(error, False)

    return bool(_run(go, failed=False))


def shutdown() -> None:
    """Close this process's connection to the terminal (the terminal keeps running)."""
    _session.update(path=None, epoch=None)


def last_error() -> tuple[int, str]:
    return _last_error


def version() -> tuple[int, int, str] | None:
    def go(txn: Txn) -> Any:
        opts = txn.state["options"]
        return (500, int(opts["build"]), str(opts["build_date"]))

    return _run(go)


def terminal_info() -> TerminalInfo | None:
    def go(txn: Txn) -> Any:
        state = txn.state
        term, opts = state["terminal"], state["options"]
        folder = os.path.dirname(_session["path"])
        return TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=bool(term["connected"]),
            dlls_allowed=False,
            trade_allowed=bool(term["algo_trading"]),
            tradeapi_disabled=False,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=int(opts["build"]),
            maxbars=100000,
            codepage=0,
            ping_last=25000 if term["connected"] else 0,
            community_balance=0.0,
            retransmission=0.0,
            company=str(opts.get("company", "Stand-in Broker Ltd")),
            name="MetaTrader 5",
            language="English",
            path=folder,
            data_path=folder,
            commondata_path=os.path.join(folder, "Common"),
        )

    return _run(go)


def account_info() -> AccountInfo | None:
    def go(txn: Txn) -> Any:
        state = txn.state
        acc = _account(state)
        if acc is None:
            return _Err(_CALL_FAILED)
        fig = S.account_figures(S.view(state), acc["login"])
        return AccountInfo(
            login=acc["login"],
            trade_mode=acc["trade_mode"],
            leverage=acc["leverage"],
            limit_orders=acc["limit_orders"],
            margin_so_mode=ACCOUNT_STOPOUT_MODE_PERCENT,
            trade_allowed=not state["terminal"]["investor"],
            trade_expert=bool(acc["trade_expert"]),
            margin_mode=ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
            currency_digits=2,
            fifo_close=False,
            balance=float(fig["balance"]),
            credit=float(fig["credit"]),
            profit=float(fig["profit"]),
            equity=float(fig["equity"]),
            margin=float(fig["margin"]),
            margin_free=float(fig["margin_free"]),
            margin_level=float(fig["margin_level"]),
            margin_so_call=_f(acc["margin_so_call"]),
            margin_so_so=_f(acc["margin_so_so"]),
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name=acc["name"],
            server=acc["server"],
            currency=acc["currency"],
            company=acc["company"],
        )

    return _run(go)


def _symbol_info(state: dict[str, Any], sym: dict[str, Any]) -> SymbolInfo:
    server = S.view(state)
    selected = bool(state["terminal"]["selected"].get(sym["name"]))
    point = S.dec(sym["point"])
    tick_size = S.dec(sym["trade_tick_size"])
    acc = _account(state)
    currency = acc["currency"] if acc is not None else sym["currency_profit"]
    tick_value = S.convert(
        server, tick_size * S.dec(sym["contract_size"]), sym["currency_profit"], currency
    )
    spread = int((S.dec(sym["ask"]) - S.dec(sym["bid"])) / point)
    zero = 0.0
    return SymbolInfo(
        custom=False,
        chart_mode=SYMBOL_CHART_MODE_BID,
        select=selected,
        visible=selected,
        session_deals=0,
        session_buy_orders=0,
        session_sell_orders=0,
        volume=0,
        volumehigh=0,
        volumelow=0,
        time=int(sym["time_msc"]) // 1000,
        digits=int(sym["digits"]),
        spread=spread,
        spread_float=True,
        ticks_bookdepth=0,
        trade_calc_mode=sym["trade_calc_mode"],
        trade_mode=sym["trade_mode"],
        start_time=0,
        expiration_time=0,
        trade_stops_level=sym["trade_stops_level"],
        trade_freeze_level=sym["trade_freeze_level"],
        trade_exemode=sym["trade_exemode"],
        swap_mode=SYMBOL_SWAP_MODE_DISABLED,
        swap_rollover3days=DAY_OF_WEEK_WEDNESDAY,
        margin_hedged_use_leg=False,
        expiration_mode=sym["expiration_mode"],
        filling_mode=sym["filling_mode"],
        order_mode=sym["order_mode"],
        order_gtc_mode=SYMBOL_ORDERS_GTC,
        option_mode=0,
        option_right=0,
        bid=_f(sym["bid"]),
        bidhigh=_f(sym["bidhigh"]),
        bidlow=_f(sym["bidlow"]),
        ask=_f(sym["ask"]),
        askhigh=_f(sym["askhigh"]),
        asklow=_f(sym["asklow"]),
        last=zero,
        lasthigh=zero,
        lastlow=zero,
        volume_real=zero,
        volumehigh_real=zero,
        volumelow_real=zero,
        option_strike=zero,
        point=float(point),
        trade_tick_value=float(tick_value),
        trade_tick_value_profit=float(tick_value),
        trade_tick_value_loss=float(tick_value),
        trade_tick_size=float(tick_size),
        trade_contract_size=_f(sym["contract_size"]),
        trade_accrued_interest=zero,
        trade_face_value=zero,
        trade_liquidity_rate=zero,
        volume_min=_f(sym["volume_min"]),
        volume_max=_f(sym["volume_max"]),
        volume_step=_f(sym["volume_step"]),
        volume_limit=_f(sym["volume_limit"]),
        swap_long=zero,
        swap_short=zero,
        margin_initial=zero,
        margin_maintenance=zero,
        session_volume=zero,
        session_turnover=zero,
        session_interest=zero,
        session_buy_orders_volume=zero,
        session_sell_orders_volume=zero,
        session_open=zero,
        session_close=zero,
        session_aw=zero,
        session_price_settlement=zero,
        session_price_limit_min=zero,
        session_price_limit_max=zero,
        margin_hedged=_f(sym["contract_size"]),
        price_change=zero,
        price_volatility=zero,
        price_theoretical=zero,
        price_greeks_delta=zero,
        price_greeks_theta=zero,
        price_greeks_gamma=zero,
        price_greeks_vega=zero,
        price_greeks_rho=zero,
        price_greeks_omega=zero,
        price_sensitivity=zero,
        basis="",
        category="",
        currency_base=sym["currency_base"],
        currency_profit=sym["currency_profit"],
        currency_margin=sym["currency_margin"],
        bank="",
        description=sym["description"],
        exchange="",
        formula="",
        isin="",
        name=sym["name"],
        page="",
        path=sym["path"],
    )


def symbols_total() -> int | None:
    return _run(lambda txn: len(S.view(txn.state)["symbols"]))


def symbols_get(group: str | None = None) -> tuple[SymbolInfo, ...] | None:
    def go(txn: Txn) -> Any:
        syms = S.view(txn.state)["symbols"].values()
        return tuple(_symbol_info(txn.state, x) for x in syms if S.group_match(group, x["name"]))

    return _run(go)


def symbol_info(symbol: str) -> SymbolInfo | None:
    def go(txn: Txn) -> Any:
        sym = S.view(txn.state)["symbols"].get(symbol)
        return _Err(_NOT_FOUND) if sym is None else _symbol_info(txn.state, sym)

    return _run(go)


def symbol_info_tick(symbol: str) -> Tick | None:
    def go(txn: Txn) -> Any:
        sym = S.view(txn.state)["symbols"].get(symbol)
        if sym is None or not txn.state["terminal"]["selected"].get(symbol):
            return _Err(_NOT_FOUND)
        msc = int(sym["time_msc"])
        return Tick(
            time=msc // 1000,
            bid=_f(sym["bid"]),
            ask=_f(sym["ask"]),
            last=0.0,
            volume=0,
            time_msc=msc,
            flags=TICK_FLAG_BID | TICK_FLAG_ASK,
            volume_real=0.0,
        )

    return _run(go)


def symbol_select(symbol: str, enable: bool = True) -> bool:
    """Show or hide a symbol in Market Watch (refused while it has positions or orders)."""

    def go(txn: Txn) -> Any:
        state = txn.state
        server = S.view(state)
        if symbol not in server["symbols"]:
            return _Err(_NOT_FOUND, False)
        login = state["terminal"]["login"]
        if not enable and any(
            x["symbol"] == symbol and x["login"] == login
            for x in server["positions"] + server["orders"]
        ):
            return _Err(_CALL_FAILED, False)
        if state["terminal"]["selected"].get(symbol) != bool(enable):
            state["terminal"]["selected"][symbol] = bool(enable)
            txn.dirty = True
        return True

    return bool(_run(go, failed=False))


def _position(server: dict[str, Any], pos: dict[str, Any]) -> TradePosition:
    sym = server["symbols"][pos["symbol"]]
    return TradePosition(
        ticket=pos["ticket"],
        time=pos["time_msc"] // 1000,
        time_msc=pos["time_msc"],
        time_update=pos["time_update_msc"] // 1000,
        time_update_msc=pos["time_update_msc"],
        type=pos["type"],
        magic=pos["magic"],
        identifier=pos["identifier"],
        reason=pos["reason"],
        volume=_f(pos["volume"]),
        price_open=_f(pos["price_open"]),
        sl=_f(pos["sl"]),
        tp=_f(pos["tp"]),
        price_current=float(S.close_price(sym, pos["type"])),
        swap=_f(pos["swap"]),
        profit=float(S.position_profit(server, pos)),
        symbol=pos["symbol"],
        comment=pos["comment"],
        external_id=pos["external_id"],
    )


def _order(server: dict[str, Any], order: dict[str, Any]) -> TradeOrder:
    if order["state"] == ORDER_STATE_PLACED:
        sym = server["symbols"][order["symbol"]]
        current = float(S.market_price(sym, order["type"] in S.BUY_SIDE))
    else:
        current = _f(order["price_current"])
    return TradeOrder(
        ticket=order["ticket"],
        time_setup=order["time_setup_msc"] // 1000,
        time_setup_msc=order["time_setup_msc"],
        time_done=order["time_done_msc"] // 1000,
        time_done_msc=order["time_done_msc"],
        time_expiration=order["time_expiration"],
        type=order["type"],
        type_time=order["type_time"],
        type_filling=order["type_filling"],
        state=order["state"],
        magic=order["magic"],
        position_id=order["position_id"],
        position_by_id=order["position_by_id"],
        reason=order["reason"],
        volume_initial=_f(order["volume_initial"]),
        volume_current=_f(order["volume_current"]),
        price_open=_f(order["price_open"]),
        sl=_f(order["sl"]),
        tp=_f(order["tp"]),
        price_current=current,
        price_stoplimit=_f(order["price_stoplimit"]),
        symbol=order["symbol"],
        comment=order["comment"],
        external_id=order["external_id"],
    )


def _deal(deal: dict[str, Any]) -> TradeDeal:
    return TradeDeal(
        ticket=deal["ticket"],
        order=deal["order"],
        time=deal["time_msc"] // 1000,
        time_msc=deal["time_msc"],
        type=deal["type"],
        entry=deal["entry"],
        magic=deal["magic"],
        position_id=deal["position_id"],
        reason=deal["reason"],
        volume=_f(deal["volume"]),
        price=_f(deal["price"]),
        commission=_f(deal["commission"]),
        swap=_f(deal["swap"]),
        profit=_f(deal["profit"]),
        fee=_f(deal["fee"]),
        symbol=deal["symbol"],
        comment=deal["comment"],
        external_id=deal["external_id"],
    )


def _mine(state: dict[str, Any], key: str) -> list[dict[str, Any]]:
    login = state["terminal"]["login"]
    return [x for x in S.view(state)[key] if x["login"] == login]


def _filtered(
    rows: list[dict[str, Any]], symbol: str | None, group: str | None, ticket: int | None
) -> list[dict[str, Any]]:
    return [
        x
        for x in rows
        if (symbol is None or x["symbol"] == symbol)
        and S.group_match(group, x["symbol"])
        and (ticket is None or x["ticket"] == ticket)
    ]


def positions_total() -> int | None:
    return _run(lambda txn: len(_mine(txn.state, "positions")))


def positions_get(
    *args: Any, symbol: str | None = None, group: str | None = None, ticket: int | None = None
) -> tuple[TradePosition, ...] | None:
    """Open positions of the logged-in account; filters by keyword only."""
    if args:
        return _unnamed()

    def go(txn: Txn) -> Any:
        server = S.view(txn.state)
        rows = _filtered(_mine(txn.state, "positions"), symbol, group, ticket)
        return tuple(_position(server, x) for x in rows)

    return _run(go)


def orders_total() -> int | None:
    return _run(lambda txn: len(_mine(txn.state, "orders")))


def orders_get(
    *args: Any, symbol: str | None = None, group: str | None = None, ticket: int | None = None
) -> tuple[TradeOrder, ...] | None:
    """Active pending orders of the logged-in account; filters by keyword only."""
    if args:
        return _unnamed()

    def go(txn: Txn) -> Any:
        server = S.view(txn.state)
        rows = _filtered(_mine(txn.state, "orders"), symbol, group, ticket)
        return tuple(_order(server, x) for x in rows)

    return _run(go)


def _unnamed() -> None:
    global _last_error
    _last_error = _UNNAMED


def _history(
    key: str,
    time_key: str,
    date_from: Any,
    date_to: Any,
    group: str | None,
    ticket: int | None,
    position: int | None,
    ticket_key: str,
) -> Any:
    """history_orders_get / history_deals_get: by ticket, by position, or by dates."""
    if ticket is None and position is None:
        if date_from is None or date_to is None:
            return _Err((RES_E_INVALID_PARAMS, "Invalid arguments"))
        try:
            lo, hi = S.to_seconds(date_from), S.to_seconds(date_to)
        except TypeError:
            return _Err((RES_E_INVALID_PARAMS, "Invalid arguments"))

    def go(txn: Txn) -> Any:
        rows = _mine(txn.state, key)
        if ticket is not None:
            rows = [x for x in rows if x[ticket_key] == ticket]
        elif position is not None:
            rows = [x for x in rows if x["position_id"] == position]
        else:
            rows = [
                x
                for x in rows
                if lo <= x[time_key] // 1000 <= hi and S.group_match(group, x["symbol"] or "")
            ]
        return rows

    return go


def history_orders_total(date_from: Any, date_to: Any) -> int | None:
    rows = history_orders_get(date_from, date_to)
    return None if rows is None else len(rows)


def history_orders_get(
    date_from: Any = None,
    date_to: Any = None,
    group: str | None = None,
    ticket: int | None = None,
    position: int | None = None,
) -> tuple[TradeOrder, ...] | None:
    """Orders in the history: `ticket` is the order ticket, `position` the position's."""
    go = _history(
        "history_orders", "time_setup_msc", date_from, date_to, group, ticket, position, "ticket"
    )
    if isinstance(go, _Err):
        return _fail(go)

    def run(txn: Txn) -> Any:
        server = S.view(txn.state)
        return tuple(_order(server, x) for x in go(txn))

    return _run(run)


def history_deals_total(date_from: Any, date_to: Any) -> int | None:
    rows = history_deals_get(date_from, date_to)
    return None if rows is None else len(rows)


def history_deals_get(
    date_from: Any = None,
    date_to: Any = None,
    group: str | None = None,
    ticket: int | None = None,
    position: int | None = None,
) -> tuple[TradeDeal, ...] | None:
    """Deals in the history: `ticket` is the ORDER ticket (DEAL_ORDER), `position`
    the position's identifier (DEAL_POSITION_ID), as documented."""
    go = _history("deals", "time_msc", date_from, date_to, group, ticket, position, "order")
    if isinstance(go, _Err):
        return _fail(go)
    return _run(lambda txn: tuple(_deal(x) for x in go(txn)))


def _fail(err: _Err) -> Any:
    global _last_error
    if _session["path"] is None:
        _last_error = _NO_IPC
        return None
    _last_error = err.error
    return err.value


def order_calc_margin(action: int, symbol: str, volume: float, price: float) -> float | None:
    def go(txn: Txn) -> Any:
        state = txn.state
        server = S.view(state)
        sym = server["symbols"].get(symbol)
        acc = _account(state)
        if sym is None or acc is None:
            return _Err((RES_E_INVALID_PARAMS, "Invalid arguments"))
        return float(S.margin_for(server, acc["login"], sym, S.dec(volume), S.dec(price)))

    return _run(go)


def order_calc_profit(
    action: int, symbol: str, volume: float, price_open: float, price_close: float
) -> float | None:
    def go(txn: Txn) -> Any:
        state = txn.state
        server = S.view(state)
        sym = server["symbols"].get(symbol)
        acc = _account(state)
        if sym is None or acc is None or action not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            return _Err((RES_E_INVALID_PARAMS, "Invalid arguments"))
        amount = S.raw_profit(sym, action, S.dec(volume), S.dec(price_open), S.dec(price_close))
        return float(S.money(S.convert(server, amount, sym["currency_profit"], acc["currency"])))

    return _run(go)


# --- trade requests --------------------------------------------------------------


def _parse_request(request: Any, comment_max: int) -> dict[str, Any] | tuple[int, str]:
    """The package's own argument checks, before anything reaches the terminal."""
    if not isinstance(request, dict):
        return (RES_E_INVALID_PARAMS, "Invalid arguments")
    req: dict[str, Any] = {
        k: (0.0 if t is float else "" if t is str else 0) for k, t in S.REQUEST_FIELDS.items()
    }
    for key, kind in S.REQUEST_FIELDS.items():
        if key not in request:
            continue
        value = request[key]
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int)
        else:
            ok = isinstance(value, str)
        if not ok:
            return (RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
        req[key] = float(value) if kind is float else value
    if len(req["comment"]) > comment_max:
        return (RES_E_INVALID_PARAMS, 'Invalid "comment" argument')
    return req


def _trade_request(req: dict[str, Any]) -> TradeRequest:
    return TradeRequest(**req)


def _log(
    state: dict[str, Any],
    request: Any,
    outcome: str,
    retcode: int | None,
    out: dict[str, Any] | None = None,
) -> None:
    plain = dict(request) if isinstance(request, dict) else {"<not a dict>": repr(request)}
    plain = {
        k: (v if isinstance(v, int | float | str | bool) or v is None else repr(v))
        for k, v in plain.items()
    }
    state["requests"].append(
        {
            "pid": os.getpid(),
            "time_msc": S.now_msc(state),
            "request": plain,
            "outcome": outcome,
            "retcode": retcode,
            "order": (out or {}).get("order", 0),
            "deal": (out or {}).get("deal", 0),
        }
    )


def order_check(request: dict[str, Any]) -> OrderCheckResult | None:
    """Check a request as the trade server would, and project the account after it."""

    def go(txn: Txn) -> Any:
        state = txn.state
        req = _parse_request(request, int(state["options"]["comment_max"]))
        if isinstance(req, tuple):
            return _Err(req)
        acc = _account(state)
        if acc is None:
            return _Err(_CALL_FAILED)
        fig = S.account_figures(S.view(state), acc["login"])
        try:
            out = S.process(state, req, check_only=True)
            retcode, comment = 0, "Done"
        except S.Reject as reject:
            out = {"margin_needed": S.ZERO}
            retcode, comment = reject.retcode, S.RETCODE_TEXT.get(reject.retcode, "")
        margin = fig["margin"] + out["margin_needed"]
        free = fig["equity"] - margin
        level = fig["equity"] / margin * 100 if margin else S.ZERO
        return OrderCheckResult(
            retcode=retcode,
            balance=float(fig["balance"]),
            equity=float(fig["equity"]),
            profit=float(fig["profit"]),
            margin=float(margin),
            margin_free=float(free),
            margin_level=float(level),
            comment=comment,
            request=_trade_request(req),
        )

    return _run(go)


def order_send(request: dict[str, Any]) -> OrderSendResult | None:
    """Send a trade request to the trade server through the terminal."""

    def go(txn: Txn) -> Any:
        state = txn.state
        txn.dirty = True  # every request is logged
        req = _parse_request(request, int(state["options"]["comment_max"]))
        if isinstance(req, tuple):
            _log(state, request, "invalid arguments", None)
            return _Err(req)
        term = state["terminal"]
        term["request_id"] += 1
        request_id = term["request_id"]
        injected = None
        if state["failures"] and term["connected"]:
            injected = state["failures"][0]
            injected["count"] -= 1
            if injected["count"] <= 0:
                state["failures"].pop(0)
        if injected is not None and not injected["executed"]:
            if injected["retcode"] is None:
                _log(state, request, "timeout, not executed", None)
                return _Err(_TIMEOUT)
            code = int(injected["retcode"])
            sym = state["server"]["symbols"].get(req["symbol"])
            bid = _f(sym["bid"]) if sym else 0.0
            ask = _f(sym["ask"]) if sym else 0.0
            _log(state, request, "injected failure, not executed", code)
            return OrderSendResult(
                code,
                0,
                0,
                0.0,
                0.0,
                bid,
                ask,
                S.RETCODE_TEXT.get(code, ""),
                request_id,
                0,
                _trade_request(req),
            )
        try:
            out = S.process(state, req, check_only=False)
        except S.Reject as reject:
            if injected is not None:  # refused, and the reply never came back either
                _log(state, request, "rejected, reply lost", reject.retcode)
                return _Err(_TIMEOUT)
            sym = S.view(state)["symbols"].get(req["symbol"])
            bid = _f(sym["bid"]) if sym else 0.0
            ask = _f(sym["ask"]) if sym else 0.0
            _log(state, request, "rejected", reject.retcode)
            return OrderSendResult(
                reject.retcode,
                0,
                0,
                0.0,
                0.0,
                bid,
                ask,
                S.RETCODE_TEXT.get(reject.retcode, ""),
                request_id,
                0,
                _trade_request(req),
            )
        if injected is not None:  # carried out, but the reply never came back
            _log(state, request, "executed, reply lost", S.DONE, out)
            return _Err(_TIMEOUT)
        _log(state, request, "executed", S.DONE, out)
        return OrderSendResult(
            retcode=S.DONE,
            deal=out["deal"],
            order=out["order"],
            volume=float(out["volume"]),
            price=float(out["price"]),
            bid=float(out["bid"]),
            ask=float(out["ask"]),
            comment=S.RETCODE_TEXT[S.DONE],
            request_id=request_id,
            retcode_external=0,
            request=_trade_request(req),
        )

    return _run(go)


def _not_reproduced(name: str) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"MetaTrader5.{name} is not reproduced by the test stand-in "
            "(tests/mt5_standin/MetaTrader5)"
        )

    fn.__name__ = name
    return fn


copy_rates_from = _not_reproduced("copy_rates_from")
copy_rates_from_pos = _not_reproduced("copy_rates_from_pos")
copy_rates_range = _not_reproduced("copy_rates_range")
copy_ticks_from = _not_reproduced("copy_ticks_from")
copy_ticks_range = _not_reproduced("copy_ticks_range")
market_book_add = _not_reproduced("market_book_add")
market_book_get = _not_reproduced("market_book_get")
market_book_release = _not_reproduced("market_book_release")
