"""MetaTrader 5 followers: the copier's side of the terminal agent protocol.

`Mt5Venue` sends each planned order to the account's agent as a signed
``execute`` command and waits for the agent's ``result``. The agent looks our
client order id up in the terminal before sending anything, so a command
delivered twice never trades twice; a result that does not come back in
`ANSWER_TIMEOUT_S` is an unknown outcome, and the copier asks the agent to
``find`` the id before anything else.

One `AgentRouter` per copier process reads the agents' events (consumer group
``hub``) and hands each result to the request waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from decimal import Decimal
from typing import Any

import redis
import redis.asyncio as aredis

from brokers.mt5 import protocol
from brokers.mt5.agent import order_to_wire
from brokers.mt5.requests import SymbolSpec
from brokers.venues import base
from brokers.venues.base import Report, Venue, VenueError, VenueUnavailable
from copier.core import FollowerOrder, Instrument, Side

log = logging.getLogger("copier.mt5")

ANSWER_TIMEOUT_S = 10.0
HUB_GROUP = protocol.HUB_GROUP

_ERRORS: dict[str, type[VenueError]] = {
    cls.__name__: cls
    for cls in (
        base.VenueError,
        base.TemporaryVenueError,
        base.VenueUnavailable,
        base.RateLimited,
        base.CredentialsRejected,
        base.PermissionRefused,
        base.OrderRejected,
        base.OrderDenied,
        base.InsufficientBalance,
        base.DuplicateOrder,
        base.OrderNotFound,
    )
}


def error_from_wire(body: dict[str, Any]) -> VenueError:
    cls = _ERRORS.get(str(body.get("error")))
    if cls is None:  # an agent-side subclass, e.g. Requote: keep what it says about itself
        if body.get("outcome_unknown"):
            cls = VenueUnavailable
        elif body.get("permanent", True):
            cls = VenueError
        else:
            cls = base.TemporaryVenueError
    return cls(str(body.get("message", "")))


def report_from_wire(body: dict[str, Any]) -> Report:
    def dec(name: str) -> Decimal | None:
        value = body.get(name)
        return None if value in (None, "") else Decimal(str(value))

    return Report(
        client_order_id=str(body["client_order_id"]),
        action=str(body.get("action", "")),
        ref=str(body["ref"]),
        symbol=str(body["symbol"]),
        side=Side(body["side"]),
        volume=Decimal(str(body["volume"])),
        price=Decimal(str(body["price"])),
        created=bool(body.get("created", True)),
        remaining=dec("remaining"),
        sl=dec("sl"),
        tp=dec("tp"),
    )


class AgentRouter:
    """Sends commands to agents and matches their results, for one process."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.consumer = f"hub-{os.uname().nodename}-{os.getpid()}"
        self._reader: asyncio.Task[None] | None = None

    async def request(
        self, agent: str, token: str, kind: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.tokens[agent] = token
        await self._ensure_reader()
        message = protocol.Message(kind, agent, time.time_ns() // 1_000_000, body)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[message.id] = future
        try:
            stream = protocol.COMMAND_STREAM.format(agent=agent)
            await self.client.xadd(stream, protocol.seal(message, token), maxlen=10_000)
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise VenueUnavailable(
                f"the MetaTrader 5 terminal did not answer within {ANSWER_TIMEOUT_S:g} s"
            ) from None
        except redis.RedisError as e:
            raise VenueUnavailable(f"the agent channel is down: {e}") from e
        finally:
            self.waiting.pop(message.id, None)

    async def _ensure_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        with contextlib.suppress(redis.ResponseError):
            await self.client.xgroup_create(protocol.EVENT_STREAM, HUB_GROUP, id="$", mkstream=True)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                reply = await self.client.xreadgroup(
                    HUB_GROUP, self.consumer, {protocol.EVENT_STREAM: ">"}, count=200, block=1000
                )
            except (redis.RedisError, OSError) as e:
                log.warning("agent events unavailable: %s", e)
                await asyncio.sleep(1.0)
                continue
            for _, entries in reply or []:
                for msg_id, fields in entries:
                    self._deliver(fields)
                    await self.client.xack(protocol.EVENT_STREAM, HUB_GROUP, msg_id)

    def _deliver(self, fields: dict[str, str]) -> None:
        if fields.get("kind") != "result" or fields.get("reply_to") not in self.waiting:
            return
        token = self.tokens.get(fields.get("agent", ""))
        if token is None:
            return
        try:
            message = protocol.open_message(
                fields, token, time.time_ns() // 1_000_000, kinds=frozenset({"result"})
            )
        except protocol.ProtocolError as e:
            log.warning("refused a result from %s: %s", fields.get("agent"), e)
            return
        future = self.waiting.get(message.reply_to)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


_routers: dict[int, AgentRouter] = {}


def router() -> AgentRouter:
    """The running event loop's router (one per copier process)."""
    from tradosphere.bus import async_redis

    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _routers:
        _routers[loop_id] = AgentRouter(async_redis())
    return _routers[loop_id]


class Mt5Venue(Venue):
    def __init__(self, account_id: int, agent_id: str, token: str, symbols: dict[str, Any]):
        self.account_id = account_id
        self.agent_id = agent_id
        self.token = token
        self.specs: dict[str, Instrument] = {}
        for name, fields in symbols.items():
            try:
                self.specs[name] = SymbolSpec(
                    **{
                        k: Decimal(v) if isinstance(v, str) and k != "name" else v
                        for k, v in fields.items()
                    }
                ).instrument()
            except (TypeError, ValueError, ArithmeticError):
                continue

    def instrument(self, symbol: str) -> Instrument | None:
        return self.specs.get(symbol)

    async def execute(self, order: FollowerOrder, client_order_id: str) -> Report:
        body = {"coid": client_order_id, "order": order_to_wire(order)}
        answer = await router().request(self.agent_id, self.token, "execute", body)
        if "report" not in answer:
            raise error_from_wire(answer)
        return report_from_wire(answer["report"])

    async def find(self, client_order_id: str, symbol: str | None = None) -> Report | None:
        body = {"coid": client_order_id, "symbol": symbol}
        answer = await router().request(self.agent_id, self.token, "find", body)
        if "report" not in answer:
            raise error_from_wire(answer)
        return None if answer["report"] is None else report_from_wire(answer["report"])
