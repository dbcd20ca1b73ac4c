"""Binance spot user-data websockets for the local peer (test code only).

Served by the peer's own aiohttp app, on the same port as its REST API, at
Binance's paths:

``/ws-api/v3``  The WebSocket API (wss://ws-api.binance.com:443/ws-api/v3), the
    way ccxt 4.5.90 (``ccxt.pro.binance``) reads a spot account: JSON requests
    ``{"id", "method", "params"}`` in text frames, answered with Binance's
    envelope ``{"id", "status": 200, "result", "rateLimits"}`` or
    ``{"id", "status": 4xx, "error": {"code", "msg"}, "rateLimits"}``.
    Methods: ``userDataStream.subscribe.signature`` (SIGNED: HMAC-SHA256 of the
    params except ``signature``, sorted by name, as ``name=value`` joined by
    ``&``; ``apiKey``, ``timestamp``, optional ``recvWindow``; checked like the
    REST API: -2015/401 unknown key, -1022/400 bad signature, -1021/400 outside
    the receive window), ``userDataStream.unsubscribe`` (optional
    ``subscriptionId``), ``session.subscriptions``, ``ping``, ``time``. A
    method may carry the version prefix ``v3/``. ``returnRateLimits`` (request
    param, or ``?returnRateLimits=false`` on the URL) hides ``rateLimits``.
    Once subscribed, every event of the key's account arrives as
    ``{"subscriptionId": n, "event": {...}}`` (one subscription per account per
    connection; subscription ids count from 0 per connection).

``/ws/<listenKey>`` and ``/stream?streams=<listenKey>``  The legacy
    listenKey streams (wss://stream.binance.com:9443), fed by
    ``POST/PUT/DELETE /api/v3/userDataStream`` (API key header only). Events are
    sent bare on ``/ws/``, and as ``{"stream": listenKey, "data": {...}}`` on
    ``/stream``. ccxt 4.5.90 no longer uses this path for spot.

Events, in Binance's documented layout (user-data-stream.md):
``executionReport`` for every order status change (x = NEW, TRADE, CANCELED,
EXPIRED), then ``outboundAccountPosition`` with the assets the change touched.
``eventStreamTerminated`` after ``userDataStream.unsubscribe`` or the
``ws_terminate`` hook.

Connection behaviour: the server pings every ``ping_interval_s`` (Binance: 20 s)
and drops a connection that has not answered with a pong for
``pong_timeout_s`` (Binance: one minute); client pings are answered with a pong
carrying the same payload.

Choices the documentation leaves open, made here and pinned by the tests (not
claims about Binance): an unknown or unsupported method (including
``userDataStream.subscribe``, which needs an Ed25519 ``session.logon`` this peer
does not implement) is answered 400 -1020 "This operation is not supported.";
text that is not a JSON request object is answered with ``"id": null``, 400
-1135 "Invalid JSON Request"; a second subscription for the same account on the
same connection is refused with 400 -2035 "User Data Stream subscription already
active."; ``eventStreamTerminated`` is sent before the ``unsubscribe`` response;
an unknown listenKey in a stream URL refuses the upgrade with HTTP 400 -1125.

Threading: handlers run on the server's loop, order changes may come from the
test thread (``set_price``, ``trade_on_website``). Everything is decided under
the peer's lock and handed to the connection's loop with
``call_soon_threadsafe``, so frames leave in the order the peer produced them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .binance import Account, BinanceSpotPeer, Order

WS_API_PATH = "/ws-api/v3"
LISTEN_KEY_PATH = "/api/v3/userDataStream"

# Connecting costs 2 weight (web-socket-api.md, IP limits); so do the user data stream requests.
WEIGHTS = {
    "userDataStream.subscribe.signature": 2,
    "userDataStream.unsubscribe": 2,
    "session.subscriptions": 2,
    "ping": 1,
    "time": 1,
}

MSG_UNSUPPORTED = "This operation is not supported."
MSG_INVALID_JSON = "Invalid JSON Request"
MSG_ALREADY_SUBSCRIBED = "User Data Stream subscription already active."
MSG_NO_LISTEN_KEY = "This listenKey does not exist."


def signature_payload(params: dict[str, Any]) -> str:
    """WebSocket API signature payload: every param but `signature`, sorted by name."""
    return "&".join(f"{k}={param_text(v)}" for k, v in sorted(params.items()) if k != "signature")


def param_text(value: Any) -> str:
    """A JSON param value as text, the way it is written in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


@dataclass
class WsFrame:
    """One text frame on a peer websocket: `direction` is "in" (from the client) or "out"."""

    connection: int
    direction: str
    data: Any  # decoded JSON, or the raw text when it is not JSON


