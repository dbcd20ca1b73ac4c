"""POST /hooks/<token>: signal intake, a bare ASGI app in front of Django.

The path is hot (thousands of alerts a second) and does one thing, so it
skips Django's request cycle: read at most 16 KB, find the source by the
token's SHA-256 (kept in the process for 5 s, else Redis, filled from the
database on a miss; the script below refuses a config that is no longer the
one in Redis, so a rotation or revocation acts at once), check the
optional signature, parse, then one Redis script that applies the rate
limits, the duplicate window and appends the signal to the durable stream,
atomically. The answer is 202 with the signal id; the copier does the rest.

No broker I/O and no database writes happen here. If Redis cannot take the
signal, the answer is 503 with Retry-After, so a signal is never accepted and
then lost.

Statuses: 202 accepted; 200 ``{"duplicate": true}`` (same alert_id, or the
same body, within the source's window); 400 a bad payload, naming the field;
401 a bad or stale signature; 404 an unknown or revoked token (the same
answer for both: nothing leaks); 405 not a POST; 413 over 16 KB; 429 over a
rate limit, with Retry-After; 503 with Retry-After when Redis is unavailable,
or when the copier is so far behind that a signal would be copied late
(``SIGNALS_MAX_BACKLOG`` signals waiting, counted per stream shard).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from typing import Any

import redis
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from django.conf import settings

from copier.core.signals import SignalError, parse_signal

log = logging.getLogger("hooks")

MAX_BODY = 16 * 1024
SIGNATURE_WINDOW_S = 300
CONFIG_TTL_S = 60
# Source configs are also kept in the web process for a few seconds; the
# intake script checks each against Redis, so a rotation still acts at once.
LOCAL_TTL_S = 5.0
LOCAL_MAX = 10_000
SHARDS = 8
STREAM = "signals:{shard}"
GROUP = "copier"
REDIS_CONNECTIONS = 100
BUSY_RETRY_S = 10

# KEYS: source rate, user rate, duplicate key, stream, source config.
# ARGV: window ms, source limit, user limit, duplicate ttl ms, signal id,
#       most signals waiting on the stream, the source config as read, fields...
# A config that is no longer the one in Redis (rotated, revoked, expired) is
# 'stale': the intake reads it again. The copier deletes what it has handled,
# so the stream's length is its backlog.
INTAKE = """
if redis.call('GET', KEYS[5]) ~= ARGV[7] then return {'stale', ''} end
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
if s >= tonumber(ARGV[2]) then return {'limited', redis.call('PTTL', KEYS[1])} end
local u = tonumber(redis.call('GET', KEYS[2]) or '0')
if u >= tonumber(ARGV[3]) then return {'limited', redis.call('PTTL', KEYS[2])} end
local first = redis.call('GET', KEYS[3])
if first then return {'duplicate', first} end
local waiting = redis.call('XLEN', KEYS[4])
if waiting >= tonumber(ARGV[6]) then return {'busy', waiting} end
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[4])
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
local id = redis.call('XADD', KEYS[4], '*', unpack(ARGV, 8))
return {'ok', id}
"""


def new_token() -> str:
    """A source's secret URL part: 256 bits."""
    return secrets.token_urlsafe(32)


def new_secret() -> str:
    """A source's HMAC signing secret."""
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def config_key(hashed: str) -> str:
    return f"hooks:source:{hashed}"


def shard_of(user_id: int) -> str:
    return STREAM.format(shard=user_id % SHARDS)


def all_streams() -> list[str]:
    return [STREAM.format(shard=k) for k in range(SHARDS)]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the source's secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _load_config(hashed: str) -> dict[str, Any] | None:
    from brokers.models import SignalSource

    source = (
        SignalSource.objects.select_related("account")
        .filter(token_hash=hashed, revoked_at=None)
        .first()
    )
    if source is None:
        return None
    return source_config(source)


def source_config(source: Any) -> dict[str, Any]:
    return {
        "source": source.account_id,
        "user": source.account.owner_id,
        "require_signature": source.require_signature,
        "secret": source.hmac_secret,
        "dedup_ms": source.dedup_window_s * 1000,
        "per_source": settings.SIGNALS_PER_MINUTE_PER_SOURCE,
        "per_user": settings.SIGNALS_PER_MINUTE_PER_USER,
    }


def forget_source(hashed: str) -> None:
    """After a rotation or revocation: the old token stops working at once."""
    from tradosphere.bus import sync_redis

    sync_redis().delete(config_key(hashed))


