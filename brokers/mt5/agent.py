"""The terminal agent: one process next to one MetaTrader 5 terminal.

    MT5_AGENT_TOKEN=... python -m brokers.mt5.agent --agent ID --terminal PATH --hub REDIS_URL

It runs wherever the `MetaTrader5` package imports (a Windows host, or a
Windows Python under Wine) and needs none of Django: only its config (the
terminal's folder, the hub's address, the agent token, read from the
environment or, with ``--token-stdin``, from standard input so it never
appears in a process listing). It speaks only `brokers.mt5.protocol`.

- **Login.** It waits for the hub's ``login`` command, which carries the
  account's login and server and the password sealed with the agent token;
  the password lives only in memory. It answers ``login_result`` with a
  sentence for the site when the terminal refuses.
- **Health.** Every second it checks that the terminal answers and is
  connected to the trade server, reports ``status`` (connected, server, ping)
  and, when the terminal or its connection is gone, initialises and logs in
  again with backoff.
- **Detection** (masters). Poll-and-diff of ``positions_get()`` and
  ``orders_get()`` every ``--poll-ms`` (10 ms) through `detect.Detector`; each
  change goes to the hub as a ``master`` event with an id, and the snapshot the
  changes lead to as ``state``, which the hub hands back at the next login so
  changes made while the agent was down are reported then (nothing is counted
  twice, nothing is missed).
- **Execution** (followers). ``execute`` commands carry a `FollowerOrder` and
  our client order id. Before sending, the agent looks the id up in the
  terminal (open positions, pending orders, the order and deal history, by
  comment or by magic), so a command delivered twice, or re-sent after a
  crash, never opens twice. Requotes and price changes are retried with a
  fresh price, at most `MAX_REQUOTE_ATTEMPTS` sends. The answer is a
  ``result`` with the report or the error (class, message, whether it is
  permanent, whether the outcome is unknown).
- Commands are read through a Redis consumer group: a command that was not
  answered before a crash is delivered again after the restart. A command id
  seen before gets the answer it got then.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import signal
import sys
import time
from collections import OrderedDict
from decimal import Decimal
from types import ModuleType
from typing import Any

import redis

from brokers.mt5 import protocol
from brokers.mt5.detect import Change, Detector, closing_deal
from brokers.mt5.requests import (
    SymbolSpec,
    build_request,
    fill_pending_requests,
    magic_for,
)
from brokers.mt5.retcodes import MAX_REQUOTE_ATTEMPTS, Requote, error_for, login_error
from brokers.venues.base import CredentialsRejected, OrderDenied, VenueError, VenueUnavailable
from copier.core import FollowerOrder, OrderAction, OrderType, Side

log = logging.getLogger("mt5.agent")

HEALTH_EVERY_S = 1.0
STATUS_EVERY_S = 2.0
RELOGIN_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
HISTORY_DAYS = 7
REMEMBERED_COMMANDS = 2000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def order_from_wire(body: dict[str, Any]) -> FollowerOrder:
    def dec(name: str) -> Decimal | None:
        value = body.get(name)
        return None if value in (None, "") else Decimal(str(value))

    return FollowerOrder(
        action=OrderAction(body["action"]),
        symbol=str(body["symbol"]),
        side=Side(body["side"]),
        volume=Decimal(str(body["volume"])),
        reference_price=Decimal(str(body["reference_price"])),
        order_type=OrderType(body.get("order_type", "market")),
        sl=dec("sl"),
        tp=dec("tp"),
        ref=body.get("ref"),
        link_ref=body.get("link_ref"),
    )


def order_to_wire(order: FollowerOrder) -> dict[str, Any]:
    return {
        "action": order.action.value,
        "symbol": order.symbol,
        "side": order.side.value,
        "volume": str(order.volume),
        "reference_price": str(order.reference_price),
        "order_type": order.order_type.value,
        "sl": _s(order.sl),
        "tp": _s(order.tp),
        "ref": order.ref,
        "link_ref": order.link_ref,
    }


def error_to_wire(error: VenueError) -> dict[str, Any]:
    return {
        "error": type(error).__name__,
        "message": error.message,
        "permanent": error.permanent,
        "outcome_unknown": error.outcome_unknown,
    }


def _ticket(ref: str | None, prefix: str) -> int | None:
    if ref and ref.startswith(prefix) and ref[1:].isdigit():
        return int(ref[1:])
    return None


def _row(row: Any) -> dict[str, Any]:
    return dict(row._asdict())


class Agent:
    def __init__(
        self,
        agent_id: str,
        token: str,
        hub: redis.Redis,
        terminal_path: str,
        mt5: ModuleType,
        poll_s: float = 0.010,
    ) -> None:
        self.agent_id = agent_id
        self.token = token
        self.hub = hub
        self.terminal_path = terminal_path
        self.mt5 = mt5
        self.poll_s = poll_s
        self.commands = protocol.COMMAND_STREAM.format(agent=agent_id)
        self.stopping = False
        self.account: dict[str, Any] | None = None  # login, password, server, role
        self.logged_in = False
        self.detector: Detector | None = None
        self.answered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.refused = 0
        self._health_at = 0.0
        self._status_at = 0.0
        self._relogin_at = 0.0
        self._relogin_failures = 0
        self.deferred: list[tuple[str, dict[str, str]]] = []

    # -- wire ------------------------------------------------------------------------

    def emit(self, kind: str, body: dict[str, Any], reply_to: str = "") -> None:
        message = protocol.Message(kind, self.agent_id, now_ms(), body, reply_to=reply_to)
        self.hub.xadd(protocol.EVENT_STREAM, protocol.seal(message, self.token), maxlen=100_000)

    def run(self) -> None:
        with contextlib.suppress(redis.ResponseError):
            self.hub.xgroup_create(self.commands, protocol.AGENT_GROUP, id="0", mkstream=True)
        self.emit("hello", {"pid": os.getpid(), "version": protocol.VERSION})
        backlog = True  # first what was delivered before a crash and never answered
        while not self.stopping:
            block_ms = max(1, int(self.poll_s * 1000))
            for msg_id, fields in self._read(backlog, block_ms):
                self.handle(msg_id, fields)
            backlog = False
            self.tick()
        with contextlib.suppress(Exception):
            self.mt5.shutdown()

    def _read(self, backlog: bool, block_ms: int) -> list[tuple[str, dict[str, str]]]:
        reply = self.hub.xreadgroup(
            protocol.AGENT_GROUP,
            self.agent_id,
            {self.commands: "0" if backlog else ">"},
            count=100,
            block=None if backlog else block_ms,
        )
        return [entry for _, entries in reply or [] for entry in entries]

    def handle(self, msg_id: str, fields: dict[str, str]) -> None:
        try:
            command = protocol.open_message(
                fields,
                self.token,
                now_ms(),
                expect_agent=self.agent_id,
                kinds=protocol.COMMANDS,
            )
        except protocol.ProtocolError as e:
            self.refused += 1
            log.warning("refused a command: %s", e)
            self.hub.xack(self.commands, protocol.AGENT_GROUP, msg_id)
            self.emit("status", {**self.status_body(), "refused": self.refused, "why": str(e)})
            return
        if command.kind in ("execute", "find") and not self.logged_in:
            # Not logged in yet (just restarted): answer once the login is done,
            # unless the command grows stale first. Not acknowledged until then.
            if all(m != msg_id for m, _ in self.deferred):
                self.deferred.append((msg_id, fields))
            return
        if command.id in self.answered:
            # A replay: the same answer again, nothing carried out twice.
            kind, body = self.answered[command.id]["kind"], self.answered[command.id]["body"]
            self.emit(kind, body, reply_to=command.id)
        else:
            kind, body = self.carry_out(command)
            if kind:
                self.answered[command.id] = {"kind": kind, "body": body}
                while len(self.answered) > REMEMBERED_COMMANDS:
                    self.answered.popitem(last=False)
                self.emit(kind, body, reply_to=command.id)
        self.hub.xack(self.commands, protocol.AGENT_GROUP, msg_id)

    def _expire_deferred(self) -> None:
        """Commands that waited for a login too long: say so, rather than act late."""
        horizon = now_ms() - protocol.MAX_SKEW_MS
        kept = []
        for msg_id, fields in self.deferred:
            if int(fields.get("ts", "0") or 0) >= horizon:
                kept.append((msg_id, fields))
                continue
            self.hub.xack(self.commands, protocol.AGENT_GROUP, msg_id)
            error = VenueUnavailable("the terminal is not logged in")
            self.emit("result", error_to_wire(error), reply_to=fields.get("id", ""))
        self.deferred = kept

    def carry_out(self, command: protocol.Message) -> tuple[str, dict[str, Any]]:
        body = command.body
        if command.kind == "login":
            return "login_result", self.login(body)
        if command.kind == "stop":
            self.stopping = True
            return "", {}
        if command.kind == "status":
            return "status", self.status_body()
        try:
            if command.kind == "find":
                found = self.find(str(body["coid"]), body.get("symbol"))
                return "result", {"report": found}
            return "result", {"report": self.execute(order_from_wire(body["order"]), body["coid"])}
        except VenueError as e:
            return "result", error_to_wire(e)
        except (KeyError, ValueError, ArithmeticError) as e:
            return "result", error_to_wire(VenueError(f"malformed command: {e!r}"))

    # -- the terminal ----------------------------------------------------------------

    def login(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            password = protocol.open_secret(self.token, str(body["password"]))
        except (KeyError, protocol.ProtocolError) as e:
            return {"ok": False, **error_to_wire(VenueError(f"no usable password: {e}"))}
        self.account = {
            "login": int(body["login"]),
            "password": password,
            "server": str(body["server"]),
            "role": str(body.get("role", "follower")),
            "baseline": body.get("baseline"),
        }
        try:
            self._connect()
        except VenueError as e:
            self.logged_in = False
            if e.permanent:
                self.account = None  # never retry a refused password: brokers lock accounts
            return {"ok": False, **error_to_wire(e)}
        info = self.mt5.account_info()
        return {
            "ok": True,
            "symbols": self.symbol_specs(),
            "server": info.server,
            "currency": info.currency,
            "balance": str(Decimal(repr(info.balance))),
            "trade_allowed": bool(info.trade_allowed),
            "name": info.name,
        }

    def symbol_specs(self) -> dict[str, dict[str, Any]]:
        """The trading terms of the symbols shown in Market Watch, for planning on the hub."""
        specs: dict[str, dict[str, Any]] = {}
        for info in self.mt5.symbols_get() or ():
            if not getattr(info, "visible", True):
                continue
            try:
                spec = SymbolSpec.from_info(info)
            except (ValueError, ArithmeticError):
                continue
            specs[spec.name] = {
                k: str(v) if isinstance(v, Decimal) else v
                for k, v in dataclasses.asdict(spec).items()
            }
        return specs

    def _connect(self) -> None:
        assert self.account is not None
        mt5 = self.mt5
        with contextlib.suppress(Exception):
            mt5.shutdown()
        ok = mt5.initialize(
            path=self.terminal_path or None,
            login=self.account["login"],
            password=self.account["password"],
            server=self.account["server"],
            timeout=10_000,
        )
        if not ok:
            code, message = mt5.last_error()
            raise login_error(code, message)
        self.logged_in = True
        self._relogin_failures = 0
        if self.account["role"] in ("master", "both"):
            self._start_detector()

    def _start_detector(self) -> None:
        assert self.account is not None
        self.detector = Detector(interval_s=self.poll_s)
        baseline = self.account.get("baseline")
        if baseline:
            # Where the hub last saw this master: changes since are reported.
            position_type = _rows_type(self.mt5, "TradePosition")
            order_type = _rows_type(self.mt5, "TradeOrder")
            positions = [position_type(**p) for p in baseline.get("positions", [])]
            orders = [order_type(**o) for o in baseline.get("orders", [])]
            self.detector.start(positions, orders)
            self.account["baseline"] = None
            self.poll_master()
        else:
            self.detector.start(self.mt5.positions_get(), self.mt5.orders_get())
            self._send_state(self.mt5.positions_get(), self.mt5.orders_get())

    def tick(self) -> None:
        if self.deferred and self.logged_in:
            waiting, self.deferred = self.deferred, []
            for msg_id, fields in waiting:
                self.handle(msg_id, fields)
        elif self.deferred:
            self._expire_deferred()
        now = time.monotonic()
        if self.account is not None and now >= self._health_at:
            self._health_at = now + HEALTH_EVERY_S
            self.check_health()
        if self.logged_in and self.detector is not None:
            try:
                self.poll_master()
            except VenueError as e:
                log.warning("detection paused: %s", e.message)
        if now >= self._status_at:
            self._status_at = now + STATUS_EVERY_S
            self.emit("status", self.status_body())

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"logged_in": self.logged_in, "refused": self.refused}
        if self.account is not None:
            body["login"] = self.account["login"]
            body["role"] = self.account["role"]
        if self.logged_in:
            info = self.mt5.terminal_info()
            account = self.mt5.account_info()
            if info is not None:
                body["connected"] = bool(info.connected)
                body["ping_ms"] = round(info.ping_last / 1000, 1)
            if account is not None:
                body["server"] = account.server
                body["balance"] = str(Decimal(repr(account.balance)))
        return body

    def check_health(self) -> None:
        info = self.mt5.terminal_info() if self.logged_in else None
        if info is not None and info.connected:
            return
        if time.monotonic() < self._relogin_at:
            return
        self.logged_in = False
        try:
            self._connect()
            log.info("logged in again after losing the terminal")
            self.emit("status", self.status_body())
        except VenueError as e:
            if isinstance(e, CredentialsRejected):
                # The password changed on the broker's side: the site must ask for it.
                self.account = None
                self.emit("status", {**self.status_body(), "why": e.message, "stopped": True})
                return
            delay = RELOGIN_BACKOFF_S[min(self._relogin_failures, len(RELOGIN_BACKOFF_S) - 1)]
            self._relogin_failures += 1
            self._relogin_at = time.monotonic() + delay
            self.emit("status", {**self.status_body(), "why": e.message, "retry_s": delay})

    # -- masters ---------------------------------------------------------------------

    def poll_master(self) -> None:
        assert self.detector is not None
        positions, orders = self.mt5.positions_get(), self.mt5.orders_get()
        changes = self.detector.poll(
            positions,
            orders,
            lambda ticket: closing_deal(self._deals(position=ticket)),
            now_ms=now_ms(),
        )
        if not changes:
            return
        info = self.mt5.account_info()
        for change in changes:
            self.emit("master", self._change_body(change, info))
        self._send_state(positions, orders)

    def _change_body(self, change: Change, info: Any) -> dict[str, Any]:
        body = {f.name: getattr(change, f.name) for f in dataclasses.fields(change)}
        for name, value in list(body.items()):
            if isinstance(value, Decimal):
                body[name] = str(value)
            elif hasattr(value, "value"):
                body[name] = value.value
        spec = self.mt5.symbol_info(change.symbol)
        if spec is not None:
            body["contract_size"] = str(Decimal(repr(spec.trade_contract_size)))
        if info is not None:
            body["balance"] = str(Decimal(repr(info.balance)))
            body["equity"] = str(Decimal(repr(info.equity)))
        return body

    def _send_state(self, positions: Any, orders: Any) -> None:
        self.emit(
            "state",
            {
                "positions": [_row(p) for p in positions or ()],
                "orders": [_row(o) for o in orders or ()],
            },
        )

    def _deals(self, **criteria: Any) -> Any:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=HISTORY_DAYS)
        end = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        return self.mt5.history_deals_get(start, end, **criteria)

    # -- followers -------------------------------------------------------------------

    def _spec(self, symbol: str) -> SymbolSpec:
        self.mt5.symbol_select(symbol, True)
        info = self.mt5.symbol_info(symbol)
        if info is None:
            raise OrderDenied(f"{symbol} is not offered by this broker")
        return SymbolSpec.from_info(info)

    def execute(self, order: FollowerOrder, coid: str) -> dict[str, Any]:
        if not self.logged_in:
            raise VenueUnavailable("the terminal is not logged in")
        existing = self.find(coid, order.symbol)
        if existing is not None and order.action is not OrderAction.MODIFY:
            return existing
        spec = self._spec(order.symbol)
        position = _ticket(order.ref, "P")
        pending = _ticket(order.ref, "O")
        last_error: VenueError | None = None
        for _attempt in range(MAX_REQUOTE_ATTEMPTS):
            tick = self.mt5.symbol_info_tick(order.symbol)
            if tick is None:
                raise VenueUnavailable(f"no price for {order.symbol}")
            bid, ask = Decimal(repr(tick.bid)), Decimal(repr(tick.ask))
            if order.action is OrderAction.FILL_PENDING:
                if pending is None:
                    raise OrderDenied(f"no pending order to fill ({order.ref})")
                remove, deal = fill_pending_requests(order, coid, spec, bid, ask, pending, None)
                self._send(remove)
                result = self._send(deal)
            else:
                request = build_request(order, coid, spec, bid, ask, position, pending, None)
                try:
                    result = self._send(request)
                except Requote as e:
                    last_error = e
                    continue
            return self._report(order, coid, result, position)
        assert last_error is not None
        raise last_error

    def _send(self, request: dict[str, object]) -> Any:
        result = self.mt5.order_send(request)
        if result is None:
            code, message = self.mt5.last_error()
            raise VenueUnavailable(f"the terminal gave no answer ({code} {message})")
        error = error_for(result.retcode, result.comment)
        if error is not None:
            raise error
        return result

    def _report(
        self, order: FollowerOrder, coid: str, result: Any, position: int | None
    ) -> dict[str, Any]:
        action = order.action
        if action in (OrderAction.PLACE_PENDING, OrderAction.MODIFY_PENDING):
            ref = f"O{result.order or _ticket(order.ref, 'O')}"
        elif action is OrderAction.CANCEL_PENDING:
            ref = order.ref or ""
        elif position is not None:
            ref = f"P{position}"
        else:
            # On hedging accounts a position's ticket is the order's that opened it.
            ref = f"P{result.order}"
        remaining: str | None = None
        if action is OrderAction.REDUCE and position is not None:
            still = self.mt5.positions_get(ticket=position)
            remaining = str(Decimal(repr(still[0].volume))) if still else "0"
        volume = Decimal(repr(result.volume)) if result.volume else order.volume
        price = Decimal(repr(result.price)) if result.price else order.reference_price
        return {
            "client_order_id": coid,
            "action": action.value,
            "ref": ref,
            "symbol": order.symbol,
            "side": order.side.value,
            "volume": str(volume),
            "price": str(price),
            "created": True,
            "remaining": remaining,
            "sl": _s(order.sl),
            "tp": _s(order.tp),
        }

    def find(self, coid: str, symbol: str | None = None) -> dict[str, Any] | None:
        """Our client order id in the terminal: by comment, or by magic where a broker
        rewrote the comment."""
        magic = magic_for(coid)

        def ours(row: Any) -> bool:
            return bool(row.comment == coid or row.magic == magic)

        for p in self.mt5.positions_get() or ():
            if ours(p) and p.identifier == p.ticket:
                return self._found(coid, f"P{p.ticket}", p.symbol, p.type, p.volume, p.price_open)
        for o in self.mt5.orders_get() or ():
            if ours(o):
                return self._found(
                    coid, f"O{o.ticket}", o.symbol, o.type % 2, o.volume_current, o.price_open
                )
        deals = [d for d in self._deals() or () if ours(d)]
        if deals:
            d = deals[-1]
            volume = sum((Decimal(repr(x.volume)) for x in deals), Decimal(0))
            return self._found(coid, f"P{d.position_id}", d.symbol, d.type, volume, d.price)
        # An order of ours that left no deal: a pending order since cancelled or
        # expired, or a modification of a pending order.
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=HISTORY_DAYS)
        end = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        for o in reversed(self.mt5.history_orders_get(start, end) or ()):
            if ours(o):
                return self._found(
                    coid, f"O{o.ticket}", o.symbol, o.type % 2, o.volume_initial, o.price_open
                )
        return None

    def _found(
        self, coid: str, ref: str, symbol: str, kind: int, volume: Any, price: Any
    ) -> dict[str, Any]:
        return {
            "client_order_id": coid,
            "action": "found",
            "ref": ref,
            "symbol": symbol,
            "side": "buy" if kind == 0 else "sell",
            "volume": str(Decimal(repr(volume))),
            "price": str(Decimal(repr(price))),
            "created": False,
            "remaining": None,
            "sl": None,
            "tp": None,
        }


def _rows_type(mt5: ModuleType, name: str) -> Any:
    """The package's named-tuple type for terminal rows, to rebuild a saved snapshot."""
    found = getattr(mt5, name, None)
    if found is not None:
        return found
    from collections import namedtuple

    fields = {
        "TradePosition": "ticket time time_msc time_update time_update_msc type magic "
        "identifier reason volume price_open sl tp price_current swap profit symbol comment "
        "external_id",
        "TradeOrder": "ticket time_setup time_setup_msc time_done time_done_msc "
        "time_expiration type type_time type_filling state magic position_id position_by_id "
        "reason volume_initial volume_current price_open sl tp price_current price_stoplimit "
        "symbol comment external_id",
    }[name]
    return namedtuple(name, fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brokers.mt5.agent")
    parser.add_argument("--agent", required=True, help="this agent's id")
    parser.add_argument("--terminal", default="", help="the MT5 terminal's folder or exe")
    parser.add_argument("--hub", required=True, help="the hub's Redis URL")
    parser.add_argument("--poll-ms", type=float, default=10.0)
    parser.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s agent {args.agent} %(message)s")
    token = sys.stdin.readline().strip() if args.token_stdin else os.environ.get("MT5_AGENT_TOKEN")
    if not token:
        parser.error("no agent token: set MT5_AGENT_TOKEN or pass --token-stdin")
    import MetaTrader5  # Windows-only: imported here, never at module import

    hub = redis.Redis.from_url(args.hub, decode_responses=True, socket_timeout=5)
    agent = Agent(args.agent, token, hub, args.terminal, MetaTrader5, args.poll_ms / 1000)

    def stop(*_: object) -> None:
        agent.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