@dataclass
class WsConnection:
    id: int
    path: str
    ws: web.WebSocketResponse
    loop: asyncio.AbstractEventLoop
    transport: asyncio.BaseTransport | None
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    return_rate_limits: bool = True
    listen_key: str | None = None  # legacy streams
    combined: bool = False  # /stream?streams= (events wrapped as {"stream", "data"})
    next_subscription_id: int = 0
    pings_sent: int = 0
    pongs_received: int = 0
    last_pong: float = field(default_factory=time.monotonic)
    closing: bool = False  # nothing more is sent (events are no longer routed here)
    drop_queued: bool = False  # a close or abort waits in the queue behind pending frames


@dataclass
class Subscription:
    id: int
    connection: WsConnection
    api_key: str
    account: Account


@dataclass
class ListenKey:
    key: str
    api_key: str
    account: Account
    expires_ms: int


class UserDataStreams:
    """The websocket side of `BinanceSpotPeer`; state is guarded by the peer's lock."""

    def __init__(self, peer: BinanceSpotPeer) -> None:
        self.peer = peer
        self.connections: dict[int, WsConnection] = {}
        self.subscriptions: list[Subscription] = []
        self.listen_keys: dict[str, ListenKey] = {}
        self.frames: list[WsFrame] = []
        self.ping_interval_s: float | None = 20.0
        self.pong_timeout_s = 60.0
        self._next_connection = 1
        self._next_execution = 8641984
        self._weight_minute = 0
        self._weight = 0

    # ----- routes ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(WS_API_PATH, self._ws_api)
        app.router.add_get("/ws/{listen_key}", self._ws_stream)
        app.router.add_get("/stream", self._ws_stream)
        for method in ("POST", "PUT", "DELETE"):
            app.router.add_route(method, LISTEN_KEY_PATH, self._listen_key_endpoint)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        # The peer going away: connections end without a close frame, like a dead server.
        with self.peer._lock:
            connections = list(self.connections.values())
        for conn in connections:
            if conn.transport is not None:
                conn.transport.abort()

    # ----- test hooks (called by the peer's public methods) ---------------------------------

    def disconnect_all(self, code: int = 1000, abort: bool = False) -> int:
        """Close every websocket: a close frame with `code` after pending frames, or a TCP abort."""
        with self.peer._lock:
            connections = [c for c in self.connections.values() if not c.closing]
            for conn in connections:
                self._drop(conn, ("abort", None) if abort else ("close", code))
            return len(connections)

    def _drop(self, conn: WsConnection, item: tuple[str, Any]) -> None:
        """Stop routing events to `conn` now, and close it once its pending frames are out."""
        conn.closing = conn.drop_queued = True
        self.subscriptions = [s for s in self.subscriptions if s.connection is not conn]
        self._schedule(conn, item)

    def terminate(self, key: str) -> int:
        """End every subscription of `key` with `eventStreamTerminated` (connections stay open)."""
        with self.peer._lock:
            ended = [s for s in self.subscriptions if s.api_key == key]
            for sub in ended:
                self._end_subscription(sub)
            return len(ended)

    # ----- delivery --------------------------------------------------------------------------

    def _schedule(self, conn: WsConnection, item: tuple[str, Any]) -> None:
        try:
            conn.loop.call_soon_threadsafe(conn.queue.put_nowait, item)
        except RuntimeError:  # the server loop is closed: the peer is stopped
            pass

    def _send(self, conn: WsConnection, payload: Any) -> None:
        self.frames.append(WsFrame(conn.id, "out", payload))
        self._schedule(conn, ("text", json.dumps(payload)))

    async def _sender(self, conn: WsConnection) -> None:
        while True:
            kind, value = await conn.queue.get()
            try:
                if kind == "text":
                    await conn.ws.send_str(value)
                elif kind == "close":
                    await conn.ws.close(code=value)
                    return
                elif kind == "abort":
                    if conn.transport is not None:
                        conn.transport.abort()
                    return
            except (ConnectionError, RuntimeError):
                return

    async def _pinger(self, conn: WsConnection) -> None:
        while not conn.ws.closed:
            interval = self.ping_interval_s
            if not interval:
                await asyncio.sleep(0.05)
                continue
            await asyncio.sleep(interval)
            if time.monotonic() - conn.last_pong > self.pong_timeout_s:
                with self.peer._lock:
                    self._drop(conn, ("close", 1000))
                return
            try:
                await conn.ws.ping(b"")
            except (ConnectionError, RuntimeError):
                return
            conn.pings_sent += 1

    async def _serve(
        self, request: web.Request, conn_setup: dict[str, Any]
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, timeout=2.0)
        await ws.prepare(request)
        with self.peer._lock:
            conn = WsConnection(
                id=self._next_connection,
                path=request.path,
                ws=ws,
                loop=asyncio.get_running_loop(),
                transport=request.transport,
                **conn_setup,
            )
            self._next_connection += 1
            self.connections[conn.id] = conn
            self._charge(2)
        sender = asyncio.create_task(self._sender(conn))
        pinger = asyncio.create_task(self._pinger(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.pongs_received += 1
                    conn.last_pong = time.monotonic()
        finally:
            pinger.cancel()
            with self.peer._lock:
                conn.closing = True
                self.subscriptions = [s for s in self.subscriptions if s.connection is not conn]
                drop_queued = conn.drop_queued
            if drop_queued:
                # The sender is closing it: let it finish sending the close frame.
                try:
                    await asyncio.wait_for(asyncio.shield(sender), 5.0)
                except TimeoutError:
                    sender.cancel()
            else:
                sender.cancel()
            with self.peer._lock:
                self.connections.pop(conn.id, None)
        return ws

    # ----- WebSocket API -------------------------------------------------------------------

    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        hide = request.query.get("returnRateLimits", "").lower() == "false"
        return await self._serve(request, {"return_rate_limits": not hide})

    def _on_text(self, conn: WsConnection, text: str) -> None:
        from .binance import BinanceError

        try:
            message: Any = json.loads(text)
        except ValueError:
            message = text
        with self.peer._lock:
            self.frames.append(WsFrame(conn.id, "in", message))
            if conn.listen_key is not None:
                return  # legacy streams: the peer ignores requests (SUBSCRIBE, ...)
            if not isinstance(message, dict) or not isinstance(message.get("params", {}), dict):
                self._charge(1)
                error = self._error(None, BinanceError(400, -1135, MSG_INVALID_JSON))
                if conn.return_rate_limits:
                    error["rateLimits"] = [self._rate_limit()]
                self._send(conn, error)
                return
            request_id = message.get("id")
            method = str(message.get("method") or "")
            if method.startswith("v3/"):
                method = method[3:]
            params: dict[str, Any] = message.get("params") or {}
            show = params.get("returnRateLimits", conn.return_rate_limits)
            self._charge(WEIGHTS.get(method, 1))
            try:
                if method == "userDataStream.subscribe.signature":
                    result: Any = self._subscribe_signature(conn, params)
                elif method == "userDataStream.unsubscribe":
                    result = self._unsubscribe(conn, params)
                elif method == "session.subscriptions":
                    result = [
                        {"subscriptionId": s.id} for s in self.subscriptions if s.connection is conn
                    ]
                elif method == "ping":
                    result = {}
                elif method == "time":
                    result = {"serverTime": self.peer.server_time()}
                else:
                    raise BinanceError(400, -1020, MSG_UNSUPPORTED)
                response: dict[str, Any] = {"id": request_id, "status": 200, "result": result}
            except BinanceError as e:
                response = self._error(request_id, e)
            if show not in (False, "false"):
                response["rateLimits"] = [self._rate_limit()]
            self._send(conn, response)

    def _error(self, request_id: Any, e: Any) -> dict[str, Any]:
        return {"id": request_id, "status": e.status, "error": {"code": e.code, "msg": e.msg}}

    def _subscribe_signature(self, conn: WsConnection, params: dict[str, Any]) -> Any:
        from .binance import BinanceError

        api_key = self.peer.verify_signed(
            params.get("apiKey"),
            {k: param_text(v) for k, v in params.items()},
            signature_payload(params),
            key_param="apiKey",
        )
        if any(s.connection is conn and s.account is api_key.account for s in self.subscriptions):
            raise BinanceError(400, -2035, MSG_ALREADY_SUBSCRIBED)
        sub = Subscription(conn.next_subscription_id, conn, api_key.key, api_key.account)
        conn.next_subscription_id += 1
        self.subscriptions.append(sub)
        return {"subscriptionId": sub.id}

    def _unsubscribe(self, conn: WsConnection, params: dict[str, Any]) -> Any:
        mine = [s for s in self.subscriptions if s.connection is conn]
        if "subscriptionId" in params:
            mine = [s for s in mine if str(s.id) == str(params["subscriptionId"])]
        for sub in mine:
            self._end_subscription(sub)
        return {}

    def _end_subscription(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
            event = {"e": "eventStreamTerminated", "E": self.peer.server_time()}
            self._send(sub.connection, {"subscriptionId": sub.id, "event": event})

    def _charge(self, weight: int) -> None:
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        self._weight += weight

    def _rate_limit(self) -> dict[str, Any]:
        return {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 6000,
            "count": self._weight,
        }

    # ----- legacy listenKey streams --------------------------------------------------------

    async def _listen_key_endpoint(self, request: web.Request) -> web.Response:
        from .binance import PARAMS, BinanceError, mandatory

        with self.peer._lock:
            header = request.headers.get("X-MBX-APIKEY")
            if not header:
                raise BinanceError(401, -2014, "API-key format invalid.")
            api_key = self.peer.keys.get(header)
            if api_key is None:
                raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
            expires = self.peer.server_time() + 3_600_000
            if request.method == "POST":
                active = next(
                    (lk for lk in self.listen_keys.values() if lk.account is api_key.account), None
                )
                if active is None:
                    active = ListenKey(secrets.token_hex(30), api_key.key, api_key.account, 0)
                    self.listen_keys[active.key] = active
                active.expires_ms = expires
                return web.json_response({"listenKey": active.key})
            key = request[PARAMS].get("listenKey")
            if not key:
                raise mandatory("listenKey")
            listen_key = self.listen_keys.get(key)
            if listen_key is None or listen_key.account is not api_key.account:
                raise BinanceError(400, -1125, MSG_NO_LISTEN_KEY)
            if request.method == "PUT":
                listen_key.expires_ms = expires
            else:
                del self.listen_keys[key]
                for conn in self.connections.values():
                    if conn.listen_key == key and not conn.closing:
                        self._drop(conn, ("close", 1000))
            return web.json_response({})

    async def _ws_stream(self, request: web.Request) -> web.StreamResponse:
        combined = request.path == "/stream"
        key = request.query.get("streams", "") if combined else request.match_info["listen_key"]
        with self.peer._lock:
            known = key in self.listen_keys
        if not known:
            return web.json_response({"code": -1125, "msg": MSG_NO_LISTEN_KEY}, status=400)
        return await self._serve(request, {"listen_key": key, "combined": combined})

    # ----- events ------------------------------------------------------------------------

    def publish(self, account: Account, event: dict[str, Any]) -> None:
        """Send `event` to every subscription and listenKey stream of `account` (lock held)."""
        for sub in self.subscriptions:
            if sub.account is account and not sub.connection.closing:
                self._send(sub.connection, {"subscriptionId": sub.id, "event": event})
        keys = {lk.key for lk in self.listen_keys.values() if lk.account is account}
        for conn in self.connections.values():
            if conn.listen_key in keys and not conn.closing:
                data = {"stream": conn.listen_key, "data": event} if conn.combined else event
                self._send(conn, data)

    def order_update(
        self,
        account: Account,
        order: Order,
        execution_type: str,
        *,
        trade: dict[str, Any] | None = None,
        on_book: bool = False,
        client_order_id: str | None = None,
        orig_client_order_id: str = "",
        transaction_time: int | None = None,
    ) -> None:
        """An `executionReport` for `order` as it is now (the order's state is snapshotted)."""
        from .binance import ZERO, D, fmt

        now = self.peer.server_time()
        last_qty = D(trade["qty"]) if trade else ZERO
        last_price = D(trade["price"]) if trade else ZERO
        self._next_execution += 1
        event = {
            "e": "executionReport",
            "E": now,
            "s": order.symbol,
            "c": client_order_id or order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force,
            "q": fmt(order.orig_qty),
            "p": fmt(order.price),
            "P": fmt(ZERO),
            "F": fmt(ZERO),
            "g": -1,
            "C": orig_client_order_id,
            "x": execution_type,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": fmt(last_qty),
            "z": fmt(order.executed_qty),
            "L": fmt(last_price),
            "n": trade["commission"] if trade else "0",
            "N": trade["commissionAsset"] if trade else None,
            "T": trade["time"] if trade else (transaction_time or order.update_time),
            "t": trade["id"] if trade else -1,
            "I": self._next_execution,
            "w": on_book,
            "m": bool(trade["isMaker"]) if trade else False,
            "M": trade is not None,
            "O": order.time,
            "Z": fmt(order.cumm_quote_qty),
            "Y": fmt(last_qty * last_price),
            "Q": fmt(order.orig_quote_qty),
            "W": order.time,
            "V": "EXPIRE_MAKER",
        }
        self.publish(account, event)

    def account_position(self, account: Account, assets: list[str]) -> None:
        """An `outboundAccountPosition` with the balances of `assets`."""
        from .binance import ZERO, fmt

        now = self.peer.server_time()
        balances = []
        for asset in dict.fromkeys(assets):
            free, locked = account.balances.get(asset, [ZERO, ZERO])
            balances.append({"a": asset, "f": fmt(free), "l": fmt(locked)})
        self.publish(account, {"e": "outboundAccountPosition", "E": now, "u": now, "B": balances})
