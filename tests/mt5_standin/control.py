"""Test-side control of the MetaTrader5 TEST STAND-IN's terminal (test code only).

The stand-in (`tests/mt5_standin/MetaTrader5/`) replaces the Windows-only
`MetaTrader5` package in the agent's process; it is not an emulator for product
use and product code never imports it or this module. `Terminal` works on the
same state file from the test process and plays everything the agent does not
control: the broker's trade server (prices, SL/TP and pending fills, history),
the account owner trading by hand (in the terminal, or from the mobile or web
platform), the network between terminal and server, the terminal process
itself, and failures injected into the next `order_send` calls.

    term = Terminal(tmp_path / "mt5.json")
    term.configure(accounts=[{"login": 1001, "password": "pw", "investor_password": "ro",
                              "server": "StandIn-Demo", "balance": 10_000}])
    env = {**os.environ, **term.env, "PYTHONPATH": STANDIN_PATH}

Amounts come back as Decimal (exact); the API returns floats like the real one.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from .MetaTrader5 import _server as S
from .MetaTrader5._store import Txn, store_for

STANDIN_PATH = str(Path(__file__).resolve().parent)
"""Put this first on PYTHONPATH so that `import MetaTrader5` finds the stand-in."""
REPO_ROOT = str(Path(__file__).resolve().parents[2])

# The terminal's symbol flags: the Python package does not export these names.
SYMBOL_FILLING_FOK = S.SYMBOL_FILLING_FOK
SYMBOL_FILLING_IOC = S.SYMBOL_FILLING_IOC
SYMBOL_FILLING_BOC = S.SYMBOL_FILLING_BOC
SYMBOL_ORDER_MARKET = S.SYMBOL_ORDER_MARKET
SYMBOL_ORDER_LIMIT = S.SYMBOL_ORDER_LIMIT
SYMBOL_ORDER_STOP = S.SYMBOL_ORDER_STOP
SYMBOL_ORDER_SL = S.SYMBOL_ORDER_SL
SYMBOL_ORDER_TP = S.SYMBOL_ORDER_TP
SYMBOL_EXPIRATION_GTC = S.SYMBOL_EXPIRATION_GTC
SYMBOL_EXPIRATION_DAY = S.SYMBOL_EXPIRATION_DAY
SYMBOL_EXPIRATION_SPECIFIED = S.SYMBOL_EXPIRATION_SPECIFIED
SYMBOL_EXPIRATION_SPECIFIED_DAY = S.SYMBOL_EXPIRATION_SPECIFIED_DAY

default_symbols = S.default_symbols

_PENDING = {
    "buy_limit": S.ORDER_TYPE_BUY_LIMIT,
    "sell_limit": S.ORDER_TYPE_SELL_LIMIT,
    "buy_stop": S.ORDER_TYPE_BUY_STOP,
    "sell_stop": S.ORDER_TYPE_SELL_STOP,
}
_VIA = {"client": S.REASON_CLIENT, "mobile": S.REASON_MOBILE, "web": S.REASON_WEB}
_DECIMAL_KEYS = frozenset(
    {
        "volume",
        "price_open",
        "sl",
        "tp",
        "price",
        "profit",
        "commission",
        "swap",
        "fee",
        "volume_initial",
        "volume_current",
        "price_current",
        "price_stoplimit",
    }
)


class TradeRefused(Exception):
    """The trade server refused a trade by hand; `retcode` says why."""

    def __init__(self, retcode: int, why: str) -> None:
        super().__init__(f"{retcode} {S.RETCODE_TEXT.get(retcode, '')}: {why}")
        self.retcode = retcode


def _exact(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (Decimal(v) if k in _DECIMAL_KEYS else v) for k, v in row.items()}
    out.pop("expires_msc", None)
    return out


class Terminal:
    """One stand-in terminal and its trade server, on the state file at `path`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._store = store_for(self.path)

    @property
    def env(self) -> dict[str, str]:
        """Environment for an agent process: the state file, and the stand-in first on
        its path (then the repository, for `python -m brokers.mt5.agent`)."""
        return {
            "MT5_STANDIN_STATE": self.path,
            "PYTHONPATH": os.pathsep.join([STANDIN_PATH, REPO_ROOT]),
        }

    @contextlib.contextmanager
    def _txn(self) -> Iterator[Txn]:
        with self._store.transaction() as txn:
            if S.housekeep(txn.state):
                txn.dirty = True
            yield txn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Txn]:
        with self._txn() as txn:
            txn.dirty = True
            yield txn

    # --- set-up -------------------------------------------------------------

    def configure(
        self,
        accounts: list[dict[str, Any]],
        symbols: list[dict[str, Any]] | None = None,
        *,
        logged_in: int | None = None,
        comment_max: int = 28,
        server_time_offset_s: int = 0,
        build: int = 4755,
        company: str = "Stand-in Broker Ltd",
    ) -> None:
        """A fresh terminal and trade server (replaces any earlier state).

        accounts: dicts with login, password and optionally investor_password,
        server ('StandIn-Demo'), balance (10000), currency ('USD'), leverage (100),
        name, limit_orders. symbols: dicts with name, digits, bid, ask,
        contract_size, currency_base/profit/margin and optionally volume_min/max/step,
        filling_mode (SYMBOL_FILLING_* flags), trade_exemode, trade_mode,
        trade_stops_level, order_mode, expiration_mode, select; `default_symbols()`
        when omitted. `logged_in`: the account the terminal is already logged in
        to (as after a manual login), else none until `initialize(login=...)`.
        `comment_max`: the longest comment the package accepts (builds differ:
        28 to 31 have been reported; longer ones give (-2, 'Invalid "comment"
        argument')). `server_time_offset_s`: trade server time minus UTC.
        """
        state = S.new_state(
            accounts,
            symbols,
            {
                "comment_max": comment_max,
                "server_time_offset_s": server_time_offset_s,
                "build": build,
                "company": company,
            },
        )
        if logged_in is not None:
            if str(logged_in) not in state["server"]["accounts"]:
                raise ValueError(f"no account {logged_in}")
            state["terminal"]["login"] = int(logged_in)
        with self._store.transaction(create=state) as txn:
            if txn.state is not state:
                txn.state.clear()
                txn.state.update(state)
            txn.dirty = True

    def state(self) -> dict[str, Any]:
        """A copy of the whole raw state (for debugging a failing test)."""
        with self._txn() as txn:
            return copy.deepcopy(txn.state)

    # --- the market -----------------------------------------------------------

    def set_price(self, symbol: str, bid: Any, ask: Any) -> None:
        """A new quote on the trade server; reached pending orders fill and reached
        SL/TP close, now (the terminal sees it at once unless disconnected)."""
        with self._write() as txn:
            S.set_price(txn.state, symbol, S.dec(bid), S.dec(ask))

    def set_symbol(self, symbol: str, **changes: Any) -> None:
        """Change a symbol's specification on the server, e.g. trade_mode=0."""
        with self._write() as txn:
            sym = txn.state["server"]["symbols"][symbol]
            merged = S.normalize_symbol({**sym, **changes})
            for key in ("bidhigh", "bidlow", "askhigh", "asklow", "time_msc"):
                merged[key] = sym[key]
            txn.state["server"]["symbols"][symbol] = merged

    def deposit(self, login: int, amount: Any) -> None:
        """A balance operation by the broker (a DEAL_TYPE_BALANCE deal)."""
        with self._write() as txn:
            server = txn.state["server"]
            acc = server["accounts"][str(login)]
            value = S.dec(amount)
            acc["balance"] = S.s(S.dec(acc["balance"]) + value)
            server["deals"].append(
                S.new_deal(
                    server,
                    int(login),
                    order=0,
                    now=S.now_msc(txn.state),
                    type_=S.DEAL_TYPE_BALANCE,
                    entry=S.DEAL_ENTRY_IN,
                    magic=0,
                    position_id=0,
                    reason=S.REASON_CLIENT,
                    volume=S.ZERO,
                    price=S.ZERO,
                    profit=value,
                    symbol="",
                    comment="Deposit" if value >= 0 else "Withdrawal",
                )
            )

    # --- the account owner, by hand (comment "" and magic 0 unless given) --------

    def _by_hand(self, txn: Txn, login: int, req: dict[str, Any], via: str) -> dict[str, Any]:
        term = txn.state["terminal"]
        if via == "client" and term["login"] == login and not term["connected"]:
            raise RuntimeError(
                "the terminal is disconnected: a trade by hand in it cannot "
                "reach the server (use via='mobile' or via='web')"
            )
        full = {
            k: (0.0 if t is float else "" if t is str else 0) for k, t in S.REQUEST_FIELDS.items()
        }
        full.update(req)
        try:
            return S.process(txn.state, full, check_only=False, reason=_VIA[via], login=int(login))
        except S.Reject as reject:
            raise TradeRefused(reject.retcode, reject.why) from None

    @staticmethod
    def _market_filling(sym: dict[str, Any]) -> int:
        if sym["trade_exemode"] in (
            S.SYMBOL_TRADE_EXECUTION_REQUEST,
            S.SYMBOL_TRADE_EXECUTION_INSTANT,
        ):
            return S.ORDER_FILLING_FOK
        if sym["filling_mode"] & S.SYMBOL_FILLING_FOK:
            return S.ORDER_FILLING_FOK
        if sym["filling_mode"] & S.SYMBOL_FILLING_IOC:
            return S.ORDER_FILLING_IOC
        return S.ORDER_FILLING_RETURN

    def trade_by_hand(
        self,
        login: int,
        symbol: str,
        side: str,
        volume: Any,
        sl: Any = None,
        tp: Any = None,
        *,
        comment: str = "",
        via: str = "client",
    ) -> int:
        """A market order placed by the account owner, not through the API: the new
        position's ticket. via: 'client' (this or another desktop terminal),
        'mobile' or 'web' (these reach the server even while this terminal is
        disconnected)."""
        if side not in ("buy", "sell"):
            raise ValueError("side is 'buy' or 'sell'")
        with self._write() as txn:
            sym = txn.state["server"]["symbols"][symbol]
            buy = side == "buy"
            out = self._by_hand(
                txn,
                login,
                {
                    "action": S.TRADE_ACTION_DEAL,
                    "symbol": symbol,
                    "volume": S.dec(volume),
                    "type": S.ORDER_TYPE_BUY if buy else S.ORDER_TYPE_SELL,
                    "price": S.market_price(sym, buy),
                    "sl": S.dec(sl or 0),
                    "tp": S.dec(tp or 0),
                    "type_filling": self._market_filling(sym),
                    "comment": comment,
                },
                via,
            )
            return int(out["order"])

    def close_by_hand(
        self, ticket: int, volume: Any = None, *, comment: str = "", via: str = "client"
    ) -> int:
        """Close a position in full (or `volume` of it) by hand: the deal's ticket."""
        with self._write() as txn:
            pos = self._position(txn, ticket)
            sym = txn.state["server"]["symbols"][pos["symbol"]]
            closing = S.ORDER_TYPE_SELL if pos["type"] == S.ORDER_TYPE_BUY else S.ORDER_TYPE_BUY
            out = self._by_hand(
                txn,
                pos["login"],
                {
                    "action": S.TRADE_ACTION_DEAL,
                    "position": ticket,
                    "symbol": pos["symbol"],
                    "volume": S.dec(volume if volume is not None else pos["volume"]),
                    "type": closing,
                    "price": S.market_price(sym, closing == S.ORDER_TYPE_BUY),
                    "type_filling": self._market_filling(sym),
                    "comment": comment,
                },
                via,
            )
            return int(out["deal"])

    def modify_by_hand(self, ticket: int, sl: Any, tp: Any, *, via: str = "client") -> None:
        """Set a position's SL and TP by hand (0 removes one)."""
        with self._write() as txn:
            pos = self._position(txn, ticket)
            self._by_hand(
                txn,
                pos["login"],
                {
                    "action": S.TRADE_ACTION_SLTP,
                    "position": ticket,
                    "symbol": pos["symbol"],
                    "sl": S.dec(sl or 0),
                    "tp": S.dec(tp or 0),
                },
                via,
            )

    def place_pending_by_hand(
        self,
        login: int,
        symbol: str,
        kind: str,
        volume: Any,
        price: Any,
        sl: Any = None,
        tp: Any = None,
        *,
        comment: str = "",
        expiration: int | None = None,
        via: str = "client",
    ) -> int:
        """A pending order by hand; kind: buy_limit, sell_limit, buy_stop, sell_stop.
        `expiration` (server time, seconds) makes it ORDER_TIME_SPECIFIED."""
        with self._write() as txn:
            out = self._by_hand(
                txn,
                login,
                {
                    "action": S.TRADE_ACTION_PENDING,
                    "symbol": symbol,
                    "volume": S.dec(volume),
                    "type": _PENDING[kind],
                    "price": S.dec(price),
                    "sl": S.dec(sl or 0),
                    "tp": S.dec(tp or 0),
                    "type_filling": S.ORDER_FILLING_RETURN,
                    "type_time": S.ORDER_TIME_GTC if expiration is None else S.ORDER_TIME_SPECIFIED,
                    "expiration": expiration or 0,
                    "comment": comment,
                },
                via,
            )
            return int(out["order"])

    def modify_pending_by_hand(
        self, ticket: int, price: Any, sl: Any = None, tp: Any = None, *, via: str = "client"
    ) -> None:
        with self._write() as txn:
            order = self._order(txn, ticket)
            self._by_hand(
                txn,
                order["login"],
                {
                    "action": S.TRADE_ACTION_MODIFY,
                    "order": ticket,
                    "price": S.dec(price),
                    "sl": S.dec(sl or 0),
                    "tp": S.dec(tp or 0),
                    "type_time": order["type_time"],
                    "expiration": order["time_expiration"],
                },
                via,
            )

    def cancel_pending_by_hand(self, ticket: int, *, via: str = "client") -> None:
        with self._write() as txn:
            order = self._order(txn, ticket)
            self._by_hand(
                txn, order["login"], {"action": S.TRADE_ACTION_REMOVE, "order": ticket}, via
            )

    @staticmethod
    def _position(txn: Txn, ticket: int) -> dict[str, Any]:
        for pos in txn.state["server"]["positions"]:
            if pos["ticket"] == ticket:
                return pos
        raise KeyError(f"no open position {ticket}")

    @staticmethod
    def _order(txn: Txn, ticket: int) -> dict[str, Any]:
        for order in txn.state["server"]["orders"]:
            if order["ticket"] == ticket:
                return order
        raise KeyError(f"no active pending order {ticket}")

    # --- the terminal -------------------------------------------------------------

    def disconnect(self) -> None:
        """The terminal loses the trade server: terminal_info().connected is False,
        trade requests get 10031, and reads answer from what it last knew (no
        new prices, positions or history) until `reconnect()`."""
        with self._write() as txn:
            S.snapshot(txn.state)
            txn.state["terminal"]["connected"] = False

    def reconnect(self) -> None:
        """The terminal reaches the server again and shows its current state."""
        with self._write() as txn:
            txn.state["view"] = None
            txn.state["terminal"]["connected"] = True

    def set_algo_trading(self, enabled: bool) -> None:
        """The terminal's Algo Trading button: off, trade requests get 10027."""
        with self._write() as txn:
            txn.state["terminal"]["algo_trading"] = bool(enabled)

    def stop_terminal(self) -> None:
        """The terminal process exits: connected API sessions get (-10004, 'No IPC
        connection'); initialize() fails until `start_terminal()`."""
        with self._write() as txn:
            txn.state["terminal"]["running"] = False

    def start_terminal(self) -> None:
        """The terminal starts again (logged in to the same account, connected);
        every process must initialize() again."""
        with self._write() as txn:
            term = txn.state["terminal"]
            term.update(running=True, epoch=term["epoch"] + 1, connected=True)
            txn.state["view"] = None

    def logged_in(self) -> tuple[int | None, bool]:
        """(login, investor) of the terminal's current account."""
        with self._txn() as txn:
            term = txn.state["terminal"]
            return term["login"], bool(term["investor"])

    # --- failures of the next order_send calls ---------------------------------

    def fail_next_order_send(
        self, retcode: int | None = None, count: int = 1, *, executed: bool = False
    ) -> None:
        """The next `count` order_send calls (through the API, while connected) fail:
        - retcode=N: the server answers N (e.g. 10004 REQUOTE, 10031 CONNECTION)
          and nothing is carried out;
        - retcode=None: the call returns None with (-10005, 'IPC timeout') and
          nothing is carried out;
        - executed=True: the request IS carried out, but the reply is lost: None
          with (-10005, 'IPC timeout'). Only reconciliation (by comment, magic)
          tells the caller the order exists.
        """
        if executed and retcode is not None:
            raise ValueError("a lost reply has no retcode")
        with self._write() as txn:
            txn.state["failures"].append(
                {"retcode": retcode, "count": int(count), "executed": bool(executed)}
            )

    # --- what the trade server holds (the truth, whatever the terminal shows) ---

    def positions(self, login: int | None = None) -> list[dict[str, Any]]:
        """Open positions, with price_current and profit, exact."""
        with self._txn() as txn:
            server = txn.state["server"]
            out = []
            for pos in server["positions"]:
                if login is None or pos["login"] == login:
                    row = _exact(pos)
                    row["price_current"] = S.close_price(
                        server["symbols"][pos["symbol"]], pos["type"]
                    )
                    row["profit"] = S.position_profit(server, pos)
                    out.append(row)
            return out

    def orders(self, login: int | None = None) -> list[dict[str, Any]]:
        """Active pending orders."""
        return self._rows("orders", login)

    def history_orders(self, login: int | None = None) -> list[dict[str, Any]]:
        return self._rows("history_orders", login)

    def deals(self, login: int | None = None) -> list[dict[str, Any]]:
        """Every deal, the deposit (DEAL_TYPE_BALANCE) included."""
        return self._rows("deals", login)

    def _rows(self, key: str, login: int | None) -> list[dict[str, Any]]:
        with self._txn() as txn:
            return [
                _exact(x) for x in txn.state["server"][key] if login is None or x["login"] == login
            ]

    def account(self, login: int) -> dict[str, Decimal]:
        """balance, credit, profit, equity, margin, margin_free, margin_level."""
        with self._txn() as txn:
            return S.account_figures(txn.state["server"], int(login))

    def requests(self) -> list[dict[str, Any]]:
        """Every order_send call that reached the terminal, in order: pid, time_msc,
        request (as sent), outcome ('executed', 'rejected', 'invalid arguments',
        'executed, reply lost', 'rejected, reply lost', 'injected failure, not
        executed', 'timeout, not executed'), retcode, order, deal."""
        with self._txn() as txn:
            return [dict(x) for x in txn.state["requests"]]