class Intake:
    def __init__(self) -> None:
        self._redis: aredis.Redis | None = None
        self._script: Any = None
        self._local: OrderedDict[str, tuple[float, str, dict[str, Any]]] = OrderedDict()

    @property
    def redis(self) -> aredis.Redis:
        if self._redis is None:
            # A blocking pool: a burst beyond its connections waits for one
            # (up to 2 s) instead of failing as if Redis were down.
            pool = aredis.BlockingConnectionPool.from_url(
                settings.REDIS_URL,
                max_connections=REDIS_CONNECTIONS,
                timeout=2,
                decode_responses=True,
                socket_timeout=2,
            )
            self._redis = aredis.Redis(connection_pool=pool)
            self._script = self._redis.register_script(INTAKE)
        return self._redis

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, body, headers = await self.handle(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    async def handle(
        self, scope: dict[str, Any], receive: Any
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        received_ms = time.time_ns() // 1_000_000
        if scope["method"] != "POST":
            return 405, {"error": "send alerts with POST"}, [(b"allow", b"POST")]
        token = scope["path"][len("/hooks/") :].strip("/")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                return 413, {"error": f"the body is over {MAX_BODY // 1024} KB"}, []
            if not message.get("more_body"):
                break
        hashed = token_hash(token)
        for _attempt in range(2):
            answer = await self.admit(hashed, scope, body, received_ms)
            if answer is not None:
                return answer
            self._local.pop(hashed, None)  # the source changed under us: read it again
        return _unavailable()

    async def admit(
        self, hashed: str, scope: dict[str, Any], body: bytes, received_ms: int
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        """The answer to one alert, or None when the source's config may be stale."""
        try:
            found = await self.config(hashed)
        except (redis.RedisError, OSError):
            return _unavailable()
        if found is None:
            return 404, {"error": "not found"}, []
        raw, config, kept = found
        if config["require_signature"]:
            problem = self.check_signature(config["secret"], scope, body)
            if problem:
                # A refusal is never decided on the process's copy alone: the
                # source may have stopped requiring signatures since.
                return None if kept else (401, {"error": problem}, [])
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return 400, {"error": {"field": "body", "message": f"not valid JSON: {e}"}}, []
        try:
            signal = parse_signal(data)
        except SignalError as e:
            return 400, {"error": {"field": e.field, "message": e.message}}, []
        signal_id = uuid.uuid4().hex
        if signal.alert_id:
            dedup = f"hooks:dup:{config['source']}:a:{signal.alert_id}"
        else:
            dedup = f"hooks:dup:{config['source']}:b:{hashlib.sha256(body).hexdigest()}"
        window = received_ms // 60_000
        keys = [
            f"hooks:rate:s:{config['source']}:{window}",
            f"hooks:rate:u:{config['user']}:{window}",
            dedup,
            shard_of(config["user"]),
            config_key(hashed),
        ]
        fields = {
            "sid": signal_id,
            "source": str(config["source"]),
            "user": str(config["user"]),
            "received_ms": str(received_ms),
            "body": body.decode(),
        }
        argv: list[Any] = [
            60_000,
            config["per_source"],
            config["per_user"],
            max(1, config["dedup_ms"]),
            signal_id,
            -(-settings.SIGNALS_MAX_BACKLOG // SHARDS),
            raw,
        ]
        for k, v in fields.items():
            argv += [k, v]
        try:
            outcome, value = await self._script(keys=keys, args=argv)
        except (redis.RedisError, OSError) as e:
            log.warning("signal intake unavailable: %s", e)
            return _unavailable()
        if outcome == "stale":
            return None
        if outcome == "limited":
            retry_s = max(1, -(-int(value) // 1000))
            error = "rate limit reached for this source or account"
            return (
                429,
                {"error": error, "retry_after_s": retry_s},
                [(b"retry-after", str(retry_s).encode())],
            )
        if outcome == "busy":
            return _busy(int(value))
        if outcome == "duplicate":
            return 200, {"duplicate": True, "signal_id": value}, []
        return 202, {"status": "accepted", "signal_id": signal_id}, []

    async def config(self, hashed: str) -> tuple[str, dict[str, Any], bool] | None:
        """The source's config, its Redis form and whether it is the process's copy;
        None for an unknown token."""
        now = time.monotonic()
        hit = self._local.get(hashed)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2], True
        raw = await self.redis.get(config_key(hashed))
        if raw is None:
            loaded = await sync_to_async(_load_config, thread_sensitive=False)(hashed)
            # Unknown tokens are remembered briefly too, so guessing costs no queries.
            raw = json.dumps(loaded or {})
            await self.redis.set(config_key(hashed), raw, ex=CONFIG_TTL_S)
        config: dict[str, Any] = json.loads(raw)
        if not config:
            return None  # not kept in the process: random tokens must not fill it
        self._local[hashed] = (now + LOCAL_TTL_S, raw, config)
        self._local.move_to_end(hashed)
        while len(self._local) > LOCAL_MAX:
            self._local.popitem(last=False)
        return raw, config, False

    @staticmethod
    def check_signature(secret: str, scope: dict[str, Any], body: bytes) -> str:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        timestamp = headers.get("x-signature-timestamp", "")
        given = headers.get("x-signature", "")
        if not timestamp or not given:
            return "this source requires X-Signature and X-Signature-Timestamp headers"
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            return "X-Signature-Timestamp must be Unix seconds"
        if age > SIGNATURE_WINDOW_S:
            return f"the timestamp is {age:.0f} s away from now (at most {SIGNATURE_WINDOW_S} s)"
        if not hmac.compare_digest(given.lower(), signature(secret, timestamp, body)):
            return "bad signature"
        return ""


def _unavailable() -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    return (
        503,
        {"error": "signal intake is unavailable; nothing was accepted, send it again"},
        [(b"retry-after", b"5")],
    )


def _busy(waiting: int) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    log.warning("signal intake refused a signal: %d signals wait for the copier", waiting)
    error = (
        f"the copier is behind ({waiting} signals are waiting); "
        "nothing was accepted, send it again later"
    )
    return (
        503,
        {"error": error, "retry_after_s": BUSY_RETRY_S},
        [(b"retry-after", str(BUSY_RETRY_S).encode())],
    )


intake = Intake()
