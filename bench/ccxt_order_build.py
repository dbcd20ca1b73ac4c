"""ccxt order build: a planned follower order to the signed HTTP request, network excluded.

Per follower order, the real path: `copier.core.plan()` gives a `FollowerOrder`
(untimed), then the clock starts and `CcxtVenue.execute(order, coid)` runs as
the daemon calls it: our local checks (`checked_client_order_id`, the cached
free balance, `markets.check_order`, for derivatives the margin at the link's
leverage and the cached position mode), ccxt's `create_order` (request
building, `amount_to_precision`, client-order-id renaming), ccxt's rate
limiter, ccxt's `sign()` (url-encoding or JSON, timestamp, HMAC-SHA256,
headers). The clock stops when ccxt calls `fetch(url, method, headers, body)`
on the exchange instance, where ccxt hands the signed request to aiohttp. The
bench's transport stands in for `fetch` there: it notes the time and the
request and raises a private exception, so nothing goes to the network and
neither the exchange's answer nor ccxt's parsing of it is timed. ccxt's own
`fetch` prologue (header merging, proxy checks) and aiohttp's request
serialisation are left out with the network; the `to_socket` lines measure
them apart.

Exchanges: binance spot (the first line), binanceusdm and bybit linear
perpetuals (leverage 5), each against the local peer of the tests
(`tests/exchange_peer/`), which the bench runs in a child process on a free
loopback port. A connector pointed at the peer loads the markets with ccxt's
own `load_markets` and sends one real order, which records every answer the
path needs (balance, position mode, leverage, account kind). The measured
connector has the production URLs, gets the markets with `set_markets` after a
JSON round trip (as `connect()` does from the market cache), and its
transport answers those other requests in process from the recording.

Passes and lines (one JSON object per line on stdout, logs on stderr):
1. `build_sign`, the first line (binance spot), then binanceusdm and bybit:
   warm connector, as for an order that follows another within the 2-s
   balance cache; ccxt's rate-limit bucket is full before each sample, which
   is what a leaky bucket holds for an idle account (ccxt's does not credit
   idle time: see pass 4). `--samples` per exchange after `--warmup`.
2. `build_sign_phases`: the same with the clock read at `create_order`,
   `throttle` and `sign` entry and exit (wrappers on the instance): our code,
   ccxt building, the limiter, signing, the rest of `fetch2`.
3. `to_socket`: the same span, but through ccxt's real `fetch` and aiohttp to
   the peer; the clock stops when aiohttp has written the order's headers
   (`on_request_headers_sent`) on the kept-alive loopback connection. Every
   order really goes to the peer, which checks its signature and fills it
   (untimed). `to_fetch_*` is the part up to ccxt's `fetch`, the span of
   pass 1 but amid real I/O. `--socket-samples` per exchange.
4. `as_configured`: the connector exactly as the daemon leaves it between two
   orders 0.3 s apart: ccxt's limiter as configured (with the idle time
   CcxtVenue credits to it) and the balance refreshed in the background, its
   request answered in process (no network); the limiter's waits are real.
   `--configured-samples` per exchange.

Every captured order request is checked after its pass: our client order id
in the exchange's field, symbol, side, type, the quantity string, the API key
and the HMAC-SHA256 signature recomputed from the secret. The first captured
request of each exchange is also sent, byte for byte, to its peer, which
verifies the signature the exchange's way and fills it. Any failure: exit 1.

Run: .venv/bin/python bench/ccxt_order_build.py [--samples 5000] [--warmup 500]
     [--socket-samples 1000] [--configured-samples 20]
     [--exchanges binance,binanceusdm,bybit] [--profile]
About 40 s. Figures and their reading: docs/performance.md, "ccxt order build".
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import hashlib
import hmac
import io
import json
import pstats
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from _common import ROOT, GcClock, emit, load_average, log, percentile

GOAL_P99_US = 200
PRICE = Decimal("65000")
# Master volumes (one BTC per lot, multiplier 1): every one is on each market's step.
MASTER_VOLUMES = ("0.002", "0.003", "0.005", "0.01", "0.025")


def us(ns: float) -> float:
    return ns / 1000


def stats(values: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(percentile(values, 50), 1),
        "p99_us": round(percentile(values, 99), 1),
        "mean_us": round(statistics.fmean(values), 1),
        "max_us": round(max(values), 1),
    }


# -- the network boundary -------------------------------------------------------------


class RequestReady(Exception):
    """The signed order request reached the transport: the clock stops here."""


@dataclass
class Captured:
    method: str
    url: str
    headers: dict[str, str]
    body: str | None


class Transport:
    """Stands in for ccxt's `fetch` on one exchange instance: the network boundary.

    `record` mode passes every request to ccxt's real `fetch` (real HTTP) and
    keeps each answer (or the ccxt error it raised) by method and path.
    `replay` mode stops at the order request (time and request noted,
    `RequestReady` raised) and answers any other request in process with its
    recorded answer; a request that was never recorded is an error, so the
    bench cannot time a path it did not see.
    """

    def __init__(self, exchange: Any, order_path: str, answers: dict[str, str]) -> None:
        self.real_fetch = exchange.fetch
        self.order_path = order_path
        self.answers = dict(answers)
        self.errors: dict[str, Exception] = {}
        self.mode = "replay"
        self.t_ready = 0
        self.request: Captured | None = None
        exchange.fetch = self.fetch

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        t = time.perf_counter_ns()
        path = urlsplit(url).path
        if self.mode == "record":
            try:
                answer = await self.real_fetch(url, method, headers, body)
            except Exception as e:
                self.errors[f"{method} {path}"] = e
                raise
            self.answers[f"{method} {path}"] = json.dumps(answer)
            return answer
        if method == "POST" and path == self.order_path:
            self.t_ready = t
            self.request = Captured(method, url, dict(headers or {}), body)
            raise RequestReady
        text = self.answers.get(f"{method} {path}")
        if text is None:
            if (error := self.errors.get(f"{method} {path}")) is not None:
                raise copy.copy(error)
            raise AssertionError(f"the bench has no answer for {method} {url}")
        return json.loads(text)


class PeerProcess:
    """One of the tests' exchange peers in a child process, so it never takes our GIL."""

    CODE = """
import sys
sys.path.insert(0, sys.argv[1])
exchange, price = sys.argv[2], sys.argv[3]
key, secret = sys.stdin.readline().strip(), sys.stdin.readline().strip()
if exchange == "binance":
    from tests.exchange_peer.binance import BinanceSpotPeer
    peer = BinanceSpotPeer()
    peer.add_key(key, secret, {"USDT": "100000000", "BTC": "100000"})
elif exchange == "binanceusdm":
    from tests.exchange_peer.binance_futures import BinanceUsdmPeer
    peer = BinanceUsdmPeer()
    peer.add_key(key, secret, "100000000")
else:
    from tests.exchange_peer.bybit import BybitPeer
    peer = BybitPeer()
    peer.add_key(key, secret, "100000000")
peer.start()
peer.set_price("BTCUSDT", price)
print(peer.base_url, flush=True)
sys.stdin.read()
peer.stop()
"""

    def __init__(self, exchange: str, key: str, secret: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.CODE, str(ROOT), exchange, str(PRICE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{key}\n{secret}\n")
        self.proc.stdin.flush()
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.stop()
            raise SystemExit(f"the {exchange} peer did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- exchanges ------------------------------------------------------------------------


def _hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def _amount(volume: Decimal) -> str:
    return format(volume.normalize(), "f")


@dataclass(frozen=True)
class Spec:
    name: str
    market_type: str
    symbol: str
    order_path: str
    leverage: int | None
    verify: Callable[[Bench, Captured, Any, str], list[str]]
    accepted: Callable[[dict[str, Any], str], bool]
    exchange_symbol: str = "BTCUSDT"


@dataclass
class Bench:
    """One exchange: the measured connector, its transport, its peer and its orders."""

    spec: Spec
    venue: Any
    transport: Transport
    peer: PeerProcess
    api_key: str
    secret: str
    balance_at: float = 0.0
    orders: list[tuple[Any, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


def verify_binance(bench: Bench, req: Captured, order: Any, coid: str) -> list[str]:
    """Binance (spot and USD-M): HMAC-SHA256 of the signed parameters, key header."""
    problems = []
    query = urlsplit(req.url).query
    signed = next((s for s in (query, req.body or "") if "&signature=" in s), None)
    if signed is None:
        return ["no signature parameter in the url or the body"]
    payload, signature = signed.rsplit("&signature=", 1)
    if not hmac.compare_digest(_hmac_hex(bench.secret, payload), signature):
        problems.append("the signature is not HMAC-SHA256(secret, parameters)")
    params = dict(parse_qsl(query)) | dict(parse_qsl(req.body or ""))
    expected = {
        "newClientOrderId": coid,
        "symbol": bench.spec.exchange_symbol,
        "side": order.side.value.upper(),
        "type": "MARKET",
        "quantity": _amount(order.volume),
    }
    for name, value in expected.items():
        if params.get(name) != value:
            problems.append(f"{name} is {params.get(name)!r}, expected {value!r}")
    if req.headers.get("X-MBX-APIKEY") != bench.api_key:
        problems.append("no X-MBX-APIKEY header with the key")
    return problems


def verify_bybit(bench: Bench, req: Captured, order: Any, coid: str) -> list[str]:
    """Bybit v5: X-BAPI-SIGN = HMAC-SHA256(timestamp + key + recvWindow + body)."""
    problems = []
    h = req.headers
    auth = h.get("X-BAPI-TIMESTAMP", "") + bench.api_key + h.get("X-BAPI-RECV-WINDOW", "")
    if not hmac.compare_digest(
        _hmac_hex(bench.secret, auth + (req.body or "")), h.get("X-BAPI-SIGN", "")
    ):
        problems.append("X-BAPI-SIGN is not HMAC-SHA256(timestamp + key + recvWindow + body)")
    if h.get("X-BAPI-API-KEY") != bench.api_key:
        problems.append("no X-BAPI-API-KEY header with the key")
    body = json.loads(req.body or "{}")
    expected = {
        "orderLinkId": coid,
        "symbol": bench.spec.exchange_symbol,
        "category": "linear",
        "side": order.side.value.capitalize(),
        "orderType": "Market",
        "qty": _amount(order.volume),
    }
    for name, value in expected.items():
        if body.get(name) != value:
            problems.append(f"{name} is {body.get(name)!r}, expected {value!r}")
    return problems


SPECS = {
    "binance": Spec(
        "binance",
        "spot",
        "BTC/USDT",
        "/api/v3/order",
        None,
        verify_binance,
        lambda answer, coid: answer.get("clientOrderId") == coid,
    ),
    "binanceusdm": Spec(
        "binanceusdm",
        "swap",
        "BTC/USDT:USDT",
        "/fapi/v1/order",
        5,
        verify_binance,
        lambda answer, coid: answer.get("clientOrderId") == coid,
    ),
    "bybit": Spec(
        "bybit",
        "swap",
        "BTC/USDT:USDT",
        "/v5/order/create",
        5,
        verify_bybit,
        lambda answer, coid: (
            answer.get("retCode") == 0 and answer.get("result", {}).get("orderLinkId") == coid
        ),
    ),
}


def _cache_copy(markets: dict[str, Any]) -> dict[str, Any]:
    """Markets as the market cache stores and reads them back (market_cache._download)."""
    return dict(json.loads(json.dumps(markets, default=str)))


def connector(spec: Spec, key: str, secret: str, api_host: str | None = None) -> Any:
    from brokers.venues.ccxt.venue import CcxtVenue

    return CcxtVenue(
        spec.name,
        {"apiKey": key, "secret": secret},
        spec.market_type,
        api_host=api_host,
        leverage=spec.leverage,
    )


async def setup(spec: Spec, link_id: int) -> Bench:
    """The peer, the answers the path needs from it, and the measured connector."""
    key, secret = "bench" + secrets.token_hex(8), secrets.token_hex(32)
    peer = PeerProcess(spec.name, key, secret)
    try:
        loader = connector(spec, key, secret, api_host=peer.base_url)
        recorder = Transport(loader.exchange, "", {})
        recorder.mode = "record"
        try:
            await loader.call("load_markets")
            order, coid = planned_orders(spec, loader, 1, link_id + 100)[0]
            report = await loader.execute(order, coid)
            if report.client_order_id != coid or not report.created:
                raise SystemExit(f"{spec.name}: the peer did not take the recording order")
        finally:
            await loader.close()
        venue = connector(spec, key, secret)  # the production URLs
        venue.exchange.set_markets(_cache_copy(loader.exchange.markets))
        transport = Transport(venue.exchange, spec.order_path, recorder.answers)
        transport.errors = recorder.errors
    except BaseException:
        peer.stop()
        raise
    log(
        f"{spec.name}: {len(venue.exchange.markets)} markets loaded by ccxt from the peer; "
        f"answers recorded: {', '.join(sorted(recorder.answers))}"
        + "".join(f"; error recorded: {k} {type(e).__name__}" for k, e in recorder.errors.items())
    )
    return Bench(spec, venue, transport, peer, key, secret)


# -- orders ---------------------------------------------------------------------------


def planned_orders(spec: Spec, venue: Any, count: int, link_id: int) -> list[tuple[Any, str]]:
    """`count` follower orders from the real planner, with their client order ids.

    A master on another venue (`BTCUSD`, 1 BTC a lot) opens positions; the
    link maps the symbol to the follower's market and copies 1:1; the daemon's
    own steps: `map_symbol`, `venue.instrument`, `plan`, `client_order_id`.
    """
    from copier.core import (
        CopyRules,
        EventKind,
        FollowerOrder,
        FollowerState,
        MasterEvent,
        Side,
        client_order_id,
        plan,
    )

    rules = CopyRules(symbol_map={"BTCUSD": spec.symbol})
    instrument = venue.instrument(rules.map_symbol("BTCUSD"))
    state = FollowerState(balance=Decimal(1_000_000), equity=Decimal(1_000_000))
    now_ms = time.time_ns() // 1_000_000
    orders = []
    for seq in range(1, count + 1):
        event = MasterEvent(
            source="acct:1",
            seq=seq,
            kind=EventKind.POSITION_OPENED,
            master_ref=f"P{seq}",
            symbol="BTCUSD",
            side=Side.BUY if seq % 2 else Side.SELL,
            volume=Decimal(MASTER_VOLUMES[seq % len(MASTER_VOLUMES)]),
            price=PRICE,
            ts_event_ms=now_ms,
            contract_size=Decimal(1),
        )
        order = plan(event, rules, state, instrument, now_ms)
        if not isinstance(order, FollowerOrder):
            raise SystemExit(f"{spec.name}: the planner skipped the order: {order.reason}")
        orders.append((order, client_order_id(link_id, event.master_ref, event.seq)))
    return orders


# -- samples --------------------------------------------------------------------------


async def fresh_balance(bench: Bench) -> None:
    """Keep the connector's 2-s balance cache fresh (untimed), as right after an order."""
    if time.monotonic() - bench.balance_at > 1.0:
        await bench.venue.free_balance(refresh=True)
        bench.balance_at = time.monotonic()


def fill_bucket(exchange: Any) -> None:
    """ccxt's limiter bucket as a leaky bucket leaves it after idle time: full."""
    config = exchange.throttler.config
    config["tokens"] = config["capacity"]


async def one_order(bench: Bench, order: Any, coid: str) -> tuple[int, Captured]:
    """The timed span: execute() until its order request reaches the transport."""
    bench.transport.request = None
    t0 = time.perf_counter_ns()
    try:
        await bench.venue.execute(order, coid)
    except RequestReady:
        pass
    else:
        raise AssertionError("execute() returned without sending its order")
    captured = bench.transport.request
    assert captured is not None
    return bench.transport.t_ready - t0, captured


def check_requests(bench: Bench, done: list[tuple[Any, str, Captured]], label: str) -> bool:
    failures = 0
    for order, coid, captured in done:
        problems = bench.spec.verify(bench, captured, order, coid)
        if problems:
            failures += 1
            if failures <= 3:
                log(f"{bench.name} {label}: bad request for {coid}: {'; '.join(problems)}")
    if failures:
        log(f"{bench.name} {label}: {failures} of {len(done)} captured requests are wrong")
        return False
    log(f"{bench.name} {label}: all {len(done)} captured requests checked (id, amount, HMAC)")
    return True


async def send_to_peer(bench: Bench, captured: Captured, coid: str) -> bool:
    """Send one captured request, byte for byte, to the exchange's peer."""
    import aiohttp

    parts = urlsplit(captured.url)
    url = bench.peer.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            captured.method, url, headers=captured.headers, data=captured.body
        ) as response,
    ):
        answer = await response.json(content_type=None)
    if response.status != 200 or not bench.spec.accepted(answer, coid):
        log(f"{bench.name} peer refused the captured request: {response.status} {answer}")
        return False
    log(f"{bench.name} peer accepted the captured request {coid}")
    return True


# -- passes ---------------------------------------------------------------------------


async def pass_build_sign(
    bench: Bench, warmup: int, samples: int, profile: cProfile.Profile | None = None
) -> tuple[dict[str, object], bool]:
    spans: list[float] = []
    gc_spans = 0
    done: list[tuple[Any, str, Captured]] = []
    gc_clock = GcClock()
    for i, (order, coid) in enumerate(bench.orders[: warmup + samples]):
        await fresh_balance(bench)
        fill_bucket(bench.venue.exchange)
        await asyncio.sleep(0)  # let the limiter's previous loop finish, untimed
        gc_before = gc_clock.total_ns
        if profile is not None and i >= warmup:
            profile.enable()
        span, captured = await one_order(bench, order, coid)
        if profile is not None:
            profile.disable()
        if i < warmup:
            continue
        spans.append(us(span))
        gc_spans += gc_clock.total_ns != gc_before
        done.append((order, coid, captured))
    gc_clock.close()
    ok = check_requests(bench, done, "build_sign")
    figures = stats(spans)
    return {
        "bench": "ccxt_order_build",
        "p50_us": figures["p50_us"],
        "p99_us": figures["p99_us"],
        "exchange": bench.name,
        "market": bench.spec.market_type,
        "path": "build_sign",
        "n": len(spans),
        "mean_us": figures["mean_us"],
        "max_us": figures["max_us"],
        "samples_with_gc": gc_spans,
        "goal_p99_us": GOAL_P99_US,
        "rate_limiter": "bucket full before each sample",
        "balance": "cached (fetched < 2 s before)",
        "requests_checked": ok,
    }, ok


async def pass_phases(bench: Bench, warmup: int, samples: int) -> dict[str, object]:
    """Clock readings at create_order, throttle and sign, through instance wrappers."""
    exchange = bench.venue.exchange
    marks: dict[str, int] = {}
    create_order, throttle, sign = exchange.create_order, exchange.throttle, exchange.sign

    async def timed_create_order(*args: Any, **kwargs: Any) -> Any:
        marks["create_order"] = time.perf_counter_ns()
        return await create_order(*args, **kwargs)

    async def timed_throttle(*args: Any, **kwargs: Any) -> Any:
        marks["throttle_in"] = time.perf_counter_ns()
        try:
            return await throttle(*args, **kwargs)
        finally:
            marks["throttle_out"] = time.perf_counter_ns()

    def timed_sign(*args: Any, **kwargs: Any) -> Any:
        marks["sign_in"] = time.perf_counter_ns()
        try:
            return sign(*args, **kwargs)
        finally:
            marks["sign_out"] = time.perf_counter_ns()

    phases: dict[str, list[float]] = {
        "ours": [],
        "ccxt_build": [],
        "throttle": [],
        "ccxt_sign": [],
        "to_fetch": [],
        "total": [],
    }
    for i, (order, coid) in enumerate(bench.orders[-(warmup + samples) :]):
        await fresh_balance(bench)  # outside the wrappers: the marks are the order's
        fill_bucket(exchange)
        await asyncio.sleep(0)
        exchange.create_order, exchange.throttle, exchange.sign = (
            timed_create_order,
            timed_throttle,
            timed_sign,
        )
        marks.clear()
        t0 = time.perf_counter_ns()
        try:
            span, _captured = await one_order(bench, order, coid)
        finally:
            del exchange.create_order, exchange.throttle, exchange.sign
        if i < warmup:
            continue
        t_ready = t0 + span
        phases["ours"].append(us(marks["create_order"] - t0))
        phases["ccxt_build"].append(us(marks["throttle_in"] - marks["create_order"]))
        phases["throttle"].append(us(marks["throttle_out"] - marks["throttle_in"]))
        phases["ccxt_sign"].append(us(marks["sign_out"] - marks["sign_in"]))
        phases["to_fetch"].append(
            us((marks["sign_in"] - marks["throttle_out"]) + (t_ready - marks["sign_out"]))
        )
        phases["total"].append(us(span))
    result: dict[str, object] = {
        "bench": "ccxt_order_build",
        "exchange": bench.name,
        "market": bench.spec.market_type,
        "path": "build_sign_phases",
        "n": len(phases["total"]),
    }
    for name, values in phases.items():
        result[f"{name}_p50_us"] = round(percentile(values, 50), 1)
        result[f"{name}_p99_us"] = round(percentile(values, 99), 1)
        result[f"{name}_mean_us"] = round(statistics.fmean(values), 1)
    return result


async def pass_to_socket(
    bench: Bench, warmup: int, samples: int, link_id: int
) -> tuple[dict[str, object], bool]:
    """The same span through ccxt's `fetch` and aiohttp, up to the socket write.

    A second connector whose URLs point at the peer, with an aiohttp session of
    ccxt's own kind plus one trace hook, so the clock stops when aiohttp has
    written the order request's headers to the kept-alive connection. Each
    order then really goes to the peer, which checks it and fills it (untimed).
    """
    import aiohttp

    venue = connector(bench.spec, bench.api_key, bench.secret, api_host=bench.peer.base_url)
    venue.exchange.set_markets(_cache_copy(bench.venue.exchange.markets))
    sent: list[int] = []
    fetched: list[int] = []
    real_fetch = venue.exchange.fetch

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if method == "POST" and urlsplit(url).path == bench.spec.order_path:
            fetched.append(time.perf_counter_ns())
        return await real_fetch(url, method, headers, body)

    async def headers_sent(_session: Any, _ctx: Any, params: Any) -> None:
        if params.method == "POST" and params.url.path == bench.spec.order_path:
            sent.append(time.perf_counter_ns())
            # The clock has stopped: requests after the order in execute() (Bybit
            # reads its order back) need not wait for ccxt's limiter either.
            fill_bucket(venue.exchange)

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(headers_sent)
    venue.exchange.fetch = fetch
    venue.exchange.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(enable_cleanup_closed=True), trace_configs=[trace]
    )
    spans: list[float] = []
    to_fetch: list[float] = []
    wrong = 0
    try:
        for i, (order, coid) in enumerate(
            planned_orders(bench.spec, venue, warmup + samples, link_id)
        ):
            # execute() clears the balance cache after each order it sends: fill it
            # again (untimed, from the peer) so that no balance request is timed.
            fill_bucket(venue.exchange)
            await venue.free_balance(refresh=True)
            fill_bucket(venue.exchange)
            sent.clear()
            fetched.clear()
            t0 = time.perf_counter_ns()
            report = await venue.execute(order, coid)
            if report.client_order_id != coid or not report.created or len(sent) != 1:
                wrong += 1
            elif i >= warmup:
                spans.append(us(sent[0] - t0))
                to_fetch.append(us(fetched[0] - t0))
    finally:
        await venue.close()
    if wrong:
        log(f"{bench.name} to_socket: {wrong} orders were not filled under our client order id")
    else:
        log(f"{bench.name} to_socket: the peer took all {warmup + samples} orders")
    return {
        "bench": "ccxt_order_build",
        "exchange": bench.name,
        "market": bench.spec.market_type,
        "path": "to_socket",
        "n": len(spans),
        **stats(spans),
        "to_fetch_p50_us": round(percentile(to_fetch, 50), 1),
        "to_fetch_p99_us": round(percentile(to_fetch, 99), 1),
        "stop": "aiohttp on_request_headers_sent, kept-alive loopback connection to the peer",
        "rate_limiter": "bucket full before each sample",
        "requests_checked": not wrong,
    }, not wrong


CONFIGURED_GAP_S = 0.3


async def pass_as_configured(bench: Bench, samples: int) -> tuple[dict[str, object], bool]:
    """The connector as the daemon leaves it between orders; the limiter's waits are real."""
    spans: list[float] = []
    done: list[tuple[Any, str, Captured]] = []
    for i, (order, coid) in enumerate(bench.orders[-(samples + 2) :]):
        # Orders of one account a moment apart, as master events come: the
        # connector refreshes its balance in the background meanwhile.
        await asyncio.sleep(CONFIGURED_GAP_S)
        span, captured = await one_order(bench, order, coid)
        if i < 2:
            continue  # the first two bring the limiter to its steady state
        spans.append(us(span))
        done.append((order, coid, captured))
    ok = check_requests(bench, done, "as_configured")
    bench.balance_at = 0.0
    return {
        "bench": "ccxt_order_build",
        "exchange": bench.name,
        "market": bench.spec.market_type,
        "path": "as_configured",
        "n": len(spans),
        **stats(spans),
        "rate_limit_ms": bench.venue.exchange.rateLimit,
        "rate_limiter": "ccxt as configured (enableRateLimit), idle time credited by CcxtVenue",
        "gap_ms": CONFIGURED_GAP_S * 1000,
        "balance": "cached; refreshed in the background, answered in process",
        "requests_checked": ok,
    }, ok


# -- main -----------------------------------------------------------------------------


def print_profile(profile: cProfile.Profile, name: str, samples: int) -> None:
    out = io.StringIO()
    ps = pstats.Stats(profile, stream=out)
    ps.sort_stats("tottime").print_stats(30)
    ps.sort_stats("cumulative").print_stats(40)
    log(f"cProfile of {samples} build_sign samples on {name} (times for all samples):")
    print(out.getvalue(), file=sys.stderr)


async def run(args: argparse.Namespace) -> int:
    names = [n for n in args.exchanges.split(",") if n]
    if not names or names[0] != "binance" or any(n not in SPECS for n in names):
        raise SystemExit(f"--exchanges: binance first (the main line), then any of {list(SPECS)}")
    ok = True
    benches: list[Bench] = []
    try:
        for link_id, name in enumerate(names, start=1):
            bench = await setup(SPECS[name], link_id)
            benches.append(bench)
            total = args.warmup + args.samples + args.configured_samples + 2
            bench.orders = planned_orders(bench.spec, bench.venue, total, link_id)
        # Check the path once before any timing: one order captured, checked, and
        # sent byte for byte to the peer, which verifies it as the exchange does.
        for bench in benches:
            await fresh_balance(bench)
            fill_bucket(bench.venue.exchange)
            order, coid = bench.orders[0]
            _span, captured = await one_order(bench, order, coid)
            log(f"{bench.name}: {captured.method} {captured.url[:120]}")
            ok &= check_requests(bench, [(order, coid, captured)], "first request")
            ok &= await send_to_peer(bench, captured, coid)
        if not ok:
            return 1
        for bench in benches:
            profile = cProfile.Profile() if args.profile and bench.name == "binance" else None
            result, passed = await pass_build_sign(bench, args.warmup, args.samples, profile)
            ok &= passed
            emit(result)
            if profile is not None:
                print_profile(profile, bench.name, args.samples)
        for bench in benches:
            emit(await pass_phases(bench, args.warmup // 2, min(args.samples, 2000)))
        if args.socket_samples:
            for link_id, bench in enumerate(benches, start=200):
                result, passed = await pass_to_socket(bench, 100, args.socket_samples, link_id)
                ok &= passed
                emit(result)
        if args.configured_samples:
            for bench in benches:
                result, passed = await pass_as_configured(bench, args.configured_samples)
                ok &= passed
                emit(result)
    finally:
        for bench in benches:
            await bench.venue.close()
            bench.peer.stop()
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000, help="timed orders per exchange")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument(
        "--socket-samples",
        type=int,
        default=1000,
        help="orders per exchange timed up to aiohttp's socket write, filled by the peer",
    )
    parser.add_argument(
        "--configured-samples",
        type=int,
        default=20,
        help="orders per exchange through ccxt's limiter as configured (each waits for it)",
    )
    parser.add_argument("--exchanges", default="binance,binanceusdm,bybit")
    parser.add_argument("--profile", action="store_true", help="cProfile binance spot to stderr")
    args = parser.parse_args()
    import uvloop

    log(f"load average before: {load_average()}")
    started = time.monotonic()
    status = uvloop.run(run(args))
    log(f"done in {time.monotonic() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
